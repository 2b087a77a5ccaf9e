package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"
)

// Option configures Push.
type Option func(*options)

type options struct {
	auth        authn.Authenticator
	keychain    authn.Keychain
	log         logrus.FieldLogger
	attempts    int
	initial     time.Duration
	maxInterval time.Duration
	transport   http.RoundTripper
	progress    time.Duration
	userAgent   string
	gate        func(context.Context) error
	attach      func(context.Context, name.Digest, []remote.Option) error
}

const (
	defaultAttempts    = 5
	defaultInitial     = time.Second
	defaultMaxInterval = 30 * time.Second
)

// WithAuth authenticates with auth (see Credentials). It replaces any WithKeychain.
func WithAuth(auth authn.Authenticator) Option {
	return func(o *options) { o.auth, o.keychain = auth, nil }
}

// WithKeychain resolves credentials for the repository's registry from keychain. It replaces
// any WithAuth. The default is authn.DefaultKeychain (docker and podman config files).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) { o.keychain, o.auth = k, nil }
}

// WithLogger logs to l. The default is logrus's standard logger.
func WithLogger(l logrus.FieldLogger) Option {
	return func(o *options) { o.log = l }
}

// WithRetry tries each step (checking the tags, pushing by digest, writing one tag) at most
// attempts times, waiting initial, then twice as long each time (with ±20% jitter, at most
// 30s), on transient errors: HTTP 5xx and 429, and dropped connections. Errors such as 401,
// 403 or 404 are never retried. attempts < 1 means 1. The default is 5 attempts from 1s.
func WithRetry(attempts int, initial time.Duration) Option {
	return func(o *options) {
		if attempts < 1 {
			attempts = 1
		}
		if initial < 0 {
			initial = 0
		}
		o.attempts, o.initial = attempts, initial
	}
}

// WithTransport sends requests through rt instead of remote.DefaultTransport (for example
// one that trusts a private CA).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithProgress logs the bytes pushed so far, at most once per interval (a non-positive interval
// means every 2 seconds), and once when the push by digest has finished.
func WithProgress(interval time.Duration) Option {
	return func(o *options) {
		if interval <= 0 {
			interval = 2 * time.Second
		}
		o.progress = interval
	}
}

// WithUserAgent sets the User-Agent of the requests.
// WithGate runs gate after the no-op check and before anything is written;
// its error stops the push with nothing written.
func WithGate(gate func(context.Context) error) Option {
	return func(o *options) { o.gate = gate }
}

// WithAttach runs attach after the push by digest and before any tag is
// written (e.g. SBOM and provenance referrers), with the push's own registry
// options (auth, transport); its error leaves no tag behind. When the
// registry already has the digest under every tag, attach still runs (it
// must write nothing when the referrers are there): it repairs referrers
// that went missing.
func WithAttach(attach func(ctx context.Context, ref name.Digest, opts []remote.Option) error) Option {
	return func(o *options) { o.attach = attach }
}

func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}

// TagError is returned when the image was pushed by digest but writing a tag failed. Written
// lists the tags (full references) written before the failure.
type TagError struct {
	Reference string // the pushed image, "repo@sha256:..."
	Tag       string // the tag that failed
	Written   []string
	Err       error
}

func (e *TagError) Error() string {
	written := "no tag was written"
	if len(e.Written) > 0 {
		written = "tags written before the failure: " + strings.Join(e.Written, ", ")
	}
	return fmt.Sprintf("write tag %s: %v (the image itself is pushed as %s; %s)", e.Tag, e.Err, e.Reference, written)
}

func (e *TagError) Unwrap() error { return e.Err }

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Push pushes a (a v1.Image, or a v1.ImageIndex for a multi-platform build) to repo: first by
// digest, and only when that fully succeeded, every tag in tags (tag names such as
// "3.21-sqlite3.51.3"). Before anything is written, every tag is checked: when each already
// points at exactly this digest, nothing is pushed and the result says Unchanged. A failure
// before the tag step leaves no tag behind; a failure at a later tag is a *TagError naming the
// tags already written. Transient errors are retried (see WithRetry); rejected credentials
// give a *CredentialsError.
func Push(ctx context.Context, repo name.Repository, a Artifact, tags []string, opts ...Option) (*Result, error) {
	o := &options{
		keychain:    authn.DefaultKeychain,
		attempts:    defaultAttempts,
		initial:     defaultInitial,
		maxInterval: defaultMaxInterval,
		transport:   remote.DefaultTransport,
		userAgent:   "sqlite-graft",
	}
	for _, opt := range opts {
		opt(o)
	}
	if o.log == nil {
		o.log = logrus.StandardLogger()
	}

	digest, mt, err := describe(a)
	if err != nil {
		return nil, fmt.Errorf("push to %s: %w", repo, err)
	}
	plats, err := platforms(a)
	if err != nil {
		return nil, fmt.Errorf("push to %s: %w", repo, err)
	}
	var tagRefs []name.Tag
	seen := map[string]bool{}
	for _, t := range tags {
		if !tagRE.MatchString(t) {
			return nil, fmt.Errorf("push to %s: invalid tag %q", repo, t)
		}
		if !seen[t] {
			seen[t] = true
			tagRefs = append(tagRefs, repo.Tag(t))
		}
	}

	auth := o.auth
	if auth == nil {
		kc := o.keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		if auth, err = authn.Resolve(ctx, kc, repo); err != nil {
			return nil, fmt.Errorf("push to %s: resolve credentials for %s: %w", repo, repo.RegistryStr(), err)
		}
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return nil, fmt.Errorf("push to %s: credentials for %s: %w", repo, repo.RegistryStr(), err)
	}
	user := cfg.Username
	if user == "" && (cfg.IdentityToken != "" || cfg.RegistryToken != "" || cfg.Auth != "") {
		user = "(token)"
	}
	source := ""
	if d, ok := auth.(interface{ CredentialsSource() string }); ok {
		source = d.CredentialsSource()
	}

	ct := &countingTransport{inner: o.transport}
	p := &pusher{
		o:      o,
		repo:   repo,
		user:   user,
		source: source,
		scrub:  scrubber(secrets(cfg)),
		ct:     ct,
		log: o.log.WithFields(logrus.Fields{
			"repository": repo.Name(),
			"digest":     digest.String(),
		}),
		ropts: []remote.Option{
			remote.WithContext(ctx),
			remote.WithAuth(auth),
			remote.WithTransport(ct),
			remote.WithUserAgent(o.userAgent),
			// Retries are ours (backoff, per step, bounded by WithRetry): switch off
			// go-containerregistry's own, which would otherwise multiply with ours.
			remote.WithRetryPredicate(func(error) bool { return false }),
			remote.WithRetryStatusCodes(),
		},
	}

	dref := repo.Digest(digest.String())
	res := &Result{
		Reference: dref.Name(),
		Digest:    digest.String(),
		MediaType: string(mt),
		Tags:      []string{},
		Pushed:    []string{},
		Platforms: plats,
	}
	for _, t := range tagRefs {
		res.Tags = append(res.Tags, t.Name())
	}

	// 1. Is it there already?
	current := map[string]bool{}
	if len(tagRefs) == 0 {
		desc, err := p.head(ctx, dref)
		if err != nil {
			return nil, p.scrub.err(err)
		}
		current[dref.Name()] = desc != nil
	}
	for _, t := range tagRefs {
		desc, err := p.head(ctx, t)
		if err != nil {
			return nil, p.scrub.err(err)
		}
		current[t.Name()] = desc != nil && desc.Digest == digest
		state := "absent"
		if desc != nil {
			state = desc.Digest.String()
		}
		p.log.WithFields(logrus.Fields{"tag": t.Name(), "current": state}).Debug("checked tag")
	}
	unchanged := true
	for _, ok := range current {
		unchanged = unchanged && ok
	}
	if unchanged {
		// The referrers may be missing (a run that died after tagging, a
		// registry that lost them): attaching is idempotent and writes
		// nothing when they are there.
		if p.o.attach != nil {
			err := p.retry(ctx, "attach to "+dref.Name(), func() error { return p.o.attach(ctx, dref, p.ropts) })
			if err != nil {
				return nil, p.scrub.err(fmt.Errorf("attach to %s: %w", dref.Name(), err))
			}
		}
		res.Unchanged = true
		res.Stats = p.stats()
		p.log.WithField("tags", res.Tags).Info("unchanged: the registry already has this digest under every tag; nothing pushed")
		return res, nil
	}

	// The gate (the image checks) runs only when something will be pushed: an
	// unchanged digest is the very bits that passed it before.
	if p.o.gate != nil {
		if err := p.o.gate(ctx); err != nil {
			return nil, fmt.Errorf("nothing pushed to %s: %w", repo, err)
		}
	}

	// 2. Push by digest: blobs, child manifests of an index, then the manifest.
	p.log.WithField("platforms", plats).Info("pushing by digest")
	if err := p.retry(ctx, "push "+dref.Name(), func() error { return p.write(dref, a) }); err != nil {
		return nil, p.scrub.err(fmt.Errorf("push %s: %w", dref.Name(), err))
	}
	st := p.stats()
	p.log.WithFields(logrus.Fields{"blobs": st.BlobsUploaded, "bytes": st.BytesUploaded}).Info("pushed by digest")

	if p.o.attach != nil {
		err := p.retry(ctx, "attach to "+dref.Name(), func() error { return p.o.attach(ctx, dref, p.ropts) })
		if err != nil {
			return nil, p.scrub.err(fmt.Errorf("attach to %s (no tag written): %w", dref.Name(), err))
		}
		p.log.Info("referrers attached")
	}

	// 3. Tags, only now.
	for _, t := range tagRefs {
		if current[t.Name()] {
			p.log.WithField("tag", t.Name()).Info("tag already points at this digest")
			continue
		}
		err := p.retry(ctx, "tag "+t.Name(), func() error { return remote.Tag(t, a, p.ropts...) })
		if err != nil {
			return nil, p.scrub.err(&TagError{
				Reference: dref.Name(),
				Tag:       t.Name(),
				Written:   slices.Clone(res.Pushed),
				Err:       err,
			})
		}
		res.Pushed = append(res.Pushed, t.Name())
		p.log.WithField("tag", t.Name()).Info("tagged")
	}
	res.Stats = p.stats()
	return res, nil
}

type pusher struct {
	o       *options
	repo    name.Repository
	user    string
	source  string // where the credentials came from, for errors
	scrub   scrubber
	ct      *countingTransport
	log     logrus.FieldLogger
	ropts   []remote.Option
	retries int64
}

func (p *pusher) stats() Stats {
	s := p.ct.stats()
	s.Retries = p.retries
	return s
}

// head returns the descriptor ref points at, or nil when the registry does not have it.
func (p *pusher) head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	var desc *v1.Descriptor
	err := p.retry(ctx, "check "+ref.Name(), func() error {
		d, err := remote.Head(ref, p.ropts...)
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			desc = nil
			return nil
		}
		desc = d
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", ref.Name(), err)
	}
	return desc, nil
}

// write pushes a by digest, with progress lines when asked for.
func (p *pusher) write(ref name.Digest, a Artifact) error {
	ropts := p.ropts
	if p.o.progress > 0 {
		updates := make(chan v1.Update, 16)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.logProgress(updates, done)
		}()
		defer wg.Wait()
		defer close(done)
		ropts = append(slices.Clone(ropts), remote.WithProgress(updates))
	}
	switch a := a.(type) {
	case v1.ImageIndex:
		return remote.WriteIndex(ref, a, ropts...)
	case v1.Image:
		return remote.Write(ref, a, ropts...)
	default:
		return fmt.Errorf("unsupported artifact %T", a)
	}
}

// logProgress logs the updates of one remote.Write. remote closes updates when the write
// returns; done is a backstop for a write that failed before it started.
func (p *pusher) logProgress(updates <-chan v1.Update, done <-chan struct{}) {
	var last time.Time
	var u v1.Update
	for {
		select {
		case nu, ok := <-updates:
			if !ok {
				if u.Total > 0 {
					p.log.WithFields(logrus.Fields{"bytes": u.Complete, "total": u.Total}).Info("push progress")
				}
				return
			}
			if nu.Error != nil {
				// Reported, scrubbed, by the caller.
				continue
			}
			u = nu
			if time.Since(last) >= p.o.progress {
				last = time.Now()
				p.log.WithFields(logrus.Fields{"bytes": u.Complete, "total": u.Total}).Info("push progress")
			}
		case <-done:
			return
		}
	}
}

// retry runs op until it succeeds, fails with an error that is not transient, or the attempts
// are used up. what names the step in log lines; the caller adds it to the error.
func (p *pusher) retry(ctx context.Context, what string, op func() error) error {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.o.initial,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         p.o.maxInterval,
	}
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := op()
		if err == nil {
			return struct{}{}, nil
		}
		err = p.classify(err)
		if !retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(p.o.attempts)),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			p.retries++
			p.log.WithFields(logrus.Fields{
				"step":    what,
				"attempt": attempt,
				"of":      p.o.attempts,
				"wait":    wait.Round(time.Millisecond).String(),
				"error":   p.scrub.string(dropQuery(err.Error())),
			}).Warn("transient registry error, retrying")
		}),
	)
	if err == nil {
		return nil
	}
	if retryable(err) && attempt > 1 {
		return fmt.Errorf("giving up after %d attempts: %w", attempt, err)
	}
	return err
}

var queryRE = regexp.MustCompile(`\?[^\s"]*`)

// dropQuery shortens the URLs in a log message: upload URLs carry long opaque state.
func dropQuery(msg string) string { return queryRE.ReplaceAllString(msg, "?...") }

// classify turns 401 and 403 answers into a CredentialsError.
func (p *pusher) classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return &CredentialsError{
			Registry:   p.repo.RegistryStr(),
			Repository: p.repo.Name(),
			User:       p.user,
			Source:     p.source,
			StatusCode: te.StatusCode,
			Err:        err,
		}
	}
	return err
}

// retryable reports whether err is transient: HTTP 5xx or 429, or a dropped connection.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// go-containerregistry joins the errors of its https and http pings into a type that
	// does not unwrap; recognise a dropped connection by its text there.
	msg := err.Error()
	return strings.HasSuffix(msg, ": EOF") || strings.Contains(msg, "connection reset by peer") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "unexpected EOF")
}
