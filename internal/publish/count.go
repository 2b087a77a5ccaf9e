package publish

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// countingTransport counts requests, uploaded blob bytes and committed blobs. It sits below
// go-containerregistry's auth and retry layers, so it sees every request that goes out.
type countingTransport struct {
	inner http.RoundTripper

	requests  atomic.Int64
	blobs     atomic.Int64
	bytes     atomic.Int64
	manifests atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	upload := strings.Contains(req.URL.Path, "/blobs/uploads")
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		upload = false
	}
	out := req
	if upload && req.Body != nil && req.Body != http.NoBody {
		// A RoundTripper must not modify the request it was given: count on a shallow copy.
		out = req.Clone(req.Context())
		out.Body = &countingBody{rc: req.Body, n: &c.bytes}
		if req.GetBody != nil {
			getBody := req.GetBody
			out.GetBody = func() (io.ReadCloser, error) {
				rc, err := getBody()
				if err != nil {
					return nil, err
				}
				return &countingBody{rc: rc, n: &c.bytes}, nil
			}
		}
	}
	resp, err := c.inner.RoundTrip(out)
	if err != nil {
		return resp, err
	}
	switch {
	case upload && req.Method == http.MethodPut && resp.StatusCode == http.StatusCreated && req.URL.Query().Get("digest") != "":
		// The commit of an upload. (A POST answered 201 is a cross-repository mount: no upload.)
		c.blobs.Add(1)
	case req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") && resp.StatusCode/100 == 2:
		c.manifests.Add(1)
	}
	return resp, nil
}

func (c *countingTransport) stats() Stats {
	return Stats{
		BlobsUploaded:    c.blobs.Load(),
		BytesUploaded:    c.bytes.Load(),
		ManifestsWritten: c.manifests.Load(),
		Requests:         c.requests.Load(),
	}
}

type countingBody struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
