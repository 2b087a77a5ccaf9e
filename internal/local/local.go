// Package local runs the compile recipe with the host's C toolchain: cc for
// glibc targets, musl-gcc for musl (Alpine) targets. Steps whose inputs are
// ready run in parallel, so the library and the shell compile side by side.
package local

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/childenv"
	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// Libc names the C library a build targets.
type Libc string

const (
	Glibc Libc = "glibc"
	Musl  Libc = "musl"
)

// ParseLibc accepts "glibc" or "musl".
func ParseLibc(s string) (Libc, error) {
	switch Libc(s) {
	case Glibc, Musl:
		return Libc(s), nil
	}
	return "", fmt.Errorf("libc %q: want musl or glibc", s)
}

// Executor is the local recipe.Executor.
type Executor struct {
	libc        Libc
	cc          string
	log         logrus.FieldLogger
	stepTimeout time.Duration
}

type Option func(*Executor)

// WithCC overrides the compiler command.
func WithCC(cc string) Option { return func(e *Executor) { e.cc = cc } }

// DefaultStepTimeout bounds one compile step (sqlite3.c takes about 35s on
// a 2-core machine).
const DefaultStepTimeout = 30 * time.Minute

// queryTimeout bounds asking the toolchain who it is.
const queryTimeout = time.Minute

// WithStepTimeout bounds each compile step; d <= 0 means DefaultStepTimeout.
func WithStepTimeout(d time.Duration) Option {
	return func(e *Executor) {
		if d > 0 {
			e.stepTimeout = d
		}
	}
}

func WithLogger(l logrus.FieldLogger) Option { return func(e *Executor) { e.log = l } }

// New returns an executor for libc.
func New(libc Libc, opts ...Option) *Executor {
	e := &Executor{libc: libc, cc: "cc", log: logrus.StandardLogger(), stepTimeout: DefaultStepTimeout}
	if libc == Musl {
		e.cc = "musl-gcc"
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// CC is the compiler the plan must name.
func (e *Executor) CC() string { return e.cc }

// Toolchain identifies compiler, target and libc.
func (e *Executor) Toolchain(ctx context.Context) (string, error) {
	path, err := exec.LookPath(e.cc)
	if err != nil {
		hint := ""
		if e.libc == Musl {
			hint = " (install musl-tools)"
		}
		return "", fmt.Errorf("C compiler %s not found%s: %w", e.cc, hint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	ver, err := childenv.Command(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", e.cc, err)
	}
	machine, err := childenv.Command(ctx, path, "-dumpmachine").Output()
	if err != nil {
		return "", fmt.Errorf("%s -dumpmachine: %w", e.cc, err)
	}
	id := fmt.Sprintf("%s: %s; target %s; libc %s", e.cc, firstLine(ver), strings.TrimSpace(string(machine)), e.libc)
	if e.libc == Musl {
		id += " " + muslVersion(ctx)
	}
	return id, nil
}

// muslVersion asks the musl loader, which prints its version when run bare.
func muslVersion(ctx context.Context) string {
	matches, _ := filepath.Glob("/lib/ld-musl-*.so.1")
	if len(matches) == 0 {
		return "(loader not found)"
	}
	out, _ := childenv.Command(ctx, matches[0]).CombinedOutput() // exits 1 by design
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Version ") {
			return strings.TrimPrefix(l, "Version ")
		}
	}
	return "(unknown version)"
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// Build runs plan in a scratch directory and moves the products into out only
// when every step succeeded.
func (e *Executor) Build(ctx context.Context, plan recipe.Plan, src, out string) error {
	work, err := os.MkdirTemp("", "sqlite-graft-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if ent.Type().IsRegular() {
			abs, err := filepath.Abs(filepath.Join(src, ent.Name()))
			if err != nil {
				return err
			}
			if err := os.Symlink(abs, filepath.Join(work, ent.Name())); err != nil {
				return err
			}
		}
	}
	// The compiler's temporary files go into the work directory, which is
	// removed whatever happens.
	tmp := filepath.Join(work, ".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := e.run(ctx, plan, work, tmp); err != nil {
		return err
	}
	return fsutil.Install(work, out, plan.Products)
}

// run executes the steps as a DAG: each starts when the steps it comes after
// are done; the first failure cancels the rest.
func (e *Executor) run(ctx context.Context, plan recipe.Plan, dir, tmp string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := map[string]chan struct{}{}
	for _, s := range plan.Steps {
		done[s.Name] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, s := range plan.Steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[s.Name])
			for _, a := range s.After {
				select {
				case <-done[a]:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			if err := e.step(ctx, s, dir, tmp); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return ctx.Err()
}

func (e *Executor) step(ctx context.Context, s recipe.Step, dir, tmp string) error {
	start := time.Now()
	log := e.log.WithField("step", s.Name)
	log.Infof("compiling: %s", strings.Join(s.Argv, " "))
	stepCtx, cancel := context.WithTimeout(ctx, e.stepTimeout)
	defer cancel()
	cmd := childenv.Command(stepCtx, s.Argv[0], s.Argv[1:]...)
	cmd.Dir, cmd.Env = dir, childenv.Env("TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if stepCtx.Err() != nil {
			return fmt.Errorf("compile step %s: no result within %s (timed out; killed): %s", s.Name, e.stepTimeout, strings.Join(s.Argv, " "))
		}
		return fmt.Errorf("compile step %s failed (%v): %s\n%s", s.Name, err, strings.Join(s.Argv, " "), tail(stderr.String(), 2000))
	}
	for _, o := range s.Outputs {
		if _, err := os.Stat(filepath.Join(dir, o)); err != nil {
			return fmt.Errorf("compile step %s: output %s missing after success", s.Name, o)
		}
	}
	log.WithField("seconds", time.Since(start).Round(10*time.Millisecond).Seconds()).Info("done")
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
