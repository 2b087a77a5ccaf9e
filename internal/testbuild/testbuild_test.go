package testbuild_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

// The variants every other package relies on build, with the soname and libc
// the recipe promises, and the shell links the library instead of embedding it.
func TestVariants(t *testing.T) {
	for _, tc := range []struct{ path, libc string }{
		{testbuild.Library(t, "3.51.3", "glibc"), "libc.so.6"},
		{testbuild.Library(t, "3.51.3", "musl"), "libc.so"},
	} {
		f, err := elf.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		soname, _ := f.DynString(elf.DT_SONAME)
		needed, _ := f.DynString(elf.DT_NEEDED)
		f.Close()
		if !slices.Equal(soname, []string{"libsqlite3.so.0"}) {
			t.Errorf("%s: DT_SONAME = %v, want [libsqlite3.so.0]", tc.path, soname)
		}
		if !slices.Contains(needed, tc.libc) {
			t.Errorf("%s: DT_NEEDED = %v, want %s", tc.path, needed, tc.libc)
		}
	}
	dir := testbuild.Shell(t, "glibc")
	f, err := elf.Open(filepath.Join(dir, "sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	needed, _ := f.DynString(elf.DT_NEEDED)
	if !slices.Contains(needed, "libsqlite3.so.0") {
		t.Errorf("shell DT_NEEDED = %v, want libsqlite3.so.0", needed)
	}
	syms, _ := f.DynamicSymbols()
	for _, s := range syms {
		if s.Name == "sqlite3_open_v2" && s.Section != elf.SHN_UNDEF {
			t.Errorf("shell defines sqlite3_open_v2 itself: it embeds a second SQLite")
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "sqlite3")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("shell not executable: %v %v", st, err)
	}
}

// The library carries its ELF package note where binary scanners look.
func TestPackageNote(t *testing.T) {
	out, err := exec.Command("readelf", "-n", testbuild.Library(t, "3.51.3", "musl")).CombinedOutput()
	if err != nil {
		t.Fatalf("readelf -n: %v %s", err, out)
	}
	for _, want := range []string{".note.package", "FDO_PACKAGING_METADATA", `"name":"sqlite"`, `"version":"3.51.3"`, `"purl":"pkg:generic/sqlite@3.51.3"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("readelf -n lacks %s:\n%s", want, out)
		}
	}
}
