package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// runner starts probe processes: on the host (*probe), or inside an image
// under an OCI runtime (*container). All a check needs of it is "run argv
// with env, return stdout": the stress test is one probe process too, so no
// file passes between the probe and this process.
type runner interface {
	// command prepares `probe ARGS...` with the given environment.
	command(ctx context.Context, env []string, args ...string) *exec.Cmd
	// scratch is a directory, as the probe sees it, that the probe may
	// write and this process never touches (the stress test's database).
	scratch() (string, error)
	// timeout bounds one probe run (the stress test gets more, see
	// stressTimeout).
	timeout() time.Duration
}

// Default deadlines of the processes a check starts. A base image's code
// runs in every probe (its preloads, its loader): one that never returns
// must not hang the build.
const (
	DefaultRunTimeout = 2 * time.Minute  // one probe or client run
	compileTimeout    = 5 * time.Minute  // cc of the probe
	unpackTimeout     = 15 * time.Minute // umoci unpack of the image
)

func (p *probe) scratch() (string, error) { return os.MkdirTemp(p.dir, "scratch-") }

func (p *probe) timeout() time.Duration { return p.runTimeout }

// TimeoutError says which process of a check did not finish in time.
type TimeoutError struct {
	What  string // e.g. "probe whoami in the image"
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: no result within %s (timed out; killed)", e.What, e.After)
}

// runBounded runs the command mk makes for a context that ends after d (or
// with ctx) and returns its standard output; a failure names what ran
// (label) and carries its standard error; a run that outlived d is a
// *TimeoutError.
func runBounded(ctx context.Context, d time.Duration, label string, mk func(context.Context) *exec.Cmd) ([]byte, error) {
	if d <= 0 {
		d = DefaultRunTimeout
	}
	te := &TimeoutError{What: label, After: d}
	ctx, cancel := context.WithTimeoutCause(ctx, d, te)
	defer cancel()
	out, err := output(mk(ctx), label)
	switch {
	case err == nil:
	case errors.Is(context.Cause(ctx), te):
		return out, te
	case ctx.Err() != nil: // the caller's context ended (a signal): say so, not "killed"
		return out, fmt.Errorf("%s: %w", label, context.Cause(ctx))
	}
	return out, err
}

// output runs cmd to completion and returns its standard output; a failure
// names what ran (label) and carries its standard error.
func output(cmd *exec.Cmd, label string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %v: %s", label, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// runProbe runs the probe to completion within the runner's timeout and
// returns its standard output.
func runProbe(ctx context.Context, r runner, env []string, args ...string) ([]byte, error) {
	return runProbeWithin(ctx, r, r.timeout(), env, args...)
}

func runProbeWithin(ctx context.Context, r runner, d time.Duration, env []string, args ...string) ([]byte, error) {
	return runBounded(ctx, d, "probe "+strings.Join(args, " "), func(ctx context.Context) *exec.Cmd {
		return r.command(ctx, env, args...)
	})
}

// runProbeJSON runs the probe and decodes its output into v.
func runProbeJSON(ctx context.Context, r runner, env []string, v any, args ...string) error {
	return runProbeJSONWithin(ctx, r, r.timeout(), env, v, args...)
}

func runProbeJSONWithin(ctx context.Context, r runner, d time.Duration, env []string, v any, args ...string) error {
	out, err := runProbeWithin(ctx, r, d, env, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("probe %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
