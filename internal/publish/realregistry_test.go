package publish

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
)

// These tests run Debian's docker-registry (CNCF distribution v2.8) through registrytest.

func TestRealPushPullByDigest(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Repo(t, "sqlite-graft/alpine")
	opts, _ := quiet(t, 3)
	opts = append(opts, WithTransport(reg.Transport))

	img := testImage(t, 2, 256<<10, "amd64")
	res, err := Push(context.Background(), repo, img, []string{"3.21-sqlite3.51.3", "3.21"}, opts...)
	if err != nil {
		t.Fatalf("%v\n%s", err, reg.Logs())
	}
	ref, err := name.NewDigest(res.Reference, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, pulled); d.String() != res.Digest || d != mustDigest(t, img) {
		t.Fatalf("pulled %s, pushed %s", d, res.Digest)
	}
	for _, tag := range []string{"3.21-sqlite3.51.3", "3.21"} {
		if got := headDigest(t, repo.Tag(tag), reg.RemoteOptions()...); got != res.Digest {
			t.Fatalf("tag %s -> %q", tag, got)
		}
	}

	// Second run: nothing to do.
	res2, err := Push(context.Background(), repo, img, []string{"3.21-sqlite3.51.3", "3.21"}, opts...)
	if err != nil || !res2.Unchanged || res2.Stats.BlobsUploaded != 0 || res2.Stats.BytesUploaded != 0 {
		t.Fatalf("second push %+v %v", res2, err)
	}

	// A multi-platform index.
	idx := testIndex(t, 16<<10, "amd64", "arm64")
	res3, err := Push(context.Background(), repo, idx, []string{"multi"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	pidx, err := remote.Index(repo.Digest(res3.Digest), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, pidx); d != mustDigest(t, idx) {
		t.Fatalf("index digest %s", d)
	}
}

func TestRealWrongCredentialsTLS(t *testing.T) {
	const good, bad = "correct-horse-battery", "wrong-staple-9876"
	reg := registrytest.Start(t, registrytest.WithTLS(), registrytest.WithHTPasswd("ci", good))
	repo := reg.Repo(t, "sqlite-graft/alpine")
	img := testImage(t, 1, 8<<10, "amd64")

	pwFile := t.TempDir() + "/pw"
	writeTestFile(t, pwFile, bad+"\n")
	auth, err := Credentials("ci", "", pwFile)
	if err != nil {
		t.Fatal(err)
	}
	opts, hook := quiet(t, 4)
	opts = append(opts, WithTransport(reg.Transport), WithAuth(auth))
	_, err = Push(context.Background(), repo, img, []string{"t"}, opts...)
	var ce *CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a CredentialsError", err)
	}
	t.Logf("error: %v", err)
	msg := err.Error()
	if !strings.Contains(msg, reg.Host) || !strings.Contains(msg, "refused the credentials") {
		t.Fatalf("unclear error %q", msg)
	}
	for _, s := range []string{good, bad} {
		if strings.Contains(msg, s) || strings.Contains(logText(hook), s) {
			t.Fatalf("secret in error or log: %q", msg)
		}
	}
	if strings.Contains(logText(hook), "retrying") {
		t.Fatalf("401 was retried")
	}
	if got := headDigest(t, repo.Tag("t"), reg.RemoteOptions()...); got != "" {
		t.Fatalf("tag exists after rejected credentials")
	}

	// The right password works over the same TLS transport.
	t.Setenv("PUBLISH_TEST_GOOD_PW", good)
	auth, err = Credentials("ci", "PUBLISH_TEST_GOOD_PW", "")
	if err != nil {
		t.Fatal(err)
	}
	opts, _ = quiet(t, 4)
	opts = append(opts, WithTransport(reg.Transport), WithAuth(auth))
	res, err := Push(context.Background(), repo, img, []string{"t"}, opts...)
	if err != nil {
		t.Fatalf("%v\n%s", err, reg.Logs())
	}
	if got := headDigest(t, repo.Tag("t"), reg.RemoteOptions()...); got != res.Digest {
		t.Fatalf("tag -> %q", got)
	}
}

// front is a reverse proxy in front of the real registry that can misbehave.
type front struct {
	srv  *httptest.Server
	repo name.Repository
	// misbehave answers the request itself (true) instead of passing it on.
	misbehave func(w http.ResponseWriter, r *http.Request) bool
}

func newFront(t *testing.T, reg *registrytest.Registry, path string, misbehave func(w http.ResponseWriter, r *http.Request) bool) *front {
	t.Helper()
	target, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Keep the client's Host so that the registry's Location headers point back here.
			pr.Out.Host = pr.In.Host
		},
		Transport: reg.Transport,
		ErrorLog:  log.New(io.Discard, "", 0), // cancelled uploads are expected here
	}
	f := &front{misbehave: misbehave}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.misbehave != nil && f.misbehave(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.repo, err = name.NewRepository(strings.TrimPrefix(f.srv.URL, "http://")+"/"+path, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// drop reads part of the request body, then kills the connection: with a TCP reset when rst,
// else with a plain close.
func drop(t *testing.T, w http.ResponseWriter, r *http.Request, rst bool) {
	_, _ = io.CopyN(io.Discard, r.Body, 32<<10)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func TestRealDroppedConnectionsRetried(t *testing.T) {
	reg := registrytest.Start(t)
	const n = 3
	var dropped atomic.Int64
	f := newFront(t, reg, "sqlite-graft/alpine", func(w http.ResponseWriter, r *http.Request) bool {
		if (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			if k := dropped.Add(1); k <= n {
				drop(t, w, r, k%2 == 1)
				return true
			}
		}
		return false
	})
	opts, hook := quiet(t, 6)
	img := testImage(t, 3, 512<<10, "amd64")
	res, err := Push(context.Background(), f.repo, img, []string{"t"}, opts...)
	if err != nil {
		t.Fatalf("%v\n%s", err, logText(hook))
	}
	t.Logf("log:\n%s", logText(hook))
	if dropped.Load() <= n {
		t.Fatalf("only %d upload requests", dropped.Load())
	}
	if res.Stats.Retries < 1 || res.Stats.BlobsUploaded != 4 {
		t.Fatalf("stats %+v", res.Stats)
	}
	// Straight from the registry, not through the front.
	direct := reg.Repo(t, "sqlite-graft/alpine")
	pulled, err := remote.Image(direct.Digest(res.Digest), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, pulled) != mustDigest(t, img) {
		t.Fatal("pulled another image")
	}
	if got := headDigest(t, direct.Tag("t"), reg.RemoteOptions()...); got != res.Digest {
		t.Fatalf("tag -> %q", got)
	}
}

func TestRealPersistentFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func(r *http.Request) bool
		tagError  bool
		byDigest  bool // the image is there by digest afterwards
		attempted func(count int64) bool
	}{
		{
			name:      "503 on tag PUT",
			fail:      func(r *http.Request) bool { return isTagManifestPut(r, "") },
			tagError:  true,
			byDigest:  true,
			attempted: func(c int64) bool { return c == 3 },
		},
		{
			name: "503 on all uploads",
			fail: func(r *http.Request) bool {
				return strings.Contains(r.URL.Path, "/blobs/uploads/")
			},
			// Each of the 3 attempts starts one upload per blob (2) at most.
			attempted: func(c int64) bool { return c >= 3 && c <= 6 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registrytest.Start(t)
			var failed atomic.Int64
			f := newFront(t, reg, "x/y", func(w http.ResponseWriter, r *http.Request) bool {
				if tc.fail(r) {
					failed.Add(1)
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				}
				return false
			})
			opts, _ := quiet(t, 3)
			img := testImage(t, 1, 16<<10, "amd64")
			_, err := Push(context.Background(), f.repo, img, []string{"t"}, opts...)
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			var te *TagError
			if errors.As(err, &te) != tc.tagError || !strings.Contains(err.Error(), "503") {
				t.Fatalf("error %v", err)
			}
			if !tc.attempted(failed.Load()) {
				t.Fatalf("%d failed requests: retries not bounded as configured", failed.Load())
			}
			direct := reg.Repo(t, "x/y")
			if got := headDigest(t, direct.Tag("t"), reg.RemoteOptions()...); got != "" {
				t.Fatalf("tag exists: %s", got)
			}
			got := headDigest(t, direct.Digest(mustDigest(t, img).String()), reg.RemoteOptions()...)
			if (got != "") != tc.byDigest {
				t.Fatalf("by digest: %q", got)
			}
		})
	}
}
