package daggerexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"dagger.io/dagger"
	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

// Paths of the release gate's container.
const (
	gateRoot  = "/sqlite-tests"
	gateTree  = gateRoot + "/tree"  // the verified tree, uploaded
	gateBuild = gateRoot + "/build" // configure and make run here
	gateWork  = gateRoot + "/work"  // one directory per test file
	gateOut   = gateRoot + "/out"   // <file>.log, .rc, .time
	// nobody: SQLite's tests of read-only files fail for root, whom file
	// permissions do not stop (as in internal/sqltests).
	gateUser = "65534:65534"
)

// Gate is the release gate in the engine, graft.SQLiteTests.Gate: SQLite's
// testfixture built from the verified tree (fetched and verified in Go) in
// the definition's base with its toolchain and test_toolchain — the base's
// own compiler, libc and Tcl — with gate.yaml's steps and the recipe's
// options, then the level's test files run there as nobody, their output
// read back and judged by internal/sqltests as on the local path. It runs
// on the first platform of the set (others would run under emulation).
func (e *Executors) Gate(ctx context.Context, req sqltests.BuildRequest, level sqltests.Level, opts sqltests.RunOptions) (*sqltests.Result, error) {
	if len(e.Platforms) == 0 {
		return nil, fmt.Errorf("daggerexec: the release gate needs a platform")
	}
	if strings.TrimSpace(e.Def.TestToolchain) == "" {
		return nil, fmt.Errorf("%s: no test_toolchain: the release gate builds SQLite's testfixture in the base and needs the distribution's Tcl and zlib headers and make (e.g. test_toolchain: apk add --no-cache tcl-dev zlib-dev)", e.Def.File)
	}
	t, err := e.target(ctx, e.Platforms[0])
	if err != nil {
		return nil, err
	}
	g := &gate{q: e.Query, files: e.Files, target: t, def: e.Def, log: e.log()}
	return g.run(ctx, req, level, opts)
}

type gate struct {
	q      *dagger.Query
	files  Files
	target Target
	def    *imagedef.Definition
	log    logrus.FieldLogger
}

func (g *gate) run(ctx context.Context, req sqltests.BuildRequest, level sqltests.Level, opts sqltests.RunOptions) (*sqltests.Result, error) {
	files, err := sqltests.Files(level, req.Tree)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("%s (%s)", g.target.Base, g.target.Platform)
	builder, err := Builder(g.q, g.target)
	if err != nil {
		return nil, err
	}
	builder = builder.WithExec([]string{"sh", "-c", g.def.TestToolchain})
	tclDir, err := g.tclConfigDir(ctx, builder)
	if err != nil {
		return nil, fmt.Errorf("the release gate in %s: %w", where, err)
	}
	steps, err := sqltests.TestfixtureSteps(req, CC, gateTree, tclDir)
	if err != nil {
		return nil, err
	}
	tree, err := g.files.Directory(ctx, req.Tree.Dir)
	if err != nil {
		return nil, fmt.Errorf("upload the source tree %s: %w", req.Tree.Dir, err)
	}
	built := builder.WithDirectory(gateTree, tree).
		WithNewFile(gateBuild+"/"+sqltests.TestfixtureMakefileName, string(sqltests.TestfixtureMakefile)).
		WithWorkdir(gateBuild)
	for _, argv := range steps {
		built = built.WithExec(argv)
	}
	g.log.WithFields(logrus.Fields{"check_in": req.Tree.CheckIn[:12], "base": g.target.Base}).Info("testfixture: building SQLite's test harness from the verified tree in the engine")
	start := time.Now()
	if built, err = built.Sync(ctx); err != nil {
		return nil, fmt.Errorf("testfixture in %s: %w", where, withOutput(err))
	}
	tf := &sqltests.Testfixture{
		Path: gateBuild + "/testfixture (in the engine)", Libc: req.Libc,
		Toolchain: fmt.Sprintf("%s in %s via Dagger (%s)", CC, g.target.Base, g.target.Platform),
		Tcl:       fmt.Sprintf("the base's Tcl (%s/tclConfig.sh, %s)", tclDir, g.def.TestToolchain),
		CheckIn:   req.Tree.CheckIn, Argv: steps, BuildSeconds: time.Since(start).Seconds(),
	}
	if tf.Amalgamation, err = g.amalgamation(ctx, built, req); err != nil {
		return nil, err
	}
	g.log.WithField("seconds", int(tf.BuildSeconds)).Info("testfixture: built (or found in the engine's cache)")

	g.log.WithFields(logrus.Fields{"tests_level": level, "files": len(files)}).Infof("SQLite's tests in the engine: running %s", sqltests.About(level))
	start = time.Now()
	out, err := g.runFiles(ctx, built, files)
	if err != nil {
		return nil, fmt.Errorf("SQLite's tests in %s: %w", where, err)
	}
	r := &sqltests.Result{Level: level, Version: req.Tree.Version, Libc: req.Libc, CheckIn: req.Tree.CheckIn, Testfixture: tf, BuildSeconds: tf.BuildSeconds}
	results, outputs, err := g.readRuns(ctx, out, files)
	if err != nil {
		return nil, err
	}
	r.Seconds = time.Since(start).Seconds()
	for _, fr := range results {
		g.log.WithFields(logrus.Fields{"errors": fr.Errors, "tests": fr.Tests, "seconds": int(fr.Seconds)}).Infof("test/%s", fr.File)
	}
	r, err = sqltests.Finish(r, results, outputs, opts.LogDir)
	if err != nil && r != nil && r.Status == sqltests.Failed {
		// The module has no log directory a caller can read: the failed
		// files' output goes into the error.
		return r, fmt.Errorf("%w\n%s", err, failedTails(results, outputs))
	}
	return r, err
}

// tclConfigDir finds tclConfig.sh where gate.yaml says distributions keep it.
func (g *gate) tclConfigDir(ctx context.Context, builder *dagger.Container) (string, error) {
	dirs, err := sqltests.TclConfigDirs()
	if err != nil {
		return "", err
	}
	script := `for d in "$@"; do if [ -f "$d/tclConfig.sh" ]; then echo "$d"; exit 0; fi; done; echo "no tclConfig.sh in $*" >&2; exit 1`
	out, err := builder.WithExec(append([]string{"sh", "-c", script, "sh"}, dirs...)).Stdout(ctx)
	if err != nil {
		return "", fmt.Errorf("Tcl after test_toolchain %q: %w", g.def.TestToolchain, withOutput(err))
	}
	return strings.TrimSpace(out), nil
}

// amalgamation reads back the sqlite3.c the tree generated and compares it
// with the pinned one: the tests then exercise the code the library is
// compiled from.
func (g *gate) amalgamation(ctx context.Context, built *dagger.Container, req sqltests.BuildRequest) (string, error) {
	dir, err := os.MkdirTemp("", "sqlite-graft-gate-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	d := g.q.Directory().WithFile("sqlite3.c", built.File(gateBuild+"/sqlite3.c"))
	if err := g.files.Export(ctx, d, dir); err != nil {
		return "", fmt.Errorf("read back the tree's sqlite3.c: %w", err)
	}
	return sqltests.CheckAmalgamation(filepath.Join(dir, "sqlite3.c"), req)
}

// runScript runs the test files given after the number of workers, in
// that order (slowest first): each worker takes the next file nobody has
// claimed (mkdir is the atomic claim), runs it in a directory of its own and
// keeps its output, exit status and times (from /proc/uptime: busybox's date
// has no sub-second format). It always exits 0: the files' results are
// judged in Go.
const runScript = `set -u
one() {
  f=$1; w=` + gateWork + `/${f%.test}; o=` + gateOut + `/$f
  mkdir -p "$w" && cd "$w" || { echo 127 > "$o.rc"; return; }
  s=$(cut -d' ' -f1 /proc/uptime)
  ` + gateBuild + `/testfixture ` + gateTree + `/test/$f > "$o.log" 2>&1
  echo $? > "$o.rc"
  echo "$s $(cut -d' ' -f1 /proc/uptime)" > "$o.time"
}
worker() {
  for f in "$@"; do
    mkdir ` + gateWork + `/.claimed/"$f" 2>/dev/null && one "$f"
  done
}
mkdir -p ` + gateWork + `/.claimed
n=$1; shift
while [ "$n" -gt 0 ]; do worker "$@" & n=$((n-1)); done
wait
exit 0
`

// runFiles runs files with testfixture as nobody, sqltests.DefaultJobs at
// a time as on the local path, in a scratch copy of the tree nobody may
// write in, and returns the directory of outputs. The run is never taken
// from the engine's cache: a gate that did not run must not pass.
func (g *gate) runFiles(ctx context.Context, built *dagger.Container, files []string) (*dagger.Directory, error) {
	jobs := strconv.Itoa(min(sqltests.DefaultJobs(), len(files)))
	ctr := built.
		WithExec([]string{"sh", "-c", "mkdir -p " + gateWork + " " + gateOut + " && chown -R " + gateUser + " " + gateRoot}).
		WithEnvVariable("SQLITE_GRAFT_GATE_RUN", strconv.FormatInt(time.Now().UnixNano(), 10)).
		WithUser(gateUser).
		WithWorkdir(gateWork).
		WithExec(append([]string{"sh", "-c", runScript, "sh", jobs}, files...))
	out, err := ctr.Directory(gateOut).Sync(ctx)
	if err != nil {
		return nil, withOutput(err)
	}
	return out, nil
}

// readRuns exports the outputs and reads each file's result.
func (g *gate) readRuns(ctx context.Context, out *dagger.Directory, files []string) ([]sqltests.FileResult, [][]byte, error) {
	dir, err := os.MkdirTemp("", "sqlite-graft-gate-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	if err := g.files.Export(ctx, out, dir); err != nil {
		return nil, nil, fmt.Errorf("read back the tests' output: %w", err)
	}
	results := make([]sqltests.FileResult, len(files))
	outputs := make([][]byte, len(files))
	for i, f := range files {
		p := filepath.Join(dir, f)
		outputs[i], _ = os.ReadFile(p + ".log")
		var runErr error
		rc, err := os.ReadFile(p + ".rc")
		switch code := strings.TrimSpace(string(rc)); {
		case err != nil:
			runErr = fmt.Errorf("not run (no exit status)")
		case code != "0":
			runErr = fmt.Errorf("exit status %s", code)
		}
		var seconds float64
		if t, err := os.ReadFile(p + ".time"); err == nil {
			var s, e float64
			if n, _ := fmt.Sscan(string(t), &s, &e); n == 2 {
				seconds = e - s
			}
		}
		results[i] = sqltests.ReadOutput(f, outputs[i], runErr, seconds)
	}
	return results, outputs, nil
}

// failedTails is the last lines of each failed file's output.
func failedTails(results []sqltests.FileResult, outputs [][]byte) string {
	var b strings.Builder
	for i, fr := range results {
		if fr.Errors == 0 || i >= len(outputs) {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(outputs[i]), "\n"), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		fmt.Fprintf(&b, "==== test/%s (last %d lines)\n%s\n", fr.File, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
