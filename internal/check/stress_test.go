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
// writer reported: a real (small) stress run through the probe, then a real
// delete and insert behind its back with the sqlite3 shell, then verify.
func TestStressTally(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := buildProbe(ctx, t.TempDir(), Glibc, SystemLibrary)
	if err != nil {
		t.Fatal(err)
	}
	env := cleanEnv()
	dir, err := p.scratch()
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "stress.db")
	var out stressOutput
	if err := runProbeJSON(ctx, p, env, &out, "stress", db, "1", "2", "50", "1"); err != nil {
		t.Fatal(err)
	}
	committed := map[rowKey]int{}
	for _, w := range out.Writers {
		for _, th := range w.Threads {
			committed[rowKey{w.Writer, th.Thread}] = th.Committed
		}
	}
	if want := (map[rowKey]int{{0, 0}: 50, {0, 1}: 50}); len(committed) != 2 || committed[rowKey{0, 0}] != 50 || committed[rowKey{0, 1}] != 50 {
		t.Fatalf("probe stress committed %v, want %v", committed, want)
	}
	if len(out.Checkpointers) != 1 || out.Checkpointers[0].Status != "" {
		t.Errorf("probe stress checkpointers = %+v, want one that exited 0", out.Checkpointers)
	}
	sql := "DELETE FROM t WHERE writer=0 AND thread=1 AND seq=7; INSERT INTO t(writer, thread, seq) VALUES(9, 0, 0);"
	if out, err := exec.Command("sqlite3", db, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v: %s", sql, err, out)
	}
	var v verifyOutput
	if err := runProbeJSON(ctx, p, env, &v, "verify", db); err != nil {
		t.Fatal(err)
	}
	sr := &StressReport{}
	sr.tally(committed, v)
	if sr.Found != 100 || sr.Lost != 1 || sr.Integrity != "ok" {
		t.Errorf("tally = found %d, lost %d, integrity %q; want 100, 1, ok", sr.Found, sr.Lost, sr.Integrity)
	}
	for _, want := range []string{
		"writer 0 thread 1: seq 0..49 in 49 rows, want 0..48",
		"writer 0 thread 1: 50 rows committed, 49 found",
		"writer 9 thread 0: 1 rows found, only 0 reported committed",
	} {
		if !slices.ContainsFunc(sr.Errors, func(e string) bool { return strings.Contains(e, want) }) {
			t.Errorf("tally errors = %q, want one containing %q", sr.Errors, want)
		}
	}
}
