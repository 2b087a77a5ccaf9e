// Package testbase assembles container base images for tests from real
// pieces of the machine the tests run on — no registry, no Docker: an
// "Alpine-like" musl base (busybox-static, musl's loader, a real older SQLite
// built with musl-gcc at /usr/lib/libsqlite3.so.0) and a "Debian-like" glibc
// base (the host's glibc and its libsqlite3 3.40.1, merged /usr). Each has a
// small C client linked against its own libsqlite3.so.0 — the stand-in for a
// distro program — and one setuid-root file for the hardening checks.
//
// The images are deterministic (sorted entries, owner 0:0, one mtime, OCI
// media types) and built once per test process.
package testbase

import (
	"bytes"
	"context"
	"debug/elf"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

//go:embed client.c
var clientSource []byte

// Epoch is every entry's mtime and the images' creation time.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// What the bases hold.
const (
	// PathEnv is the bases' only configured environment variable.
	PathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// Client prints sqlite_version() and sqlite_source_id(), one per line,
	// from the libsqlite3.so.0 the loader binds; `Client DB SQL...` runs SQL.
	Client = "/usr/bin/sqlite-client"

	MuslLibrary  = "/usr/lib/libsqlite3.so.0" // a link to libsqlite3.so.0.8.6, as on Alpine
	MuslSetuid   = "/bin/su-demo"             // busybox, mode 04755
	MuslVersion  = "3.46.1"                   // testbuild.MuslBaseline
	MuslLoader   = "/lib/ld-musl-x86_64.so.1" // the real file, not a link
	GlibcLibrary = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0"
	// GlibcSetuid is the setuid file's real path: /bin is a link to usr/bin.
	GlibcSetuid  = "/usr/bin/su-demo"
	GlibcVersion = "3.40.1" // Debian 12's libsqlite3-0, copied from the host
)

// busyboxApplets get a link to busybox next to it.
var busyboxApplets = []string{
	"[", "awk", "basename", "cat", "chmod", "cp", "cut", "date", "dirname", "echo", "env", "false",
	"find", "grep", "head", "id", "ln", "ls", "mkdir", "mv", "ps", "readlink", "rm", "sed", "sh",
	"sleep", "sort", "stat", "tail", "test", "touch", "tr", "true", "uname", "wc", "which", "whoami", "xargs",
}

// glibcLibs are the libc6 libraries the glibc base ships (Debian 12's
// libc6 has them all; programs linked with -ldl or -lpthread need the stubs).
var glibcLibs = []string{"ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1"}

const glibcLibDir = "/usr/lib/x86_64-linux-gnu"

type built struct {
	once sync.Once
	img  v1.Image
	err  error
}

var (
	mu    sync.Mutex
	bases = map[string]*built{}
)

// cached builds the base named key once per test process.
func cached(t testing.TB, key string, build func(testing.TB) (v1.Image, error)) v1.Image {
	t.Helper()
	mu.Lock()
	b, ok := bases[key]
	if !ok {
		b = &built{}
		bases[key] = b
	}
	mu.Unlock()
	b.once.Do(func() {
		b.err = fmt.Errorf("testbase: building the %s base failed in another test (see its log)", key)
		b.img, b.err = build(t)
	})
	if b.err != nil {
		t.Fatalf("testbase: %s base: %v", key, b.err)
	}
	return b.img
}

// Musl returns the Alpine-like base: busybox-static with applet links in
// /bin, musl's loader at /lib/ld-musl-x86_64.so.1 (and the
// /lib/libc.musl-x86_64.so.1 link Alpine has), SQLite 3.46.1 built with
// musl-gcc at /usr/lib/libsqlite3.so.0, the client at /usr/bin/sqlite-client,
// /etc/passwd and /etc/group with root only, /tmp 1777 and the setuid-root
// /bin/su-demo. Like Alpine it has no /etc/ld-musl-x86_64.path, so musl
// searches /lib:/usr/local/lib:/usr/lib.
func Musl(t testing.TB) v1.Image {
	t.Helper()
	return cached(t, "musl", func(t testing.TB) (v1.Image, error) { return buildMusl(t, true) })
}

// MuslBare is Musl without a SQLite of its own, as the real alpine:3.21 and
// alpine:3.22 are: no /usr/lib/libsqlite3.so.0 and no client linked to it.
func MuslBare(t testing.TB) v1.Image {
	t.Helper()
	return cached(t, "musl-bare", func(t testing.TB) (v1.Image, error) { return buildMusl(t, false) })
}

// Glibc returns the Debian-like base: merged /usr (/bin, /lib, /lib64, /sbin
// are links into /usr), the host's glibc loader and libc6 libraries at their
// Debian paths, the host's libsqlite3 (3.40.1) at
// /usr/lib/x86_64-linux-gnu/libsqlite3.so.0, busybox-static with applet links
// in /usr/bin, the client at /usr/bin/sqlite-client, passwd and group with
// root only, Debian's /etc/ld.so.conf(.d) naming /usr/local/lib but no
// ld.so.cache, /tmp 1777 and the setuid-root /usr/bin/su-demo.
func Glibc(t testing.TB) v1.Image {
	t.Helper()
	return cached(t, "glibc", func(t testing.TB) (v1.Image, error) { return buildGlibc(t, true) })
}

// GlibcBare is Glibc without a SQLite of its own, as Debian 12's minimal
// base is: no libsqlite3.so.0 and no client linked to it.
func GlibcBare(t testing.TB) v1.Image {
	t.Helper()
	return cached(t, "glibc-bare", func(t testing.TB) (v1.Image, error) { return buildGlibc(t, false) })
}

func checkArch() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("testbase: the bases are x86_64 (host pieces at x86_64 paths); this is %s", runtime.GOARCH)
	}
	return nil
}

func buildMusl(t testing.TB, withSQLite bool) (v1.Image, error) {
	if err := checkArch(); err != nil {
		return nil, err
	}
	loader, _, err := hostFile(MuslLoader)
	if err != nil {
		return nil, err
	}
	var client []byte
	var sqlite []File
	what := "no SQLite"
	if withSQLite {
		lib := testbuild.MuslBaseline(t)
		if client, err = compileClient("musl-gcc", lib); err != nil {
			return nil, err
		}
		libData, _, err := hostFile(lib)
		if err != nil {
			return nil, err
		}
		sqlite = []File{Regular("/usr/lib/libsqlite3.so.0.8.6", 0o755, libData), Symlink(MuslLibrary, "libsqlite3.so.0.8.6")}
		what = "SQLite " + MuslVersion
	}
	files, err := commonFiles("/bin", client)
	if err != nil {
		return nil, err
	}
	files = append(append(files, sqlite...),
		Regular(MuslLoader, 0o755, loader),
		Symlink("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
		Dir("/usr/bin", 0o755), Dir("/usr/lib", 0o755), Dir("/usr/local/bin", 0o755), Dir("/usr/local/lib", 0o755), Dir("/usr/sbin", 0o755), Dir("/sbin", 0o755),
		Regular("/etc/os-release", 0o644, []byte("NAME=\"sqlite-graft test base (musl)\"\nID=testbase-musl\n")),
	)
	return assemble("testbase musl: busybox, musl loader, "+what, files)
}

func buildGlibc(t testing.TB, withSQLite bool) (v1.Image, error) {
	if err := checkArch(); err != nil {
		return nil, err
	}
	hostLib, err := filepath.EvalSymlinks(GlibcLibrary)
	if err != nil {
		return nil, fmt.Errorf("testbase: the host's libsqlite3 (Debian package libsqlite3-0): %w", err)
	}
	var client []byte
	if withSQLite {
		if client, err = compileClient("cc", hostLib); err != nil {
			return nil, err
		}
	}
	files, err := commonFiles("/usr/bin", client)
	if err != nil {
		return nil, err
	}
	files = append(files,
		Symlink("/bin", "usr/bin"), Symlink("/lib", "usr/lib"), Symlink("/lib64", "usr/lib64"), Symlink("/sbin", "usr/sbin"),
		Dir("/usr/sbin", 0o755), Dir("/usr/local/bin", 0o755), Dir("/usr/local/lib", 0o755),
		Symlink("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		Regular("/etc/ld.so.conf", 0o644, []byte("include /etc/ld.so.conf.d/*.conf\n\n")),
		Regular("/etc/ld.so.conf.d/libc.conf", 0o644, []byte("# libc default configuration\n/usr/local/lib\n")),
		Regular("/etc/ld.so.conf.d/x86_64-linux-gnu.conf", 0o644,
			[]byte("# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n")),
		Regular("/etc/os-release", 0o644, []byte("NAME=\"sqlite-graft test base (glibc)\"\nID=testbase-glibc\n")),
	)
	have := map[string]bool{}
	for _, n := range glibcLibs {
		data, mode, err := hostFile(path.Join(glibcLibDir, n))
		if err != nil {
			return nil, err
		}
		files = append(files, Regular(path.Join(glibcLibDir, n), mode.Perm(), data))
		have[n] = true
	}
	// Every library SQLite (the base's, or one an application adds) and the
	// client need must be in the image.
	for _, f := range []string{hostLib, filepath.Join(glibcLibDir, "libm.so.6"), filepath.Join(glibcLibDir, "libc.so.6")} {
		if err := neededIn(f, have); err != nil {
			return nil, err
		}
	}
	if !withSQLite {
		return assemble("testbase glibc: glibc, busybox, no SQLite", files)
	}
	libData, _, err := hostFile(hostLib)
	if err != nil {
		return nil, err
	}
	files = append(files,
		Regular(path.Join(glibcLibDir, filepath.Base(hostLib)), 0o644, libData),
		Symlink(GlibcLibrary, filepath.Base(hostLib)))
	have["libsqlite3.so.0"] = true
	if err := neededBytesIn(client, have); err != nil {
		return nil, err
	}
	return assemble("testbase glibc: glibc, busybox, SQLite "+GlibcVersion, files)
}

// commonFiles are the files both bases have; bin is where busybox goes;
// client (nil: none) is the SQLite client.
func commonFiles(bin string, client []byte) ([]File, error) {
	bb, _, err := hostFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("%w (Debian package busybox-static)", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bb))
	if err != nil {
		return nil, fmt.Errorf("testbase: /bin/busybox: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("testbase: /bin/busybox is dynamically linked; want busybox-static")
		}
	}
	files := []File{
		Regular(path.Join(bin, "busybox"), 0o755, bb),
		Regular(path.Join(bin, "su-demo"), 0o755|fs.ModeSetuid, bb),
		Regular("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")),
		Regular("/etc/group", 0o644, []byte("root:x:0:root\n")),
		Dir("/tmp", 0o777|fs.ModeSticky),
		Dir("/root", 0o700),
		Dir("/home", 0o755), Dir("/dev", 0o755), Dir("/proc", 0o555), Dir("/sys", 0o555), Dir("/run", 0o755),
		Dir("/var/tmp", 0o777|fs.ModeSticky),
	}
	for _, a := range busyboxApplets {
		files = append(files, Symlink(path.Join(bin, a), "busybox"))
	}
	if client != nil {
		files = append(files, Regular(Client, 0o755, client))
	}
	return files, nil
}

// assemble makes the one-layer OCI image.
func assemble(createdBy string, files []File) (v1.Image, error) {
	l, err := Layer(files...)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: Epoch},
		RootFS:       v1.RootFS{Type: "layers"}, // umoci refuses a config without it
		Config:       v1.Config{Env: []string{PathEnv}, Cmd: []string{"/bin/sh"}},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     l,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: createdBy},
	})
}

// compileClient builds client.c with cc, linked against the library file
// lib (DT_NEEDED records its soname), stripped so no path ends up in it.
func compileClient(cc, lib string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "testbase-client-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "client.c"), clientSource, 0o644); err != nil {
		return nil, err
	}
	args := []string{"-O2", "-s", "-o", "sqlite-client", "client.c", lib}
	cmd := exec.CommandContext(context.Background(), cc, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testbase: compile the client: %s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
	return os.ReadFile(filepath.Join(dir, "sqlite-client"))
}

// hostFile reads a host file, following symlinks.
func hostFile(p string) ([]byte, fs.FileMode, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, 0, fmt.Errorf("testbase: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, 0, fmt.Errorf("testbase: %w", err)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return nil, 0, fmt.Errorf("testbase: %w", err)
	}
	return b, fi.Mode(), nil
}

func neededIn(file string, have map[string]bool) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("testbase: %w", err)
	}
	defer f.Close()
	return checkNeeded(file, f, have)
}

func neededBytesIn(data []byte, have map[string]bool) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("testbase: the client: %w", err)
	}
	return checkNeeded("the client", f, have)
}

func checkNeeded(what string, f *elf.File, have map[string]bool) error {
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		return fmt.Errorf("testbase: %s: %w", what, err)
	}
	for _, n := range needed {
		if !have[n] {
			return fmt.Errorf("testbase: %s needs %s, which the glibc base does not ship", what, n)
		}
	}
	return nil
}

// Push pushes img to ref (a tag or repository on, say, a registrytest
// registry) and returns the pushed reference by digest.
func Push(t testing.TB, img v1.Image, ref string, opts ...remote.Option) name.Digest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("testbase: reference %q: %v", ref, err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("testbase: push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Digest(d.String())
}
