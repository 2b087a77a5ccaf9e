package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/cli"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
)

// No canonical tree is pinned for 3.51.3: the gate says "not run", never a
// silent pass, and --require-sqlite-tests makes that an error.
func TestSQLiteTestsNotRun(t *testing.T) {
	args := append(cacheArgs(t), "check", "--sqlite-tests", "wal", "--sqlite", "3.51.3")
	r := sqliteGraft(t, args...)
	want := "SQLite's tests: not run (no verified source tree for 3.51.3)"
	if r.code != cli.ExitOK || strings.TrimSpace(r.stdout) != want {
		t.Errorf("check --sqlite-tests wal --sqlite 3.51.3 = %d %q %q; want exit 0 and %q", r.code, r.stdout, r.stderr, want)
	}
	r = sqliteGraft(t, append(args, "--require-sqlite-tests", "--json")...)
	var out struct {
		SQLiteTests struct{ Status, Reason string } `json:"sqlite_tests"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--json output %q: %v", r.stdout, err)
	}
	if r.code != cli.ExitFailed || out.SQLiteTests.Status != "not run" || !strings.Contains(r.stderr, "--require-sqlite-tests") {
		t.Errorf("with --require-sqlite-tests = %d %+v %q; want exit 1, status not run", r.code, out, r.stderr)
	}
}

// The gate from the command line, on the pinned tree given as a file: the
// quick level passes on 3.53.4 (the testfixture build is shared with
// internal/sqltests through the cache).
func TestSQLiteTestsQuick(t *testing.T) {
	archive := fixtures.CanonicalTreeArchive(t, "3.53.4")
	r := sqliteGraft(t, append(cacheArgs(t), "check", "--sqlite-tests", "quick", "--sqlite", "3.53.4",
		"--sqlite-tree", archive, "--sqlite-tests-logs", t.TempDir())...)
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, "SQLite's tests (quick, 3.53.4 glibc): passed, 0 errors out of ") {
		t.Fatalf("check --sqlite-tests quick = %d %q %q; want passed", r.code, r.stdout, r.stderr)
	}
}

func TestSQLiteTestsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--sqlite-tests", "full"},
		{"check", "--sqlite-tests", "quick", "--libc", "bionic"},
		{"check"},
	} {
		if r := sqliteGraft(t, args...); r.code != cli.ExitUsage {
			t.Errorf("%q = %d %q, want exit 2", args, r.code, r.stderr)
		}
	}
}
