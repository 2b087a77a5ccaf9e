package check

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// StressOptions size the WAL stress test: Processes writer processes with
// Threads threads each (one connection per thread) insert RowsPerThread rows
// one transaction at a time, while Checkpointers processes run
// wal_checkpoint in a loop cycling PASSIVE, FULL, RESTART and TRUNCATE — the
// pattern that triggers the WAL-reset bug.
type StressOptions struct {
	Processes     int `json:"processes"`
	Threads       int `json:"threads"`
	RowsPerThread int `json:"rows_per_thread"`
	Checkpointers int `json:"checkpointers"`
}

// DefaultStress writes 8000 rows from 16 connections in 4 processes: about
// a second on a 2-core machine.
func DefaultStress() StressOptions {
	return StressOptions{Processes: 4, Threads: 4, RowsPerThread: 500, Checkpointers: 2}
}

// StressReport is what the stress test measured.
type StressReport struct {
	StressOptions
	Committed   int `json:"committed"`    // rows the writers saw committed
	Found       int `json:"found"`        // rows in the database afterwards
	Lost        int `json:"lost"`         // committed rows that are missing
	BusyRetries int `json:"busy_retries"` // inserts retried after SQLITE_BUSY
	// Checkpoints counts completed checkpoints by mode; CheckpointsBusy those
	// that could not finish (another checkpointer, reader or writer in the way).
	Checkpoints     map[string]int `json:"checkpoints"`
	CheckpointsBusy map[string]int `json:"checkpoints_busy"`
	Integrity       string         `json:"integrity"` // PRAGMA integrity_check
	Seconds         float64        `json:"seconds"`   // wall time in the probe, database created to verified
	Errors          []string       `json:"errors,omitempty"`
}

// stressOutput is what `probe stress` prints: what each process counted,
// how it ended, and what verify found afterwards.
type stressOutput struct {
	Writers []struct {
		Writer  int    `json:"writer"`
		Status  string `json:"status"` // "" : exited 0
		Threads []struct {
			Thread    int    `json:"thread"`
			Committed int    `json:"committed"`
			Busy      int    `json:"busy"`
			Error     string `json:"error"`
		} `json:"threads"`
	} `json:"writers"`
	Checkpointers []struct {
		Checkpointer int            `json:"checkpointer"`
		Status       string         `json:"status"`
		Completed    map[string]int `json:"completed"`
		Incomplete   map[string]int `json:"incomplete"`
		Errors       int            `json:"errors"`
		LastError    string         `json:"last_error"`
	} `json:"checkpointers"`
	Verify  verifyOutput `json:"verify"`
	Seconds float64      `json:"seconds"`
}

type verifyOutput struct {
	Integrity []string `json:"integrity"`
	Rows      []struct {
		Writer, Thread, Count, Min, Max int
	} `json:"rows"`
	Error string `json:"error"`
}

// stressTimeout bounds one stress run: the per-process timeout plus 5ms a
// row (the default 8000 rows take about a second on a 2-core machine).
func stressTimeout(o StressOptions, perRun time.Duration) time.Duration {
	if perRun <= 0 {
		perRun = DefaultRunTimeout
	}
	return perRun + time.Duration(o.Processes*o.Threads*o.RowsPerThread)*5*time.Millisecond
}

// stress runs the test as one probe process (`probe stress`), which forks
// the writers and checkpointers itself, under env, the loader setup of the
// library under test, started by r (on the host or in an image). The caller
// only reads what the probe prints: nothing is written to, or read from, a
// directory the probe can write. An error means the test could not run to
// the end.
func stress(ctx context.Context, r runner, env []string, o StressOptions, log logrus.FieldLogger) (*StressReport, error) {
	if o.Processes < 1 || o.Processes > 256 || o.Threads < 1 || o.Threads > 256 || o.RowsPerThread < 1 || o.Checkpointers < 0 || o.Checkpointers > 64 {
		return nil, fmt.Errorf("stress options %+v: want 1..256 processes, 1..256 threads, >= 1 row, 0..64 checkpointers", o)
	}
	dir, err := r.scratch()
	if err != nil {
		return nil, err
	}
	sr := &StressReport{StressOptions: o, Checkpoints: map[string]int{}, CheckpointsBusy: map[string]int{}}
	var out stressOutput
	args := []string{"stress", path.Join(dir, "stress.db"),
		strconv.Itoa(o.Processes), strconv.Itoa(o.Threads), strconv.Itoa(o.RowsPerThread), strconv.Itoa(o.Checkpointers)}
	if err := runProbeJSONWithin(ctx, r, stressTimeout(o, r.timeout()), env, &out, args...); err != nil {
		return sr, err
	}
	committed := map[rowKey]int{}
	for _, w := range out.Writers {
		if w.Status != "" {
			sr.Errors = append(sr.Errors, fmt.Sprintf("writer %d: %s", w.Writer, w.Status))
		}
		for _, t := range w.Threads {
			committed[rowKey{w.Writer, t.Thread}] = t.Committed
			sr.Committed += t.Committed
			sr.BusyRetries += t.Busy
			if t.Error != "" {
				sr.Errors = append(sr.Errors, fmt.Sprintf("writer %d thread %d: %s", w.Writer, t.Thread, t.Error))
			}
		}
	}
	for _, c := range out.Checkpointers {
		if c.Status != "" {
			sr.Errors = append(sr.Errors, fmt.Sprintf("checkpointer %d: %s", c.Checkpointer, c.Status))
		}
		for m, n := range c.Completed {
			sr.Checkpoints[m] += n
		}
		for m, n := range c.Incomplete {
			sr.CheckpointsBusy[m] += n
		}
		if c.Errors > 0 {
			sr.Errors = append(sr.Errors, fmt.Sprintf("checkpointer %d: %d checkpoints failed, the last: %s", c.Checkpointer, c.Errors, c.LastError))
		}
	}
	sr.Seconds = out.Seconds
	sr.tally(committed, out.Verify)
	log.WithFields(logrus.Fields{
		"committed": sr.Committed, "lost": sr.Lost, "integrity": sr.Integrity,
		"checkpoints": sr.Checkpoints, "seconds": fmt.Sprintf("%.2f", sr.Seconds),
	}).Info("stress test done")
	return sr, nil
}

// rowKey names the rows of one writer thread.
type rowKey struct{ writer, thread int }

// tally compares the rows each writer thread saw committed with what verify
// found in the database.
func (sr *StressReport) tally(committed map[rowKey]int, v verifyOutput) {
	sr.Integrity = strings.Join(v.Integrity, "; ")
	if v.Error != "" {
		sr.Errors = append(sr.Errors, "reading the rows back: "+v.Error)
	}
	found := map[rowKey]int{}
	for _, row := range v.Rows {
		k := rowKey{row.Writer, row.Thread}
		found[k] = row.Count
		sr.Found += row.Count
		// Each thread commits seq 0, 1, 2, ... in order: a gap is a lost row
		// even where a duplicate count would hide it.
		if row.Min != 0 || row.Max != row.Count-1 {
			sr.Errors = append(sr.Errors, fmt.Sprintf("writer %d thread %d: seq %d..%d in %d rows, want 0..%d", row.Writer, row.Thread, row.Min, row.Max, row.Count, row.Count-1))
		}
	}
	var keys []rowKey
	for k := range committed {
		keys = append(keys, k)
	}
	for k := range found {
		if _, ok := committed[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].writer < keys[j].writer || keys[i].writer == keys[j].writer && keys[i].thread < keys[j].thread
	})
	for _, k := range keys {
		c, f := committed[k], found[k]
		switch {
		case f < c:
			sr.Lost += c - f
			sr.Errors = append(sr.Errors, fmt.Sprintf("writer %d thread %d: %d rows committed, %d found", k.writer, k.thread, c, f))
		case f > c:
			sr.Errors = append(sr.Errors, fmt.Sprintf("writer %d thread %d: %d rows found, only %d reported committed", k.writer, k.thread, f, c))
		}
	}
}

// checkStress turns what the stress test found into problems.
func (r *Report) checkStress() {
	s := r.Stress
	want := s.Processes * s.Threads * s.RowsPerThread
	if s.Committed != want {
		r.problem("stress: the writers committed %d rows, want %d", s.Committed, want)
	}
	if s.Lost > 0 {
		r.problem("stress: %d of %d committed rows lost", s.Lost, s.Committed)
	}
	if s.Integrity != "ok" {
		r.problem("stress: PRAGMA integrity_check = %q, want \"ok\"", s.Integrity)
	}
	for _, e := range s.Errors {
		r.problem("stress: %s", e)
	}
}

// String is the one-line summary printed by the CLI.
func (s *StressReport) String() string {
	total := 0
	for _, n := range s.Checkpoints {
		total += n
	}
	return fmt.Sprintf("%d processes x %d threads x %d rows (+%d checkpointers, %d checkpoints): committed %d, found %d, lost %d, integrity %s, %.2fs",
		s.Processes, s.Threads, s.RowsPerThread, s.Checkpointers, total, s.Committed, s.Found, s.Lost, s.Integrity, s.Seconds)
}
