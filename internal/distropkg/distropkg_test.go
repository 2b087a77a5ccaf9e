package distropkg_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/distropkg"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

// serve serves dir over HTTP on the loopback interface, as a mirror would.
func serve(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

func debWant(a fixtures.DebianArchive) distropkg.Want {
	return distropkg.Want{Format: distropkg.Deb, Name: a.Package, Version: a.Version, Arch: "amd64"}
}

// Debian's real bookworm index and libsqlite3-0 .deb, served from a local
// mirror: found at the pinned version, verified, its library located, and
// its files added to an image as one layer.
func TestFetchDebian(t *testing.T) {
	t.Parallel()
	a := fixtures.Debian(t)
	p, err := distropkg.Fetch(t.Context(), a.Repository(serve(t, a.Root)), debWant(a), nil)
	if err != nil {
		t.Fatalf("Fetch(%s %s) = %v", a.Package, a.Version, err)
	}
	if p.SHA256 != a.SHA256 || p.Library != "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0" || !strings.HasSuffix(p.Index, "/binary-amd64/Packages.xz") {
		t.Errorf("package sha256 %s, library %s, index %s; want %s, /usr/lib/x86_64-linux-gnu/libsqlite3.so.0, .../binary-amd64/Packages.xz", p.SHA256, p.Library, p.Index, a.SHA256)
	}
	if len(p.Verified) < 2 || !strings.Contains(p.Verified[0], "SHA256 "+a.SHA256) {
		t.Errorf("Verified = %q, want the index's SHA256 first", p.Verified)
	}
	img, err := p.AddTo(testbase.GlibcBare(t))
	if err != nil {
		t.Fatal(err)
	}
	lib := testbase.ReadFile(t, img, "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6")
	if len(lib) < 100000 || !bytes.HasPrefix(lib, []byte("\x7fELF")) {
		t.Errorf("the package's library in the image: %d bytes", len(lib))
	}
}

// An Alpine repository in the real layout (signed .apk with .PKGINFO and
// datahash, APKINDEX with C: checksums), served from a local mirror.
func TestFetchAlpine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testbase.AlpineRepository(t, dir, testbase.SQLiteLibs(t, "3.46.1-r0", testbuild.MuslBaseline(t)))
	want := distropkg.Want{Format: distropkg.APK, Name: "sqlite-libs", Version: "3.46.1-r0", Arch: "x86_64"}
	p, err := distropkg.Fetch(t.Context(), serve(t, dir), want, nil)
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	if p.Library != "/usr/lib/libsqlite3.so.0" || !strings.HasSuffix(p.Origin, "/x86_64/sqlite-libs-3.46.1-r0.apk") || len(p.Verified) != 2 {
		t.Errorf("library %s, origin %s, verified %q", p.Library, p.Origin, p.Verified)
	}
	img, err := p.AddTo(testbase.MuslBare(t))
	if err != nil {
		t.Fatal(err)
	}
	musl, _ := os.ReadFile(testbuild.MuslBaseline(t))
	if got := testbase.ReadFile(t, img, "/usr/lib/libsqlite3.so.0.8.6"); !bytes.Equal(got, musl) {
		t.Errorf("the package's library in the image differs from the one packaged (%d, %d bytes)", len(got), len(musl))
	}

	// Given by hand: the file's own metadata must name the pinned package.
	file := filepath.Join(dir, "x86_64", "sqlite-libs-3.46.1-r0.apk")
	if p, err := distropkg.Open(file, want); err != nil || p.SHA256 != sha256File(t, file) {
		t.Errorf("Open(%s) = %+v, %v", file, p, err)
	}
	other := want
	other.Version = "3.48.0-r4"
	if _, err := distropkg.Open(file, other); err == nil || !strings.Contains(err.Error(), file+`: .PKGINFO: version "3.46.1-r0", want "3.48.0-r4"`) {
		t.Errorf("Open(%s, want 3.48.0-r4) = %v, want the file, actual and expected version named", file, err)
	}
}

// A package that is not what the index says is refused, naming the file,
// the expected and the actual value.
func TestTampered(t *testing.T) {
	t.Parallel()
	musl := testbuild.MuslBaseline(t)
	want := distropkg.Want{Format: distropkg.APK, Name: "sqlite-libs", Version: "3.46.1-r0", Arch: "x86_64"}

	t.Run("apk-checksum", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		testbase.AlpineRepository(t, dir, testbase.SQLiteLibs(t, "3.46.1-r0", musl))
		// Another build of the same name and version replaces the file.
		pkg := testbase.SQLiteLibs(t, "3.46.1-r0", musl)
		pkg.Files = append(pkg.Files, testbase.Regular("/usr/share/doc/extra", 0o644, []byte("x")))
		apk, sum, err := testbase.APK(pkg)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "x86_64", "sqlite-libs-3.46.1-r0.apk"), apk, 0o644)
		_, err = distropkg.Fetch(t.Context(), serve(t, dir), want, nil)
		if err == nil || !strings.Contains(err.Error(), "/x86_64/sqlite-libs-3.46.1-r0.apk: checksum of the control segment = "+sum+", want Q1") {
			t.Errorf("Fetch(replaced .apk) = %v, want the file, actual %s and expected checksum named", err, sum)
		}
	})
	t.Run("apk-datahash", func(t *testing.T) {
		t.Parallel()
		// The control segment (and so C:) of one build, the data of another.
		a, _, err := testbase.APK(testbase.SQLiteLibs(t, "3.46.1-r0", musl))
		if err != nil {
			t.Fatal(err)
		}
		pkg := testbase.SQLiteLibs(t, "3.46.1-r0", musl)
		pkg.Files = append(pkg.Files, testbase.Regular("/usr/share/doc/extra", 0o644, []byte("x")))
		b, _, err := testbase.APK(pkg)
		if err != nil {
			t.Fatal(err)
		}
		mixed := append(append([]byte{}, a[:dataStart(t, a)]...), b[dataStart(t, b):]...)
		file := filepath.Join(t.TempDir(), "sqlite-libs-3.46.1-r0.apk")
		os.WriteFile(file, mixed, 0o644)
		if _, err := distropkg.Open(file, want); err == nil || !strings.Contains(err.Error(), file+": SHA-256 of the data segment = ") || !strings.Contains(err.Error(), "(.PKGINFO datahash)") {
			t.Errorf("Open(mixed .apk) = %v, want the data segment's hash mismatch named", err)
		}
	})
	t.Run("deb-sha256", func(t *testing.T) {
		t.Parallel()
		a := fixtures.Debian(t)
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(a.Root)); err != nil {
			t.Fatal(err)
		}
		deb := filepath.Join(dir, strings.TrimPrefix(a.Deb, a.Root))
		b, _ := os.ReadFile(deb)
		b[len(b)-100] ^= 1
		os.WriteFile(deb, b, 0o644)
		_, err := distropkg.Fetch(t.Context(), a.Repository(serve(t, dir)), debWant(a), nil)
		if err == nil || !strings.Contains(err.Error(), filepath.Base(a.Deb)+": SHA-256 = ") || !strings.Contains(err.Error(), "want "+a.SHA256) {
			t.Errorf("Fetch(tampered .deb) = %v, want the file, actual and expected SHA-256 named", err)
		}
	})
	t.Run("deb-by-hand", func(t *testing.T) {
		t.Parallel()
		a := fixtures.Debian(t)
		w := debWant(a)
		w.Version = "3.46.1-7+deb13u2"
		if _, err := distropkg.Open(a.Deb, w); err == nil || !strings.Contains(err.Error(), a.Deb+`: control: version "`+a.Version+`", want "3.46.1-7+deb13u2"`) {
			t.Errorf("Open(bookworm .deb, want trixie's version) = %v", err)
		}
		if p, err := distropkg.Open(a.Deb, debWant(a)); err != nil || p.SHA256 != a.SHA256 || p.Library != "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0" {
			t.Errorf("Open(%s) = %+v, %v", a.Deb, p, err)
		}
	})
	t.Run("version-gone", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		testbase.AlpineRepository(t, dir, testbase.SQLiteLibs(t, "3.46.1-r0", musl))
		w := want
		w.Version = "3.48.0-r4"
		_, err := distropkg.Fetch(t.Context(), serve(t, dir), w, nil)
		if err == nil || !strings.Contains(err.Error(), "no sqlite-libs 3.48.0-r4 in the index (it has sqlite-libs 3.46.1-r0)") {
			t.Errorf("Fetch(a version not in the index) = %v, want the versions there named", err)
		}
	})
}

// dataStart is where an .apk's data segment (its last gzip member) begins.
func dataStart(t *testing.T, apk []byte) int {
	t.Helper()
	br := bytes.NewReader(apk)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	start := 0
	for {
		starts = append(starts, start)
		zr.Multistream(false)
		io.Copy(io.Discard, zr)
		start = len(apk) - br.Len()
		if zr.Reset(br) == io.EOF {
			return starts[len(starts)-1]
		}
	}
}

func sha256File(t *testing.T, file string) string {
	t.Helper()
	p, err := distropkg.Open(file, distropkg.Want{Format: distropkg.APK, Name: "sqlite-libs", Version: "3.46.1-r0", Arch: "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	return p.SHA256
}

func TestArch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    distropkg.Format
		p    string
		want string
	}{{distropkg.APK, "linux/amd64", "x86_64"}, {distropkg.APK, "linux/arm64", "aarch64"}, {distropkg.APK, "linux/arm/v7", "armv7"},
		{distropkg.Deb, "linux/amd64", "amd64"}, {distropkg.Deb, "linux/arm/v7", "armhf"}, {distropkg.Deb, "linux/ppc64le", "ppc64el"}} {
		p, _ := v1.ParsePlatform(tc.p)
		if got, err := distropkg.Arch(tc.f, *p); err != nil || got != tc.want {
			t.Errorf("Arch(%s, %s) = %q, %v; want %q", tc.f, tc.p, got, err, tc.want)
		}
	}
	if _, err := distropkg.IndexURL(distropkg.Deb, "https://deb.debian.org/debian", "amd64"); err == nil {
		t.Error("IndexURL(Debian, no dists/suite/component) = nil error")
	}
	_ = context.Background
}
