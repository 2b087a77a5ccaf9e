package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// Hostile inputs (issue 11): bases and registries that others control.
// Each test feeds one and asserts a clear error naming the registry or the
// file, nothing left outside the output and temporary directories, and
// nothing pushed or tagged.

// hostileBuild is the arguments of a build of the default definition from
// base, pushed to push, with the shared build cache.
func hostileBuild(t *testing.T, base, push string, extra ...string) []string {
	args := append([]string{"build", "--local", "--image", "alpine-3.21", "--base", base, "--from", moduleZip(t, "3.53.4"), "--push", push}, cacheArgs(t)...)
	return append(args, extra...)
}

func wantAll(t *testing.T, what, text string, want ...string) {
	t.Helper()
	t.Logf("%s:\n%s", what, lastLines(text, 3))
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, text)
		}
	}
}

// A registry that never answers a manifest request, as the base's registry
// or as the one pushed to: the build ends after --registry-timeout, naming
// the registry and the request.
func TestHostileRegistryHangs(t *testing.T) {
	reg := registrytest.Start(t)
	h := registrytest.StartHostile(t, reg)
	testbase.Push(t, testbase.Musl(t), reg.Host+"/library/alpine-like:3.21")
	h.Hang(registrytest.Manifests)
	for _, tc := range []struct{ name, base, push string }{
		{"base", h.Host + "/library/alpine-like:3.21", reg.Host + "/sqlite-graft/alpine:hang"},
		{"target", reg.Host + "/library/alpine-like:3.21", h.Host + "/sqlite-graft/alpine:hang"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			r := s.run(t, 2*time.Minute, hostileBuild(t, tc.base, tc.push, "--registry-timeout", "1s")...)
			if r.code != 1 {
				t.Errorf("build = %d, want 1", r.code)
			}
			wantAll(t, "the error", r.stderr, "registry "+h.Host+": no answer within 1s to GET /v2/", "/manifests/", "--registry-timeout raises the limit")
			tagAbsent(t, reg, reg.Host+"/sqlite-graft/alpine:hang")
			s.leftNothing(t)
		})
	}
}

// A registry that refuses everyone, whatever the credentials: the build
// stops at the first refusal, naming the registry and the flags that gave
// the credentials (or that none were given), and never prints the secret.
func TestHostileRegistryRefusesEveryone(t *testing.T) {
	reg := registrytest.Start(t)
	h := registrytest.StartHostile(t, reg)
	testbase.Push(t, testbase.Musl(t), reg.Host+"/library/alpine-like:3.21")
	h.RefuseAll()
	const secret = "s3cret-token-that-must-not-show"
	base, push := h.Host+"/library/alpine-like:3.21", h.Host+"/sqlite-graft/alpine:refused"
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"flags", []string{"--registry-username", "ci", "--registry-password-env", "REGISTRY_TOKEN"},
			"registry " + h.Host + " refused the credentials of --registry-username ci (--registry-password-env REGISTRY_TOKEN): 401 UNAUTHORIZED"},
		{"anonymous", nil, "registry " + h.Host + " refused anonymous access: 401 UNAUTHORIZED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t, "REGISTRY_TOKEN="+secret)
			before := len(h.Requests())
			r := s.run(t, 2*time.Minute, hostileBuild(t, base, push, tc.flags...)...)
			if r.code != 1 {
				t.Errorf("build = %d, want 1", r.code)
			}
			wantAll(t, "the error", r.stderr, tc.want)
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Errorf("the secret is in the output:\n%s", r.stderr)
			}
			// No loop: a refusal ends the build.
			if n := len(h.Requests()) - before; n > 10 {
				t.Errorf("%d requests to a registry that refuses everyone, want a few: %v", n, h.Requests()[before:])
			}
			tagAbsent(t, reg, reg.Host+"/sqlite-graft/alpine:refused")
			s.leftNothing(t)
		})
	}
}

// A private base on a registry with htpasswd auth (TLS): the base is pulled
// with the credentials of the push's flags. A wrong password fails at once,
// naming the registry and the flags. With the right one the build pushes,
// and no program it runs — compiler, umoci, runc, the probe in the image —
// sees the variable that holds the token: wrappers first on PATH record
// their environment.
func TestPrivateBaseAndTokenStaysHome(t *testing.T) {
	const secret = "correct-horse-battery-staple-42"
	reg := registrytest.Start(t, registrytest.WithTLS(), registrytest.WithHTPasswd("ci", secret))
	base := reg.Host + "/library/private:3.21"
	testbase.Push(t, testbase.Musl(t), base, reg.RemoteOptions()...)
	push := reg.Host + "/sqlite-graft/alpine:private"
	flags := []string{"--registry-username", "ci", "--registry-password-env", "REGISTRY_TOKEN"}
	ca := "SSL_CERT_FILE=" + filepath.Join(reg.CertDir, "ca.crt")

	s := newSandbox(t, ca, "REGISTRY_TOKEN=wrong-password-1234")
	r := s.run(t, 2*time.Minute, hostileBuild(t, base, push, flags...)...)
	if r.code != 1 {
		t.Errorf("build with a wrong password = %d, want 1", r.code)
	}
	wantAll(t, "the error", r.stderr, "registry "+reg.Host+" refused the credentials of --registry-username ci (--registry-password-env REGISTRY_TOKEN): 401 UNAUTHORIZED")
	if strings.Contains(r.stderr, "wrong-password-1234") {
		t.Errorf("the password is in the output:\n%s", r.stderr)
	}
	tagAbsent(t, reg, push)
	s.leftNothing(t)

	// Wrappers record the environment of every program the build starts.
	record, wrappers := t.TempDir(), t.TempDir()
	for _, prog := range []string{"cc", "musl-gcc", "umoci", "runc"} {
		real, err := exec.LookPath(prog)
		if err != nil {
			t.Fatal(err)
		}
		script := "#!/bin/sh\nenv > \"" + record + "/" + prog + ".$$\"\nexec " + real + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(wrappers, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s = newSandbox(t, ca, "REGISTRY_TOKEN="+secret)
	s.env[0] = "PATH=" + wrappers + ":" + os.Getenv("PATH")
	res := filepath.Join(t.TempDir(), "result.json")
	r = s.run(t, 10*time.Minute, hostileBuild(t, base, push, append(flags, "--result", res)...)...)
	if r.code != 0 {
		t.Fatalf("build of a private base with the right password = %d:\n%s", r.code, r.stderr)
	}
	if got := readResult(t, res); len(got.Pushed) != 1 || got.Pushed[0] != push {
		t.Errorf("pushed %v, want %s", got.Pushed, push)
	}
	recorded, _ := os.ReadDir(record)
	seen := map[string]bool{}
	for _, e := range recorded {
		seen[strings.Split(e.Name(), ".")[0]] = true
		b, _ := os.ReadFile(filepath.Join(record, e.Name()))
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "REGISTRY_TOKEN") {
			t.Errorf("%s ran with the token in its environment:\n%s", e.Name(), b)
		}
	}
	for _, prog := range []string{"musl-gcc", "umoci", "runc"} {
		if !seen[prog] {
			t.Errorf("%s was not run through its wrapper (recorded: %v)", prog, seen)
		}
	}
	if strings.Contains(r.stderr+r.stdout, secret) {
		t.Errorf("the secret is in the output")
	}
	s.leftNothing(t)
}

// A copied io.github.sqlite-graft.inputs label under the target tag is not
// "unchanged": an image carrying it must be the resolved base's layers plus
// one, name the base digest, and have a provenance referrer that records
// the same inputs. Otherwise the build says why and rebuilds; the tag ends
// on the genuine image, not the forged one.
func TestForgedUnchangedLabel(t *testing.T) {
	reg := registrytest.Start(t)
	baseImg := testbase.Musl(t)
	baseTag := reg.Host + "/library/alpine-like:3.21"
	base := testbase.Push(t, baseImg, baseTag)
	target := reg.Host + "/sqlite-graft/alpine:forged"
	args := hostileBuild(t, baseTag, target)

	// The label as the build would write it, from the plan of a dry run.
	r := sqliteGraft(t, append(args, "--dry-run", "--log-format", "json")...)
	var plan struct {
		Inputs      graft.Inputs
		Fingerprint string
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || plan.Fingerprint == "" {
		t.Fatalf("dry run = %d %q: %v", r.code, r.stdout, err)
	}
	inputs, _ := json.Marshal(plan.Inputs)
	labelled := func(img v1.Image, extra map[string]string) v1.Image {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{graft.LabelInputs: string(inputs), graft.LabelFingerprint: plan.Fingerprint}
		for k, v := range extra {
			cf.Config.Labels[k] = v
		}
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	trojan, err := mutateAppendFile(baseImg, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		img  v1.Image
		why  string
	}{
		{"label-on-the-base", labelled(baseImg, nil), "its layers (1) are not the layers of base " + base.String() + " (1) plus one"},
		{"base-plus-one-layer", labelled(trojan, map[string]string{"org.opencontainers.image.base.digest": base.DigestStr()}), "no provenance referrer of sha256:"},
	} {
		forged := testbase.Push(t, tc.img, target)
		r := sqliteGraft(t, append(args, "--dry-run")...)
		wantAll(t, tc.name+": the dry run", r.stdout, "build, check, write", target+" carries our label but is not structurally ours: "+tc.why)
		if r.code != 0 || strings.Contains(r.stdout, "nothing to do") {
			t.Errorf("%s: dry run = %d, want a plan to build:\n%s", tc.name, r.code, r.stdout)
		}
		t.Logf("%s: forged %s", tc.name, forged)
	}

	// The build rebuilds and moves the tag to the genuine image.
	s := newSandbox(t)
	res := filepath.Join(t.TempDir(), "result.json")
	r = s.run(t, 10*time.Minute, append(args, "--result", res, "--log-level", "info")...)
	if r.code != 0 {
		t.Fatalf("build over a forged tag = %d:\n%s", r.code, r.stderr)
	}
	s.leftNothing(t)
	got := readResult(t, res)
	tag, _ := name.NewTag(target)
	desc, err := remote.Head(tag, reg.RemoteOptions()...)
	if err != nil || got.Unchanged || desc.Digest.String() != got.Digest {
		t.Fatalf("result %+v, tag at %v (%v); want a rebuild that moved the tag", got, desc, err)
	}
	wantAll(t, "the build's log", r.stderr, "carries our label but is not structurally ours")
	img, err := remote.Image(tag, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if passwd := testbase.ReadFile(t, img, "/etc/passwd"); strings.Contains(string(passwd), "toor") {
		t.Errorf("the tag still serves the forged /etc/passwd:\n%s", passwd)
	}
	// And the genuine image is trusted as unchanged.
	r = sqliteGraft(t, append(args, "--dry-run")...)
	wantAll(t, "the dry run after the rebuild", r.stdout, "nothing to do")
}

// pauseBase is the musl base whose config preloads a library that waits
// for ever in every process: every probe in the image hangs.
func pauseBase(t *testing.T, reg *registrytest.Registry) string {
	img := testbase.WithPreload(t, testbase.Musl(t), "musl", "/usr/lib/pause.so", testbase.PauseSource)
	return testbase.Push(t, img, reg.Host+"/library/pause:3.21").String()
}

// A base whose preload never returns: the first probe in the image times
// out after --check-timeout, the error names it, no container is left.
func TestBasePreloadHangTimesOut(t *testing.T) {
	reg := registrytest.Start(t)
	push := reg.Host + "/sqlite-graft/alpine:pause"
	s := newSandbox(t)
	r := s.run(t, 5*time.Minute, hostileBuild(t, pauseBase(t, reg), push, "--check-timeout", "3s")...)
	if r.code != 1 {
		t.Errorf("build = %d, want 1", r.code)
	}
	wantAll(t, "the error", r.stderr, "probe whoami: no result within 3s (timed out; killed)", "nothing pushed")
	tagAbsent(t, reg, push)
	s.leftNothing(t)
}

// SIGTERM while a probe in the image hangs: the build ends promptly and
// leaves nothing — no runc container, no temporary directory, no tag.
func TestSIGTERMLeavesNothing(t *testing.T) {
	reg := registrytest.Start(t)
	push := reg.Host + "/sqlite-graft/alpine:sigterm"
	base := pauseBase(t, reg)
	s := newSandbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd, _, stderr := s.command(t, ctx, hostileBuild(t, base, push)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Wait for the hanging probe's container.
	for len(s.containers(t)) == 0 {
		select {
		case err := <-exited:
			t.Fatalf("build ended (%v) before a probe ran:\n%s", err, stderr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var code int
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 1 {
			t.Errorf("build after SIGTERM: %v, want exit status 1", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("build still running 60s after SIGTERM:\n%s", stderr)
	}
	wantAll(t, "the error", stderr.String(), "sqlite-graft: error: stopped (terminated signal received): nothing pushed", "probe whoami: terminated signal received")
	tagAbsent(t, reg, push)
	s.leftNothing(t)
}

// lastLines is the end of a log, for test output.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
