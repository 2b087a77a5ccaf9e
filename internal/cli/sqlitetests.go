package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
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
	o.addGateFlags(fs, "")
	fs.StringVar(&o.Libc, "libc", "glibc", "C library the testfixture is built for: glibc (cc, Debian's tcl-dev) or musl (musl-gcc, Tcl built from Debian's tcl8.6 source)")
}

// addGateFlags adds the gate's flags; level is --sqlite-tests' default.
func (o *SQLiteTestsOptions) addGateFlags(fs *pflag.FlagSet, level string) {
	fs.StringVar(&o.Level, "sqlite-tests", level, "run SQLite's own tests from the release's verified source tree: quick, wal or veryquick (see README: the release gate)")
	fs.StringVar(&o.Tree, "sqlite-tree", "", "the canonical source tree: Debian's orig tarball (checked against the pinned SHA-256) or an unpacked tree (default: download the pinned orig tarball from --debian-mirror)")
	fs.StringVar(&o.Mirror, "debian-mirror", debsrc.DefaultMirror, "Debian mirror for the source tree and, for musl, Tcl's source")
	fs.StringVar(&o.LogDir, "sqlite-tests-logs", "", "directory for the test log (default: <cache-dir>/sqlite-tests)")
	fs.BoolVar(&o.Index, "verify-debian-index", false, "before fetching the tree, check its pinned SHA-256 against the suite's Sources index and that index against the signed InRelease (Debian archive keyring)")
	fs.BoolVar(&o.Require, "require-sqlite-tests", false, "fail when SQLite's tests cannot run (not asked, or no verified source tree of the version) instead of reporting them as not run")
}

// request is the gate the flags ask for.
func (o *SQLiteTestsOptions) request(a *app) (graft.SQLiteTests, error) {
	t := graft.SQLiteTests{Require: o.Require, Tree: o.Tree, Mirror: o.Mirror, VerifyIndex: o.Index, LogDir: o.LogDir}
	if o.Level != "" {
		level, err := sqltests.ParseLevel(o.Level)
		if err != nil {
			return t, usageErrorf("--sqlite-tests: %v", err)
		}
		t.Level = level
	}
	cache, err := a.global.Cache()
	if err != nil {
		return t, err
	}
	t.CacheDir = cache
	if t.LogDir == "" {
		t.LogDir = filepath.Join(cache, "sqlite-tests")
	}
	return t, nil
}

// runSQLiteTests is the gate for version and --libc: a result in every case
// where the question could be asked — passed, failed, or not run and why.
func (a *app) runSQLiteTests(ctx context.Context, o SQLiteTestsOptions, v pins.Version) (*sqltests.Result, error) {
	t, err := o.request(a)
	if err != nil {
		return nil, err
	}
	if t.Level == "" {
		return nil, usageErrorf("--sqlite-tests: want quick, wal or veryquick")
	}
	libc, err := local.ParseLibc(o.Libc)
	if err != nil {
		return nil, usageErrorf("--libc: %v", err)
	}
	env, err := a.env()
	if err != nil {
		return nil, err
	}
	return env.RunSQLiteTests(ctx, v, string(libc), t)
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
