package check

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sqlite-graft/sqlite-graft/internal/childenv"
)

// Where the image check mounts its pieces inside the container.
const (
	mountDir   = "/run/sqlite-graft"
	probeMount = mountDir + "/probe" // the probe, read-only
	workMount  = mountDir + "/work"  // a tmpfs of each run, where the stress test's database lives
)

// container runs commands inside one unpacked image with runc: each command
// is its own `runc run` of a bundle that shares the unpacked rootfs and the
// runtime config umoci generated from the image config (user, working
// directory, capabilities, namespaces), with the process arguments and
// environment replaced, the rootfs read-only, and three mounts added: the
// probe (read-only) and two tmpfs private to the run, a work directory and
// /tmp. Nothing a process in the image writes reaches the host's file
// system, and this process writes nowhere the container can: the base
// image's code (its preloads) runs in every probe and is not trusted.
type container struct {
	runc       string
	spec       []byte // umoci's config.json
	rootfs     string // absolute
	bundle     string // the per-command bundles live here
	probe      string // host path of the probe binary
	wrap       []string
	prefix     string        // of container ids
	runTimeout time.Duration // of one run; 0: DefaultRunTimeout

	mu sync.Mutex
	n  int
}

func newContainer(runc string, bundle, probe string) (*container, error) {
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
		probe: probe, prefix: "sqlite-graft-check-" + hex.EncodeToString(id[:]),
	}
	if err := os.Mkdir(c.bundle, 0o700); err != nil {
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
	cmd := childenv.Command(ctx, c.runc, "run", "--bundle", bundle, id)
	if err := c.writeBundle(bundle, env, argv); err != nil {
		cmd.Err = err
		return cmd
	}
	// The probe is PID 1 of its namespace and ignores the SIGTERM runc
	// would forward: end it with SIGKILL through runc, then runc exits.
	cmd.Cancel = func() error {
		c.runc1("kill", id, "KILL")
		return nil
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runc1 runs one runc housekeeping command (kill, list, delete), bounded in
// time, and returns its standard output.
func (c *container) runc1(args ...string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := childenv.Command(ctx, c.runc, args...).Output()
	return out
}

// scratch is the run's own tmpfs: the stress test is one run.
func (c *container) scratch() (string, error) { return workMount, nil }

func (c *container) timeout() time.Duration { return c.runTimeout }

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
	root["readonly"] = true
	tmpfs := func(dest, mode string) map[string]any {
		return map[string]any{"destination": dest, "type": "tmpfs", "source": "tmpfs",
			"options": []string{"nosuid", "nodev", "noexec", "mode=" + mode, "size=1g"}}
	}
	// runc gives a tmpfs the mode of the directory it covers when that
	// exists: mountDir, a tmpfs itself, holds fresh mount points each run.
	spec["mounts"] = append(mounts,
		tmpfs(mountDir, "0755"),
		map[string]any{"destination": probeMount, "type": "bind", "source": c.probe, "options": []string{"bind", "ro", "nosuid", "nodev"}},
		tmpfs(workMount, "1777"), tmpfs("/tmp", "1777"),
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

// run runs argv to completion within the run timeout and returns its
// standard output; an error carries the exit status and standard error.
func (c *container) run(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	return runBounded(ctx, c.runTimeout, strings.Join(argv, " ")+" in the image", func(ctx context.Context) *exec.Cmd {
		return c.exec(ctx, env, argv...)
	})
}

// cleanup removes every container this check started that runc still
// knows (`runc run` deletes a container whose process ended; one whose runc
// was killed stays behind). It deletes them by id: `runc list` fails
// while another container goes away.
func (c *container) cleanup() {
	c.mu.Lock()
	n := c.n
	c.mu.Unlock()
	for i := 1; i <= n; i++ {
		id := c.prefix + "-" + strconv.Itoa(i)
		if len(c.runc1("state", id)) > 0 {
			c.runc1("delete", "-f", id)
		}
	}
}
