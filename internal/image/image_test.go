package image

import (
	"slices"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

func TestEnvPutsGraftFirst(t *testing.T) {
	for _, tc := range []struct {
		libc string
		base []string
		want []string
	}{
		{imagedef.Glibc, []string{"PATH=/usr/bin:/bin"}, []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LD_PRELOAD=/usr/local/lib/libsqlite3.so.0"}},
		{imagedef.Glibc, []string{"PATH=/usr/local/bin:/usr/bin", "LD_PRELOAD=/opt/libjemalloc.so"},
			[]string{"PATH=/usr/local/bin:/usr/bin", "LD_PRELOAD=/usr/local/lib/libsqlite3.so.0 /opt/libjemalloc.so"}},
		{imagedef.Musl, []string{"LD_LIBRARY_PATH=/usr/lib:/usr/local/lib"},
			[]string{"LD_LIBRARY_PATH=/usr/local/lib:/usr/lib", "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LD_PRELOAD=libsqlite3.so.0"}},
	} {
		g := Graft{Def: &imagedef.Definition{Libc: tc.libc, Preload: imagedef.PreloadEnv}}
		got, err := g.env(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("env(%s, %v) = %v, want %v", tc.libc, tc.base, got, tc.want)
		}
	}
	g := Graft{Def: &imagedef.Definition{Libc: imagedef.Musl, Preload: imagedef.PreloadWrapper}}
	got, _ := g.env(nil)
	if slices.ContainsFunc(got, func(kv string) bool { return strings.HasPrefix(kv, "LD_") }) {
		t.Errorf("wrapper mode sets %v, want no preload variables", got)
	}
}

func TestHardeningOnARealBase(t *testing.T) {
	s, err := ScanBase(testbase.Musl(t), imagefs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.SetID) != 1 || s.SetID[0].Path != testbase.MuslSetuid || s.SetID[0].Mode&0o4000 == 0 {
		t.Fatalf("ScanBase set-id files = %+v, want %s", s.SetID, testbase.MuslSetuid)
	}
	def := &imagedef.Definition{Libc: imagedef.Musl, User: imagedef.DefaultUser, Hardening: imagedef.Hardening{StripSetuid: true}}
	extra, _, err := Hardening(def, s)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]string{}
	for _, f := range extra {
		byPath[f.Path] = string(f.Data)
		if f.Path == testbase.MuslSetuid && (f.Mode&0o6000 != 0 || f.Size != s.SetID[0].Size || f.Open == nil) {
			t.Errorf("%s rewritten with mode %o and %d bytes, want no set-id bits and the same content", f.Path, f.Mode, f.Size)
		}
	}
	if !strings.Contains(byPath["/etc/passwd"], "nonroot:x:65532:65532:") || !strings.HasPrefix(byPath["/etc/passwd"], string(s.Passwd.Data)) {
		t.Errorf("/etc/passwd = %q, want the base's plus nonroot", byPath["/etc/passwd"])
	}
	if !strings.Contains(byPath["/etc/group"], "nonroot:x:65532:") {
		t.Errorf("/etc/group = %q, want nonroot", byPath["/etc/group"])
	}
	// A user that already exists is not added twice.
	s.Passwd.Data, s.Group.Data = []byte(byPath["/etc/passwd"]), []byte(byPath["/etc/group"])
	extra, _, _ = Hardening(&imagedef.Definition{Libc: imagedef.Musl, User: imagedef.DefaultUser}, s)
	if len(extra) != 0 {
		t.Errorf("Hardening with the user present = %v, want nothing", extra)
	}
}
