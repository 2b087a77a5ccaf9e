package sqltests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Status is the outcome of the gate.
type Status string

const (
	Passed Status = "passed"
	Failed Status = "failed"
	NotRun Status = "not run"
)

// FileResult is one test file's summary.
type FileResult struct {
	File    string   `json:"file"`
	Errors  int      `json:"errors"`
	Tests   int      `json:"tests"`
	Failed  []string `json:"failed,omitempty"`
	Seconds float64  `json:"seconds"`
	Problem string   `json:"problem,omitempty"` // no summary line: crashed or killed
}

// Result is what the gate found; with Status NotRun only Level, Version and
// Reason are set. It is meant for logs, build.json and provenance as is.
type Result struct {
	Status       Status       `json:"status"`
	Reason       string       `json:"reason,omitempty"`
	Level        Level        `json:"level"`
	Version      pins.Version `json:"version"`
	Libc         local.Libc   `json:"libc,omitempty"`
	CheckIn      string       `json:"check_in,omitempty"`
	Patches      []string     `json:"patches,omitempty"` // test-only changes: such a result is not about a shipped build
	FilesRun     int          `json:"files_run"`
	Errors       int          `json:"errors"`
	Tests        int          `json:"tests"`
	Failed       []string     `json:"failed,omitempty"` // "file: test-name"
	Files        []FileResult `json:"files,omitempty"`
	Log          string       `json:"log,omitempty"`
	Seconds      float64      `json:"seconds"`       // running the tests
	BuildSeconds float64      `json:"build_seconds"` // building testfixture; 0 when it came from the cache
	Testfixture  *Testfixture `json:"testfixture,omitempty"`
}

// NotRunResult is the result where no verified tree of v can be had: never
// a silent pass.
func NotRunResult(v pins.Version, level Level, reason string) *Result {
	return &Result{Status: NotRun, Level: level, Version: v, Reason: reason}
}

// Summary is the one line for logs and reports.
func (r *Result) Summary() string {
	if r.Status == NotRun {
		return fmt.Sprintf("SQLite's tests: not run (%s)", r.Reason)
	}
	what := fmt.Sprintf("SQLite's tests (%s, %s %s", r.Level, r.Version, r.Libc)
	if len(r.Patches) > 0 {
		what += ", test-only patches " + strings.Join(r.Patches, " ")
	}
	s := fmt.Sprintf("%s): %s, %d errors out of %d tests in %d files, %.0f s", what, r.Status, r.Errors, r.Tests, r.FilesRun, r.Seconds)
	if len(r.Failed) > 0 {
		s += "; failed: " + strings.Join(r.Failed, ", ")
	}
	if r.Log != "" {
		s += "; log " + r.Log
	}
	return s
}

// RunOptions say where logs go and how many test files run at once.
type RunOptions struct {
	LogDir string // the level's log is written here
	Jobs   int    // test files at once; 0 is DefaultJobs
	Log    logrus.FieldLogger
}

var (
	summaryRE  = regexp.MustCompile(`(?m)^(\d+) errors out of (\d+) tests`)
	failuresRE = regexp.MustCompile(`(?m)^!Failures on these tests: (.*)$`)
	failedRE   = regexp.MustCompile(`(?m)^! (\S+) `)
)

// DefaultJobs is how many test files run at once: twice the CPUs, because
// the WAL tests mostly wait (busy timeouts, sleeps between processes) —
// measured on 2 cores, the wal level's 36 files take 17 CPU-seconds in 85
// wall-seconds run one after the other.
func DefaultJobs() int { return 2 * runtime.NumCPU() }

// nobody runs the tests when the gate runs as root: SQLite's tests of
// read-only files (wal2.test 13.x, for example) fail for a user whom file
// permissions do not stop.
const nobody = 65534

// Run runs the test files of level with tf, each in a scratch directory of
// its own, and returns the result; the error is non-nil when the gate did not
// pass (a failed test, a crash, or no way to run).
func Run(ctx context.Context, tf *Testfixture, level Level, opts RunOptions) (*Result, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	if tf.tree == nil {
		return nil, errors.New("sqltests.Run: testfixture without its tree (use Builder.Testfixture)")
	}
	log := opts.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs()
	}
	files, err := s.treeFiles(level, tf.tree)
	if err != nil {
		return nil, err
	}
	r := &Result{Level: level, Version: tf.tree.Version, Libc: tf.Libc, CheckIn: tf.CheckIn, Patches: tf.Patches, Testfixture: tf}
	if tf.Cached {
		r.BuildSeconds = 0
	} else {
		r.BuildSeconds = tf.BuildSeconds
	}
	sandbox, err := newSandbox(tf)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sandbox.dir)

	log.WithFields(logrus.Fields{"tests_level": level, "files": len(files), "jobs": jobs}).Infof("SQLite's tests: running %s", About(level))
	start := time.Now()
	results := make([]FileResult, len(files))
	outputs := make([][]byte, len(files))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], outputs[i] = sandbox.run(ctx, f)
			log.WithFields(logrus.Fields{"errors": results[i].Errors, "tests": results[i].Tests, "seconds": int(results[i].Seconds)}).Infof("test/%s", f)
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return Finish(r, results, outputs, opts.LogDir)
}

// Finish sums the files' results into r (whose Level, Version, Libc and
// CheckIn the caller set), writes the level's log into logDir ("" : none)
// and sets the status. The error is non-nil unless every test passed.
func Finish(r *Result, results []FileResult, outputs [][]byte, logDir string) (*Result, error) {
	var logText bytes.Buffer
	for i, fr := range results {
		fmt.Fprintf(&logText, "==== test/%s: %d errors out of %d tests, %.1f s %s\n", fr.File, fr.Errors, fr.Tests, fr.Seconds, fr.Problem)
		if i < len(outputs) {
			logText.Write(outputs[i])
		}
		r.Errors += fr.Errors
		r.Tests += fr.Tests
		for _, n := range fr.Failed {
			r.Failed = append(r.Failed, fr.File+": "+n)
		}
	}
	r.Files, r.FilesRun = results, len(results)
	r.Status = Passed
	if r.Errors > 0 || len(results) == 0 {
		r.Status = Failed
	}
	if logDir != "" {
		name := fmt.Sprintf("sqlite-tests-%s-%s-%s-%s.log", r.Version, r.Libc, r.Level, time.Now().UTC().Format("20060102T150405"))
		r.Log = filepath.Join(logDir, name)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return nil, err
		}
		if err := fsutil.WriteFileAtomic(r.Log, logText.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	if r.Status != Passed {
		return r, errors.New(r.Summary())
	}
	return r, nil
}

// Gate builds the testfixture of req and runs level with it: the release
// gate in one call. A build failure is an error without a result.
func Gate(ctx context.Context, b *Builder, req BuildRequest, level Level, opts RunOptions) (*Result, error) {
	tf, err := b.Testfixture(ctx, req)
	if err != nil {
		return nil, err
	}
	return Run(ctx, tf, level, opts)
}

// sandbox is a scratch copy of what the tests read (the tree, testfixture,
// a built Tcl's library) that the user running them may write in.
type sandbox struct {
	dir, testfixture, tree string
	env                    []string
	cred                   *syscall.Credential
}

func newSandbox(tf *Testfixture) (*sandbox, error) {
	dir, err := os.MkdirTemp("", "sqlite-tests-")
	if err != nil {
		return nil, err
	}
	sb := &sandbox{dir: dir, testfixture: filepath.Join(dir, "testfixture"), tree: filepath.Join(dir, "tree")}
	fail := func(err error) (*sandbox, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.CopyFS(sb.tree, os.DirFS(tf.tree.Dir)); err != nil {
		return fail(err)
	}
	if err := fsutil.CopyFile(tf.Path, sb.testfixture); err != nil {
		return fail(err)
	}
	if tf.TclLibrary != "" {
		lib := filepath.Join(dir, "tcl8.6")
		if err := os.CopyFS(lib, os.DirFS(tf.TclLibrary)); err != nil {
			return fail(err)
		}
		sb.env = append(sb.env, "TCL_LIBRARY="+lib)
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		return fail(err)
	}
	if os.Geteuid() == 0 {
		sb.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			return fail(err)
		}
	}
	return sb, nil
}

// run runs one test file in a directory of its own.
func (sb *sandbox) run(ctx context.Context, file string) (FileResult, []byte) {
	fr := FileResult{File: file}
	work := filepath.Join(sb.dir, "work", strings.TrimSuffix(file, ".test"))
	if err := os.Mkdir(work, 0o755); err != nil {
		fr.Problem, fr.Errors = err.Error(), 1
		return fr, nil
	}
	if sb.cred != nil {
		os.Chown(work, int(sb.cred.Uid), int(sb.cred.Gid))
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, sb.testfixture, filepath.Join(sb.tree, "test", file))
	cmd.Dir, cmd.Stdout, cmd.Stderr = work, &out, &out
	cmd.Env = append(os.Environ(), sb.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: sb.cred, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	err := cmd.Run()
	return ReadOutput(file, out.Bytes(), err, time.Since(start).Seconds()), out.Bytes()
}

// ReadOutput reads one test file's summary from testfixture's output: the
// last "N errors out of M tests" line and the failed tests' names. No
// summary (a crash, a kill) counts as an error, and so does a failed exit
// (runErr) with no error counted.
func ReadOutput(file string, b []byte, runErr error, seconds float64) FileResult {
	fr := FileResult{File: file, Seconds: seconds}
	m := summaryRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		fr.Errors, fr.Failed = 1, []string{"(no summary)"}
		fr.Problem = fmt.Sprintf("no \"N errors out of M tests\" line (%v)", runErr)
		return fr
	}
	last := m[len(m)-1]
	fmt.Sscan(string(last[1]), &fr.Errors)
	fmt.Sscan(string(last[2]), &fr.Tests)
	if f := failuresRE.FindSubmatch(b); f != nil {
		fr.Failed = strings.Fields(string(f[1]))
	} else {
		seen := map[string]bool{}
		for _, f := range failedRE.FindAllSubmatch(b, -1) {
			if n := string(f[1]); !seen[n] {
				seen[n] = true
				fr.Failed = append(fr.Failed, n)
			}
		}
	}
	if runErr != nil && fr.Errors == 0 {
		fr.Errors, fr.Problem = 1, fmt.Sprintf("exit status: %v", runErr)
	}
	return fr
}
