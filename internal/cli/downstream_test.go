package cli_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/distropkg"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

// muslPackageVersion is the sqlite-libs the test Alpine repository serves:
// the real musl-built SQLite of the musl test base, packaged as Alpine does.
const muslPackageVersion = testbase.MuslVersion + "-r0"

// alpineMirror serves an Alpine repository (real .apk and APKINDEX layout)
// holding sqlite-libs muslPackageVersion; it returns the repository URL and
// the .apk's path.
func alpineMirror(t testing.TB) (repository, apk string) {
	t.Helper()
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "alpine", "v3.21", "main")
	testbase.AlpineRepository(t, repoDir, testbase.SQLiteLibs(t, muslPackageVersion, testbuild.MuslBaseline(t)))
	return serveDir(t, dir) + "/alpine/v3.21/main", filepath.Join(repoDir, "x86_64", "sqlite-libs-"+muslPackageVersion+".apk")
}

// debianMirror serves Debian's real bookworm index and libsqlite3-0 .deb
// (fixtures.Debian) as a mirror; it returns the repository URL.
func debianMirror(t testing.TB) (string, fixtures.DebianArchive) {
	t.Helper()
	a := fixtures.Debian(t)
	return a.Repository(serveDir(t, a.Root)), a
}

func serveDir(t testing.TB, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// definition is the shipped definition name, its distro_sqlite set to the
// package version the test's mirror serves (a copy; "" keeps the file).
func definition(t testing.TB, name, distroSQLite string) string {
	t.Helper()
	file := filepath.Join("..", "..", "images", name+".yaml")
	if distroSQLite == "" {
		return file
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^distro_sqlite: .*$`)
	if !re.Match(b) {
		t.Fatalf("%s has no distro_sqlite line", file)
	}
	out := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(out, re.ReplaceAll(b, []byte("distro_sqlite: "+distroSQLite)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every shipped definition builds with --local on a test base shaped like
// its real base, with and without a SQLite of its own; each image is pushed
// to a real registry, pulled back and checked under runc as its user.
// Without a SQLite, the downstream check runs on a copy with the
// distribution's package (Alpine: an .apk in the real layout, from a local
// mirror or given with --distro-package; Debian: bookworm's real
// libsqlite3-0 from its real index on a local mirror). There it must catch
// a missing preload environment (glibc); on musl the graft holds without
// it (musl searches /usr/local/lib before /usr/lib).
// alpine-3.21 and debian-13 on bases with a SQLite are TestBuildMuslPushAndRebuild
// and TestBuildGlibcPush.
func TestBuildEveryDefinitionOnBothShapes(t *testing.T) {
	reg := registrytest.Start(t)
	musl := testbase.Push(t, testbase.Musl(t), reg.Host+"/library/alpine-like:3.21").String()
	muslBare := testbase.Push(t, testbase.MuslBare(t), reg.Host+"/library/alpine-like:3.21-bare").String()
	glibcBare := testbase.Push(t, testbase.GlibcBare(t), reg.Host+"/library/debian-like:12-bare").String()
	alpineRepo, apk := alpineMirror(t)
	debianRepo, deb := debianMirror(t)

	for _, tc := range []struct {
		def, shape, base string
		distroSQLite     string   // the mirror's package version, for a bare base
		extra            []string // how the package comes
	}{
		{"alpine-3.21", "bare", muslBare, muslPackageVersion, []string{"--distro-repository", alpineRepo}},
		{"alpine-3.22", "sqlite", musl, "", nil},
		{"alpine-3.22", "bare", muslBare, muslPackageVersion, []string{"--distro-package", apk}},
		{"python-3.13-alpine3.21", "sqlite", musl, "", nil},
		{"python-3.13-alpine3.21", "bare", muslBare, muslPackageVersion, []string{"--distro-repository", alpineRepo}},
		{"debian-13", "bare", glibcBare, deb.Version, []string{"--distro-repository", debianRepo}},
	} {
		t.Run(tc.def+"/"+tc.shape, func(t *testing.T) {
			t.Parallel()
			repo := reg.Host + "/sqlite-graft/" + tc.def + "-" + tc.shape
			args, resPath := buildArgs(t, definition(t, tc.def, tc.distroSQLite), tc.base, repo, tc.extra...)
			r := sqliteGraft(t, args...)
			if r.code != 0 {
				t.Fatalf("build = %d:\n%s", r.code, r.stderr)
			}
			res := readResult(t, resPath)
			kind := check.BaselineBase
			if tc.shape == "bare" {
				kind = check.BaselineNone
			}
			c := res.Checks
			switch {
			case len(c) != 1 || c[0].Baseline != string(kind):
				t.Errorf("result checks = %+v, want one, baseline %s", c, kind)
			case kind == check.BaselineNone && (c[0].Package == nil || c[0].Downstream != c[0].Package.Name+" "+tc.distroSQLite || len(c[0].Package.SHA256) != 64):
				t.Errorf("result checks = %+v, want the downstream package %s with its SHA-256", c, tc.distroSQLite)
			case kind == check.BaselineBase && (c[0].Package != nil || !strings.HasPrefix(c[0].Downstream, "not needed")):
				t.Errorf("result checks = %+v, want no downstream package (the base carries one)", c)
			}
			rep := pulledBack(t, reg, res.Reference, kind)
			if rep.Report.Version != "3.53.4" || rep.UID != 65532 || len(rep.Report.Mapped) != 1 || rep.BaselineKind != kind {
				t.Errorf("pulled-back image: version %s, uid %d, mapped %v, baseline %s; want 3.53.4, 65532, one copy, %s",
					rep.Report.Version, rep.UID, rep.Report.Mapped, rep.BaselineKind, kind)
			}
			prov, err := os.ReadFile(filepath.Join(filepath.Dir(resPath), provenance.FileName))
			if err != nil || !strings.Contains(string(prov), `"downstream_check"`) {
				t.Errorf("provenance: %v; want the downstream check recorded", err)
			}
			if kind == check.BaselineNone && !strings.Contains(string(prov), `"name": "check:`+c[0].Package.Name+`"`) {
				t.Errorf("provenance does not name the check's package %s", c[0].Package.Name)
			}
			// Once per libc: the other musl definitions' images differ only
			// in labels and tags.
			switch tc.def {
			case "alpine-3.21":
				preloadRemoved(t, reg, res.Reference, tc.def, tc.distroSQLite, apk)
			case "debian-13":
				preloadRemoved(t, reg, res.Reference, tc.def, tc.distroSQLite, deb.Deb)
			}
		})
	}
}

// preloadRemoved runs the downstream check on the pushed image with its
// preload environment removed, with the package the build fetched (read
// from its file: the fetch was the build's). The graft holds without it:
// musl searches /usr/local/lib first, and on glibc the image's
// /etc/ld.so.cache lists the graft. With that cache removed too, glibc binds
// the distribution's copy and the check fails, naming it.
func preloadRemoved(t *testing.T, reg *registrytest.Registry, ref, def, version, pkgFile string) {
	t.Helper()
	d, _ := name.NewDigest(ref)
	img, err := remote.Image(d, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	var env []string
	for _, kv := range cf.Config.Env {
		if !strings.HasPrefix(kv, "LD_PRELOAD=") && !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			env = append(env, kv)
		}
	}
	cf.Config.Env = env
	stripped, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	want := distropkg.Want{Format: distropkg.APK, Name: "sqlite-libs", Version: version, Arch: "x86_64"}
	if def == "debian-13" {
		want = distropkg.Want{Format: distropkg.Deb, Name: "libsqlite3-0", Version: version, Arch: "amd64"}
	}
	pkg, err := distropkg.Open(pkgFile, want)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := embeddedPin(t, "3.53.4")
	r, err := graft.CheckDownstream(t.Context(), stripped, pkg, check.ImageOptions{Want: &pin})
	if err != nil || !slices.Equal(r.Report.Mapped, []string{"/usr/local/lib/libsqlite3.so.3.53.4"}) {
		t.Errorf("downstream check without the preload environment (%s) = %v, want it to pass: the loader finds the graft first", def, err)
	}
	if def == "debian-13" {
		noCache, err := mutate.AppendLayers(stripped, testbase.MustLayer(t, testbase.Regular("/etc/.wh.ld.so.cache", 0o644, nil)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = graft.CheckDownstream(t.Context(), noCache, pkg, check.ImageOptions{Want: &pin})
		if err == nil || !strings.Contains(err.Error(), "sqlite_version() = "+testbase.GlibcVersion+", want 3.53.4") || !strings.Contains(err.Error(), "the grafted library /usr/local/lib/libsqlite3.so.3.53.4 is not among them") {
			t.Errorf("downstream check without the preload environment and the loader cache = %v, want the distribution's %s bound and named", err, testbase.GlibcVersion)
		}
	}
	if r != nil {
		t.Logf("%s without LD_PRELOAD/LD_LIBRARY_PATH: mapped %v, version %s", def, r.Report.Mapped, r.Report.Version)
	}
}

// A downstream check that cannot get its package, or gets a tampered one,
// stops the build before anything is written: no tag, no output directory.
// Opting out is recorded in the result and the provenance.
func TestBuildDownstreamFailures(t *testing.T) {
	reg := registrytest.Start(t)
	bare := testbase.Push(t, testbase.MuslBare(t), reg.Host+"/library/alpine-like:3.21-bare").String()
	repo := reg.Host + "/sqlite-graft/alpine"
	def := definition(t, "alpine-3.21", muslPackageVersion)

	// A mirror without the package.
	empty := serveDir(t, t.TempDir()) + "/alpine/v3.21/main"
	args, _ := buildArgs(t, def, bare, repo+":missing", "--distro-repository", empty)
	r := sqliteGraft(t, args...)
	for _, want := range []string{"the base carries no SQLite of its own", "APKINDEX.tar.gz: HTTP 404", "--distro-package FILE", "--skip-downstream-check"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("build with no package to be had = %d, stderr does not say %q:\n%s", r.code, want, r.stderr)
		}
	}
	tagAbsent(t, reg, repo+":missing")
	out := filepath.Join(t.TempDir(), "out")
	r = sqliteGraft(t, append([]string{"build", "--local", "--image", def, "--base", bare, "--from", moduleZip(t, "3.53.4"), "--output", out, "--distro-repository", empty}, cacheArgs(t)...)...)
	if _, err := os.Stat(out); r.code != 1 || !os.IsNotExist(err) {
		t.Errorf("build --output with no package = %d, %s: %v; want exit 1 and no output", r.code, out, err)
	}

	// A mirror whose .apk is not the one its index names.
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "alpine", "v3.21", "main")
	pkg := testbase.SQLiteLibs(t, muslPackageVersion, testbuild.MuslBaseline(t))
	testbase.AlpineRepository(t, repoDir, pkg)
	pkg.Files = append(pkg.Files, testbase.Regular("/usr/share/doc/sqlite-libs/extra", 0o644, []byte("not the indexed build\n")))
	other, sum, err := testbase.APK(pkg)
	if err != nil {
		t.Fatal(err)
	}
	file := "sqlite-libs-" + muslPackageVersion + ".apk"
	if err := os.WriteFile(filepath.Join(repoDir, "x86_64", file), other, 0o644); err != nil {
		t.Fatal(err)
	}
	args, _ = buildArgs(t, def, bare, repo+":tampered", "--distro-repository", serveDir(t, dir)+"/alpine/v3.21/main")
	r = sqliteGraft(t, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "/x86_64/"+file+": checksum of the control segment = "+sum+", want Q1") {
		t.Errorf("build with a tampered package = %d, want the file, actual (%s) and expected checksum named:\n%s", r.code, sum, r.stderr)
	}
	tagAbsent(t, reg, repo+":tampered")

	// A downstream check that fails: the package's library is not what its
	// version says (3.46.1 inside a package labelled 3.48.0-r4).
	mislabelled := t.TempDir()
	testbase.AlpineRepository(t, filepath.Join(mislabelled, "alpine", "v3.21", "main"), testbase.SQLiteLibs(t, "3.48.0-r4", testbuild.MuslBaseline(t)))
	args, _ = buildArgs(t, definition(t, "alpine-3.21", ""), bare, repo+":mislabelled", "--distro-repository", serveDir(t, mislabelled)+"/alpine/v3.21/main")
	r = sqliteGraft(t, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "downstream check, with sqlite-libs 3.48.0-r4 added") || !strings.Contains(r.stderr, "reports SQLite 3.46.1, want 3.48.0") || !strings.Contains(r.stderr, "nothing pushed") {
		t.Errorf("build whose downstream check fails = %d, want exit 1 naming the package and versions, nothing pushed:\n%s", r.code, r.stderr)
	}
	tagAbsent(t, reg, repo+":mislabelled")

	// Opting out: the build passes, and says so where it is recorded.
	args, resPath := buildArgs(t, def, bare, repo+":skipped", "--distro-repository", empty, "--skip-downstream-check")
	if r := sqliteGraft(t, args...); r.code != 0 {
		t.Fatalf("build --skip-downstream-check = %d:\n%s", r.code, r.stderr)
	}
	res := readResult(t, resPath)
	if len(res.Checks) != 1 || res.Checks[0].Baseline != "none" || !strings.HasPrefix(res.Checks[0].Downstream, "skipped: --skip-downstream-check") {
		t.Errorf("result checks = %+v, want the downstream check recorded as skipped", res.Checks)
	}
	prov, err := os.ReadFile(filepath.Join(filepath.Dir(resPath), provenance.FileName))
	if err != nil || !strings.Contains(string(prov), `"downstream_check": "skipped: --skip-downstream-check`) {
		t.Errorf("provenance: %v; want the opt-out recorded", err)
	}
}
