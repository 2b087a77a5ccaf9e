package registrytest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Hostile is a misbehaving registry for tests: a proxy on its own loopback
// port in front of a real registry (Start), passing every request through
// except those it was told to misbehave on. A build pointed at it meets
// what a compromised or broken registry does: a layer blob swapped on its
// first download only, a blob whose bytes never match its digest, requests
// that are never answered, credentials refused whatever they are.
type Hostile struct {
	// Host is "127.0.0.1:PORT", the registry part of references through the proxy.
	Host string
	// URL is "http://127.0.0.1:PORT".
	URL string

	srv     *httptest.Server
	release chan struct{} // closed when the test ends: hung requests return

	mu       sync.Mutex
	swaps    map[string][]byte // blob digest -> bytes served on its first GET
	corrupt  map[string]bool   // blob digest -> every GET serves other bytes
	hangs    []func(*http.Request) bool
	refuse   bool
	hung     int
	requests []string
}

// StartHostile starts the proxy in front of upstream; it stops when t ends.
func StartHostile(t testing.TB, upstream *Registry) *Hostile {
	t.Helper()
	target, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := &Hostile{release: make(chan struct{}), swaps: map[string][]byte{}, corrupt: map[string]bool{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// The registry builds upload locations from the Host header:
			// they must point back at the proxy.
			r.Out.Host = r.In.Host
		},
		Transport: upstream.Transport,
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, proxy)
	}))
	h.URL = h.srv.URL
	h.Host = strings.TrimPrefix(h.srv.URL, "http://")
	t.Cleanup(func() {
		close(h.release)
		h.srv.Close()
	})
	return h
}

// SwapBlobOnce serves data instead of the blob digest ("sha256:...") on its
// first GET; later GETs get the real blob.
func (h *Hostile) SwapBlobOnce(digest string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.swaps[digest] = data
}

// CorruptBlob serves the blob digest with one byte changed on every GET.
func (h *Hostile) CorruptBlob(digest string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.corrupt[digest] = true
}

// Hang never answers the requests match selects (until the client gives up
// or the test ends).
func (h *Hostile) Hang(match func(*http.Request) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hangs = append(h.hangs, match)
}

// Manifests selects manifest requests of any method.
func Manifests(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/") }

// RefuseAll answers every request with 401 and a Basic challenge, whatever
// credentials it carries: a registry that never accepts anyone.
func (h *Hostile) RefuseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refuse = true
}

// Requests lists the requests seen so far, as "METHOD PATH".
func (h *Hostile) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

// Hung is the number of requests being held unanswered now.
func (h *Hostile) Hung() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hung
}

func (h *Hostile) serve(w http.ResponseWriter, r *http.Request, proxy *httputil.ReverseProxy) {
	h.mu.Lock()
	h.requests = append(h.requests, r.Method+" "+r.URL.Path)
	refuse := h.refuse
	hang := false
	for _, m := range h.hangs {
		hang = hang || m(r)
	}
	digest := ""
	if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
		digest = r.URL.Path[i+len("/blobs/"):]
	}
	swap, swapped := h.swaps[digest]
	if swapped {
		delete(h.swaps, digest)
	}
	corrupt := h.corrupt[digest]
	if hang {
		h.hung++
	}
	h.mu.Unlock()

	switch {
	case refuse:
		w.Header().Set("WWW-Authenticate", `Basic realm="registrytest-hostile"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	case hang:
		select {
		case <-r.Context().Done():
		case <-h.release:
		}
		h.mu.Lock()
		h.hung--
		h.mu.Unlock()
	case swapped:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(swap)))
		w.Header().Set("Docker-Content-Digest", digest)
		w.Write(swap)
	case corrupt:
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if len(body) > 0 {
			body[len(body)/2] ^= 0x01
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		io.Copy(w, bytes.NewReader(body))
	default:
		proxy.ServeHTTP(w, r)
	}
}

// String names the proxy and what it does, for test logs.
func (h *Hostile) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("hostile registry %s (swaps %d, corrupt %d, hangs %d, refuse %v)", h.Host, len(h.swaps), len(h.corrupt), len(h.hangs), h.refuse)
}
