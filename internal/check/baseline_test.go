package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

// bare is b on the base without a SQLite of its own.
func (b testBase) bare() testBase {
	switch b.libc {
	case Musl:
		b.img = testbase.MuslBare
	default:
		b.img = testbase.GlibcBare
	}
	return b
}

// packageFiles is what the distribution's SQLite package puts in the image,
// for the downstream case: the same library the full test base carries.
func (b testBase) packageFiles(t *testing.T) []testbase.File {
	t.Helper()
	lib := testbuild.MuslBaseline(t)
	if b.libc == Glibc {
		real, err := filepath.EvalSymlinks(testbase.GlibcLibrary)
		if err != nil {
			t.Fatal(err)
		}
		lib = real
	}
	data, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	return []testbase.File{
		testbase.Regular(filepath.Dir(b.lib)+"/libsqlite3.so.0.8.6", 0o644, data),
		testbase.Symlink(b.lib, "libsqlite3.so.0.8.6"),
	}
}

// A base without a SQLite of its own is checked as such: the probe, linked
// against the soname alone, gets the graft and nothing else; the stress test
// runs; there is nothing to compare compile options with, and the report
// says so.
func TestImageBaselineNone(t *testing.T) {
	t.Parallel()
	for _, b := range testBases {
		t.Run(b.libc, func(t *testing.T) {
			t.Parallel()
			st := smallStress
			r, err := b.bare().check(t, graft{stress: &st, baselineKind: BaselineNone})
			if err != nil {
				t.Fatalf("Image(bare %s + graft, baseline none) = %v", b.libc, err)
			}
			rep := r.Report
			if r.BaselineKind != BaselineNone || rep.Baseline != "" || rep.Version != "3.51.3" || !slices.Equal(rep.Mapped, []string{graftedFile}) {
				t.Errorf("baseline %s %q, version %s, mapped %v; want none, \"\", 3.51.3, only %s", r.BaselineKind, rep.Baseline, rep.Version, rep.Mapped, graftedFile)
			}
			if len(r.BaseOptions) != 0 || rep.BaselineVersion != "" || rep.Stress == nil || rep.Stress.Lost != 0 || r.UID != 65532 {
				t.Errorf("base options %v, baseline version %q, stress %+v, uid %d; want none, \"\", a run losing nothing, 65532", r.BaseOptions, rep.BaselineVersion, rep.Stress, r.UID)
			}
			if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "compared in the downstream check") }) {
				t.Errorf("notes %q, want the downstream comparison named", rep.Notes)
			}
		})
	}
}

// The baseline is never guessed: a bare base checked against its own
// library fails and names the other kinds; a base with a SQLite checked as
// bare fails and names its library.
func TestImageBaselineMismatch(t *testing.T) {
	t.Parallel()
	b := testBases[0]
	t.Run("bare-as-base", func(t *testing.T) {
		t.Parallel()
		_, err := b.bare().check(t, graft{baselineKind: BaselineBase})
		if err == nil || !strings.Contains(err.Error(), testbase.MuslLibrary+" in the image: no such file") || !strings.Contains(err.Error(), "baseline none") {
			t.Errorf("Image(bare base, baseline base) = %v, want the missing %s and baseline none named", err, testbase.MuslLibrary)
		}
	})
	t.Run("full-as-bare", func(t *testing.T) {
		t.Parallel()
		_, err := b.check(t, graft{baselineKind: BaselineNone})
		if err == nil || !strings.Contains(err.Error(), "carries a SQLite of its own ("+testbase.MuslLibrary) {
			t.Errorf("Image(base with SQLite, baseline none) = %v, want its own library named", err)
		}
	})
	t.Run("package-unnamed", func(t *testing.T) {
		t.Parallel()
		_, err := b.check(t, graft{baselineKind: BaselinePackage})
		if err == nil || !strings.Contains(err.Error(), "name the package") {
			t.Errorf("Image(baseline package, none named) = %v, want an error", err)
		}
	})
}

// The downstream case: the distribution's package added to a copy of the
// image built on a bare base. With the image's environment, a program
// linked against the package's library gets the graft, and the graft is a
// superset of that library. Without the preload environment, glibc binds
// the package's copy (no ld.so.cache, so the multiarch directory comes
// first) and the check fails; musl searches /usr/local/lib before /usr/lib,
// so the graft still holds there.
func TestImageBaselinePackage(t *testing.T) {
	t.Parallel()
	noPreload := func(c *v1.Config) { c.Env = []string{testbase.PathEnv} }
	for _, b := range testBases {
		t.Run(b.libc, func(t *testing.T) {
			t.Parallel()
			pkgName := "distro-sqlite " + b.version
			g := graft{extra: b.packageFiles(t), baselineKind: BaselinePackage, baseline: b.lib, baselinePkg: pkgName}
			r, err := b.bare().check(t, g)
			if err != nil {
				t.Fatalf("Image(bare %s + graft + package) = %v", b.libc, err)
			}
			rep := r.Report
			if r.BaselineKind != BaselinePackage || r.BaselinePackage != pkgName || rep.BaselineVersion != b.version || len(r.MissingOptions) != 0 || len(rep.MissingSymbols) != 0 {
				t.Errorf("baseline %s %q version %s, missing options %v symbols %v; want package %q %s, none, none",
					r.BaselineKind, r.BaselinePackage, rep.BaselineVersion, r.MissingOptions, rep.MissingSymbols, pkgName, b.version)
			}
			if !slices.Equal(rep.Mapped, []string{graftedFile}) || rep.Version != "3.51.3" {
				t.Errorf("mapped %v, version %s; want only %s, 3.51.3", rep.Mapped, rep.Version, graftedFile)
			}

			g.config = noPreload
			r, err = b.bare().check(t, g)
			switch b.libc {
			case Glibc:
				distro := filepath.Dir(b.lib) + "/libsqlite3.so.0.8.6"
				if err == nil || !hasImageProblem(r, "sqlite_version() = "+b.version+", want 3.51.3") || !slices.Contains(r.Report.Mapped, distro) {
					t.Errorf("Image(glibc, package, no preload) = %v, mapped %v; want the package's %s bound and named", err, r.Report.Mapped, distro)
				}
			case Musl:
				if err != nil || !slices.Equal(r.Report.Mapped, []string{graftedFile}) {
					t.Errorf("Image(musl, package, no preload) = %v, mapped %v; want the graft alone (musl searches /usr/local/lib first)", err, r.Report.Mapped)
				}
			}
			t.Logf("%s without the preload environment: mapped %v, version %s", b.libc, r.Report.Mapped, r.Report.Version)
		})
	}
}
