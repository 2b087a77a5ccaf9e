package imagefs_test

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

func image(t *testing.T, layers ...[]testbase.Entry) v1.Image {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	var ls []v1.Layer
	for _, entries := range layers {
		l, err := testbase.RawLayer(entries...)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := testbase.WithLayers(base, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func dir(name string) testbase.Entry { return testbase.Entry{Name: name, Type: tar.TypeDir} }

func file(name, data string, mode int64) testbase.Entry {
	return testbase.Entry{Name: name, Data: []byte(data), Mode: mode}
}

func symlink(name, target string) testbase.Entry {
	return testbase.Entry{Name: name, Type: tar.TypeSymlink, Link: target, Mode: 0o777}
}

func hardlink(name, target string) testbase.Entry {
	return testbase.Entry{Name: name, Type: tar.TypeLink, Link: target}
}

// tricky is two layers whose flattening needs every rule: opaque and plain
// whiteouts, a whiteout and a new file of one name in one layer, an entry
// below a symlinked directory, hard links, a file capability.
func tricky() [][]testbase.Entry {
	return [][]testbase.Entry{{
		dir("etc/"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
		dir("usr/"), dir("usr/bin/"),
		file("usr/bin/su", "old su", 0o4755),
		hardlink("usr/bin/su2", "usr/bin/su"),
		{Name: "usr/bin/ping", Data: []byte("ping"), Mode: 0o755, Xattr: map[string]string{imagefs.CapabilityXattr: testbase.Cap}},
		symlink("bin", "usr/bin"),
		dir("opt/"), dir("opt/a/"), file("opt/a/x", "x", 0), file("opt/a/y", "y", 0),
		dir("gone/"), file("gone/f", "f", 0),
	}, {
		file("opt/a/.wh..wh..opq", "", 0), file("opt/a/z", "z", 0),
		file(".wh.gone", "", 0),
		file("bin/new", "new", 0o755), // lands in /usr/bin: /bin is a symlink
		file("usr/bin/.wh.su", "", 0), file("usr/bin/su", "new su", 0o755),
	}}
}

// contents lists the image as "path mode [-> target | sha256-prefix]".
func contents(t *testing.T, f *imagefs.FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := f.Walk(func(e *imagefs.Entry) error {
		desc := fmt.Sprintf("%v", e.Mode)
		switch {
		case e.Mode&fs.ModeSymlink != 0:
			desc += " -> " + e.Link
		case e.Mode.IsRegular():
			r, err := e.Open()
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(r)
			desc += fmt.Sprintf(" %q nlink=%d", b, e.Nlink)
		}
		out[e.Path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFlatten(t *testing.T) {
	f, err := imagefs.Open(image(t, tricky()...), imagefs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := contents(t, f)
	want := map[string]string{
		"/bin":          "Lrwxrwxrwx -> usr/bin",
		"/etc":          "drwxr-xr-x",
		"/etc/passwd":   `-rw-r--r-- "root:x:0:0::/root:/bin/sh\n" nlink=1`,
		"/opt":          "drwxr-xr-x",
		"/opt/a":        "drwxr-xr-x",
		"/opt/a/z":      `-rw-r--r-- "z" nlink=1`,
		"/usr":          "drwxr-xr-x",
		"/usr/bin":      "drwxr-xr-x",
		"/usr/bin/new":  `-rwxr-xr-x "new" nlink=1`,
		"/usr/bin/ping": `-rwxr-xr-x "ping" nlink=1`,
		"/usr/bin/su":   `-rwxr-xr-x "new su" nlink=1`,
		"/usr/bin/su2":  `urwxr-xr-x "old su" nlink=1`, // the hard link keeps the old file, set-uid bit and all
	}
	sameTree(t, "imagefs", got, want)
	e, err := f.Lstat("/bin/ping") // through the symlinked directory
	if err != nil || e.Path != "/usr/bin/ping" || e.Xattrs[imagefs.CapabilityXattr] != testbase.Cap {
		t.Errorf("Lstat(/bin/ping) = %+v, %v; want /usr/bin/ping with its capability", e, err)
	}
	if _, err := f.Stat("/opt/a/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(/opt/a/x) = %v, want not found (opaque whiteout)", err)
	}
}

// The same image unpacked by umoci (a real runtime's unpacker) gives the
// same tree: the flattening rules are the runtimes', not go-containerregistry's.
func TestFlattenMatchesUmoci(t *testing.T) {
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Fatalf("umoci (Debian package umoci; scripts/setup installs it): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("umoci unpack needs root here (owners and set-id bits)")
	}
	img := image(t, tricky()...)
	f, err := imagefs.Open(img, imagefs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := contents(t, f)

	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "t"})); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command(umoci, "unpack", "--image", filepath.Join(dir, "oci")+":t", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	rootfs := filepath.Join(bundle, "rootfs")
	got := map[string]string{}
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		in := "/" + filepath.ToSlash(strings.TrimPrefix(p, rootfs+"/"))
		desc := fmt.Sprintf("%v", fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %q nlink=%d", b, fi.Sys().(*syscall.Stat_t).Nlink)
		}
		got[in] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, "umoci", got, want)
}

// sameTree fails for every path where got and want differ.
func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s = %q, want %q", what, p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s = %q, want no such entry", what, p, got[p])
		}
	}
}

func TestRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		layers [][]testbase.Entry
		want   []string
	}{
		"dot-dot":         {[][]testbase.Entry{{file("../../../tmp/evil", "x", 0)}}, []string{`"../../../tmp/evil"`, "leaves the image's root"}},
		"absolute dotdot": {[][]testbase.Entry{{file("/../etc/passwd", "x", 0)}}, []string{`"../etc/passwd"`, "leaves the image's root"}},
		"hardlink out":    {[][]testbase.Entry{{hardlink("etc/shadow", "../../etc/shadow")}}, []string{`"etc/shadow"`, "leaves the image's root"}},
		"hardlink none":   {[][]testbase.Entry{{hardlink("etc/x", "etc/nothing")}}, []string{`"etc/x"`, "etc/nothing", "file does not exist"}},
		"duplicate":       {[][]testbase.Entry{{file("etc/passwd", "a", 0), file("./etc/passwd", "b", 0)}}, []string{"/etc/passwd appears twice", `"etc/passwd"`, `"etc/passwd"`}},
		"duplicate real":  {[][]testbase.Entry{{dir("usr/bin/"), symlink("bin", "usr/bin"), file("bin/x", "a", 0), file("usr/bin/x", "b", 0)}}, []string{"/usr/bin/x appears twice"}},
		"name too long":   {[][]testbase.Entry{{file(strings.Repeat("d/", 2100)+"f", "x", 0)}}, []string{"a name of 4201 bytes"}},
		"capability":      {[][]testbase.Entry{{{Name: "bin/x", Xattr: map[string]string{imagefs.CapabilityXattr: strings.Repeat("c", 100)}}}}, []string{`"bin/x"`, "no file capability"}},
		"under a file":    {[][]testbase.Entry{{file("etc", "a", 0), file("etc/passwd", "b", 0)}}, []string{`"etc/passwd"`, "not a directory"}},
	} {
		img := image(t, tc.layers...)
		l, _ := img.Layers()
		d, _ := l[len(l)-1].Digest()
		f, err := imagefs.Open(img, imagefs.Limits{})
		if err == nil {
			f.Close()
			t.Errorf("%s: Open = nil error, want a refusal", name)
			continue
		}
		for _, w := range append(tc.want, "layer "+d.String()) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Open = %v, want it to name %q", name, err, w)
			}
		}
	}
}

func TestSizeCap(t *testing.T) {
	bomb, err := testbase.ZerosLayer("zeros", 0o644, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testbase.WithLayers(image(t), bomb)
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := bomb.Size(); size > 1<<20 {
		t.Fatalf("bomb layer is %d bytes compressed, want < 1 MiB", size)
	}
	d, _ := bomb.Digest()
	_, err = imagefs.Open(img, imagefs.Limits{MaxUnpackedSize: 16 << 20})
	if !errors.Is(err, imagefs.ErrTooLarge) || !strings.Contains(err.Error(), "16 MiB") || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("Open(64 MiB unpacked, cap 16 MiB) = %v, want ErrTooLarge naming the cap and %s", err, d)
	}
	f, err := imagefs.Open(img, imagefs.Limits{MaxUnpackedSize: 65 << 20})
	if err != nil {
		t.Fatalf("Open(64 MiB unpacked, cap 65 MiB) = %v", err)
	}
	f.Close()
}

// A layer of empty files cannot exhaust memory within the size cap: entries
// are capped too, one per EntryBytes of it (at least 4096).
func TestEntryCap(t *testing.T) {
	var many []testbase.Entry
	for i := range 5000 {
		many = append(many, testbase.Entry{Name: fmt.Sprintf("f%d", i)})
	}
	img := image(t, many)
	_, err := imagefs.Open(img, imagefs.Limits{MaxUnpackedSize: 16 << 20})
	if !errors.Is(err, imagefs.ErrTooLarge) || !strings.Contains(err.Error(), "more entries") {
		t.Errorf("Open(5000 entries, cap 16 MiB) = %v, want the entry cap named", err)
	}
	f, err := imagefs.Open(img, imagefs.Limits{MaxUnpackedSize: 32 << 20})
	if err != nil {
		t.Fatalf("Open(5000 entries, cap 32 MiB) = %v", err)
	}
	f.Close()
}

// swapped serves other bytes than its digest names, as a registry or a
// layout with a swapped blob would.
type swapped struct {
	v1.Layer
	other v1.Layer
}

func (s swapped) Compressed() (io.ReadCloser, error) { return s.other.Compressed() }

func TestDigestMismatch(t *testing.T) {
	genuine, _ := testbase.RawLayer(file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0))
	trojan, _ := testbase.RawLayer(file("etc/passwd", "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\n", 0))
	img, err := testbase.WithLayers(image(t), swapped{genuine, trojan})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := genuine.Digest()
	other, _ := trojan.Digest()
	_, err = imagefs.Open(img, imagefs.Limits{})
	if err == nil || !strings.Contains(err.Error(), "layer "+d.String()) || !strings.Contains(err.Error(), "content has digest "+other.String()) {
		t.Errorf("Open(swapped blob) = %v, want the layer %s and the digest served named", err, d)
	}
}

func TestDiffIDMismatch(t *testing.T) {
	img := image(t, []testbase.Entry{file("etc/passwd", "x", 0)})
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	want := cf.RootFS.DiffIDs[0]
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte("another tar")))}
	lied, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	_, err = imagefs.Open(lied, imagefs.Limits{})
	if err == nil || !strings.Contains(err.Error(), "diffID "+want.String()) {
		t.Errorf("Open(wrong diffID) = %v, want the real diffID %s named", err, want)
	}
}

func TestOpenRefusesNonRegular(t *testing.T) {
	f, err := imagefs.Open(image(t, []testbase.Entry{dir("usr/"), dir("usr/lib/"),
		{Name: "usr/lib/libsqlite3.so.0", Type: tar.TypeFifo}}), imagefs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := f.Stat("/usr/lib/libsqlite3.so.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Open(); err == nil || !strings.Contains(err.Error(), "not a regular file (fifo)") {
		t.Errorf("Open(fifo) = %v, want refused", err)
	}
	if _, err := f.ReadFile("/usr/lib/libsqlite3.so.0", 1<<20); err == nil {
		t.Error("ReadFile(fifo) = nil error, want refused")
	}
}

// Absolute names are relative to the image's root, as runtimes unpack them:
// umoci writes the root itself as "/".
func TestAbsoluteNames(t *testing.T) {
	f, err := imagefs.Open(image(t, []testbase.Entry{dir("/"), dir("/etc/"), file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0)}), imagefs.Limits{})
	if err != nil {
		t.Fatalf("Open = %v, want absolute names taken as inside the image", err)
	}
	defer f.Close()
	if b, err := f.ReadFile("/etc/passwd", 100); err != nil || string(b) != "root:x:0:0::/root:/bin/sh\n" {
		t.Errorf("ReadFile(/etc/passwd) = %q, %v", b, err)
	}
}
