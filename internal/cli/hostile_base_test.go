package cli_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// Hostile bases (issue 11, the image-file side): each case appends crafted
// layers to the Alpine-like base, pushes it to a real registry and runs the
// real build (the binary, in a sandbox) against it. A case is either
// refused — exit 1, an error naming the layer or file, nothing pushed or
// tagged, no result file — or handled safely, checked in the image the
// registry then serves. In both, the sandbox's temporary, home and working
// directories are empty afterwards, no runc container is left, and no path
// the base aims outside the image exists. The registry side (hangs,
// refusals, swapped blobs) is in hostile_test.go.

// hostileCase is one crafted base.
type hostileCase struct {
	name   string
	layers func(t *testing.T, marker string) []v1.Layer // appended to the Alpine-like base
	base   func(t *testing.T, img v1.Image) v1.Image    // further changes (labels, annotations)
	args   []string                                     // extra build flags
	// refused lists what the error must name; {top} stands for the digest of
	// the top layer. Empty: the build must succeed, and pushed checks it.
	refused []string
	pushed  func(t *testing.T, files *imagefs.FS, img v1.Image, resultDir string)
	// maxRSS, when set, bounds the build's peak resident memory.
	maxRSS int64
}

func rawLayer(t *testing.T, entries ...testbase.Entry) v1.Layer {
	t.Helper()
	l, err := testbase.RawLayer(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func busybox(t *testing.T) []byte {
	t.Helper()
	b, err := testbase.SetuidBusybox()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// notPrivileged fails unless p is a regular file of size bytes in the
// image without set-id bits or file capabilities.
func notPrivileged(t *testing.T, files *imagefs.FS, p string, size int) {
	t.Helper()
	e, err := files.Lstat(p)
	if err != nil {
		t.Errorf("%s in the pushed image: %v", p, err)
		return
	}
	if _, caps := e.Xattrs[imagefs.CapabilityXattr]; !e.Mode.IsRegular() || e.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 || caps || e.Size != int64(size) {
		t.Errorf("%s in the pushed image: %v, %d bytes, xattrs %q; want a regular file of %d bytes, no set-id bits, no capabilities", p, e.Mode, e.Size, e.Xattrs, size)
	}
}

func hostileCases() []hostileCase {
	const passwdRoot = "root:x:0:0:root:/root:/bin/sh\n"
	return []hostileCase{{
		// A name leaving the root, above a trojan passwd: go-containerregistry
		// stops at the unsafe name and ScanBase saw an empty file system.
		name: "dot-dot-entry",
		layers: func(t *testing.T, marker string) []v1.Layer {
			return []v1.Layer{rawLayer(t,
				testbase.Entry{Name: strings.Repeat("../", 24) + strings.TrimPrefix(marker, "/"), Data: []byte("escaped\n")},
				testbase.Entry{Name: "etc/passwd", Data: []byte(passwdRoot + "toor:x:0:0::/:/bin/sh\n")})}
		},
		refused: []string{"layer {top}", "leaves the image's root", "../../"},
	}, {
		// go-containerregistry keeps the first of two entries, runtimes the
		// last: here the last one is set-uid.
		name: "duplicate-entry",
		layers: func(t *testing.T, _ string) []v1.Layer {
			bb := busybox(t)
			return []v1.Layer{rawLayer(t,
				testbase.Entry{Name: "bin/tool", Mode: 0o755, Data: bb},
				testbase.Entry{Name: "bin/tool", Mode: 0o4755, Data: bb})}
		},
		refused: []string{"layer {top}", "/bin/tool appears twice"},
	}, {
		name: "gzip-bomb",
		layers: func(t *testing.T, _ string) []v1.Layer {
			l, err := testbase.ZerosLayer("var/cache/zeros", 0o644, 256<<20)
			if err != nil {
				t.Fatal(err)
			}
			return []v1.Layer{l}
		},
		args:    []string{"--max-unpacked-size", "64MiB"},
		refused: []string{"layer {top}", "more than 64 MiB", "--max-unpacked-size"},
	}, {
		name: "passwd-missing",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "etc/.wh.passwd"})}
		},
		refused: []string{"the base has no /etc/passwd", "cannot add the image's user nonroot"},
	}, {
		name: "group-dangling-symlink",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "etc/.wh.group"},
				testbase.Entry{Name: "etc/group", Type: tar.TypeSymlink, Link: "/nonexistent/group"})}
		},
		refused: []string{`the base's /etc/group is a symlink to "/nonexistent/group"`},
	}, {
		// A line longer than bufio.Scanner's 64 KiB hid the entry after it.
		name: "passwd-long-line",
		layers: func(t *testing.T, _ string) []v1.Layer {
			passwd := passwdRoot + "app:x:1000:1000:" + strings.Repeat("x", 70000) + ":/home/app:/bin/sh\n" +
				"nonroot:x:1000:1000:nonroot:/home/nonroot:/sbin/nologin\n"
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "etc/passwd", Data: []byte(passwd)})}
		},
		refused: []string{`base /etc/passwd: "nonroot" has id 1000, want 65532`},
	}, {
		// The graft layer's directory entries would replace the symlink,
		// hiding what the base keeps behind it.
		name: "usr-local-symlink",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "opt/", Type: tar.TypeDir}, testbase.Entry{Name: "opt/local/", Type: tar.TypeDir},
				testbase.Entry{Name: "opt/local/bin/", Type: tar.TypeDir}, testbase.Entry{Name: "opt/local/bin/app", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
				testbase.Entry{Name: "usr/.wh.local"}, testbase.Entry{Name: "usr/local", Type: tar.TypeSymlink, Link: "/opt/local"})}
		},
		refused: []string{`/usr/local is a symlink to "/opt/local" in the base`},
	}, {
		name: "fifo-at-library",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "usr/lib/.wh.libsqlite3.so.0.8.6"},
				testbase.Entry{Name: "usr/lib/libsqlite3.so.0.8.6", Type: tar.TypeFifo})}
		},
		refused: []string{"/usr/lib/libsqlite3.so.0.8.6: not a regular file (fifo)"},
	}, {
		name: "file-capability",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "bin/ping-demo", Mode: 0o755, Data: busybox(t),
				Xattr: map[string]string{imagefs.CapabilityXattr: testbase.Cap}})}
		},
		pushed: func(t *testing.T, files *imagefs.FS, _ v1.Image, _ string) {
			notPrivileged(t, files, "/bin/ping-demo", len(busybox(t)))
		},
	}, {
		// Every name of a hard-linked set-uid file must lose the bit: a name
		// left alone keeps the set-uid file.
		name: "setuid-hardlinks",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "usr/bin/tool", Mode: 0o4755, Data: busybox(t)},
				testbase.Entry{Name: "usr/sbin/tool-link", Type: tar.TypeLink, Link: "usr/bin/tool"})}
		},
		pushed: func(t *testing.T, files *imagefs.FS, _ v1.Image, _ string) {
			notPrivileged(t, files, "/usr/bin/tool", len(busybox(t)))
			notPrivileged(t, files, "/usr/sbin/tool-link", len(busybox(t)))
		},
	}, {
		// A set-uid file whose tar name runs through a symlinked directory is
		// rewritten at its real path; the symlink stays.
		name: "setuid-under-symlinked-dir",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{
				rawLayer(t, testbase.Entry{Name: "usr/libexec/", Type: tar.TypeDir}, testbase.Entry{Name: "usr/libexec/tools/", Type: tar.TypeDir},
					testbase.Entry{Name: "opt/", Type: tar.TypeDir}, testbase.Entry{Name: "opt/tools", Type: tar.TypeSymlink, Link: "/usr/libexec/tools"}),
				rawLayer(t, testbase.Entry{Name: "opt/tools/su2", Mode: 0o4755, Data: busybox(t)}),
			}
		},
		pushed: func(t *testing.T, files *imagefs.FS, _ v1.Image, _ string) {
			notPrivileged(t, files, "/usr/libexec/tools/su2", len(busybox(t)))
			if e, err := files.Lstat("/opt/tools"); err != nil || e.Mode&fs.ModeSymlink == 0 || e.Link != "/usr/libexec/tools" {
				t.Errorf("/opt/tools in the pushed image = %+v, %v; want the base's symlink to /usr/libexec/tools", e, err)
			}
		},
	}, {
		// A set-uid file whose name USTAR cannot hold (a directory name over
		// 100 bytes, not ASCII).
		name: "setuid-name-not-ustar",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t, testbase.Entry{Name: "usr/lib/" + strings.Repeat("d", 110) + "/sü-helper", Mode: 0o4755, Data: busybox(t)})}
		},
		pushed: func(t *testing.T, files *imagefs.FS, _ v1.Image, _ string) {
			notPrivileged(t, files, "/usr/lib/"+strings.Repeat("d", 110)+"/sü-helper", len(busybox(t)))
		},
	}, {
		// /etc/passwd a symlink: the users stay, the image's user is added to
		// the file it leads to.
		name: "passwd-symlink",
		layers: func(t *testing.T, _ string) []v1.Layer {
			return []v1.Layer{rawLayer(t,
				testbase.Entry{Name: "usr/share/baselayout/", Type: tar.TypeDir},
				testbase.Entry{Name: "usr/share/baselayout/passwd", Data: []byte(passwdRoot + "app:x:1000:1000::/home/app:/bin/sh\n")},
				testbase.Entry{Name: "etc/.wh.passwd"},
				testbase.Entry{Name: "etc/passwd", Type: tar.TypeSymlink, Link: "../usr/share/baselayout/passwd"})}
		},
		pushed: func(t *testing.T, files *imagefs.FS, _ v1.Image, _ string) {
			if e, err := files.Lstat("/etc/passwd"); err != nil || e.Mode&fs.ModeSymlink == 0 {
				t.Errorf("/etc/passwd in the pushed image = %+v, %v; want the base's symlink", e, err)
			}
			b, err := files.ReadFile("/etc/passwd", 1<<20)
			if want := passwdRoot + "app:x:1000:1000::/home/app:/bin/sh\nnonroot:x:65532:65532:"; err != nil || !strings.HasPrefix(string(b), want) {
				t.Errorf("/etc/passwd in the pushed image = %q, %v; want the base's users and nonroot", b, err)
			}
		},
	}, {
		// 128 MiB set-uid program: streamed, never held in memory.
		name: "large-setuid-file",
		layers: func(t *testing.T, _ string) []v1.Layer {
			l, err := testbase.ZerosLayer("usr/bin/big-su", 0o4755, 128<<20)
			if err != nil {
				t.Fatal(err)
			}
			return []v1.Layer{l}
		},
		pushed: func(t *testing.T, files *imagefs.FS, _ v1.Image, _ string) {
			notPrivileged(t, files, "/usr/bin/big-su", 128<<20)
		},
		maxRSS: 160 << 20,
	}, {
		// Labels and annotations the graft owns are the graft's: a base's
		// revision is not inherited when the build has none; the base's other
		// keys stay and are listed in the provenance.
		name: "base-owned-labels",
		base: func(t *testing.T, img v1.Image) v1.Image {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			cf = cf.DeepCopy()
			cf.Config.Labels = map[string]string{
				"org.opencontainers.image.revision": "base-revision",
				"org.opencontainers.image.source":   "https://example.com/base",
				"org.opencontainers.image.title":    "the base",
				graft.LabelInputs:                   `{"image":"forged"}`,
				"maintainer":                        "base team",
			}
			if img, err = mutate.ConfigFile(img, cf); err != nil {
				t.Fatal(err)
			}
			return mutate.Annotations(img, map[string]string{
				"org.opencontainers.image.revision": "base-revision", "com.example.keep": "yes"}).(v1.Image)
		},
		args: []string{"--revision="},
		pushed: func(t *testing.T, _ *imagefs.FS, img v1.Image, resultDir string) {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			labels, ann := cf.Config.Labels, m.Annotations
			if v, ok := labels["org.opencontainers.image.revision"]; ok {
				t.Errorf("label revision = %q, want none (the build has no revision; the base's is not the image's)", v)
			}
			if v, ok := ann["org.opencontainers.image.revision"]; ok {
				t.Errorf("annotation revision = %q, want none", v)
			}
			if labels["org.opencontainers.image.source"] != "https://github.com/sqlite-graft/sqlite-graft" ||
				labels["org.opencontainers.image.title"] != "alpine-3.21 with SQLite 3.53.4" || strings.Contains(labels[graft.LabelInputs], "forged") {
				t.Errorf("labels = %v, want the graft's source, title and inputs", labels)
			}
			if labels["maintainer"] != "base team" || ann["com.example.keep"] != "yes" {
				t.Errorf("labels %v, annotations %v; want the base's maintainer label and com.example.keep annotation kept", labels, ann)
			}
			prov, err := os.ReadFile(filepath.Join(resultDir, provenance.FileName))
			if err != nil || !bytes.Contains(prov, []byte(`"inherited_labels"`)) || !bytes.Contains(prov, []byte(`"maintainer": "base team"`)) ||
				!bytes.Contains(prov, []byte(`"com.example.keep": "yes"`)) || bytes.Contains(prov, []byte("base-revision")) {
				t.Errorf("provenance %v: want the inherited label and annotation listed, the owned ones not:\n%s", err, prov)
			}
		},
	}}
}

// TestHostileBases runs every crafted base through the real build.
func TestHostileBases(t *testing.T) {
	reg := registrytest.Start(t)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "escaped-"+tc.name)
			var layers []v1.Layer
			if tc.layers != nil {
				layers = tc.layers(t, marker)
			}
			img, err := testbase.WithLayers(testbase.Musl(t), layers...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.base != nil {
				img = tc.base(t, img)
			}
			base := testbase.Push(t, img, reg.Host+"/hostile/"+tc.name+":base")
			repo := reg.Host + "/graft/" + tc.name
			args, resPath := buildArgs(t, "alpine-3.21", base.String(), repo, tc.args...)
			var top v1.Hash
			if len(layers) > 0 {
				top, _ = layers[len(layers)-1].Digest()
			}

			s := newSandbox(t)
			r := s.run(t, 5*time.Minute, args...)
			if tc.maxRSS > 0 && r.maxRSS > tc.maxRSS {
				t.Errorf("the build's peak resident memory was %d MiB, want at most %d MiB (large files streamed)", r.maxRSS>>20, tc.maxRSS>>20)
			}
			t.Logf("peak resident memory %d MiB", r.maxRSS>>20)
			s.leftNothing(t)
			if _, err := os.Lstat(marker); err == nil {
				t.Errorf("%s exists: the base wrote outside the image", marker)
			}
			if len(tc.refused) > 0 {
				refused(t, r, reg, repo, resPath, tc.refused, top)
				return
			}
			if r.code != 0 {
				t.Fatalf("build = %d, want the base handled:\n%s", r.code, r.stderr)
			}
			res := readResult(t, resPath)
			d, err := name.NewDigest(res.Reference)
			if err != nil {
				t.Fatal(err)
			}
			pushed, err := remote.Image(d, reg.RemoteOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			files, err := imagefs.Open(pushed, imagefs.Limits{})
			if err != nil {
				t.Fatalf("the pushed image %s: %v", d, err)
			}
			defer files.Close()
			tc.pushed(t, files, pushed, filepath.Dir(resPath))
		})
	}
}

// refused checks a refusal: exit 1 naming every want, no tag, nothing in
// the repository, no result file.
func refused(t *testing.T, r run, reg *registrytest.Registry, repo, resPath string, want []string, top v1.Hash) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("build = %d, want 1 (refused):\n%s", r.code, r.stderr)
	}
	for _, w := range want {
		if w = strings.ReplaceAll(w, "{top}", top.String()); !strings.Contains(r.stderr, w) {
			t.Errorf("the error does not name %q:\n%s", w, r.stderr)
		}
	}
	nothingPushed(t, reg, repo)
	if _, err := os.Stat(resPath); err == nil {
		t.Errorf("result file %s written by a refused build", resPath)
	}
}

// nothingPushed fails if the repository holds any tag (image, referrer
// fallback or other).
func nothingPushed(t *testing.T, reg *registrytest.Registry, repo string) {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r, reg.RemoteOptions()...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return
	}
	if err != nil || len(tags) > 0 {
		t.Errorf("%s holds tags %v (%v), want nothing pushed", repo, tags, err)
	}
}
