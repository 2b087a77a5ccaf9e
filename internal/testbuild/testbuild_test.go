package testbuild_test

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
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
