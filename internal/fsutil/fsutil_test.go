package fsutil_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "result.json")
	for _, data := range []string{"first\n", "second\n"} {
		if err := fsutil.WriteFileAtomic(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		if string(got) != data || st.Mode().Perm() != 0o644 {
			t.Errorf("WriteFileAtomic = %q %v, want %q 0644", got, st.Mode(), data)
		}
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "missing", "x"), []byte("x"), 0o644); err == nil {
		t.Errorf("WriteFileAtomic into a missing directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only result.json (no temporary files)", dir, len(entries))
	}
}

func TestInstallAllOrNothing(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o755)
	if err := fsutil.Install(src, out, []string{"a", "missing"}); err == nil {
		t.Fatal("Install with a missing file succeeded")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("after a failed Install, out holds %v, want nothing", entries)
	}
	if err := fsutil.Install(src, out, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(out, "a")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("installed a = %v, %v; want mode 0755", st, err)
	}
}

func TestUnixMode(t *testing.T) {
	for m, want := range map[fs.FileMode]uint32{
		0o755: 0o755, 0o755 | fs.ModeSetuid: 0o4755, 0o2755&^0o2000 | fs.ModeSetgid: 0o2755, 0o777 | fs.ModeSticky: 0o1777,
	} {
		if got := fsutil.UnixMode(m); got != want {
			t.Errorf("UnixMode(%v) = %o, want %o", m, got, want)
		}
	}
}
