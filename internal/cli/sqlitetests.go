package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
	"github.com/sqlite-graft/sqlite-graft/internal/sourcetree"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

// SQLiteTestsOptions are the release gate's flags: SQLite's own tests, built
// from the verified canonical source tree of the release.
type SQLiteTestsOptions struct {
	Level   string
	Tree    string
	Mirror  string
	Libc    string
	LogDir  string
	Require bool
	Index   bool
}

func (o *SQLiteTestsOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Level, "sqlite-tests", "", "run SQLite's own tests from the release's verified source tree: quick, wal or veryquick")
	fs.StringVar(&o.Tree, "sqlite-tree", "", "the canonical source tree: Debian's orig tarball (checked against the pinned SHA-256) or an unpacked tree (default: download the pinned orig tarball from --debian-mirror)")
	fs.StringVar(&o.Mirror, "debian-mirror", debsrc.DefaultMirror, "Debian mirror for the source tree and, for musl, Tcl's source")
	fs.StringVar(&o.Libc, "libc", "glibc", "C library the testfixture is built for: glibc (cc, Debian's tcl-dev) or musl (musl-gcc, Tcl built from Debian's tcl8.6 source)")
	fs.StringVar(&o.LogDir, "sqlite-tests-logs", "", "directory for the test log (default: <cache-dir>/sqlite-tests)")
	fs.BoolVar(&o.Index, "verify-debian-index", false, "before fetching the tree, check its pinned SHA-256 against the suite's Sources index and that index against the signed InRelease (Debian archive keyring)")
	fs.BoolVar(&o.Require, "require-sqlite-tests", false, "fail when SQLite's tests cannot run (no verified source tree of the version) instead of reporting them as not run")
}

// runSQLiteTests is the gate for version: a Result in every case where the
// question could be asked — passed, failed, or not run and why.
func (a *app) runSQLiteTests(ctx context.Context, o SQLiteTestsOptions, p *pins.File, v pins.Version) (*sqltests.Result, error) {
	level, err := sqltests.ParseLevel(o.Level)
	if err != nil {
		return nil, usageErrorf("--sqlite-tests: %v", err)
	}
	libc, err := local.ParseLibc(o.Libc)
	if err != nil {
		return nil, usageErrorf("--libc: %v", err)
	}
	cache, err := a.global.Cache()
	if err != nil {
		return nil, err
	}
	logDir := o.LogDir
	if logDir == "" {
		logDir = filepath.Join(cache, "sqlite-tests")
	}
	notRun := func(reason string) (*sqltests.Result, error) {
		r := sqltests.NotRunResult(v, level, reason)
		if o.Require {
			return r, fmt.Errorf("%s, and --require-sqlite-tests is set", r.Summary())
		}
		a.log.Warn(r.Summary())
		return r, nil
	}
	pin, err := p.Lookup(v)
	if err != nil {
		return notRun(fmt.Sprintf("no verified source tree for %s: %v", v, err))
	}
	mirror := debsrc.Mirror{Base: o.Mirror, Fetcher: source.New(source.WithLogger(a.log)), Log: a.log}
	if t := pin.CanonicalTree; o.Index && t != nil && t.Debian != nil {
		ev, err := mirror.VerifyIndex(ctx, *t.Debian, debsrc.DefaultKeyring)
		if err != nil {
			return nil, err
		}
		a.log.WithFields(map[string]any{"signer": ev.Signer, "date": ev.Date}).Infof("%s: the pinned SHA-256 is what Debian signed", t.Debian.File)
	}
	tree, err := sourcetree.Open(ctx, sourcetree.Request{Pin: pin, From: o.Tree, Mirror: mirror}, cache, a.log)
	if errors.Is(err, sourcetree.ErrNoTree) {
		return notRun(fmt.Sprintf("no verified source tree for %s", v))
	}
	if err != nil {
		return nil, err
	}
	b := &sqltests.Builder{CacheDir: cache, Mirror: mirror, Log: a.log}
	req := sqltests.BuildRequest{Tree: tree, Pin: pin, Recipe: recipe.Default(), Libc: libc}
	return sqltests.Gate(ctx, b, req, level, sqltests.RunOptions{LogDir: logDir, Log: a.log})
}

// printSQLiteTests writes the gate's result: its summary line, or JSON.
func (a *app) printSQLiteTests(r *sqltests.Result, asJSON bool) error {
	if r == nil {
		return nil
	}
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			SQLiteTests *sqltests.Result `json:"sqlite_tests"`
		}{r})
	}
	fmt.Fprintln(a.stdout, r.Summary())
	return nil
}
