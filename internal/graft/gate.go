package graft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/sourcetree"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

// SQLiteTests asks for the release gate: SQLite's own tests, built from the
// verified canonical source tree of the pinned release with the recipe's
// compile options, for the image's libc.
type SQLiteTests struct {
	Level sqltests.Level // "" : not asked (the result says so)
	// Require makes "not run" (no verified tree of the version, or not
	// asked) an error instead of a result.
	Require bool
	Tree    string // an orig tarball or a tree directory; "" : the pinned one from Mirror
	Mirror  string // Debian mirror; "" : debsrc.DefaultMirror
	// VerifyIndex checks the pinned tree's SHA-256 against the suite's
	// signed index first.
	VerifyIndex bool
	CacheDir    string // trees, testfixtures, a musl Tcl
	LogDir      string // the test log
	// Gate builds the testfixture and runs the level; nil: sqltests.Gate
	// with a Builder of this machine's toolchain (cc, musl-gcc).
	Gate func(ctx context.Context, req sqltests.BuildRequest, level sqltests.Level, opts sqltests.RunOptions) (*sqltests.Result, error)
}

// RunSQLiteTests is the gate of version v for libc: a result in every case
// where the question could be asked — passed, failed (with an error), or
// not run and why (an error only with Require). The tree is fetched and
// verified in Go on every path: the archive hash, manifest.uuid against the
// pinned source id, every file against its F-card.
func (e *Env) RunSQLiteTests(ctx context.Context, v pins.Version, libc string, t SQLiteTests) (*sqltests.Result, error) {
	notRun := func(reason string) (*sqltests.Result, error) {
		r := sqltests.NotRunResult(v, t.Level, reason)
		if t.Require {
			return r, fmt.Errorf("%s, and --require-sqlite-tests is set", r.Summary())
		}
		e.Log.Warn(r.Summary())
		return r, nil
	}
	if t.Level == "" {
		return notRun("not asked: --sqlite-tests LEVEL")
	}
	lc, err := local.ParseLibc(libc)
	if err != nil {
		return nil, err
	}
	pin, err := e.Pins.Lookup(v)
	if err != nil {
		return notRun(fmt.Sprintf("no verified source tree for %s: %v", v, err))
	}
	base := t.Mirror
	if base == "" {
		base = debsrc.DefaultMirror
	}
	mirror := debsrc.Mirror{Base: base, Fetcher: e.Fetcher, Log: e.Log}
	if tree := pin.CanonicalTree; t.VerifyIndex && tree != nil && tree.Debian != nil {
		ev, err := mirror.VerifyIndex(ctx, *tree.Debian, debsrc.DefaultKeyring)
		if err != nil {
			return nil, err
		}
		e.Log.WithFields(map[string]any{"signer": ev.Signer, "date": ev.Date}).Infof("%s: the pinned SHA-256 is what Debian signed", tree.Debian.File)
	}
	tree, err := sourcetree.Open(ctx, sourcetree.Request{Pin: pin, From: t.Tree, Mirror: mirror}, t.CacheDir, e.Log)
	if errors.Is(err, sourcetree.ErrNoTree) {
		return notRun(fmt.Sprintf("no verified source tree for %s", v))
	}
	if err != nil {
		return nil, err
	}
	gate := t.Gate
	if gate == nil {
		b := &sqltests.Builder{CacheDir: t.CacheDir, Mirror: mirror, Log: e.Log}
		gate = func(ctx context.Context, req sqltests.BuildRequest, level sqltests.Level, opts sqltests.RunOptions) (*sqltests.Result, error) {
			return sqltests.Gate(ctx, b, req, level, opts)
		}
	}
	req := sqltests.BuildRequest{Tree: tree, Pin: pin, Recipe: e.Recipe, Libc: lc}
	return gate(ctx, req, t.Level, sqltests.RunOptions{LogDir: t.LogDir, Log: e.Log})
}

// releaseGate runs the gate for the build, once, beside the compiles (the
// testfixture builds from the tree, whose generated sqlite3.c is the pinned
// one byte for byte). A failure stops the build with nothing written.
func (e *Env) releaseGate(ctx context.Context, req ImageRequest, plan *BuildPlan) (*sqltests.Result, error) {
	r, err := e.RunSQLiteTests(ctx, plan.Version, req.Def.Libc, req.SQLiteTests)
	if err != nil {
		if r != nil && r.Status == sqltests.Failed {
			return nil, fmt.Errorf("the release gate failed: %w", err)
		}
		return nil, err
	}
	if r.Status != sqltests.NotRun { // RunSQLiteTests warned already
		e.Log.Info(r.Summary())
	}
	return r, nil
}

// testsRecord is the gate's result as the image's build.json records it:
// what was run and found, nothing that varies between runs (no times, no
// log paths), so that the same inputs still give the same digest. Nil when
// the gate was not asked for: images built without it keep their bytes.
func testsRecord(r *sqltests.Result) map[string]any {
	if r == nil || r.Level == "" {
		return nil
	}
	rec := map[string]any{"status": r.Status, "level": r.Level, "version": r.Version.String()}
	if r.Status == sqltests.NotRun {
		rec["reason"] = r.Reason
		return rec
	}
	rec["libc"] = r.Libc
	rec["check_in"] = r.CheckIn
	rec["files_run"] = r.FilesRun
	rec["tests"] = r.Tests
	rec["errors"] = r.Errors
	return rec
}

// testsJSON is the whole result, for the result file.
func testsJSON(r *sqltests.Result) json.RawMessage {
	if r == nil {
		return nil
	}
	b, _ := json.Marshal(r)
	return b
}
