package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Limits on what is read.
const (
	DefaultTimeout = 2 * time.Minute // one download, start to end
	MaxInputBytes  = 64 << 20        // a downloaded or local index/page
	maxUnpacked    = 1 << 30         // an index after decompression
)

// Reader reads an index or page from an https URL or a local file.
type Reader struct {
	// Client does the downloads; nil means one with DefaultTimeout.
	Client *http.Client
}

// IsURL says whether loc is read over HTTP rather than from a file.
func IsURL(loc string) bool {
	return strings.HasPrefix(loc, "https://") || strings.HasPrefix(loc, "http://")
}

// Read returns the contents of loc. http:// is accepted only for loopback
// hosts (tests); everything else must be https. Errors name loc.
func (r *Reader) Read(ctx context.Context, loc string) ([]byte, error) {
	if loc == "" {
		return nil, errors.New("empty location: want an https URL or a file")
	}
	if !IsURL(loc) {
		f, err := os.Open(loc)
		if err != nil {
			return nil, err // *PathError names the file
		}
		defer f.Close()
		return readLimited(loc, f)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", loc, err)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%s: plain http is refused (only for loopback test servers); use https", loc)
	}
	client := r.client()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", loc, err)
	}
	req.Header.Set("User-Agent", "sqlite-graft (upstream watch)")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", loc, resp.Status)
	}
	return readLimited(loc, resp.Body)
}

func (r *Reader) client() *http.Client {
	if r != nil && r.Client != nil {
		return r.Client
	}
	return &http.Client{Timeout: DefaultTimeout}
}

func readLimited(loc string, rd io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	if len(b) > MaxInputBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB; not an index this tool reads", loc, MaxInputBytes>>20)
	}
	return b, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
