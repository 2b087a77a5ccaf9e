package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultRegistryTimeout is how long a registry may keep a request waiting.
const DefaultRegistryTimeout = time.Minute

// TimeoutError is a registry request that got no answer in time.
type TimeoutError struct {
	Registry string // host[:port]
	Method   string
	Path     string
	After    time.Duration
	Idle     bool // a blob transfer that stalled, rather than a request unanswered
}

func (e *TimeoutError) Error() string {
	what := "no answer"
	if e.Idle {
		what = "no progress"
	}
	return fmt.Sprintf("registry %s: %s within %s to %s %s (timed out)", e.Registry, what, e.After, e.Method, e.Path)
}

// WithDeadlines wraps inner (nil: http.DefaultTransport) so that no request
// waits on a registry for ever: a request for anything but a blob (pings,
// tokens, manifests, tags, referrers) must be answered, body and all, within
// timeout; a blob upload or download may take as long as it needs but must
// not stall — timeout without a byte moving in either direction ends it.
// The error is a *TimeoutError naming the registry and the request. A
// timeout <= 0 means DefaultRegistryTimeout.
func WithDeadlines(inner http.RoundTripper, timeout time.Duration) http.RoundTripper {
	if inner == nil {
		inner = http.DefaultTransport
	}
	if timeout <= 0 {
		timeout = DefaultRegistryTimeout
	}
	return &deadlineTransport{inner: inner, timeout: timeout}
}

type deadlineTransport struct {
	inner   http.RoundTripper
	timeout time.Duration
}

func (t *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	blob := strings.Contains(req.URL.Path, "/blobs/")
	te := &TimeoutError{Registry: req.URL.Host, Method: req.Method, Path: req.URL.Path, After: t.timeout, Idle: blob}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watchdog{timer: time.AfterFunc(t.timeout, func() { cancel(te) }), timeout: t.timeout, idle: blob}
	req = req.Clone(ctx)
	if blob && req.Body != nil {
		req.Body = &watchedBody{ReadCloser: req.Body, w: w, ctx: ctx, te: te}
	}
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		w.stop()
		cancel(nil)
		if errors.Is(context.Cause(ctx), te) {
			return nil, te
		}
		return nil, err
	}
	w.progress()
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, ctx: ctx, te: te, done: func() { cancel(nil) }}
	return resp, nil
}

// watchdog ends a request when its time is up; for blobs, every byte moved
// starts the time again.
type watchdog struct {
	timer   *time.Timer
	timeout time.Duration
	idle    bool
}

func (w *watchdog) progress() {
	if w.idle {
		w.timer.Reset(w.timeout)
	}
}

func (w *watchdog) stop() { w.timer.Stop() }

// watchedBody reports progress to its watchdog and turns the cancelled
// request's error into the *TimeoutError.
type watchedBody struct {
	io.ReadCloser
	w    *watchdog
	ctx  context.Context
	te   *TimeoutError
	done func()
	once sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), b.te) {
		err = b.te
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done != nil {
		b.once.Do(func() {
			b.w.stop()
			b.done()
		})
	}
	return err
}
