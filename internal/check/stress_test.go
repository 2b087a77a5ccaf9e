package check

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The stress accounting catches a committed row that is gone and a row no
// writer reported: real writes through the probe, then a real delete and
// insert behind its back with the sqlite3 shell.
func TestStressTally(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := buildProbe(ctx, t.TempDir(), Glibc, SystemLibrary)
	if err != nil {
		t.Fatal(err)
	}
	env := cleanEnv()
	db := filepath.Join(t.TempDir(), "t.db")
	if _, err := p.run(ctx, env, "init", db); err != nil {
		t.Fatal(err)
	}
	var w writerOutput
	if err := p.runJSON(ctx, env, &w, "write", db, "3", "2", "50"); err != nil {
		t.Fatal(err)
	}
	committed := map[rowKey]int{}
	for _, th := range w.Threads {
		committed[rowKey{w.Writer, th.Thread}] = th.Committed
	}
	if want := (map[rowKey]int{{3, 0}: 50, {3, 1}: 50}); len(committed) != 2 || committed[rowKey{3, 0}] != 50 || committed[rowKey{3, 1}] != 50 {
		t.Fatalf("probe write = %v, want %v", committed, want)
	}
	sql := "DELETE FROM t WHERE writer=3 AND thread=1 AND seq=7; INSERT INTO t(writer, thread, seq) VALUES(9, 0, 0);"
	if out, err := exec.Command("sqlite3", db, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v: %s", sql, err, out)
	}
	var v verifyOutput
	if err := p.runJSON(ctx, env, &v, "verify", db); err != nil {
		t.Fatal(err)
	}
	sr := &StressReport{}
	sr.tally(committed, v)
	if sr.Found != 100 || sr.Lost != 1 || sr.Integrity != "ok" {
		t.Errorf("tally = found %d, lost %d, integrity %q; want 100, 1, ok", sr.Found, sr.Lost, sr.Integrity)
	}
	for _, want := range []string{
		"writer 3 thread 1: seq 0..49 in 49 rows, want 0..48",
		"writer 3 thread 1: 50 rows committed, 49 found",
		"writer 9 thread 0: 1 rows found, only 0 reported committed",
	} {
		if !slices.ContainsFunc(sr.Errors, func(e string) bool { return strings.Contains(e, want) }) {
			t.Errorf("tally errors = %q, want one containing %q", sr.Errors, want)
		}
	}
}
