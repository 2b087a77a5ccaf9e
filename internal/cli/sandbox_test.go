package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hostile-input tests run the real binary, built once per test run, in
// a sandbox: its own TMPDIR, HOME and working directory, an environment of
// exactly what the test gives it. After a run nothing may be left in any
// of the three: temporary directories removed, nothing written outside the
// output (given by flags, elsewhere) and the temporary directories.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary is the sqlite-graft program, built from this tree.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sqlite-graft-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sqlite-graft")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sqlite-graft/sqlite-graft/cmd/sqlite-graft").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type sandbox struct {
	root, tmp, home, cwd string
	env                  []string
}

// newSandbox makes the directories; env adds to PATH, HOME, TMPDIR, LANG.
func newSandbox(t *testing.T, env ...string) *sandbox {
	t.Helper()
	root := t.TempDir()
	s := &sandbox{root: root, tmp: filepath.Join(root, "tmp"), home: filepath.Join(root, "home"), cwd: filepath.Join(root, "cwd")}
	for _, d := range []string{s.tmp, s.home, s.cwd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "TMPDIR=" + s.tmp, "LANG=C.UTF-8"}, env...)
	return s
}

// command prepares the binary with args in the sandbox; stdout and stderr
// collect in the buffers.
func (s *sandbox) command(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir, cmd.Env = s.cwd, s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	return cmd, &stdout, &stderr
}

// run runs the binary to its end; a run that needs longer than limit is
// killed and fails the test: every hostile input must end the build.
func (s *sandbox) run(t *testing.T, limit time.Duration, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd, stdout, stderr := s.command(t, ctx, args...)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sqlite-graft %s still running after %s (killed):\n%s", strings.Join(args, " "), limit, stderr)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{code, stdout.String(), stderr.String()}
}

// leftNothing fails unless the sandbox's TMPDIR, HOME and working
// directory are empty, and no runc container of the run is left.
func (s *sandbox) leftNothing(t *testing.T) {
	t.Helper()
	for _, d := range []string{s.tmp, s.home, s.cwd} {
		var left []string
		filepath.WalkDir(d, func(p string, _ os.DirEntry, err error) error {
			if p != d {
				left = append(left, p)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("left behind in %s: %v", d, left)
		}
	}
	if ids := s.containers(t); len(ids) > 0 {
		t.Errorf("runc containers left behind: %v", ids)
	}
}

// containers lists the runc containers whose bundle is in the sandbox's
// TMPDIR (other tests' containers are not this run's).
func (s *sandbox) containers(t *testing.T) []string {
	t.Helper()
	// runc list fails when a container (another test's) goes away while it
	// reads the list: try again.
	var out []byte
	var err error
	for try := 0; try < 20; try++ {
		if out, err = exec.Command("runc", "list", "-f", "json").Output(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	var list []struct{ ID, Bundle string }
	if len(bytes.TrimSpace(out)) > 0 && string(bytes.TrimSpace(out)) != "null" {
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("runc list: %v\n%s", err, out)
		}
	}
	var ids []string
	for _, c := range list {
		if strings.HasPrefix(c.Bundle, s.tmp+string(filepath.Separator)) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}
