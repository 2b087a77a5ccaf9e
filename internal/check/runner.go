package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// runner starts probe processes: on the host (*probe), or inside an image
// under an OCI runtime (*container). The stress test runs on either.
type runner interface {
	// command prepares `probe ARGS...` with the given environment.
	command(ctx context.Context, env []string, args ...string) *exec.Cmd
	// workDir makes a fresh directory the probe processes can write: host is
	// its path for this process, inside its path for the probe.
	workDir(prefix string) (host, inside string, err error)
}

func (p *probe) workDir(prefix string) (string, string, error) {
	d, err := os.MkdirTemp(p.dir, prefix)
	return d, d, err
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

// runProbe runs the probe to completion and returns its standard output.
func runProbe(ctx context.Context, r runner, env []string, args ...string) ([]byte, error) {
	return output(r.command(ctx, env, args...), "probe "+strings.Join(args, " "))
}

// runProbeJSON runs the probe and decodes its output into v.
func runProbeJSON(ctx context.Context, r runner, env []string, v any, args ...string) error {
	out, err := runProbe(ctx, r, env, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("probe %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
