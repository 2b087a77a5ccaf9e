package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	Seconds         float64        `json:"seconds"`   // wall time, first process started to verified
	Errors          []string       `json:"errors,omitempty"`
}

// checkpointMaxSeconds bounds a checkpointer that is never told to stop.
const checkpointMaxSeconds = 600

type writerOutput struct {
	Writer  int `json:"writer"`
	Threads []struct {
		Thread    int    `json:"thread"`
		Committed int    `json:"committed"`
		Busy      int    `json:"busy"`
		Error     string `json:"error"`
	} `json:"threads"`
}

type checkpointOutput struct {
	Completed  map[string]int `json:"completed"`
	Incomplete map[string]int `json:"incomplete"`
	Errors     int            `json:"errors"`
	LastError  string         `json:"last_error"`
}

type verifyOutput struct {
	Integrity []string `json:"integrity"`
	Rows      []struct {
		Writer, Thread, Count, Min, Max int
	} `json:"rows"`
	Error string `json:"error"`
}

// stress runs the test with every process under env, the loader setup of
// the library under test, started by p (on the host or in an image). An
// error means the test could not run to the end.
func stress(ctx context.Context, p runner, env []string, o StressOptions, log logrus.FieldLogger) (*StressReport, error) {
	if o.Processes < 1 || o.Threads < 1 || o.Threads > 256 || o.RowsPerThread < 1 || o.Checkpointers < 0 {
		return nil, fmt.Errorf("stress options %+v: want >= 1 process, 1..256 threads, >= 1 row, >= 0 checkpointers", o)
	}
	dir, inside, err := p.workDir("stress-")
	if err != nil {
		return nil, err
	}
	// The probes see the directory as inside; the stop file is written here.
	db, stop := filepath.Join(inside, "stress.db"), filepath.Join(inside, "stop")
	sr := &StressReport{StressOptions: o, Checkpoints: map[string]int{}, CheckpointsBusy: map[string]int{}}
	start := time.Now()
	if _, err := runProbe(ctx, p, env, "init", db); err != nil {
		return sr, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type proc struct {
		name   string
		cmd    *exec.Cmd
		stdout bytes.Buffer
		stderr bytes.Buffer
	}
	startProc := func(name string, args ...string) (*proc, error) {
		pr := &proc{name: name, cmd: p.command(ctx, env, args...)}
		pr.cmd.Stdout, pr.cmd.Stderr = &pr.stdout, &pr.stderr
		return pr, pr.cmd.Start()
	}
	wait := func(pr *proc, v any) error {
		if err := pr.cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %v: %s", pr.name, err, strings.TrimSpace(pr.stderr.String()))
		}
		if err := json.Unmarshal(pr.stdout.Bytes(), v); err != nil {
			return fmt.Errorf("%s: output is not the expected JSON: %v\n%s", pr.name, err, pr.stdout.String())
		}
		return nil
	}

	var ckpts, writers []*proc
	// abort ends and reaps whatever was started when the test cannot go on.
	abort := func(err error) (*StressReport, error) {
		cancel()
		for _, pr := range append(ckpts, writers...) {
			pr.cmd.Wait()
		}
		return sr, err
	}
	for i := range o.Checkpointers {
		pr, err := startProc(fmt.Sprintf("checkpointer %d", i), "checkpoint", db, stop, strconv.Itoa(checkpointMaxSeconds))
		if err != nil {
			return abort(err)
		}
		ckpts = append(ckpts, pr)
	}
	for i := range o.Processes {
		pr, err := startProc(fmt.Sprintf("writer %d", i), "write", db, strconv.Itoa(i), strconv.Itoa(o.Threads), strconv.Itoa(o.RowsPerThread))
		if err != nil {
			return abort(err)
		}
		writers = append(writers, pr)
	}

	committed := map[rowKey]int{}
	for _, pr := range writers {
		var out writerOutput
		if err := wait(pr, &out); err != nil {
			sr.Errors = append(sr.Errors, err.Error())
			continue
		}
		for _, t := range out.Threads {
			committed[rowKey{out.Writer, t.Thread}] = t.Committed
			sr.Committed += t.Committed
			sr.BusyRetries += t.Busy
			if t.Error != "" {
				sr.Errors = append(sr.Errors, fmt.Sprintf("%s thread %d: %s", pr.name, t.Thread, t.Error))
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644); err != nil {
		writers = nil // already reaped
		return abort(err)
	}
	for _, pr := range ckpts {
		var out checkpointOutput
		if err := wait(pr, &out); err != nil {
			sr.Errors = append(sr.Errors, err.Error())
			continue
		}
		for m, n := range out.Completed {
			sr.Checkpoints[m] += n
		}
		for m, n := range out.Incomplete {
			sr.CheckpointsBusy[m] += n
		}
		if out.Errors > 0 {
			sr.Errors = append(sr.Errors, fmt.Sprintf("%s: %d checkpoints failed, the last: %s", pr.name, out.Errors, out.LastError))
		}
	}

	var v verifyOutput
	if err := runProbeJSON(ctx, p, env, &v, "verify", db); err != nil {
		return sr, err
	}
	sr.Seconds = time.Since(start).Seconds()
	sr.tally(committed, v)
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
