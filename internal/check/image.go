package check

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/childenv"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// ImageOptions say which finished image to check and what to expect of it.
type ImageOptions struct {
	// Image is the finished image: base, graft layer, config.
	Image v1.Image
	// Want is the pin the grafted SQLite must be; nil: the pin of the version
	// it reports (see Options.Want).
	Want *pins.Pin
	// Client is a command inside the image that prints the version of the
	// SQLite it gets through the base's own libsqlite3.so.0 (the first line of
	// its output; a line that is a source id is compared too). Nil: python3
	// -c 'import sqlite3;print(sqlite3.sqlite_version)' when the image has
	// /usr/bin/python3 or /usr/local/bin/python3 (a failure of that default is
	// a note, not a problem: the image may lack python's sqlite3 module), else
	// only the probe.
	Client []string
	// BaselineKind says what the probe is linked against: the base's own
	// library (BaselineBase, the default), none (BaselineNone: a base
	// without SQLite; the graft by its soname) or a distribution package
	// added to a throwaway copy of the image (BaselinePackage).
	BaselineKind BaselineKind
	// Baseline is the base's own library (BaselineBase) or the package's
	// (BaselinePackage), as a path inside the image. Default:
	// DistroLibrary, /usr/lib/libsqlite3.so.0 (musl) or
	// /usr/lib/<multiarch>/libsqlite3.so.0 (glibc). The probe is linked
	// against it, as distro programs are.
	Baseline string
	// BaselinePackage names the package of BaselinePackage, e.g.
	// "sqlite-libs 3.48.0-r4", for the report.
	BaselinePackage string
	// Graft is the grafted library inside the image; default
	// layer.LibraryPath. The one SQLite mapped must be this file.
	Graft string
	// Wrapper is a command prefix for the probe and the client, for images
	// built with preload: wrapper (e.g. {layer.WrapperPath}); nil for images
	// whose environment preloads the graft (preload: env).
	Wrapper []string
	// Stress runs the WAL stress test inside the image; nil skips it.
	Stress *StressOptions
	// Timeout bounds each run of the probe or the client in the image (the
	// base's code runs in each: a preload that never returns must not hang
	// the check); the stress test gets more for its rows. 0: DefaultRunTimeout.
	Timeout time.Duration
	Logger  logrus.FieldLogger
}

// ImageReport is what the checks found inside the image. Problems lists
// every failed check: those of the image (user, set-id files, client,
// preload) and those of Report (identity, features, mapped files, compile
// options, symbols, stress).
type ImageReport struct {
	Image string `json:"image"` // digest
	Libc  string `json:"libc"`
	// User is the image config's User; UID and GID are what the probe
	// process ran as, Env the environment it saw.
	User string   `json:"user"`
	UID  int      `json:"uid"`
	GID  int      `json:"gid"`
	Env  []string `json:"env"`
	// Client is the command run as the client, ClientVersion the version it
	// printed.
	Client        []string `json:"client,omitempty"`
	ClientVersion string   `json:"client_version,omitempty"`
	// BaselineKind is what the probe was linked against (ImageOptions),
	// BaselinePackage the package for BaselinePackage.
	BaselineKind    BaselineKind `json:"baseline_kind"`
	BaselinePackage string       `json:"baseline_package,omitempty"`
	// Report is the probe's view from inside the image: Lib and Baseline are
	// the real paths of the grafted and the base's library in the image,
	// Mapped the libsqlite3 files mapped in a process running as the image's
	// user under its environment, Stress the stress test run there.
	Report *Report `json:"report"`
	// BaseOptions are the compile options of the base's library (the probe
	// with the graft turned off); MissingOptions those the graft lacks.
	BaseOptions    []string `json:"base_options,omitempty"`
	MissingOptions []string `json:"missing_options,omitempty"`
	// Setuid lists the files with a set-user- or set-group-ID bit.
	Setuid   []string `json:"setuid,omitempty"`
	Problems []string `json:"problems,omitempty"`

	imageProblems []string
}

func (ir *ImageReport) problem(format string, args ...any) {
	ir.imageProblems = append(ir.imageProblems, fmt.Sprintf(format, args...))
}

// finish collects the problems and returns the error naming each.
func (ir *ImageReport) finish() error {
	ir.Problems = append(slices.Clone(ir.imageProblems), ir.Report.Problems...)
	if len(ir.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("image %s: %d check(s) failed:\n  - %s", ir.Image, len(ir.Problems), strings.Join(ir.Problems, "\n  - "))
}

// Image checks a finished image from inside, under a real OCI runtime: it
// writes the image to a temporary OCI layout, unpacks it with umoci into a
// runtime bundle (umoci turns the image config into the runtime config: user,
// environment, working directory) and runs a probe compiled on this machine,
// linked against the base's own libsqlite3.so.0 as distro programs are,
// with runc — as the image's user, under the image's environment. It proves:
//   - identity: the SQLite the probe (and the client) gets is the pinned
//     version and source id;
//   - one copy: exactly one libsqlite3 is mapped in that process, the grafted
//     one;
//   - a drop-in superset: the graft's compile options cover those of the
//     base's library (the probe run again with the graft turned off), its
//     exported symbols cover the base library's public API, and the feature
//     probes pass;
//   - the stress test loses no row (ImageOptions.Stress);
//   - hardening: no setuid/setgid files in the image, and the process does
//     not run as root.
//
// It needs root (umoci unpack, runc), umoci and runc, and the C compiler of
// the image's libc on this machine (cc, musl-gcc); the image must be for
// this machine's architecture. A glibc probe built here needs the image's
// glibc to be at least as new as this machine's.
//
// The report is returned even when a check fails; the error then names each
// failure.
func Image(ctx context.Context, opts ImageOptions) (*ImageReport, error) {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	if opts.Image == nil {
		return nil, fmt.Errorf("check: no image given")
	}
	digest, err := opts.Image.Digest()
	if err != nil {
		return nil, fmt.Errorf("check: image digest: %w", err)
	}
	cf, err := opts.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("check: image config: %w", err)
	}
	ir := &ImageReport{Image: digest.String(), User: cf.Config.User, Report: &Report{Features: map[string]bool{}}, BaselinePackage: opts.BaselinePackage}
	r := ir.Report
	log = log.WithField("image", ir.Image)
	// A check that cannot run is a failed check too.
	fail := func(err error) (*ImageReport, error) {
		ir.problem("%v", err)
		return ir, ir.finish()
	}
	if ir.BaselineKind, err = opts.baselineKind(); err != nil {
		return fail(err)
	}
	log = log.WithField("baseline", ir.BaselineKind)

	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		return fail(fmt.Errorf("the image is for %s/%s; this machine runs linux/%s images only", cf.OS, cf.Architecture, runtime.GOARCH))
	}
	if os.Geteuid() != 0 {
		return fail(fmt.Errorf("the image check needs root (umoci unpack keeps owners and set-id bits; runc runs the image's user)"))
	}
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		return fail(fmt.Errorf("umoci (Debian package umoci) unpacks the image for runc: %w", err))
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fail(fmt.Errorf("runc (Debian package runc) runs the checks inside the image: %w", err))
	}

	tmp, err := os.MkdirTemp("", "sqlite-graft-image-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	bundle, err := unpackImage(ctx, umoci, opts.Image, tmp)
	if err != nil {
		return fail(err)
	}
	root := rootfs(filepath.Join(bundle, "rootfs"))
	log.WithField("seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds())).Debug("image unpacked")

	libc, loader, err := root.libc()
	if err != nil {
		return fail(err)
	}
	ir.Libc, r.Libc = libc, libc
	log = log.WithField("libc", libc)
	log.WithField("loader", loader).Debug("libc detected")

	// Hardening: LD_PRELOAD is ignored for set-id programs, and a set-id
	// program is what turns a bug into a privilege escalation.
	setid, setgidDirs, err := root.setID()
	if err != nil {
		return fail(fmt.Errorf("walk the image's files: %w", err))
	}
	ir.Setuid = setid
	if len(setid) > 0 {
		ir.problem("set-id files in the image (the loader ignores LD_PRELOAD for them, and they are what makes a bug a privilege escalation): %s", strings.Join(setid, ", "))
	}
	if len(setgidDirs) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("set-group-ID directories (group inheritance, not privilege; not failed): %s", strings.Join(setgidDirs, " ")))
	}

	// The baseline library: the probe links it, as distro programs do
	// (none for a base without SQLite: see BaselineNone).
	baseline, real, baseELF, err := ir.baselineLibrary(root, opts, libc)
	if err != nil {
		return fail(err)
	}
	r.Baseline = real

	graft := opts.Graft
	if graft == "" {
		graft = layer.LibraryPath
	}
	var graftELF *elfInfo
	if r.Lib, err = root.resolve(graft); err != nil {
		r.Lib = ""
		ir.problem("no grafted library: %v", err)
	} else if graftELF, err = readELF(root.host(r.Lib)); err != nil {
		ir.problem("the grafted library %s: %v", r.Lib, err)
	} else {
		if graftELF.Libc != libc {
			ir.problem("the grafted library %s is a %s library in a %s image", r.Lib, graftELF.Libc, libc)
		}
		if graftELF.Soname != "libsqlite3.so.0" {
			ir.problem("the grafted library %s has soname %q, want libsqlite3.so.0", r.Lib, graftELF.Soname)
		}
	}

	// The probe, linked against a copy of the baseline library; with no
	// baseline, against a copy of the graft under its soname, so that
	// DT_NEEDED says libsqlite3.so.0 and the image's loader must find it.
	linkFrom := r.Baseline
	if ir.BaselineKind == BaselineNone {
		if linkFrom = r.Lib; graftELF == nil {
			return fail(fmt.Errorf("the base carries no SQLite and the grafted library is not usable: nothing to link the probe against"))
		}
	}
	link := filepath.Join(tmp, "link")
	if err := os.Mkdir(link, 0o755); err != nil {
		return fail(err)
	}
	if err := copyFile(root.host(linkFrom), filepath.Join(link, "libsqlite3.so.0")); err != nil {
		return fail(err)
	}
	probeDir := filepath.Join(tmp, "probe")
	if err := os.Mkdir(probeDir, 0o755); err != nil {
		return fail(err)
	}
	p, err := buildProbe(ctx, probeDir, libc, filepath.Join(link, "libsqlite3.so.0"))
	if err != nil {
		return fail(err)
	}
	c, err := newContainer(runc, bundle, p.bin)
	if err != nil {
		return fail(err)
	}
	defer c.cleanup()
	c.wrap, c.runTimeout = opts.Wrapper, opts.Timeout
	env := slices.Clone(cf.Config.Env)

	// Who the image's processes run as, and with what environment.
	var who whoami
	if err := runProbeJSON(ctx, c, env, &who, "whoami"); err != nil {
		return fail(fmt.Errorf("the probe does not run in the image: %w", err))
	}
	ir.UID, ir.GID, ir.Env = who.UID, who.GID, who.Env
	ir.checkUser(root, who)
	ir.checkPreloadEnv(env, libc)
	log.WithFields(logrus.Fields{"uid": who.UID, "gid": who.GID}).Debug("probe runs")

	// What the image's environment gives a program linked against the base's library.
	var in info
	if err := runProbeJSON(ctx, c, env, &in, "info"); err != nil {
		return fail(fmt.Errorf("the SQLite the image gives does not work in a real process: %w", err))
	}
	r.Version, r.SourceID, r.CompileOptions = in.Version, in.SourceID, in.CompileOptions
	r.Mapped = sqliteFilesIn(in.Mapped, r.Lib, r.Baseline)
	log.WithFields(logrus.Fields{"version": r.Version, "mapped": r.Mapped}).Info("SQLite in the image")
	r.checkMappedIn(r.Lib)
	r.checkIdentity(opts.Want)
	r.checkFeatures(&in)
	if r.Lib != "" && !slices.Contains(r.Mapped, r.Lib) && len(opts.Wrapper) == 0 && !hasEnv(env, "LD_PRELOAD") && root.isFile(layer.WrapperPath) {
		r.Notes = append(r.Notes, fmt.Sprintf("the image's environment preloads nothing and %s exists: an image built with preload: wrapper is checked with ImageOptions.Wrapper", layer.WrapperPath))
	}

	// The baseline library, with the graft turned off.
	if err := ir.compareWithBaseline(ctx, c, env, libc, baseline, &in, baseELF, graftELF); err != nil {
		return fail(err)
	}

	ir.runClient(ctx, c, root, env, opts)

	if opts.Stress != nil {
		log.WithField("stress", *opts.Stress).Info("stress test inside the image")
		sr, err := stress(ctx, c, env, *opts.Stress, log)
		r.Stress = sr
		if err != nil {
			r.problem("stress: %v", err)
		} else {
			r.checkStress()
		}
	}

	err = ir.finish()
	fields := logrus.Fields{"problems": len(ir.Problems), "seconds": fmt.Sprintf("%.2f", time.Since(start).Seconds())}
	if err != nil {
		log.WithFields(fields).Warn("image check failed")
	} else {
		log.WithFields(fields).Info("image check passed")
	}
	return ir, err
}

// unpackImage writes img to an OCI layout under dir and unpacks it with
// umoci into a runtime bundle, whose path it returns.
func unpackImage(ctx context.Context, umoci string, img v1.Image, dir string) (string, error) {
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
	return bundle, nil
}

// multiarch is Debian's library directory name for this architecture.
func multiarch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	case "arm":
		return "arm-linux-gnueabihf"
	case "ppc64le":
		return "powerpc64le-linux-gnu"
	case "s390x":
		return "s390x-linux-gnu"
	case "riscv64":
		return "riscv64-linux-gnu"
	}
	return "x86_64-linux-gnu"
}

func defaultBaseline(libc string) string {
	if libc == Musl {
		return "/usr/lib/libsqlite3.so.0"
	}
	return "/usr/lib/" + multiarch() + "/libsqlite3.so.0"
}

// baselineEnv is env with the graft turned off and the base's library
// bound: no preload variables of the image, then glibc preloads the base's
// library (replacing by soname); musl finds it first on LD_LIBRARY_PATH
// (musl searches /usr/local/lib, where the graft is, before /usr/lib by
// default), or preloads it when its name is not libsqlite3.so.0.
func baselineEnv(env []string, libc, baseline string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "LD_PRELOAD=") && !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			out = append(out, kv)
		}
	}
	if libc == Musl && path.Base(baseline) == "libsqlite3.so.0" {
		return append(out, "LD_LIBRARY_PATH="+path.Dir(baseline))
	}
	return append(out, "LD_PRELOAD="+baseline)
}

// unwrapped runs the probe without the image's wrapper.
type unwrapped struct{ c *container }

func (u unwrapped) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	return u.c.exec(ctx, env, append([]string{probeMount}, args...)...)
}

func (u unwrapped) scratch() (string, error) { return u.c.scratch() }

func (u unwrapped) timeout() time.Duration { return u.c.timeout() }

// whoami is what `probe whoami` reports.
type whoami struct {
	UID  int      `json:"uid"`
	EUID int      `json:"euid"`
	GID  int      `json:"gid"`
	EGID int      `json:"egid"`
	Env  []string `json:"env"`
}

// checkUser fails an image that runs as root, by its config or in fact, and
// one whose process does not run as the configured user.
func (ir *ImageReport) checkUser(root rootfs, who whoami) {
	uid, known := root.configUID(ir.User)
	switch {
	case ir.User == "":
		ir.problem("user is root: the image config sets no User, so processes run as root (uid %d in the container)", who.UID)
	case known && uid == 0:
		ir.problem("user is root: the image config's User is %q (uid 0)", ir.User)
	case who.UID == 0 || who.EUID == 0:
		ir.problem("user is root: the process ran as uid %d (euid %d) under the image config's User %q", who.UID, who.EUID, ir.User)
	case !known:
		ir.problem("user: the image config's User %q is not in the image's /etc/passwd", ir.User)
	case who.UID != uid:
		ir.problem("user: the process ran as uid %d, the image config's User %q is uid %d", who.UID, ir.User, uid)
	}
}

// checkPreloadEnv fails a musl image that preloads SQLite by absolute path:
// musl never compares sonames, so wherever the search path finds another
// libsqlite3.so.0 before the graft (LD_LIBRARY_PATH, /etc/ld-musl-*.path),
// that copy is mapped too.
func (ir *ImageReport) checkPreloadEnv(env []string, libc string) {
	if libc != Musl {
		return
	}
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "LD_PRELOAD=")
		if !ok {
			continue
		}
		for _, e := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ' ' || r == '\t' }) {
			if strings.HasPrefix(e, "/") && strings.HasPrefix(path.Base(e), "libsqlite3") {
				ir.problem("LD_PRELOAD=%s names SQLite by absolute path on musl: musl never compares sonames, so wherever the search path finds another libsqlite3.so.0 first (LD_LIBRARY_PATH, /etc/ld-musl-*.path) a second copy is mapped; preload %s by bare name with its directory first on LD_LIBRARY_PATH",
					v, path.Base(e))
			}
		}
	}
}

func hasEnv(env []string, name string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}

// sqliteFilesIn picks the SQLite libraries among the files mapped in a
// process inside the image: those whose name says libsqlite3, and the
// grafted and the base's library whatever their names.
func sqliteFilesIn(mapped []mappedFile, known ...string) []string {
	var out []string
	for _, m := range mapped {
		if strings.Contains(path.Base(m.Path), "libsqlite3") || (m.Path != "" && slices.Contains(known, m.Path)) {
			out = append(out, m.Path)
		}
	}
	return out
}

// checkMappedIn fails unless the grafted library is the one SQLite mapped.
func (r *Report) checkMappedIn(graft string) {
	if graft != "" && !slices.Contains(r.Mapped, graft) {
		r.problem("mapped libsqlite3 files = %v: the grafted library %s is not among them; the loader bound another copy", r.Mapped, graft)
	}
	if len(r.Mapped) > 1 {
		r.problem("mapped libsqlite3 files = %v: %d copies of SQLite in one process (sqlite.org howtocorrupt §2.3)", r.Mapped, len(r.Mapped))
	}
}

var sourceIDLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [0-9a-f]{40,}`)

// runClient runs the client inside the image as the image's user under its
// environment and compares what it prints with the pin.
func (ir *ImageReport) runClient(ctx context.Context, c *container, root rootfs, env []string, opts ImageOptions) {
	client, defaulted := opts.Client, false
	if len(client) == 0 {
		for _, py := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
			if root.isFile(py) {
				client, defaulted = []string{py, "-c", "import sqlite3;print(sqlite3.sqlite_version)"}, true
				break
			}
		}
	}
	if len(client) == 0 {
		return
	}
	ir.Client = client
	r := ir.Report
	out, err := c.run(ctx, env, append(slices.Clone(opts.Wrapper), client...)...)
	if err != nil {
		if defaulted {
			r.Notes = append(r.Notes, fmt.Sprintf("client: %v (python3 without its sqlite3 module is not a failure of the graft)", err))
		} else {
			ir.problem("client: %v", err)
		}
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	ir.ClientVersion = strings.TrimSpace(lines[0])
	want, wantID := r.Version, ""
	if opts.Want != nil {
		want, wantID = opts.Want.Version.String(), opts.Want.SourceID
	}
	if ir.ClientVersion != want {
		ir.problem("client %s prints SQLite %q, want %s", strings.Join(client, " "), ir.ClientVersion, want)
	}
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); sourceIDLine.MatchString(l) && wantID != "" && l != wantID {
			ir.problem("client %s prints source id %q, want %q", strings.Join(client, " "), l, wantID)
		}
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
