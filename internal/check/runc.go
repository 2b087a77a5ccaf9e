package check

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Where the image check mounts its pieces inside the container.
const (
	mountDir   = "/run/sqlite-graft"
	probeMount = mountDir + "/probe" // the probe, read-only
	workMount  = mountDir + "/work"  // a writable directory shared by every process of a check
)

// container runs commands inside one unpacked image with runc: each command
// is its own `runc run` of a bundle that shares the unpacked rootfs and the
// runtime config umoci generated from the image config (user, working
// directory, capabilities, namespaces), with the process arguments and
// environment replaced and two bind mounts added: the probe and a work
// directory. Processes of one check share the work directory on the host,
// so the stress test's writers and checkpointers, each a container of its
// own, open one database and its WAL index.
type container struct {
	runc   string
	spec   []byte // umoci's config.json
	rootfs string // absolute
	bundle string // the per-command bundles live here
	probe  string // host path of the probe binary
	work   string // host directory mounted at workMount
	wrap   []string
	prefix string // of container ids

	mu sync.Mutex
	n  int
}

func newContainer(runc string, bundle, probe, work string) (*container, error) {
	spec, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	c := &container{
		runc: runc, spec: spec, rootfs: filepath.Join(bundle, "rootfs"), bundle: filepath.Join(bundle, "runs"),
		probe: probe, work: work, prefix: "sqlite-graft-check-" + hex.EncodeToString(id[:]),
	}
	if err := os.Mkdir(c.bundle, 0o700); err != nil {
		return nil, err
	}
	// Any user the image runs as writes the work directory.
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(work, 0o1777); err != nil {
		return nil, err
	}
	return c, nil
}

// command prepares the probe with args, run through c.wrap when set.
func (c *container) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, c.wrap...), probeMount), args...)
	return c.exec(ctx, env, argv...)
}

// exec prepares argv inside the container with the given environment.
func (c *container) exec(ctx context.Context, env []string, argv ...string) *exec.Cmd {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	id := c.prefix + "-" + strconv.Itoa(n)

	bundle := filepath.Join(c.bundle, strconv.Itoa(n))
	cmd := exec.CommandContext(ctx, c.runc, "run", "--bundle", bundle, id)
	if err := c.writeBundle(bundle, env, argv); err != nil {
		cmd.Err = err
		return cmd
	}
	// The probe is PID 1 of its namespace and ignores the SIGTERM runc
	// would forward: end it with SIGKILL through runc, then runc exits.
	cmd.Cancel = func() error {
		_ = exec.Command(c.runc, "kill", id, "KILL").Run()
		return nil
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// workDir makes a directory under the shared work directory.
func (c *container) workDir(prefix string) (string, string, error) {
	d, err := os.MkdirTemp(c.work, prefix)
	if err != nil {
		return "", "", err
	}
	if err := os.Chmod(d, 0o777); err != nil {
		return "", "", err
	}
	return d, path.Join(workMount, filepath.Base(d)), nil
}

// writeBundle writes a bundle whose config.json is umoci's with argv, env,
// no terminal, the shared rootfs and the check's mounts.
func (c *container) writeBundle(dir string, env, argv []string) error {
	var spec map[string]any
	if err := json.Unmarshal(c.spec, &spec); err != nil {
		return fmt.Errorf("runtime config: %w", err)
	}
	process, ok := spec["process"].(map[string]any)
	if !ok {
		return fmt.Errorf("runtime config: no process")
	}
	root, ok := spec["root"].(map[string]any)
	if !ok {
		return fmt.Errorf("runtime config: no root")
	}
	mounts, _ := spec["mounts"].([]any)
	process["args"] = argv
	process["env"] = env
	process["terminal"] = false
	root["path"] = c.rootfs
	spec["mounts"] = append(mounts,
		map[string]any{"destination": probeMount, "type": "bind", "source": c.probe, "options": []string{"bind", "ro", "nosuid", "nodev"}},
		map[string]any{"destination": workMount, "type": "bind", "source": c.work, "options": []string{"bind", "rw", "nosuid", "nodev", "noexec"}},
	)
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
}

// run runs argv to completion and returns its standard output; an error
// carries the exit status and standard error.
func (c *container) run(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	return output(c.exec(ctx, env, argv...), strings.Join(argv, " "))
}

// cleanup removes every container this check started that runc still
// knows (`runc run` deletes a container whose process ended; one whose runc
// was killed stays behind).
func (c *container) cleanup() {
	out, err := exec.Command(c.runc, "list", "-q").Output()
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		if strings.HasPrefix(id, c.prefix+"-") {
			_ = exec.Command(c.runc, "delete", "-f", id).Run()
		}
	}
}
