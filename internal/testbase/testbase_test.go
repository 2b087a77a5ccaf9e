package testbase_test

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

type base struct {
	name            string
	img             func(testing.TB) v1.Image
	lib, setuid     string
	version, loader string
}

var bases = []base{
	{"musl", testbase.Musl, testbase.MuslLibrary, testbase.MuslSetuid, testbase.MuslVersion, testbase.MuslLoader},
	{"glibc", testbase.Glibc, testbase.GlibcLibrary, testbase.GlibcSetuid, testbase.GlibcVersion, "/lib64/ld-linux-x86-64.so.2"},
}

// entries lists the flattened filesystem: path -> tar header.
func entries(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(h.Name, "/")] = h
	}
}

// The bases are OCI images with the promised config and files, the same
// digest on every build, and exactly one set-id file.
func TestBases(t *testing.T) {
	t.Parallel()
	for _, b := range bases {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			img := b.img(t)
			mt, err := img.MediaType()
			if err != nil || mt != types.OCIManifestSchema1 {
				t.Errorf("media type = %s, %v; want %s", mt, err, types.OCIManifestSchema1)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers = %d, %v; want 1", len(layers), err)
			}
			if lt, _ := layers[0].MediaType(); lt != types.OCILayer {
				t.Errorf("layer media type = %s, want %s", lt, types.OCILayer)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Architecture != "amd64" || cf.OS != "linux" || len(cf.Config.Env) != 1 || cf.Config.Env[0] != testbase.PathEnv ||
				len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "/bin/sh" || cf.Config.User != "" {
				t.Errorf("config = %s/%s env %q cmd %q user %q", cf.OS, cf.Architecture, cf.Config.Env, cf.Config.Cmd, cf.Config.User)
			}

			es := entries(t, img)
			var setid []string
			for p, h := range es {
				if h.Mode&0o6000 != 0 {
					setid = append(setid, p)
				}
				if !h.ModTime.Equal(testbase.Epoch) || h.Uid != 0 || h.Gid != 0 {
					t.Errorf("%s: mtime %s owner %d:%d; want %s, 0:0", p, h.ModTime, h.Uid, h.Gid, testbase.Epoch)
				}
			}
			if len(setid) != 1 || setid[0] != b.setuid || es[b.setuid].Mode != 0o4755 {
				t.Errorf("set-id entries = %v, want only %s (04755)", setid, b.setuid)
			}
			if h := es["/tmp"]; h == nil || h.Mode != 0o1777 {
				t.Errorf("/tmp = %+v, want a 1777 directory", h)
			}
			for _, p := range []string{b.lib, testbase.Client, "/etc/passwd", "/etc/group"} {
				if es[p] == nil {
					t.Errorf("%s missing", p)
				}
			}
			if string(testbase.ReadFile(t, img, "/etc/passwd")) != "root:x:0:0:root:/root:/bin/sh\n" {
				t.Errorf("/etc/passwd has more than root")
			}
			switch b.name {
			case "musl":
				if es["/etc/ld-musl-x86_64.path"] != nil {
					t.Errorf("/etc/ld-musl-x86_64.path exists; Alpine has none")
				}
				if h := es["/lib/libc.musl-x86_64.so.1"]; h == nil || h.Linkname != "ld-musl-x86_64.so.1" {
					t.Errorf("/lib/libc.musl-x86_64.so.1 = %+v, want a link to ld-musl-x86_64.so.1", h)
				}
			case "glibc":
				for link, target := range map[string]string{"/lib": "usr/lib", "/lib64": "usr/lib64", "/bin": "usr/bin", "/sbin": "usr/sbin"} {
					if h := es[link]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != target {
						t.Errorf("%s = %+v, want a link to %s", link, h, target)
					}
				}
				if !strings.Contains(string(testbase.ReadFile(t, img, "/etc/ld.so.conf.d/libc.conf")), "/usr/local/lib") || es["/etc/ld.so.cache"] != nil {
					t.Errorf("want /usr/local/lib in ld.so.conf.d and no ld.so.cache")
				}
			}

			// The same pieces give the same image.
			l2, err := testbase.Layer(testbase.Regular("/a/b", 0o644, []byte("x")), testbase.Symlink("/c", "a/b"))
			if err != nil {
				t.Fatal(err)
			}
			l3, _ := testbase.Layer(testbase.Symlink("/c", "a/b"), testbase.Regular("/a/b", 0o644, []byte("x")))
			if d2, d3 := mustDigest(t, l2), mustDigest(t, l3); d2 != d3 {
				t.Errorf("Layer is order dependent: %s != %s", d2, d3)
			}
		})
	}
}

type digester interface{ Digest() (v1.Hash, error) }

func mustDigest(t *testing.T, d digester) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The bare bases are the same without any SQLite: no libsqlite3 file, no
// client, nothing else changed.
func TestBareBases(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name       string
		full, bare func(testing.TB) v1.Image
	}{{"musl", testbase.Musl, testbase.MuslBare}, {"glibc", testbase.Glibc, testbase.GlibcBare}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			full, bare := entries(t, b.full(t)), entries(t, b.bare(t))
			var gone []string
			for p := range full {
				if bare[p] == nil {
					gone = append(gone, p)
				}
			}
			for p := range bare {
				if full[p] == nil {
					t.Errorf("%s is only in the bare base", p)
				}
			}
			sort.Strings(gone)
			want := map[string][]string{
				"musl":  {testbase.Client, "/usr/lib/libsqlite3.so.0", "/usr/lib/libsqlite3.so.0.8.6"},
				"glibc": {testbase.Client, testbase.GlibcLibrary, "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6"},
			}[b.name]
			if !slices.Equal(gone, want) {
				t.Errorf("files only in the full base = %v, want %v", gone, want)
			}
		})
	}
}

// The client runs inside each base (chroot) and reports the base's own SQLite.
func TestClientRuns(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("chroot needs root")
	}
	for _, b := range bases {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			testbase.Unpack(t, b.img(t), root)
			run := func(args ...string) string {
				cmd := exec.Command(args[0], args[1:]...)
				cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
				cmd.Dir = "/"
				cmd.Env = []string{testbase.PathEnv}
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			out := run(testbase.Client)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || lines[0] != b.version || !strings.HasPrefix(lines[1], "20") {
				t.Errorf("sqlite-client = %q, want %s and a source id", out, b.version)
			}
			if got := run(testbase.Client, "/tmp/t.db", "CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2)", "SELECT sum(x), 'a' FROM t"); got != "3|a\n" {
				t.Errorf("sqlite-client SQL = %q, want 3|a", got)
			}
			if got := run("/bin/sh", "-c", "id -u; ls /tmp"); got != "0\nt.db\n" {
				t.Errorf("sh = %q", got)
			}
			if b.name == "glibc" {
				// Without ld.so.cache the loader searches the multiarch directories.
				if got := run(b.loader, "--help"); !strings.Contains(got, "/usr/lib/x86_64-linux-gnu (system search path)") {
					t.Errorf("ld.so --help = %q", got)
				}
			}
		})
	}
}

// Push stores the base in a real registry; pulled back by digest it is the
// same image.
func TestPush(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	img := testbase.Musl(t)
	ref := testbase.Push(t, img, reg.Host+"/testbase/musl:latest", reg.RemoteOptions()...)
	if ref.DigestStr() != mustDigest(t, img).String() {
		t.Errorf("Push = %s, want digest %s", ref, mustDigest(t, img))
	}
	pulled, err := remote.Image(ref, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, pulled) != mustDigest(t, img) {
		t.Errorf("pulled %s, pushed %s", mustDigest(t, pulled), mustDigest(t, img))
	}
}
