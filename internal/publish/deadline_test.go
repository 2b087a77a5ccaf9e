package publish

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A registry request that is never answered ends after the timeout with a
// *TimeoutError naming the registry and the request; a blob download that
// stalls ends too, while one that keeps moving may outlast the timeout.
func TestWithDeadlines(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/hang"):
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case strings.HasSuffix(r.URL.Path, "/blobs/sha256:stall"):
			w.Write([]byte("first bytes"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case strings.HasSuffix(r.URL.Path, "/blobs/sha256:slow"):
			for range 40 {
				w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	const timeout = 500 * time.Millisecond
	client := &http.Client{Transport: WithDeadlines(srv.Client().Transport, timeout)}
	get := func(path string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a backstop, not the test
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	host := strings.TrimPrefix(srv.URL, "http://")

	for path, idle := range map[string]bool{"/v2/x/manifests/hang": false, "/v2/x/blobs/sha256:stall": true} {
		_, err := get(path)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Registry != host || te.Path != path || te.Idle != idle {
			t.Errorf("GET %s = %v, want a TimeoutError for %s (idle %v)", path, err, host, idle)
		} else {
			t.Logf("GET %s: %v", path, err)
		}
	}
	if body, err := get("/v2/x/blobs/sha256:slow"); err != nil || len(body) != 40 {
		t.Errorf("GET of a slow blob that keeps moving = %d bytes, %v; want all 40", len(body), err)
	}
}
