package source

import (
	"context"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
	"golang.org/x/mod/module"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// maxDownload bounds a download (archives are a few MB).
const maxDownload = 512 << 20

// download fetches the pin's preferred archive: from the cache, else from
// each mirror in turn, else from the pin's Go module.
func (f *Fetcher) download(ctx context.Context, req Request, work string) (*archive, error) {
	pin := req.Pin
	kind, ok := pin.PreferredKind()
	if !ok {
		kind = pins.Amalgamation // only sqlite3.c's hash is pinned; it is checked after extraction
	}
	want := archiveHash(pin, string(kind))
	if want != nil {
		if a := f.fromCache(want.SHA3); a != nil {
			return a, nil
		}
	}
	dir, cache := f.downloadDir(work)
	name := pins.ArchiveName(pin.Version, kind)
	var failed []string
	if req.Pins == nil {
		failed = append(failed, "no pins file to take mirrors from")
	} else if urls, err := req.Pins.URLs(pin, kind); err != nil {
		failed = append(failed, err.Error())
	} else {
		for _, u := range urls {
			p, sum, err := f.fetchURL(ctx, u, dir, want)
			if err == nil {
				return &archive{path: p, origin: u, sha3: sum, temp: true, cache: cache}, nil
			}
			if ctx.Err() != nil {
				return nil, err
			}
			f.log.WithError(err).Warnf("download %s failed", u)
			failed = append(failed, err.Error())
		}
	}
	if pin.GoModule != "" {
		a, err := f.goModule(ctx, pin.GoModule, dir)
		if err == nil {
			f.log.Warnf("no sqlite.org mirror delivered %s; using the Go module %s, checked against the published hash of sqlite3.c", name, pin.GoModule)
			return a, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		failed = append(failed, err.Error())
	}
	return nil, fmt.Errorf("download %s: every source failed: %s", name, strings.Join(failed, "; "))
}

// downloadURL fetches the archive the user named.
func (f *Fetcher) downloadURL(ctx context.Context, u, work string) (*archive, error) {
	dir, cache := f.downloadDir(work)
	p, sum, err := f.fetchURL(ctx, u, dir, nil)
	if err != nil {
		return nil, err
	}
	return &archive{path: p, origin: u, sha3: sum, temp: true, cache: cache}, nil
}

// fromCache returns the cached archive with the given hash after hashing it
// again; a damaged entry is removed.
func (f *Fetcher) fromCache(sum string) *archive {
	if f.cacheDir == "" {
		return nil
	}
	p := filepath.Join(f.cacheDir, "archives", sum)
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	got, err := hashFile(p)
	if err != nil || got != sum {
		f.log.WithField("path", p).Warnf("cached archive is damaged (SHA3-256 = %s, want %s); downloading again", got, sum)
		os.Remove(p)
		return nil
	}
	f.log.WithField("path", p).Info("using cached archive")
	return &archive{path: p, origin: p, sha3: sum}
}

// downloadDir is where downloads go: the cache (so a verified archive is
// renamed into it) or, without one, the work directory.
func (f *Fetcher) downloadDir(work string) (dir, cache string) {
	if f.cacheDir != "" {
		d := filepath.Join(f.cacheDir, "archives")
		err := os.MkdirAll(d, 0o755)
		if err == nil {
			return d, d
		}
		f.log.WithError(err).Warn("archive cache unavailable; downloading without it")
	}
	return work, ""
}

// goModule finds the module zip of mod ("path@version") in the module cache
// or on a Go module proxy.
func (f *Fetcher) goModule(ctx context.Context, mod, dir string) (*archive, error) {
	p, v, ok := strings.Cut(mod, "@")
	if !ok {
		return nil, fmt.Errorf("go_module %q: want path@version", mod)
	}
	ep, err := module.EscapePath(p)
	if err != nil {
		return nil, fmt.Errorf("go_module %q: %w", mod, err)
	}
	ev, err := module.EscapeVersion(v)
	if err != nil {
		return nil, fmt.Errorf("go_module %q: %w", mod, err)
	}
	rel := ep + "/@v/" + ev + ".zip"
	var failed []string
	if f.goModCache != "" {
		zp := filepath.Join(f.goModCache, "cache", "download", filepath.FromSlash(rel))
		if _, err := os.Stat(zp); err == nil {
			f.log.WithField("path", zp).Info("using the Go module cache")
			return &archive{path: zp, origin: zp}, nil
		}
		failed = append(failed, zp+": not in the module cache")
	}
	for _, base := range f.goProxies {
		if fp, ok := strings.CutPrefix(base, "file://"); ok {
			zp := filepath.Join(filepath.FromSlash(fp), filepath.FromSlash(rel))
			if _, err := os.Stat(zp); err != nil {
				failed = append(failed, err.Error())
				continue
			}
			return &archive{path: zp, origin: zp}, nil
		}
		u := base + "/" + rel
		zp, sum, err := f.fetchURL(ctx, u, dir, nil)
		if err == nil {
			return &archive{path: zp, origin: u, sha3: sum, temp: true}, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		f.log.WithError(err).Warnf("download %s failed", u)
		failed = append(failed, err.Error())
	}
	if len(f.goProxies) == 0 {
		failed = append(failed, "no Go module proxy configured")
	}
	return nil, fmt.Errorf("go module %s: %s", mod, strings.Join(failed, "; "))
}

// statusError is a non-200 answer.
type statusError struct {
	code   int
	status string
}

func (e *statusError) Error() string { return "HTTP " + e.status }

// stallError is an attempt that received no byte for too long.
type stallError struct{ d time.Duration }

func (e *stallError) Error() string { return fmt.Sprintf("stalled: no data for %s", e.d) }

// retryable tells transient failures (5xx, resets, truncation, stalls) from
// answers that will not change (404 and other 4xx).
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	}
	// A name that does not resolve will not resolve a second later (an
	// offline or air-gapped machine): go on to the next mirror at once.
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return false
	}
	return true
}

// fetchURL downloads u into a new file in dir, retrying transient failures
// with exponential backoff. With want set the body must hash to it; a wrong
// body is not retried (the next mirror may do better).
func (f *Fetcher) fetchURL(ctx context.Context, u, dir string, want *pins.Hash) (path, sum string, err error) {
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", "", err
	}
	defer func() {
		tmp.Close()
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	attempt := 0
	op := func() (string, error) {
		attempt++
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return "", backoff.Permanent(err)
		}
		if err := tmp.Truncate(0); err != nil {
			return "", backoff.Permanent(err)
		}
		sum, err := f.get(ctx, u, tmp)
		switch {
		case err != nil && (ctx.Err() != nil || !retryable(err)):
			return "", backoff.Permanent(err)
		case err != nil:
			return "", err
		case want != nil && sum != want.SHA3:
			return "", backoff.Permanent(hashMismatch(sum, want))
		}
		return sum, nil
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.Multiplier, b.MaxInterval = f.initial, 2, 30*f.initial
	sum, err = backoff.Retry(ctx, op,
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(f.attempts)),
		backoff.WithMaxElapsedTime(0), // attempts bound the retries
		backoff.WithNotify(func(err error, d time.Duration) {
			f.log.WithError(err).Warnf("download %s: attempt %d of %d failed; retrying in %s", u, attempt, f.attempts, d.Round(time.Millisecond))
		}))
	if err != nil {
		if attempt > 1 {
			return "", "", fmt.Errorf("%s: %w (%d attempts)", u, err, attempt)
		}
		return "", "", fmt.Errorf("%s: %w", u, err)
	}
	return tmp.Name(), sum, nil
}

// get is one download attempt into w, returning the body's SHA3-256.
func (f *Fetcher) get(ctx context.Context, u string, w io.Writer) (string, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := &stallError{f.stall}
	watchdog := time.AfterFunc(f.stall, func() { cancel(stalled) })
	defer watchdog.Stop()
	fail := func(err error) error {
		if errors.Is(context.Cause(actx), stalled) {
			return stalled
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // its message repeats the URL
		}
		return err
	}

	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return "", backoff.Permanent(err)
	}
	req.Header.Set("User-Agent", "sqlite-graft")
	resp, err := f.client.Do(req)
	if err != nil {
		return "", fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &statusError{resp.StatusCode, resp.Status}
	}
	h := sha3.New256()
	prog := newProgress(f.log, u, resp.ContentLength)
	buf := make([]byte, 128<<10)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			watchdog.Reset(f.stall)
			if n += int64(k); n > maxDownload {
				return "", backoff.Permanent(fmt.Errorf("larger than %d MiB", maxDownload>>20))
			}
			h.Write(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return "", backoff.Permanent(err)
			}
			prog.update(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", fail(fmt.Errorf("after %d bytes: %w", n, rerr))
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", fmt.Errorf("truncated: %d of %d bytes", n, resp.ContentLength)
	}
	prog.done(n)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// progress logs a download at most once a second, plus a final line.
type progress struct {
	log         logrus.FieldLogger
	url         string
	total       int64
	start, last time.Time
}

func newProgress(log logrus.FieldLogger, u string, total int64) *progress {
	now := time.Now()
	return &progress{log: log, url: u, total: total, start: now, last: now}
}

func (p *progress) update(n int64) {
	if time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	l := p.log.WithFields(logrus.Fields{"url": p.url, "bytes": n})
	if p.total > 0 {
		l.WithField("total", p.total).Infof("downloading %s: %s of %s (%d%%)", p.url, size(n), size(p.total), n*100/p.total)
		return
	}
	l.Infof("downloading %s: %s", p.url, size(n))
}

func (p *progress) done(n int64) {
	p.log.WithFields(logrus.Fields{"url": p.url, "bytes": n}).
		Infof("downloaded %s: %s in %s", p.url, size(n), time.Since(p.start).Round(time.Millisecond))
}

func size(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// envGoProxies reads $GOPROXY like the go command, keeping only proxies.
func envGoProxies() []string {
	v, ok := os.LookupEnv("GOPROXY")
	if !ok || v == "" {
		v = "https://proxy.golang.org,direct"
	}
	return cleanProxies(strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '|' }))
}

func cleanProxies(in []string) []string {
	var out []string
	for _, p := range in {
		p = strings.TrimRight(strings.TrimSpace(p), "/")
		if p == "" || p == "direct" || p == "off" {
			continue
		}
		out = append(out, p)
	}
	return out
}

// envGoModCache is the go command's module cache: $GOMODCACHE, else
// $GOPATH/pkg/mod, else ~/go/pkg/mod.
func envGoModCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	if gp := filepath.SplitList(os.Getenv("GOPATH")); len(gp) > 0 && gp[0] != "" {
		return filepath.Join(gp[0], "pkg", "mod")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, "go", "pkg", "mod")
	}
	return ""
}
