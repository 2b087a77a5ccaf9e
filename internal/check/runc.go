package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/sqlite-graft/sqlite-graft/internal/childenv"
)

// Runc is the local Sandbox: the image unpacked by umoci into a runtime
// bundle, each process a `runc run` of it. It needs root (umoci unpack
// keeps owners and set-id bits; runc runs the image's user), umoci and
// runc, and the C compiler of the image's libc on this machine (cc,
// musl-gcc), which builds the probe; the image must be for this machine's
// architecture, and a glibc probe built here needs the image's glibc to be
// at least as new as this machine's.
type Runc struct{}

// Open unpacks img into a temporary runtime bundle and builds the probe.
func (Runc) Open(ctx context.Context, img v1.Image, pb ProbeBuild) (Session, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		return nil, fmt.Errorf("the image is for %s/%s; this machine runs linux/%s images only", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the image check needs root (umoci unpack keeps owners and set-id bits; runc runs the image's user)")
	}
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		return nil, fmt.Errorf("umoci (Debian package umoci) unpacks the image for runc: %w", err)
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, fmt.Errorf("runc (Debian package runc) runs the checks inside the image: %w", err)
	}
	dir, err := os.MkdirTemp("", "sqlite-graft-runc-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (Session, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	bundle, err := unpack(ctx, umoci, img, dir)
	if err != nil {
		return fail(err)
	}
	probeDir := filepath.Join(dir, "probe")
	if err := os.Mkdir(probeDir, 0o755); err != nil {
		return fail(err)
	}
	p, err := buildProbe(ctx, probeDir, pb.Libc, pb.Link)
	if err != nil {
		return fail(err)
	}
	c, err := newContainer(runc, bundle, p.bin)
	if err != nil {
		return fail(err)
	}
	c.dir = dir
	return c, nil
}

// unpack writes img to an OCI layout under dir and unpacks it with umoci
// into a runtime bundle, whose path it returns.
func unpack(ctx context.Context, umoci string, img v1.Image, dir string) (string, error) {
	oci := filepath.Join(dir, "oci")
	lp, err := layout.Write(oci, empty.Index)
	if err != nil {
		return "", fmt.Errorf("write the image to an OCI layout: %w", err)
	}
	const tag = "check"
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		return "", fmt.Errorf("write the image to an OCI layout: %w", err)
	}
	bundle := filepath.Join(dir, "bundle")
	if _, err := runBounded(ctx, unpackTimeout, "umoci unpack", func(ctx context.Context) *exec.Cmd {
		return childenv.Command(ctx, umoci, "unpack", "--image", oci+":"+tag, bundle)
	}); err != nil {
		return "", err
	}
	// The layout was only umoci's input: the bundle is what runs.
	if err := os.RemoveAll(oci); err != nil {
		return "", err
	}
	return bundle, nil
}

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
	runc   string
	spec   []byte // umoci's config.json
	rootfs string // absolute
	bundle string // the per-command bundles live here
	probe  string // host path of the probe binary
	prefix string // of container ids
	dir    string // the session's temporary directory, removed by Close

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
		map[string]any{"destination": ProbePath, "type": "bind", "source": c.probe, "options": []string{"bind", "ro", "nosuid", "nodev"}},
		tmpfs(ScratchDir, "1777"), tmpfs("/tmp", "1777"),
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

// Run runs argv to completion and returns its standard output; an error
// carries the exit status and standard error. ctx bounds it.
func (c *container) Run(ctx context.Context, env []string, argv []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := c.exec(ctx, env, argv...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Close removes the containers of the session and its bundle.
func (c *container) Close() error {
	c.cleanup()
	if c.dir != "" {
		return os.RemoveAll(c.dir)
	}
	return nil
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
