package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

// The image tests assemble what internal/image will: a test base from real
// pieces, the graft layer built by internal/layer from the recipe's 3.51.3,
// a passwd/group layer for the non-root user, and the config (base Env plus
// layer.Env, User 65532:65532). Then check.Image runs everything inside the
// image with umoci and runc.

const (
	nonroot     = "65532:65532"
	graftedFile = "/usr/local/lib/libsqlite3.so.3.51.3"
)

var (
	graftVersion = pins.MustParseVersion("3.51.3")
	graftCreated = time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	// smallStress keeps the in-image stress test around a second.
	smallStress = StressOptions{Processes: 2, Threads: 2, RowsPerThread: 100, Checkpointers: 1}
)

type testBase struct {
	libc, setuid, lib, version string
	img                        func(testing.TB) v1.Image
}

var testBases = []testBase{
	{Musl, testbase.MuslSetuid, testbase.MuslLibrary, testbase.MuslVersion, testbase.Musl},
	{Glibc, testbase.GlibcSetuid, testbase.GlibcLibrary, testbase.GlibcVersion, testbase.Glibc},
}

// graft describes a grafted test image and how to check it.
type graft struct {
	baseOnly   bool                 // the bare base, nothing appended
	keepSetuid bool                 // no whiteout for the base's setuid file
	preload    string               // layer.PreloadWrapper: no preload in the config
	extra      []testbase.File      // one more layer
	config     func(cfg *v1.Config) // changes after Env and User are set
	client     []string             // ImageOptions.Client
	wrapper    []string             // ImageOptions.Wrapper
	stress     *StressOptions       //
	logReport  bool                 // log the report even when it passes
	// ImageOptions.BaselineKind, Baseline and BaselinePackage
	baselineKind          BaselineKind
	baseline, baselinePkg string
}

func (b testBase) image(t *testing.T, g graft) v1.Image {
	t.Helper()
	base := b.img(t)
	if g.baseOnly {
		return base
	}
	in := layer.Input{
		Library: testbuild.Library(t, "3.51.3", b.libc), Version: graftVersion, Libc: b.libc,
		Preload: layer.PreloadEnv, Created: graftCreated,
	}
	if !g.keepSetuid {
		in.Whiteouts = []string{b.setuid}
	}
	gl, err := layer.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	passwd := string(testbase.ReadFile(t, base, "/etc/passwd")) + "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := string(testbase.ReadFile(t, base, "/etc/group")) + "nonroot:x:65532:\n"
	layers := []v1.Layer{gl, testbase.MustLayer(t,
		testbase.Regular("/etc/passwd", 0o644, []byte(passwd)),
		testbase.Regular("/etc/group", 0o644, []byte(group)))}
	if len(g.extra) > 0 {
		layers = append(layers, testbase.MustLayer(t, g.extra...))
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	if g.preload != layer.PreloadWrapper {
		env, err := layer.Env(b.libc)
		if err != nil {
			t.Fatal(err)
		}
		cf.Config.Env = append(cf.Config.Env, env...)
	}
	cf.Config.User = nonroot
	if g.config != nil {
		g.config(&cf.Config)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// check runs Image on b's image described by g.
func (b testBase) check(t *testing.T, g graft) (*ImageReport, error) {
	t.Helper()
	want := pin(t, "3.51.3")
	start := time.Now()
	r, err := Image(context.Background(), ImageOptions{
		Image: b.image(t, g), Want: &want, Client: g.client, Wrapper: g.wrapper, Stress: g.stress, Logger: testLogger(t),
		BaselineKind: g.baselineKind, Baseline: g.baseline, BaselinePackage: g.baselinePkg,
	})
	t.Logf("check.Image: %.2fs", time.Since(start).Seconds())
	if r == nil {
		t.Fatalf("Image() = nil report, %v", err)
	}
	if g.logReport || err != nil {
		rb, _ := json.MarshalIndent(r, "", "  ")
		t.Logf("report:\n%s", rb)
	}
	return r, err
}

func hasImageProblem(r *ImageReport, substr string) bool {
	return slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, substr) })
}

// A correctly grafted image passes every check inside a real container:
// the client linked against the base's own libsqlite3.so.0 gets the pinned
// SQLite, only the grafted file is mapped, the stress test loses nothing,
// no set-id file is left and the process runs as 65532.
func TestImagePasses(t *testing.T) {
	t.Parallel()
	for _, b := range testBases {
		t.Run(b.libc, func(t *testing.T) {
			t.Parallel()
			st := smallStress
			r, err := b.check(t, graft{stress: &st, client: []string{testbase.Client}, logReport: true})
			if err != nil {
				t.Fatalf("Image(%s + graft) = %v", b.libc, err)
			}
			want := pin(t, "3.51.3")
			rep := r.Report
			if r.Libc != b.libc || rep.Version != "3.51.3" || rep.SourceID != want.SourceID || r.ClientVersion != "3.51.3" {
				t.Errorf("libc %s, version %s, source id %q, client %q; want %s, 3.51.3, %q, 3.51.3",
					r.Libc, rep.Version, rep.SourceID, r.ClientVersion, b.libc, want.SourceID)
			}
			if !slices.Equal(rep.Mapped, []string{graftedFile}) || rep.Lib != graftedFile {
				t.Errorf("Mapped = %v, Lib = %s; want only %s", rep.Mapped, rep.Lib, graftedFile)
			}
			if rep.BaselineVersion != b.version || len(r.BaseOptions) == 0 || len(r.MissingOptions) != 0 || len(rep.MissingSymbols) != 0 {
				t.Errorf("baseline %s with %d options, missing options %v, symbols %v; want %s, some, none, none",
					rep.BaselineVersion, len(r.BaseOptions), r.MissingOptions, rep.MissingSymbols, b.version)
			}
			s := rep.Stress
			total := st.Processes * st.Threads * st.RowsPerThread
			if s == nil || s.Lost != 0 || s.Integrity != "ok" || s.Committed != total || s.Found != total {
				t.Errorf("Stress = %+v, want %d rows committed and found, integrity ok", s, total)
			} else {
				t.Logf("stress in the image: %s", s)
			}
			if len(r.Setuid) != 0 || r.UID != 65532 || r.GID != 65532 || r.User != nonroot {
				t.Errorf("setuid %v, uid %d, gid %d, user %q; want none, 65532, 65532, %s", r.Setuid, r.UID, r.GID, r.User, nonroot)
			}
			env, _ := layer.Env(b.libc)
			for _, kv := range append(env, testbase.PathEnv) {
				if !slices.Contains(r.Env, kv) {
					t.Errorf("Env = %q, want %s (the image's environment)", r.Env, kv)
				}
			}
		})
	}
}

// The bare base is what the graft fixes: its own SQLite is named, and
// everything else it lacks fails too.
func TestImageBareBaseFails(t *testing.T) {
	t.Parallel()
	for _, b := range testBases {
		t.Run(b.libc, func(t *testing.T) {
			t.Parallel()
			r, err := b.check(t, graft{baseOnly: true, client: []string{testbase.Client}})
			if err == nil {
				t.Fatal("Image(bare base) = nil error, want failures")
			}
			for _, want := range []string{
				"sqlite_version() = " + b.version + ", want 3.51.3",
				"client " + testbase.Client + ` prints SQLite "` + b.version + `", want 3.51.3`,
				"no grafted library: " + layer.LibraryPath + " in the image",
				"user is root",
				b.setuid + " (setuid 4755)",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q:\n%v", want, err)
				}
			}
			if r.Report.Version != b.version || !slices.Equal(r.Report.Mapped, []string{r.Report.Baseline}) {
				t.Errorf("version %s, mapped %v; want %s, only the base's %s", r.Report.Version, r.Report.Mapped, b.version, r.Report.Baseline)
			}
		})
	}
}

// An image that runs as root fails, whether the config says nothing or names root.
func TestImageRootFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base testBase
		user string
		want string
	}{
		{testBases[0], "", "user is root: the image config sets no User"},
		{testBases[1], "root", `user is root: the image config's User is "root" (uid 0)`},
	} {
		t.Run(tc.base.libc, func(t *testing.T) {
			t.Parallel()
			r, err := tc.base.check(t, graft{config: func(c *v1.Config) { c.User = tc.user }})
			if err == nil || !hasImageProblem(r, tc.want) || len(r.Problems) != 1 {
				t.Fatalf("Image(graft as %q) = %v, want only %q", tc.user, err, tc.want)
			}
			if r.UID != 0 || r.Report.Version != "3.51.3" {
				t.Errorf("uid %d, version %s; want 0, 3.51.3", r.UID, r.Report.Version)
			}
		})
	}
}

// A setuid file left in place fails the check, by its real path.
func TestImageSetuidLeft(t *testing.T) {
	t.Parallel()
	for _, b := range testBases {
		t.Run(b.libc, func(t *testing.T) {
			t.Parallel()
			r, err := b.check(t, graft{keepSetuid: true})
			want := b.setuid + " (setuid 4755)"
			if err == nil || len(r.Problems) != 1 || !hasImageProblem(r, "set-id files in the image") || !hasImageProblem(r, want) {
				t.Fatalf("Image(graft, setuid kept) = %v, want only a set-id problem naming %s", err, want)
			}
			if !slices.Equal(r.Setuid, []string{want}) {
				t.Errorf("Setuid = %v, want [%s]", r.Setuid, want)
			}
		})
	}
}

// DESIGN.md's loader claim, measured inside real musl containers. musl
// never compares sonames, but it does compare inodes: an absolute-path
// LD_PRELOAD of /usr/local/lib/libsqlite3.so.0 maps one copy in an
// Alpine-like image, because musl's default search path
// (/lib:/usr/local/lib:/usr/lib) finds the same file for the probe's
// DT_NEEDED libsqlite3.so.0. Where the search reaches /usr/lib first — here
// an /etc/ld-musl-x86_64.path listing it before /usr/local/lib — the same
// preload maps the graft and the base's library: two copies. The graft's
// own environment (its directory first on LD_LIBRARY_PATH, a bare-name
// preload) maps one copy either way. The check fails the absolute preload
// in both images: one copy there is luck of the search order.
func TestImageMuslAbsolutePreload(t *testing.T) {
	t.Parallel()
	b := testBases[0]
	absolute := func(c *v1.Config) {
		c.Env = []string{testbase.PathEnv, "LD_PRELOAD=" + layer.LibraryPath}
	}
	usrLibFirst := []testbase.File{testbase.Regular("/etc/ld-musl-x86_64.path", 0o644, []byte("/lib\n/usr/lib\n/usr/local/lib\n"))}
	const lint = "names SQLite by absolute path on musl"
	const twoCopies = "2 copies of SQLite in one process"

	t.Run("alpine-like", func(t *testing.T) {
		t.Parallel()
		r, err := b.check(t, graft{config: absolute})
		if err == nil || !hasImageProblem(r, lint) || hasImageProblem(r, twoCopies) {
			t.Fatalf("Image(absolute preload) = %v, want the absolute-path problem and no second copy", err)
		}
		if !slices.Equal(r.Report.Mapped, []string{graftedFile}) || r.Report.Version != "3.51.3" {
			t.Errorf("mapped %v, version %s; want only %s (musl found the same inode on its search path), 3.51.3", r.Report.Mapped, r.Report.Version, graftedFile)
		}
		t.Logf("musl, LD_PRELOAD=%s, default search path: mapped %v", layer.LibraryPath, r.Report.Mapped)
	})
	t.Run("usr-lib-first", func(t *testing.T) {
		t.Parallel()
		r, err := b.check(t, graft{config: absolute, extra: usrLibFirst})
		if err == nil || !hasImageProblem(r, twoCopies) || !hasImageProblem(r, lint) {
			t.Fatalf("Image(absolute preload, /usr/lib first) = %v, want two copies reported", err)
		}
		if !slices.Equal(r.Report.Mapped, []string{"/usr/lib/libsqlite3.so.0.8.6", graftedFile}) {
			t.Errorf("mapped %v, want the base's /usr/lib/libsqlite3.so.0.8.6 and %s", r.Report.Mapped, graftedFile)
		}
		// Everything binds to the preload, which is what makes the second
		// copy dangerous rather than visible.
		if r.Report.Version != "3.51.3" {
			t.Errorf("version %s, want 3.51.3", r.Report.Version)
		}
		t.Logf("musl, LD_PRELOAD=%s, /usr/lib searched first: mapped %v", layer.LibraryPath, r.Report.Mapped)
	})
	t.Run("usr-lib-first-graft-env", func(t *testing.T) {
		t.Parallel()
		r, err := b.check(t, graft{extra: usrLibFirst})
		if err != nil {
			t.Fatalf("Image(graft env, /usr/lib first) = %v", err)
		}
		if !slices.Equal(r.Report.Mapped, []string{graftedFile}) {
			t.Errorf("mapped %v, want only %s", r.Report.Mapped, graftedFile)
		}
		t.Logf("musl, graft env %v, /usr/lib searched first: mapped %v", r.Env, r.Report.Mapped)
	})
}

// An image built with preload: wrapper sets no LD_PRELOAD: on glibc its
// processes get the base's SQLite unless run through the wrapper, which is
// how the check runs them when told.
func TestImageWrapper(t *testing.T) {
	t.Parallel()
	b := testBases[1]
	t.Run("through-wrapper", func(t *testing.T) {
		t.Parallel()
		r, err := b.check(t, graft{preload: layer.PreloadWrapper, wrapper: []string{layer.WrapperPath}, client: []string{testbase.Client}})
		if err != nil {
			t.Fatalf("Image(wrapper image, through the wrapper) = %v", err)
		}
		if !slices.Equal(r.Report.Mapped, []string{graftedFile}) || r.ClientVersion != "3.51.3" {
			t.Errorf("mapped %v, client %q; want only %s, 3.51.3", r.Report.Mapped, r.ClientVersion, graftedFile)
		}
	})
	t.Run("without-wrapper", func(t *testing.T) {
		t.Parallel()
		r, err := b.check(t, graft{preload: layer.PreloadWrapper})
		if err == nil || !hasImageProblem(r, "sqlite_version() = "+b.version+", want 3.51.3") {
			t.Fatalf("Image(wrapper image, run directly) = %v, want the base's version named", err)
		}
		if !slices.ContainsFunc(r.Report.Notes, func(n string) bool { return strings.Contains(n, "ImageOptions.Wrapper") }) {
			t.Errorf("notes %q, want the hint about ImageOptions.Wrapper", r.Report.Notes)
		}
	})
}

// Paths in an unpacked image resolve as the container would see them:
// absolute links start again at the image's root, ".." stops there.
func TestRootfsResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/lib/x86_64-linux-gnu"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6"), []byte("x"), 0o644))
	must(os.Symlink("libsqlite3.so.0.8.6", filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libsqlite3.so.0")))
	must(os.Symlink("usr/lib", filepath.Join(dir, "lib")))
	must(os.Symlink("/lib/x86_64-linux-gnu/libsqlite3.so.0", filepath.Join(dir, "abs")))
	must(os.Symlink("../../../../../etc/passwd", filepath.Join(dir, "usr/lib/escape")))
	must(os.Symlink("loop", filepath.Join(dir, "loop")))
	root := rootfs(dir)
	for in, want := range map[string]string{
		"/lib/x86_64-linux-gnu/libsqlite3.so.0": "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6",
		"/abs":                                  "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6",
		"/lib/../lib/./x86_64-linux-gnu":        "/usr/lib/x86_64-linux-gnu",
	} {
		if got, err := root.resolve(in); err != nil || got != want {
			t.Errorf("resolve(%s) = %q, %v; want %s", in, got, err, want)
		}
	}
	// The host's /etc/passwd exists; the image's does not.
	if got, err := root.resolve("/usr/lib/escape"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("resolve(/usr/lib/escape) = %q, %v; want not found inside the image", got, err)
	}
	if _, err := root.resolve("/loop"); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Errorf("resolve(/loop) = %v, want a loop error", err)
	}
}

// A cancelled check ends its containers: runc forwards no signal that kills
// the probe (PID 1 of its namespace), so cancelling goes through runc kill.
func TestImageCancel(t *testing.T) {
	t.Parallel()
	b := testBases[0]
	img := b.image(t, graft{})
	want := pin(t, "3.51.3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled a second into the stress test, whatever the machine's load.
	log := testLogger(t).(*logrus.Logger)
	cancelled := make(chan time.Time, 1)
	log.AddHook(onMessage{"stress test inside the image", func() {
		time.AfterFunc(time.Second, func() { cancelled <- time.Now(); cancel() })
	}})
	long := StressOptions{Processes: 2, Threads: 2, RowsPerThread: 10_000_000, Checkpointers: 1}
	r, err := Image(ctx, ImageOptions{Image: img, Want: &want, Stress: &long, Logger: log})
	if err == nil || !hasImageProblem(r, "stress") {
		t.Fatalf("Image(cancelled during stress) = %v, want a stress problem", err)
	}
	select {
	case at := <-cancelled:
		if d := time.Since(at); d > 20*time.Second {
			t.Errorf("Image returned %s after its context was cancelled, want promptly", d)
		}
	default:
		t.Errorf("Image returned before the stress test was cancelled")
	}
	// Every container the check started is gone: a leaked one would still be
	// listed, with its (removed) bundle.
	out, err := exec.Command("runc", "list", "-f", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var list []struct{ ID, Bundle string }
	if err := json.Unmarshal(out, &list); err != nil && len(bytes.TrimSpace(out)) > 0 && string(bytes.TrimSpace(out)) != "null" {
		t.Fatalf("runc list: %v\n%s", err, out)
	}
	for _, c := range list {
		if _, err := os.Stat(c.Bundle); strings.HasPrefix(c.ID, "sqlite-graft-check-") && err != nil {
			t.Errorf("container %s left behind (bundle %s gone)", c.ID, c.Bundle)
		}
	}
}

// onMessage is a logrus hook that calls fn once when msg is logged.
type onMessage struct {
	msg string
	fn  func()
}

func (h onMessage) Levels() []logrus.Level { return logrus.AllLevels }

func (h onMessage) Fire(e *logrus.Entry) error {
	if e.Message == h.msg {
		h.fn()
	}
	return nil
}
