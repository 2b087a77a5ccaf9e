package sqltests_test

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

// The builds go to the fixture cache, keyed by content: every test (and
// every test package) that asks for the same testfixture shares one compile.
func builder(t *testing.T) *sqltests.Builder {
	t.Helper()
	cache, err := fixtures.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return &sqltests.Builder{CacheDir: cache, Mirror: fixtures.Mirror(), Log: l}
}

func request(t *testing.T, libc local.Libc, patches ...sqltests.Patch) sqltests.BuildRequest {
	t.Helper()
	p, err := fixtures.Pin(fixtures.CanonicalTreeVersion)
	if err != nil {
		t.Fatal(err)
	}
	return sqltests.BuildRequest{
		Tree:    fixtures.CanonicalTree(t, fixtures.CanonicalTreeVersion),
		Pin:     p,
		Recipe:  recipe.Default(),
		Libc:    libc,
		Patches: patches,
	}
}

func file(r *sqltests.Result, name string) *sqltests.FileResult {
	for i := range r.Files {
		if r.Files[i].File == name {
			return &r.Files[i]
		}
	}
	return nil
}

// gate runs level on a testfixture of req and checks what every result must
// hold, passed or not.
func gate(t *testing.T, req sqltests.BuildRequest, level sqltests.Level) (*sqltests.Result, error) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	r, err := sqltests.Gate(context.Background(), builder(t), req, level, sqltests.RunOptions{LogDir: t.TempDir(), Log: l})
	if r == nil {
		t.Fatalf("Gate(%s, %s) = nil result, %v", req.Libc, level, err)
	}
	if _, serr := os.Stat(r.Log); serr != nil {
		t.Errorf("Gate(%s, %s): log %q: %v", req.Libc, level, r.Log, serr)
	}
	wr := file(r, "walrestart.test")
	if wr == nil || wr.Tests != 7 {
		t.Fatalf("Gate(%s, %s): walrestart.test = %+v, want its 7 tests run", req.Libc, level, wr)
	}
	return r, err
}

// The gate on 3.53.4 built from the verified Debian source tree with the
// recipe's options: the wal level passes on glibc, and the testfixture's
// amalgamation is the published sqlite3.c byte for byte.
func TestGateGlibc(t *testing.T) {
	t.Parallel()
	r, err := gate(t, request(t, local.Glibc), sqltests.WAL)
	if err != nil || r.Status != sqltests.Passed || r.Errors != 0 {
		t.Fatalf("Gate(glibc, wal) = %s, %v; want passed", r.Summary(), err)
	}
	if r.FilesRun < 30 || r.Tests < 3000 {
		t.Errorf("Gate(glibc, wal) ran %d files, %d tests; want the wal*.test files (36 in 3.53.4)", r.FilesRun, r.Tests)
	}
	if tf := r.Testfixture; !strings.Contains(tf.Amalgamation, "= the published sqlite3.c (SHA3-256 67f423e9") {
		t.Errorf("Testfixture.Amalgamation = %q, want the published sqlite3.c of 3.53.4", tf.Amalgamation)
	}
	for _, d := range recipe.Default().DefineFlags() {
		if !slices.ContainsFunc(r.Testfixture.Argv, func(a []string) bool { return strings.Contains(strings.Join(a, " "), d) }) {
			t.Errorf("testfixture argv lacks the recipe's %s", d)
		}
	}
}

// The same gate on musl: testfixture built with musl-gcc against a Tcl built
// with musl-gcc from Debian's tcl8.6 (and zlib) source packages; the wal
// level too (its files mostly wait, so it costs the suite ~45 s of wall time
// and little CPU).
func TestGateMusl(t *testing.T) {
	t.Parallel()
	r, err := gate(t, request(t, local.Musl), sqltests.WAL)
	if err != nil || r.Status != sqltests.Passed || r.Errors != 0 {
		t.Fatalf("Gate(musl, wal) = %s, %v; want passed", r.Summary(), err)
	}
	if r.FilesRun != 36 || r.Tests < 3000 {
		t.Errorf("Gate(musl, wal) ran %d files, %d tests; want the wal*.test files (36 in 3.53.4)", r.FilesRun, r.Tests)
	}
	if tf := r.Testfixture; !strings.Contains(tf.Tcl, "built with musl-gcc from Debian zlib") || !strings.Contains(tf.Tcl, "tcl8.6 8.6.16") || tf.TclLibrary == "" {
		t.Errorf("Testfixture.Tcl = %q (library %q), want the musl Tcl built from Debian's source", tf.Tcl, tf.TclLibrary)
	}
}

// The gate discriminates: with the WAL-reset fix reverted in the same tree
// (testdata/revert-walreset.patch), walrestart.test fails — and only it.
func TestGateFailsWithFixReverted(t *testing.T) {
	t.Parallel()
	patch, err := os.ReadFile("testdata/revert-walreset.patch")
	if err != nil {
		t.Fatal(err)
	}
	r, err := gate(t, request(t, local.Glibc, sqltests.Patch{Name: "revert-walreset.patch", Data: patch}), sqltests.Quick)
	if err == nil || r.Status != sqltests.Failed {
		t.Fatalf("Gate(fix reverted) = %s, %v; want failed", r.Summary(), err)
	}
	wr := file(r, "walrestart.test")
	if wr.Errors == 0 || !slices.ContainsFunc(wr.Failed, func(n string) bool { return strings.HasPrefix(n, "walrestart-1.") }) {
		t.Errorf("walrestart.test with the fix reverted = %+v, want failed walrestart-1.x tests", wr)
	}
	for _, f := range r.Files {
		if f.File != "walrestart.test" && f.Errors != 0 {
			t.Errorf("%s failed with the fix reverted (%v): only walrestart.test should", f.File, f.Failed)
		}
	}
	if !strings.Contains(r.Summary(), "test-only patches revert-walreset.patch") || !strings.Contains(r.Testfixture.Amalgamation, "patched") {
		t.Errorf("Summary() = %q, Amalgamation = %q; want the patch named", r.Summary(), r.Testfixture.Amalgamation)
	}
}

// veryquick.test, SQLite's own `make test`, is opt-in: tens of minutes here.
// SQLITE_GRAFT_VERYQUICK=1 go test -run TestGateVeryQuick -timeout 3h ./internal/sqltests/
func TestGateVeryQuick(t *testing.T) {
	if os.Getenv("SQLITE_GRAFT_VERYQUICK") == "" {
		t.Skip("opt-in: set SQLITE_GRAFT_VERYQUICK=1 (runs SQLite's veryquick.test, tens of minutes)")
	}
	r, err := gate(t, request(t, local.Glibc), sqltests.VeryQuick)
	t.Logf("%s", r.Summary())
	if err != nil {
		t.Fatal(err)
	}
}

func TestNotRunIsNoPass(t *testing.T) {
	p, err := fixtures.Pin("3.51.3")
	if err != nil {
		t.Fatal(err)
	}
	r := sqltests.NotRunResult(p.Version, sqltests.WAL, "no verified source tree for 3.51.3")
	if r.Status == sqltests.Passed || r.Summary() != "SQLite's tests: not run (no verified source tree for 3.51.3)" {
		t.Errorf("NotRunResult = %+v, %q", r, r.Summary())
	}
}

func TestLevels(t *testing.T) {
	for _, l := range sqltests.Levels() {
		if got, err := sqltests.ParseLevel(string(l)); err != nil || got != l {
			t.Errorf("ParseLevel(%s) = %v, %v", l, got, err)
		}
		if sqltests.About(l) == "" {
			t.Errorf("About(%s) is empty", l)
		}
	}
	if _, err := sqltests.ParseLevel("full"); err == nil {
		t.Error("ParseLevel(full) = nil error")
	}
}

// A level's files start slowest first, as SQLite's testrunner orders them
// (the "TESTRUNNER: slow" files of the tree first), so a level lasts about
// as long as its slowest file; nothing is added or dropped by the ordering.
func TestFilesSlowestFirst(t *testing.T) {
	tree := fixtures.CanonicalTree(t, fixtures.CanonicalTreeVersion)
	files, err := sqltests.Files(sqltests.WAL, tree)
	if err != nil {
		t.Fatal(err)
	}
	// 3.53.4's wal*.test files tagged slow (not excluded by the level)
	slow := []string{"wal3.test", "walsetlk.test", "walsetlk2.test", "walsetlk3.test", "walsetlk_recover.test", "walsetlk_snapshot.test", "walvfs.test"}
	if len(files) < len(slow) || !slices.Equal(slices.Sorted(slices.Values(files[:len(slow)])), slow) {
		t.Errorf("Files(wal) = %q, want the slow ones first: %q", files, slow)
	}
	rest := files[len(slow):]
	if !slices.IsSorted(rest) || len(files) != 36 {
		t.Errorf("Files(wal) = %q, want 36 files, the others in name order", files)
	}
	quick, err := sqltests.Files(sqltests.Quick, tree)
	if err != nil {
		t.Fatal(err)
	}
	if quick[0] != "walrestart.test" {
		t.Errorf("Files(quick) = %q, want the level's own order (no file of it is tagged slow)", quick)
	}
}
