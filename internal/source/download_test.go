package source_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha3"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

var zips sync.Map // version -> []byte

// amalgamationZip lays out the official files of version as sqlite.org's
// sqlite-amalgamation-3XXYYZZ.zip does.
func amalgamationZip(t testing.TB, version string) []byte {
	t.Helper()
	if b, ok := zips.Load(version); ok {
		return b.([]byte)
	}
	dir := fixtures.Amalgamation(t, version)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	top := fmt.Sprintf("sqlite-amalgamation-%d/", pins.MustParseVersion(version).Number())
	for _, f := range []string{"sqlite3.c", "sqlite3.h", "sqlite3ext.h"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if s, err := source.StripGoSQLite3(b); err == nil { // the fixture's sqlite3ext.h is still wrapped
			b = s
		}
		w, err := zw.Create(top + f)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zips.Store(version, buf.Bytes())
	return buf.Bytes()
}

func writeZip(t testing.TB, b []byte) string {
	p := filepath.Join(t.TempDir(), "archive.zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sum(b []byte) string {
	s := sha3.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mirror is a test download server; serve gets the 1-based request number.
type mirror struct {
	*httptest.Server
	hits  atomic.Int32
	paths sync.Map
}

func newMirror(t testing.TB, serve func(n int, w http.ResponseWriter, r *http.Request)) *mirror {
	m := &mirror{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.paths.Store(r.URL.Path, true)
		serve(int(m.hits.Add(1)), w, r)
	}))
	t.Cleanup(m.Close)
	return m
}

func ok(body []byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	}
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// truncated promises the whole body and sends half of it.
func truncated(body []byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
	}
}

// stalled sends half the body and then nothing until the client gives up.
func stalled(body []byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
}

// reset sends a little and drops the connection.
func reset(body []byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		bw.Write(body[:100])
		bw.Flush()
		conn.Close()
	}
}

// seq serves the n-th request with steps[n-1], repeating the last one.
func seq(steps ...func(http.ResponseWriter, *http.Request)) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, r *http.Request) {
		steps[min(n, len(steps))-1](w, r)
	}
}

// testPins makes a pins file whose mirrors are the test servers and whose
// 3.51.3 amalgamation hash is that of the zip built from the fixture.
func testPins(t testing.TB, archiveSHA3 string, mirrors ...*mirror) (*pins.File, pins.Pin) {
	p := pin(t, "3.51.3")
	p.Amalgamation = &pins.Hash{SHA3: archiveSHA3, Published: "the test's zip"}
	p.AutoconfArchive = nil
	p.GoModule = ""
	f := &pins.File{Name: "test-pins.yaml", Default: p.Version, Releases: []pins.Pin{p}}
	for _, m := range mirrors {
		f.Mirrors = append(f.Mirrors, m.URL)
	}
	return f, p
}

func TestDownloadRetries(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	for name, tc := range map[string]struct {
		steps []func(http.ResponseWriter, *http.Request)
		hits  int
	}{
		"first try":          {[]func(http.ResponseWriter, *http.Request){ok(body)}, 1},
		"500s then ok":       {[]func(http.ResponseWriter, *http.Request){status(500), status(503), ok(body)}, 3},
		"truncated then ok":  {[]func(http.ResponseWriter, *http.Request){truncated(body), ok(body)}, 2},
		"stalled then ok":    {[]func(http.ResponseWriter, *http.Request){stalled(body), ok(body)}, 2},
		"reset then ok":      {[]func(http.ResponseWriter, *http.Request){reset(body), ok(body)}, 2},
		"429 then ok":        {[]func(http.ResponseWriter, *http.Request){status(429), ok(body)}, 2},
		"stalled, truncated": {[]func(http.ResponseWriter, *http.Request){stalled(body), truncated(body), ok(body)}, 3},
	} {
		t.Run(name, func(t *testing.T) {
			m := newMirror(t, seq(tc.steps...))
			pf, p := testPins(t, sum(body), m)
			out := filepath.Join(t.TempDir(), "src")
			l, hook := logger(t)
			src, err := newFetcher(t, source.WithLogger(l)).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
			if err != nil {
				t.Fatalf("Fetch = %v", err)
			}
			checkSource(t, src, out)
			wantURL := m.URL + "/2026/sqlite-amalgamation-3510300.zip"
			if src.Origin != wantURL || src.ArchiveKind != source.KindAmalgamation || src.ArchiveSHA3 != sum(body) {
				t.Errorf("Source = %+v, want the amalgamation from %s", src, wantURL)
			}
			if got := int(m.hits.Load()); got != tc.hits {
				t.Errorf("requests = %d, want %d", got, tc.hits)
			}
			if !hasMessage(hook.AllEntries(), "downloaded "+wantURL) {
				t.Errorf("no final progress line in the log")
			}
		})
	}
}

func hasMessage(entries []*logrus.Entry, prefix string) bool {
	for _, e := range entries {
		if strings.HasPrefix(e.Message, prefix) {
			return true
		}
	}
	return false
}

func TestMirrorFallback(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	for name, tc := range map[string]struct {
		first     func(http.ResponseWriter, *http.Request)
		firstHits int
	}{
		"404 is not retried": {status(404), 1},
		"500 is retried":     {status(500), 3},
		"wrong file":         {ok(amalgamationZip(t, "3.53.4")), 1},
	} {
		t.Run(name, func(t *testing.T) {
			m1 := newMirror(t, seq(tc.first))
			m2 := newMirror(t, seq(ok(body)))
			pf, p := testPins(t, sum(body), m1, m2)
			out := filepath.Join(t.TempDir(), "src")
			src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
			if err != nil {
				t.Fatalf("Fetch = %v", err)
			}
			if !strings.HasPrefix(src.Origin, m2.URL) {
				t.Errorf("Origin = %s, want the second mirror %s", src.Origin, m2.URL)
			}
			if got := int(m1.hits.Load()); got != tc.firstHits {
				t.Errorf("first mirror requests = %d, want %d", got, tc.firstHits)
			}
		})
	}
}

func TestDownloadFails(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	wrong := amalgamationZip(t, "3.53.4")
	m1 := newMirror(t, seq(status(500)))
	m2 := newMirror(t, seq(status(404)))
	m3 := newMirror(t, seq(ok(wrong)))
	m4 := newMirror(t, seq(stalled(body)))
	pf, p := testPins(t, sum(body), m1, m2, m3, m4)
	out := filepath.Join(t.TempDir(), "src")
	cache := t.TempDir()
	_, err := newFetcher(t, source.WithCacheDir(cache)).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
	file := "/2026/sqlite-amalgamation-3510300.zip"
	wantErr(t, err,
		"download sqlite-amalgamation-3510300.zip: every source failed",
		m1.URL+file+": HTTP 500 Internal Server Error (3 attempts)",
		m2.URL+file+": HTTP 404 Not Found",
		m3.URL+file+": SHA3-256 = "+sum(wrong)+", want "+sum(body)+" (the test's zip)",
		m4.URL+file+": stalled: no data for 200ms (3 attempts)",
	)
	noOutput(t, out)
	for m, want := range map[*mirror]int{m1: 3, m2: 1, m3: 1, m4: 3} {
		if got := int(m.hits.Load()); got != want {
			t.Errorf("%s: requests = %d, want %d", m.URL, got, want)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "archives"))
	if len(ents) != 0 {
		t.Errorf("cache holds %v after failed downloads, want nothing", ents)
	}
}

func TestDownloadCache(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	m := newMirror(t, seq(ok(body)))
	pf, p := testPins(t, sum(body), m)
	cache := t.TempDir()
	f := newFetcher(t, source.WithCacheDir(cache))
	if _, err := f.Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, "archives", sum(body))
	if got := sha3File(t, cached); got != sum(body) {
		t.Fatalf("cached archive SHA3-256 = %s, want %s", got, sum(body))
	}

	// A second fetch, even by another Fetcher, downloads nothing.
	out := filepath.Join(t.TempDir(), "b")
	src, err := newFetcher(t, source.WithCacheDir(cache)).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.hits.Load(); got != 1 {
		t.Errorf("requests after the second Fetch = %d, want 1", got)
	}
	checkSource(t, src, out)
	if src.Origin != cached {
		t.Errorf("Origin = %s, want the cache %s", src.Origin, cached)
	}

	// A damaged cache entry is hashed again, dropped and downloaded anew.
	if err := os.WriteFile(cached, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, filepath.Join(t.TempDir(), "c")); err != nil {
		t.Fatal(err)
	}
	if got := m.hits.Load(); got != 2 {
		t.Errorf("requests after damaging the cache = %d, want 2", got)
	}
	if got := sha3File(t, cached); got != sum(body) {
		t.Errorf("cached archive SHA3-256 = %s, want %s", got, sum(body))
	}
}

func TestFromURL(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	m := newMirror(t, seq(status(502), ok(body)))
	_, p := testPins(t, sum(body))
	out := filepath.Join(t.TempDir(), "src")
	from := m.URL + "/some/where/latest.zip"
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: from}, out)
	if err != nil {
		t.Fatal(err)
	}
	checkSource(t, src, out)
	if src.Origin != from || src.ArchiveKind != source.KindAmalgamation || len(src.Verified) != 3 {
		t.Errorf("Source = %+v, want the amalgamation from %s checked three ways", src, from)
	}

	// An HTML error page served with 200 is not an archive.
	m = newMirror(t, seq(ok([]byte("<html>captive portal</html>"))))
	_, err = newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: m.URL + "/x.zip"}, out)
	wantErr(t, err, m.URL+"/x.zip: neither a zip nor a gzip'd tar")
}

// When no sqlite.org mirror answers, a pin with go_module falls back to the
// module zip: first the local module cache, then the Go module proxy.
func TestGoModuleFallback(t *testing.T) {
	zipBody, err := os.ReadFile(goModuleZip(t, "v1.14.43"))
	if err != nil {
		t.Fatal(err)
	}
	m := newMirror(t, seq(status(404)))
	proxy := newMirror(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/github.com/mattn/go-sqlite3/@v/v1.14.43.zip" {
			status(404)(w, r)
			return
		}
		ok(zipBody)(w, r)
	})
	pf, p := testPins(t, strings.Repeat("0", 64), m) // no mirror has it
	p.GoModule = "github.com/mattn/go-sqlite3@v1.14.43"

	t.Run("proxy", func(t *testing.T) {
		t.Setenv("GOMODCACHE", t.TempDir()) // empty: not in the module cache
		out := filepath.Join(t.TempDir(), "src")
		src, err := newFetcher(t, source.WithGoProxy("https://127.0.0.1:1/unreachable", proxy.URL+"/")).
			Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
		if err != nil {
			t.Fatalf("Fetch = %v", err)
		}
		checkSource(t, src, out)
		want := proxy.URL + "/github.com/mattn/go-sqlite3/@v/v1.14.43.zip"
		if src.Origin != want || src.ArchiveKind != source.KindGoModule {
			t.Errorf("Source = %+v, want the module zip from %s", src, want)
		}
	})

	t.Run("module cache", func(t *testing.T) {
		modcache := t.TempDir()
		dl := filepath.Join(modcache, "cache", "download", "github.com", "mattn", "go-sqlite3", "@v")
		if err := os.MkdirAll(dl, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dl, "v1.14.43.zip"), zipBody, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GOMODCACHE", modcache)
		before := proxy.hits.Load()
		out := filepath.Join(t.TempDir(), "src")
		src, err := newFetcher(t, source.WithGoProxy(proxy.URL)).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
		if err != nil {
			t.Fatalf("Fetch = %v", err)
		}
		checkSource(t, src, out)
		if src.Origin != filepath.Join(dl, "v1.14.43.zip") {
			t.Errorf("Origin = %s, want the module cache", src.Origin)
		}
		if proxy.hits.Load() != before {
			t.Errorf("the proxy was asked although the module cache has the zip")
		}
	})

	t.Run("wrong module", func(t *testing.T) {
		t.Setenv("GOMODCACHE", t.TempDir())
		p := p
		p.GoModule = "github.com/mattn/go-sqlite3@v1.14.52" // ships 3.53.4
		body52, err := os.ReadFile(goModuleZip(t, "v1.14.52"))
		if err != nil {
			t.Fatal(err)
		}
		proxy := newMirror(t, seq(ok(body52)))
		out := filepath.Join(t.TempDir(), "src")
		_, err = newFetcher(t, source.WithGoProxy(proxy.URL)).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, out)
		wantErr(t, err, "sqlite3.c: SHA3-256 = 67f423e9", "want "+sqlite3C3513)
		noOutput(t, out)
	})
}

func TestCanceled(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	m := newMirror(t, seq(stalled(body)))
	pf, p := testPins(t, sum(body), m)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	out := filepath.Join(t.TempDir(), "src")
	_, err := newFetcher(t, source.WithStallTimeout(time.Minute)).Fetch(ctx, source.Request{Pins: pf, Pin: p}, out)
	wantErr(t, err, "context deadline exceeded")
	noOutput(t, out)
	if got := m.hits.Load(); got != 1 {
		t.Errorf("requests = %d, want 1 (no retry after cancel)", got)
	}
}

// A slow download logs its progress about once a second, then a final line.
func TestProgress(t *testing.T) {
	body := amalgamationZip(t, "3.51.3")
	m := newMirror(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		third := len(body) / 3
		for i, part := range [][]byte{body[:third], body[third : 2*third], body[2*third:]} {
			if i > 0 {
				time.Sleep(600 * time.Millisecond)
			}
			w.Write(part)
			w.(http.Flusher).Flush()
		}
	})
	pf, p := testPins(t, sum(body), m)
	l, hook := logger(t)
	if _, err := newFetcher(t, source.WithLogger(l), source.WithStallTimeout(time.Second)).Fetch(context.Background(), source.Request{Pins: pf, Pin: p}, filepath.Join(t.TempDir(), "src")); err != nil {
		t.Fatal(err)
	}
	var progress []string
	for _, e := range hook.AllEntries() {
		if strings.HasPrefix(e.Message, "downloading ") {
			progress = append(progress, e.Message)
			if e.Data["total"] != int64(len(body)) {
				t.Errorf("progress fields = %v, want total %d", e.Data, len(body))
			}
		}
	}
	if len(progress) != 1 || !strings.Contains(progress[0], " of 2.5 MiB (") {
		t.Errorf("progress lines = %q, want one with bytes of total", progress)
	}
	if !hasMessage(hook.AllEntries(), "downloaded "+m.URL) {
		t.Errorf("no final progress line")
	}
}
