package check

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(t.Output())
	l.SetLevel(logrus.DebugLevel)
	return l
}

func pin(t *testing.T, version string) pins.Pin {
	t.Helper()
	f, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Lookup(pins.MustParseVersion(version))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hasProblem(r *Report, substr string) bool {
	return slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, substr) })
}

func sameFiles(t *testing.T, got []string, want ...string) bool {
	t.Helper()
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return isAnyOf(g, w) }) {
			return false
		}
	}
	return true
}

func TestReadELF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ path, libc string }{
		{SystemLibrary, Glibc},
		{testbuild.Library(t, "3.51.3", "glibc"), Glibc},
		{testbuild.Library(t, "3.51.3", "musl"), Musl},
	} {
		e, err := readELF(tc.path)
		if err != nil {
			t.Fatalf("readELF(%s) = %v", tc.path, err)
		}
		if e.Libc != tc.libc || e.Soname != "libsqlite3.so.0" || !e.Exports["sqlite3_open_v2"] || !e.Exports["sqlite3_version"] {
			t.Errorf("readELF(%s) = libc %s, soname %q, exports sqlite3_open_v2 %v, sqlite3_version %v; want %s, libsqlite3.so.0, true, true",
				tc.path, e.Libc, e.Soname, e.Exports["sqlite3_open_v2"], e.Exports["sqlite3_version"], tc.libc)
		}
		if e.Exports["malloc"] {
			t.Errorf("readELF(%s).Exports has malloc, an import", tc.path)
		}
	}
	// /bin/sh is ET_DYN too (PIE), but no library.
	if _, err := readELF("/bin/sh"); err == nil || !strings.Contains(err.Error(), "executable") {
		t.Errorf("readELF(/bin/sh) = %v, want: an executable, not a shared library", err)
	}
}

// Debian's library exports SQLite's internal functions too; only the public
// API must be matched, and the recipe's build has all of Debian's.
func TestCompareSymbols(t *testing.T) {
	t.Parallel()
	deb, err := readELF(SystemLibrary)
	if err != nil {
		t.Fatal(err)
	}
	built, err := readELF(testbuild.Library(t, "3.51.3", "glibc"))
	if err != nil {
		t.Fatal(err)
	}
	if missing, other := compareSymbols(deb.Exports, built.Exports); len(missing) != 0 || !slices.Contains(other, "sqlite3Malloc") || slices.Contains(other, "sqlite3changeset_apply") {
		t.Errorf("compareSymbols(debian, 3.51.3) = missing %v, other has sqlite3Malloc %v, sqlite3changeset_apply %v; want none, true, false",
			missing, slices.Contains(other, "sqlite3Malloc"), slices.Contains(other, "sqlite3changeset_apply"))
	}
	if built.Exports["sqlite3Malloc"] {
		t.Errorf("readELF(3.51.3).Exports has sqlite3Malloc: the amalgamation should keep internals static")
	}
}

// The fixed release, built by the recipe for glibc, passes every check
// against Debian's library, including the stress test, with exactly one
// SQLite mapped: the preload replaced the copy the client links.
func TestGlibcLibraryPasses(t *testing.T) {
	t.Parallel()
	lib := testbuild.Library(t, "3.51.3", "glibc")
	st := DefaultStress()
	r, err := Library(context.Background(), Options{Lib: lib, Baseline: SystemLibrary, Stress: &st, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Library(3.51.3 glibc) = %v", err)
	}
	want := pin(t, "3.51.3")
	if r.Libc != Glibc || r.Version != "3.51.3" || r.SourceID != want.SourceID || r.BaselineVersion != "3.40.1" {
		t.Errorf("Library(3.51.3 glibc) = libc %s, version %s, source id %q, baseline %s; want glibc, 3.51.3, %q, 3.40.1",
			r.Libc, r.Version, r.SourceID, r.BaselineVersion, want.SourceID)
	}
	if !sameFiles(t, r.Mapped, lib) {
		t.Errorf("Library(3.51.3 glibc).Mapped = %v, want only %s", r.Mapped, lib)
	}
	for _, f := range featureProbes {
		if !r.Features[f] {
			t.Errorf("Library(3.51.3 glibc).Features[%s] = false, want true", f)
		}
	}
	if len(r.MissingOptions) != 0 || len(r.MissingSymbols) != 0 {
		t.Errorf("Library(3.51.3 glibc) missing options %v, symbols %v; want none", r.MissingOptions, r.MissingSymbols)
	}
	s := r.Stress
	if s == nil || s.Lost != 0 || s.Integrity != "ok" || s.Committed != st.Processes*st.Threads*st.RowsPerThread || s.Found != s.Committed {
		t.Fatalf("Library(3.51.3 glibc).Stress = %+v, want all %d rows found, integrity ok", s, st.Processes*st.Threads*st.RowsPerThread)
	}
	for _, m := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
		if s.Checkpoints[m]+s.CheckpointsBusy[m] == 0 {
			t.Errorf("Library(3.51.3 glibc).Stress: no %s checkpoint ran", m)
		}
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("report:\n%s", b)
}

// The release with the WAL-reset bug is refused with the reason.
func TestVulnerableRefused(t *testing.T) {
	t.Parallel()
	lib := testbuild.Library(t, "3.51.2", "glibc")
	r, err := Library(context.Background(), Options{Lib: lib, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "WAL-reset") {
		t.Fatalf("Library(3.51.2) = %v, want refused for the WAL-reset bug", err)
	}
	if r.Version != "3.51.2" || !hasProblem(r, "SQLite 3.51.2 is affected by the WAL-reset bug") {
		t.Errorf("Library(3.51.2) = version %s, problems %q; want 3.51.2 refused", r.Version, r.Problems)
	}
}

// A library whose source id differs from the pin's fails identity, and only identity.
func TestSourceIDMismatch(t *testing.T) {
	t.Parallel()
	lib := testbuild.Library(t, "3.51.3", "glibc")
	want := pin(t, "3.51.3")
	want.SourceID = "2026-03-13 10:38:09 " + strings.Repeat("0", 64)
	r, err := Library(context.Background(), Options{Lib: lib, Want: &want, Logger: testLogger(t)})
	if err == nil || len(r.Problems) != 1 || !hasProblem(r, "identity: sqlite_source_id()") {
		t.Fatalf("Library(3.51.3, pin with another source id) = %v, want one identity problem", err)
	}
	other := pin(t, "3.53.4")
	if _, err := Library(context.Background(), Options{Lib: lib, Want: &other}); err == nil || !strings.Contains(err.Error(), "sqlite_version() = 3.51.3, want 3.53.4") {
		t.Errorf("Library(3.51.3, pin 3.53.4) = %v, want a version mismatch", err)
	}
}

// Debian's own library is what the graft replaces: checked as if it were the
// build, with the recipe's 3.51.3 as baseline, it fails every way it should.
func TestDistroLibraryFails(t *testing.T) {
	t.Parallel()
	built := testbuild.Library(t, "3.51.3", "glibc")
	r, err := Library(context.Background(), Options{Lib: SystemLibrary, Baseline: built, Logger: testLogger(t)})
	if err == nil {
		t.Fatalf("Library(Debian 3.40.1, baseline 3.51.3) = nil error, want failures")
	}
	for _, want := range []string{
		"refused: SQLite 3.40.1 is affected by the WAL-reset bug",
		"feature geopoly: no such function: geopoly_area",
		"compile option ENABLE_GEOPOLY: the baseline has it, the library does not",
		"exported symbols: the baseline exports",
	} {
		if !hasProblem(r, want) {
			t.Errorf("Library(Debian 3.40.1).Problems = %q, want one containing %q", r.Problems, want)
		}
	}
	// Functions added after 3.40.1 are what a program built against the newer
	// library would fail to find.
	for _, sym := range []string{"sqlite3_set_clientdata", "sqlite3_setlk_timeout"} {
		if !slices.Contains(r.MissingSymbols, sym) {
			t.Errorf("Library(Debian 3.40.1).MissingSymbols = %v, want %s", r.MissingSymbols, sym)
		}
	}
	t.Logf("problems:\n%s", strings.Join(r.Problems, "\n"))
	if !sameFiles(t, r.Mapped, SystemLibrary) {
		t.Errorf("Library(Debian 3.40.1).Mapped = %v, want only %s", r.Mapped, SystemLibrary)
	}
}

// On musl the client links the distro's library and finds the build first
// on the search path: one copy mapped, every check passes.
func TestMuslLibraryPasses(t *testing.T) {
	t.Parallel()
	lib := testbuild.Library(t, "3.51.3", "musl")
	base := testbuild.MuslBaseline(t)
	st := DefaultStress()
	r, err := Library(context.Background(), Options{Lib: lib, Baseline: base, Stress: &st, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Library(3.51.3 musl) = %v", err)
	}
	if r.Libc != Musl || r.Version != "3.51.3" || r.BaselineVersion != "3.46.1" {
		t.Errorf("Library(3.51.3 musl) = libc %s, version %s, baseline %s; want musl, 3.51.3, 3.46.1", r.Libc, r.Version, r.BaselineVersion)
	}
	if !sameFiles(t, r.Mapped, lib) {
		t.Errorf("Library(3.51.3 musl).Mapped = %v, want only %s", r.Mapped, lib)
	}
	if s := r.Stress; s.Lost != 0 || s.Integrity != "ok" || s.Found != st.Processes*st.Threads*st.RowsPerThread {
		t.Errorf("Library(3.51.3 musl).Stress = %+v, want all %d rows found, integrity ok", s, st.Processes*st.Threads*st.RowsPerThread)
	}
	t.Logf("notes:\n%s\nstress: %+v", strings.Join(r.Notes, "\n"), *r.Stress)
}

// DESIGN.md's loader claim, in a real musl process linked against the
// distro's libsqlite3.so.0: an absolute-path LD_PRELOAD of the build maps
// both files (musl never compares sonames), while the build found by bare
// name on the search path is the only one mapped.
func TestMuslAbsolutePreloadMapsTwoCopies(t *testing.T) {
	t.Parallel()
	lib := testbuild.Library(t, "3.51.3", "musl")
	base := testbuild.MuslBaseline(t)
	ctx := context.Background()
	p, err := buildProbe(ctx, t.TempDir(), Musl, base)
	if err != nil {
		t.Fatal(err)
	}
	// The distro's library where the loader looks, as /usr/lib is on Alpine.
	distro, err := p.env(base)
	if err != nil {
		t.Fatal(err)
	}
	in, err := p.info(ctx, append(distro, "LD_PRELOAD="+lib))
	if err != nil {
		t.Fatal(err)
	}
	twoCopies := sqliteFiles(in.Mapped, lib, base)
	if !sameFiles(t, twoCopies, lib, base) {
		t.Errorf("musl, LD_PRELOAD=%s: mapped %v, want exactly the build and the distro's library", lib, twoCopies)
	}
	// Everything binds to the preload, which is what makes the second copy
	// dangerous rather than visible.
	if in.Version != "3.51.3" {
		t.Errorf("musl, absolute-path LD_PRELOAD: sqlite_version() = %s, want 3.51.3", in.Version)
	}

	env, err := p.env(lib)
	if err != nil {
		t.Fatal(err)
	}
	in, err = p.info(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := sqliteFiles(in.Mapped, lib, base); !sameFiles(t, got, lib) || in.Version != "3.51.3" {
		t.Errorf("musl, build first on LD_LIBRARY_PATH: mapped %v, version %s; want only %s, 3.51.3", got, in.Version, lib)
	}

	// What the absolute-path preload mapped fails the check.
	r := &Report{Mapped: twoCopies}
	r.checkMapped(lib)
	if !hasProblem(r, "2 copies of SQLite in one process") {
		t.Errorf("checkMapped(%v) problems = %q, want two copies reported", r.Mapped, r.Problems)
	}
}

// A library that is not there, or not a library, is a failed check, not a panic.
func TestNotALibrary(t *testing.T) {
	t.Parallel()
	junk := filepath.Join(t.TempDir(), "libsqlite3.so.0")
	if err := os.WriteFile(junk, []byte("not ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Library(context.Background(), Options{Lib: junk})
	if err == nil || !hasProblem(r, "not a usable shared library") {
		t.Errorf("Library(junk) = %v, want: not a usable shared library", err)
	}
	// A musl baseline says nothing about a glibc build.
	lib, base := testbuild.Library(t, "3.51.3", "glibc"), testbuild.MuslBaseline(t)
	if _, err := Library(context.Background(), Options{Lib: lib, Baseline: base}); err == nil || !strings.Contains(err.Error(), "is a musl library, the library is glibc") {
		t.Errorf("Library(glibc, musl baseline) = %v, want a libc mismatch", err)
	}
}
