package imagefs_test

import (
	"bytes"
	"io/fs"
	"os"
	"runtime"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
	"github.com/sqlite-graft/sqlite-graft/internal/ldcache"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// The io/fs view of an image is a valid io/fs file system, and code written
// against io/fs sees through it what it sees in the same image unpacked:
// ldcache generates the same cache from both.
func TestIOFSSeesWhatUnpackingGives(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the glibc test base is built for amd64, this is %s", runtime.GOARCH)
	}
	img, err := mutate.AppendLayers(testbase.Glibc(t), testbase.MustLayer(t,
		testbase.Regular("/usr/local/lib/libsqlite3.so.3.51.3", 0o755, testbase.ReadFile(t, testbase.Glibc(t), "/usr/lib/x86_64-linux-gnu/libc.so.6")),
		testbase.Symlink("/usr/local/lib/libsqlite3.so.0", "libsqlite3.so.3.51.3"),
		testbase.Symlink("/usr/local/lib/libescape.so.1", "../../../../../etc/passwd")))
	if err != nil {
		t.Fatal(err)
	}
	f, err := imagefs.Open(img, imagefs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	view := f.IOFS()
	// (a subtree: the whole base takes TestFS half a minute)
	local, err := fs.Sub(view, "usr/local")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(local, "lib/libsqlite3.so.3.51.3", "lib/libsqlite3.so.0"); err != nil {
		t.Fatal(err)
	}
	if target, err := view.ReadLink("usr/local/lib/libescape.so.1"); err != nil || target != "../../../../../etc/passwd" {
		t.Errorf("ReadLink(libescape.so.1) = %q, %v", target, err)
	}
	if b, err := view.Open("usr/local/lib/libescape.so.1"); err != nil {
		t.Errorf("Open(a link that climbs out of the root) = %v, want the image's /etc/passwd", err)
	} else {
		b.Close()
	}

	root := t.TempDir()
	testbase.Unpack(t, img, root)
	want, err := ldcache.Generate(os.DirFS(root).(ldcache.Root), ldcache.Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ldcache.Generate(view, ldcache.Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ldcache.Generate(image) = %d bytes, want the %d bytes of the unpacked image", len(got), len(want))
	}
}
