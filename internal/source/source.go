// Package source fetches the source of a pinned SQLite release, verifies it
// against the hashes sqlite.org published, extracts sqlite3.c and friends,
// applies the repository's patches and hands over a directory to compile.
//
// Everything fails closed: a hash, a version or a patch that does not match
// stops the fetch with an error naming the file, the expected and the actual
// value, and leaves nothing at the output directory.
package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Archive kinds, as recorded in Source.ArchiveKind.
const (
	KindAmalgamation = "amalgamation" // sqlite-amalgamation-3XXYYZZ.zip
	KindAutoconf     = "autoconf"     // sqlite-autoconf-3XXYYZZ.tar.gz
	KindGoModule     = "go-module"    // a github.com/mattn/go-sqlite3 module zip
	KindDirectory    = "directory"    // an extracted amalgamation or go-sqlite3 module directory
)

// OverridePublished is the Published text pins.File.Resolve gives a hash that
// came from --sha3: the user vouches for whichever archive they supply.
const OverridePublished = "--sha3 on the command line"

// SourceJSON is the name of the metadata file written next to sqlite3.c.
const SourceJSON = "source.json"

// Fetcher fetches and verifies SQLite sources. Build it with New.
type Fetcher struct {
	client     *http.Client
	cacheDir   string // "" disables the archive cache
	log        logrus.FieldLogger
	attempts   int
	initial    time.Duration
	stall      time.Duration
	goProxies  []string
	goModCache string
}

// Option configures a Fetcher.
type Option func(*Fetcher)

// WithHTTPClient sets the client used for every download.
func WithHTTPClient(c *http.Client) Option { return func(f *Fetcher) { f.client = c } }

// WithCacheDir sets where verified archives are kept, as
// <dir>/archives/<sha3>; "" disables the cache.
func WithCacheDir(dir string) Option { return func(f *Fetcher) { f.cacheDir = dir } }

// WithLogger sets the logger for progress and warnings.
func WithLogger(l logrus.FieldLogger) Option { return func(f *Fetcher) { f.log = l } }

// WithRetry sets how often one URL is tried and the first backoff wait;
// waits grow exponentially with jitter.
func WithRetry(attempts int, initial time.Duration) Option {
	return func(f *Fetcher) {
		f.attempts = max(attempts, 1)
		if initial > 0 {
			f.initial = initial
		}
	}
}

// WithStallTimeout aborts a download attempt when no byte arrives for d.
func WithStallTimeout(d time.Duration) Option {
	return func(f *Fetcher) {
		if d > 0 {
			f.stall = d
		}
	}
}

// WithGoProxy sets the Go module proxies used as a last-resort mirror for
// pins with a go_module; no URLs disables them.
func WithGoProxy(urls ...string) Option {
	return func(f *Fetcher) { f.goProxies = cleanProxies(urls) }
}

// New returns a Fetcher with defaults: the user cache dir, 4 attempts per
// URL starting at 1s, a 30s stall timeout and the proxies of $GOPROXY.
func New(opts ...Option) *Fetcher {
	f := &Fetcher{
		client:     &http.Client{}, // no overall timeout: the stall timeout guards slow links
		log:        logrus.StandardLogger(),
		attempts:   4,
		initial:    time.Second,
		stall:      30 * time.Second,
		goProxies:  envGoProxies(),
		goModCache: envGoModCache(),
	}
	if d, err := os.UserCacheDir(); err == nil {
		f.cacheDir = filepath.Join(d, "sqlite-graft")
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Request says what to fetch.
type Request struct {
	Pins    *pins.File // mirrors for downloads
	Pin     pins.Pin   // resolved with pins.File.Resolve (may carry a --sha3 override)
	From    string     // "" downloads; else an http(s) URL, an archive file or a directory
	Patches fs.FS      // holds <version>/NNNN-*.patch; nil applies none
}

// Patch is one applied patch.
type Patch struct {
	Name string `json:"name"`
	SHA3 string `json:"sha3"`
}

// Source is a verified, patched SQLite source directory. It is also written
// as <Dir>/source.json.
type Source struct {
	Dir          string       `json:"dir"` // sqlite3.c, sqlite3.h and, when present, shell.c, sqlite3ext.h
	Version      pins.Version `json:"version"`
	SourceID     string       `json:"source_id"` // SQLITE_SOURCE_ID of sqlite3.c
	Origin       string       `json:"origin"`    // the URL or path actually read
	ArchiveKind  string       `json:"archive_kind"`
	ArchiveSHA3  string       `json:"archive_sha3,omitempty"` // empty for a directory
	SQLite3CSHA3 string       `json:"sqlite3_c_sha3"`         // as verified, before patches
	Verified     []string     `json:"verified"`               // which published values were checked
	Patches      []Patch      `json:"patches"`
	HasShell     bool         `json:"has_shell"`
	HasFixMarker bool         `json:"has_fix_marker"` // pins.FixMarker in sqlite3.c after patches
}

// Fetch fetches, verifies, extracts and patches the source of req.Pin into
// outDir, replacing whatever was there only when everything passed.
func (f *Fetcher) Fetch(ctx context.Context, req Request, outDir string) (*Source, error) {
	v := req.Pin.Version
	if v == (pins.Version{}) {
		return nil, errors.New("source: Request.Pin has no version")
	}
	src, err := f.fetch(ctx, req, outDir)
	if err != nil {
		return nil, fmt.Errorf("SQLite %s: %w", v, err)
	}
	return src, nil
}

func (f *Fetcher) fetch(ctx context.Context, req Request, outDir string) (_ *Source, err error) {
	out, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	if err := checkNotInside(req.From, out); err != nil {
		return nil, err
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	// Work next to outDir so the final rename stays on one file system.
	work, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(work)
		}
	}()

	src := &Source{Dir: out, Version: req.Pin.Version, Patches: []Patch{}}
	if err := f.obtain(ctx, req, work, src); err != nil {
		return nil, err
	}
	if src.Patches, err = applyPatches(req.Patches, req.Pin.Version, work); err != nil {
		return nil, err
	}
	for _, p := range src.Patches {
		f.log.WithField("sha3", p.SHA3).Infof("applied patch %s", p.Name)
	}
	if err := f.finish(work, src); err != nil {
		return nil, err
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	if err := install(work, out); err != nil {
		return nil, err
	}
	f.log.WithFields(logrus.Fields{"dir": out, "origin": src.Origin, "kind": src.ArchiveKind}).
		Infof("SQLite %s source ready (%s)", src.Version, src.SourceID)
	return src, nil
}

// finish records what the final files hold and writes source.json.
func (f *Fetcher) finish(work string, src *Source) error {
	c, err := os.ReadFile(filepath.Join(work, "sqlite3.c"))
	if err != nil {
		return err
	}
	src.HasFixMarker = strings.Contains(string(c), pins.FixMarker)
	_, err = os.Stat(filepath.Join(work, "shell.c"))
	src.HasShell = err == nil
	switch fixed := pins.HasWALResetFix(src.Version); {
	case fixed && !src.HasFixMarker:
		f.log.Warnf("sqlite3.c of SQLite %s lacks the WAL-reset fix marker %q", src.Version, pins.FixMarker)
	case !fixed && src.HasFixMarker:
		f.log.Infof("SQLite %s carries the WAL-reset fix marker (patched)", src.Version)
	}
	b, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, SourceJSON), append(b, '\n'), 0o644)
}

// install moves work to out; an existing out is moved aside first and
// removed only once the new one is in place.
func install(work, out string) error {
	old := ""
	if _, err := os.Lstat(out); err == nil {
		old = work + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("replace %s: %w", out, err)
		}
	}
	if err := os.Rename(work, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("install %s: %w", out, err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// checkNotInside refuses an output directory that holds the input directory:
// replacing it would delete the source being read.
func checkNotInside(from, out string) error {
	if from == "" || isURL(from) {
		return nil
	}
	abs, err := filepath.Abs(from)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(out, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("output directory %s would replace the input %s", out, from)
	}
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}
