package check

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Where every sandbox puts the check's pieces inside the image.
const (
	mountDir = "/run/sqlite-graft"
	// ProbePath is the probe inside the image, read-only.
	ProbePath = mountDir + "/probe"
	// ScratchDir is a directory inside the image that every user may write,
	// private to one run: the stress test's database lives there.
	ScratchDir = mountDir + "/work"
)

// ProbeSource is probe.c, the client every check runs: a sandbox compiles
// it for the image (ProbeBuild says how).
func ProbeSource() []byte { return slices.Clone(probeSource) }

// ProbeBuild says how a sandbox builds the probe for one image: probe.c
// (ProbeSource) compiled with -O2 -pthread (and -ldl on glibc) for Libc,
// linked against the host file Link, which is named libsqlite3.so.0, so the
// probe's DT_NEEDED names the soname and the image's loader decides which
// file it gets.
type ProbeBuild struct {
	Libc string
	Link string
}

// ProbeArgs are the compiler arguments after the compiler, with the probe's
// source and output named src and out: the same on every sandbox.
func (b ProbeBuild) ProbeArgs(src, out, link string) []string {
	args := []string{"-O2", "-pthread", "-o", out, src, link}
	if b.Libc == Glibc {
		args = append(args, "-ldl") // dlsym lives in libdl before glibc 2.34
	}
	return args
}

// Sandbox is where an image check runs the image's processes: locally
// under runc (Runc), or in a Dagger engine (internal/daggerexec). Every
// check, verdict and report is the same on each: a sandbox only starts
// processes.
type Sandbox interface {
	// Open makes img runnable, with the probe built for it at ProbePath.
	Open(ctx context.Context, img v1.Image, probe ProbeBuild) (Session, error)
}

// Session runs processes in one opened image.
type Session interface {
	// Run runs argv inside the image as the image config's user, in its
	// working directory, with exactly env as its environment, the probe at
	// ProbePath, ScratchDir private and writable, and returns its standard
	// output. A non-zero exit is an error carrying the exit status and
	// standard error. ctx bounds the run: when it ends the process is
	// killed.
	Run(ctx context.Context, env []string, argv []string) ([]byte, error)
	// Close releases the session (containers, temporary files).
	Close() error
}

// imageRunner runs the probe in a Session: through the wrapper, when the
// image is built with preload: wrapper, else directly.
type imageRunner struct {
	s          Session
	wrap       []string
	runTimeout time.Duration // of one run; 0: DefaultRunTimeout
}

func (c imageRunner) probe(ctx context.Context, env []string, args ...string) ([]byte, error) {
	return c.s.Run(ctx, env, append(append(slices.Clone(c.wrap), ProbePath), args...))
}

func (c imageRunner) scratch() (string, error) { return ScratchDir, nil }

func (c imageRunner) timeout() time.Duration { return c.runTimeout }

// unwrapped runs the probe without the image's wrapper.
func (c imageRunner) unwrapped() imageRunner { c.wrap = nil; return c }

// run runs argv (not the probe) within the run timeout.
func (c imageRunner) run(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	label := strings.Join(argv, " ") + " in the image"
	return bounded(ctx, c.runTimeout, label, func(ctx context.Context) ([]byte, error) {
		out, err := c.s.Run(ctx, env, argv)
		if err != nil {
			err = fmt.Errorf("%s: %w", label, err)
		}
		return out, err
	})
}
