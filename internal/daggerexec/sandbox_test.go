package daggerexec_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

const sourceID3513 = "2026-03-13 10:38:09 737ae4a34738ffa0c3ff7f9bb18df914dd1cad163f28fd6b6e114a344fe6d618"

// graftedBare is the Alpine-like base without a SQLite of its own with a
// real graft layer (3.51.3 built with musl-gcc), the non-root user and the
// preload environment: what graft builds for alpine-3.21.
func graftedBare(t *testing.T) v1.Image {
	t.Helper()
	v := pins.MustParseVersion("3.51.3")
	created := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	gl, err := layer.Build(layer.Input{Library: testbuild.Library(t, "3.51.3", "musl"), Version: v, Libc: layer.Musl, Preload: layer.PreloadEnv, Created: created, Whiteouts: []string{testbase.MuslSetuid}})
	if err != nil {
		t.Fatal(err)
	}
	base := testbase.MuslBare(t)
	users := testbase.MustLayer(t,
		testbase.Regular("/etc/passwd", 0o644, append(testbase.ReadFile(t, base, "/etc/passwd"), "nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"...)),
		testbase.Regular("/etc/group", 0o644, append(testbase.ReadFile(t, base, "/etc/group"), "nonroot:x:65532:\n"...)))
	img, err := mutate.AppendLayers(base, gl, users)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.User = "65532:65532"
	env, err := layer.Env(layer.Musl)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Env = append(cfg.Env, env...)
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

// probeAnswers answers the probe's commands as a probe would in the image,
// reporting mapped as the files of its process.
func probeAnswers(mapped ...string) func([]call) string {
	return func(chain []call) string {
		args := chain[len(chain)-2].list("args")
		switch args[len(args)-1] {
		case "whoami":
			return `{"uid": 65532, "euid": 65532, "gid": 65532, "egid": 65532, "env": []}`
		case "info":
			features := map[string]any{}
			for _, f := range check.FeatureNames() {
				features[f] = map[string]any{"ok": true}
			}
			var m []map[string]any
			for _, p := range mapped {
				m = append(m, map[string]any{"path": p, "inode": 1})
			}
			b, _ := json.Marshal(map[string]any{"version": "3.51.3", "source_id": sourceID3513, "version_number": 3051003,
				"compile_options": []string{"THREADSAFE=1"}, "features": features, "mapped": m})
			return string(b)
		}
		return ""
	}
}

// The image check runs through the engine's sandbox with internal/check's
// own checks and verdict: the same image, answers as a probe in the engine
// would give, the same report as under runc.
func TestDaggerSandboxRunsTheImageChecks(t *testing.T) {
	img := graftedBare(t)
	want := pins.Pin{Version: pins.MustParseVersion("3.51.3"), SourceID: sourceID3513}
	for name, tc := range map[string]struct {
		mapped  []string
		problem string
	}{
		"graft":       {[]string{"/lib/ld-musl-x86_64.so.1", "/usr/local/lib/libsqlite3.so.3.51.3"}, ""},
		"two copies":  {[]string{"/usr/lib/libsqlite3.so.0.8.6", "/usr/local/lib/libsqlite3.so.3.51.3"}, "2 copies of SQLite"},
		"not mapped":  {[]string{"/usr/lib/libsqlite3.so.0.8.6"}, "the grafted library /usr/local/lib/libsqlite3.so.3.51.3 is not among them"},
		"none at all": {nil, "is not among them"},
	} {
		t.Run(name, func(t *testing.T) {
			rec, c := newClient(t)
			rec.stdout = probeAnswers(tc.mapped...)
			sb := &daggerexec.Sandbox{Query: c.Query, Files: &fakeFiles{q: c.Query}, Target: target(t, definition(t, "alpine-3.21"), "linux/amd64", amd64Digest)}
			r, err := check.Image(context.Background(), check.ImageOptions{Image: img, Sandbox: sb, Want: &want, BaselineKind: check.BaselineNone})
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("check.Image through the engine = %v", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("check.Image through the engine = %v, want a failure naming %q", err, tc.problem)
			}
			if r.UID != 65532 || r.Report.Version != "3.51.3" || r.BaselineKind != check.BaselineNone {
				t.Errorf("report: uid %d, version %q, baseline %s", r.UID, r.Report.Version, r.BaselineKind)
			}
			checkSandboxRuns(t, rec)
		})
	}
}

// checkSandboxRuns checks how every process of the check ran in the
// engine: the imported image as its user, the probe compiled in the
// base's toolchain and mounted read-only, a scratch directory of the
// image's user, exactly the environment asked for.
func checkSandboxRuns(t *testing.T, rec *recorder) {
	t.Helper()
	runs := rec.leafChains("stdout")
	if len(runs) != 2 {
		t.Fatalf("%d processes run in the image, want whoami and info", len(runs))
	}
	for _, chain := range runs {
		got := names(chain)
		if !slices.Equal(got[:5], []string{"container", "import", "withMountedFile", "withMountedDirectory", "sync"}) && !slices.Equal(got[:4], []string{"container", "import", "withMountedFile", "withMountedDirectory"}) {
			t.Fatalf("process pipeline %v", got)
		}
		if chain[0].str("platform") != "linux/amd64" {
			t.Errorf("container(platform: %q)", chain[0].str("platform"))
		}
		if chain[2].str("path") != check.ProbePath || chain[3].str("path") != check.ScratchDir || chain[3].str("owner") != "65532:65532" {
			t.Errorf("mounts: %s, %s", chain[2], chain[3])
		}
		var env []string
		for _, c := range chain {
			switch c.Name {
			case "withoutEnvVariable":
				env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, c.str("name")+"=") })
			case "withEnvVariable":
				env = append(env, c.str("name")+"="+c.str("value"))
			}
		}
		if !slices.Contains(env, "LD_PRELOAD=libsqlite3.so.0") || !slices.Contains(env, "LD_LIBRARY_PATH=/usr/local/lib") {
			t.Errorf("environment of the run = %v, want the image's preload", env)
		}
		args := chain[len(chain)-2].list("args")
		if args[0] != check.ProbePath {
			t.Errorf("withExec(%q), want the probe", args)
		}
		probe := rec.resolve(t, chain[2].str("source"))
		if probe[0].Name != "container" || probe[1].str("address") != "docker.io/library/alpine:3.21@"+amd64Digest {
			t.Errorf("probe built in %s, want the pinned base", show(probe))
		}
		compile := probe[len(probe)-2].list("args")
		if want := []string{"cc", "-O2", "-pthread", "-o", "probe", "probe.c", "libsqlite3.so.0"}; !slices.Equal(compile, want) {
			t.Errorf("probe compiled with %q, want %q", compile, want)
		}
	}
	if slices.Contains(rec.allFields(), "host") {
		t.Errorf("the check touched the host")
	}
}

// A failed process in the engine is a failed check with its output; a
// glibc probe links libdl.
func TestDaggerSandboxProcessFailure(t *testing.T) {
	rec, c := newClient(t)
	rec.fail = func(chain []call) map[string]any {
		if chain[len(chain)-1].Name != "stdout" {
			return nil
		}
		return map[string]any{"message": "process exited", "extensions": map[string]any{
			"_type": "EXEC_ERROR", "cmd": []string{check.ProbePath, "whoami"}, "exitCode": 127, "stdout": "", "stderr": "Error loading shared library libsqlite3.so.0"}}
	}
	sb := &daggerexec.Sandbox{Query: c.Query, Files: &fakeFiles{q: c.Query}, Target: target(t, definition(t, "alpine-3.21"), "linux/amd64", amd64Digest)}
	want := pins.Pin{Version: pins.MustParseVersion("3.51.3"), SourceID: sourceID3513}
	_, err := check.Image(context.Background(), check.ImageOptions{Image: graftedBare(t), Sandbox: sb, Want: &want, BaselineKind: check.BaselineNone})
	if err == nil || !strings.Contains(err.Error(), "Error loading shared library libsqlite3.so.0") || !strings.Contains(err.Error(), "exit 127") {
		t.Errorf("check.Image = %v, want the probe's failure with its exit code and output", err)
	}

	tg := target(t, definition(t, "debian-13"), "linux/amd64", amd64Digest)
	lib := c.Directory().WithNewFile("libsqlite3.so.0", "").File("libsqlite3.so.0")
	p, err := daggerexec.Probe(c.Query, tg, check.ProbeBuild{Libc: check.Glibc}, lib)
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	chain := rec.resolve(t, string(id))
	if args := chain[len(chain)-2].list("args"); args[len(args)-1] != "-ldl" {
		t.Errorf("glibc probe compiled with %q, want -ldl last", args)
	}
}

// The probe's source is made in the engine from the bytes of
// internal/check/probe.c compiled into the program: no host, no loaded ID of
// an earlier session.
func TestDaggerProbeSourceIsMadeInTheEngine(t *testing.T) {
	rec, c := newClient(t)
	want, err := os.ReadFile("../check/probe.c")
	if err != nil {
		t.Fatal(err)
	}
	id, err := daggerexec.ProbeSource(c.Query).ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	chain := rec.resolve(t, string(id))
	if got := names(chain); !slices.Equal(got, []string{"directory", "withNewFile", "file"}) {
		t.Fatalf("probe source = %s, want directory.withNewFile.file", show(chain))
	}
	if chain[1].str("path") != "probe.c" || chain[1].str("contents") != string(want) {
		t.Errorf("probe source holds %d bytes at %q, want internal/check/probe.c (%d bytes)", len(chain[1].str("contents")), chain[1].str("path"), len(want))
	}
}
