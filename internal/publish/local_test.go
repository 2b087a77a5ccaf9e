package publish

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
)

func tags(t *testing.T, refs ...string) []name.Tag {
	t.Helper()
	var out []name.Tag
	for _, r := range refs {
		tag, err := name.NewTag(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tag)
	}
	return out
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type skopeoInspect struct {
	Digest       string
	RepoTags     []string
	Architecture string
	Os           string
	Layers       []string
}

func inspect(t *testing.T, skopeo string, args ...string) skopeoInspect {
	t.Helper()
	var si skopeoInspect
	out := run(t, skopeo, append([]string{"inspect"}, args...)...)
	if err := json.Unmarshal([]byte(out), &si); err != nil {
		t.Fatalf("skopeo inspect %v: %v\n%s", args, err, out)
	}
	return si
}

func TestWriteLocalImageReadByRealTools(t *testing.T) {
	skopeo := registrytest.NeedBinary(t, "skopeo", "skopeo")
	umoci := registrytest.NeedBinary(t, "umoci", "umoci")
	dir := filepath.Join(t.TempDir(), "out")
	img := testImage(t, 2, 32<<10, "amd64")
	want := mustDigest(t, img)

	res, err := WriteLocal(dir, img, tags(t, "registry.example/sqlite-graft/alpine:3.21-sqlite3.51.3", "registry.example/sqlite-graft/alpine:3.21"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want.String() || res.Reference != "registry.example/sqlite-graft/alpine@"+want.String() ||
		res.Layout != filepath.Join(dir, "oci") || res.Tarball != filepath.Join(dir, "image.tar") {
		t.Fatalf("result %+v", res)
	}

	ls := run(t, umoci, "ls", "--layout", filepath.Join(dir, "oci"))
	if !strings.Contains(ls, "3.21-sqlite3.51.3") || !strings.Contains(ls, "3.21\n") {
		t.Fatalf("umoci ls: %q", ls)
	}
	si := inspect(t, skopeo, "oci:"+filepath.Join(dir, "oci")+":3.21-sqlite3.51.3")
	if si.Digest != want.String() || si.Architecture != "amd64" || len(si.Layers) != 2 {
		t.Fatalf("skopeo inspect oci: %+v, want digest %s", si, want)
	}
	ti := inspect(t, skopeo, "docker-archive:"+filepath.Join(dir, "image.tar"))
	if len(ti.Layers) != 2 || ti.Architecture != "amd64" {
		t.Fatalf("skopeo inspect docker-archive: %+v", ti)
	}
	ls0, _ := img.Layers()
	for i, l := range ls0 {
		if d, _ := l.DiffID(); ti.Layers[i] != d.String() { // docker-archive lists diff IDs
			t.Fatalf("docker-archive layer %d is %s, want %s", i, ti.Layers[i], d)
		}
	}
	// Each tag selects the image.
	for _, tag := range []string{"registry.example/sqlite-graft/alpine:3.21", "registry.example/sqlite-graft/alpine:3.21-sqlite3.51.3"} {
		if si := inspect(t, skopeo, "docker-archive:"+res.Tarball+":"+tag); si.Digest != ti.Digest {
			t.Fatalf("docker-archive %s: %+v", tag, si)
		}
	}
	// The tarball carries both tags.
	mf, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(res.Tarball) })
	if err != nil {
		t.Fatal(err)
	}
	if len(mf) != 1 || len(mf[0].RepoTags) != 2 {
		t.Fatalf("tarball manifest %+v", mf)
	}
	// Nothing else in dir, nothing beside it.
	assertEntries(t, dir, "image.tar", "oci")
	assertEntries(t, filepath.Dir(dir), "out")
}

func TestWriteLocalIndex(t *testing.T) {
	skopeo := registrytest.NeedBinary(t, "skopeo", "skopeo")
	dir := filepath.Join(t.TempDir(), "out")
	idx := testIndex(t, 8<<10, "arm64", "amd64")
	res, err := WriteLocal(dir, idx, tags(t, "r.example/a/b:multi"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != mustDigest(t, idx).String() || strings.Join(res.Platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("%+v", res)
	}
	raw := run(t, skopeo, "inspect", "--raw", "oci:"+res.Layout+":multi")
	var im v1.IndexManifest
	if err := json.Unmarshal([]byte(raw), &im); err != nil || len(im.Manifests) != 2 || im.MediaType != types.OCIImageIndex {
		t.Fatalf("raw index %s: %v", raw, err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		si := inspect(t, skopeo, "--override-arch="+arch, "oci:"+res.Layout+":multi")
		if si.Architecture != arch || si.Os != "linux" {
			t.Fatalf("skopeo inspect --override-arch=%s: %+v", arch, si)
		}
	}
	ti := inspect(t, skopeo, "docker-archive:"+res.Tarball)
	if ti.Os != "linux" || ti.Architecture == "" {
		t.Fatalf("tarball image %+v", ti)
	}
	// Readable back with go-containerregistry too.
	lp, err := layout.FromPath(res.Layout)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	outer, _ := ii.IndexManifest()
	if len(outer.Manifests) != 1 || outer.Manifests[0].Digest.String() != res.Digest {
		t.Fatalf("index.json %+v", outer)
	}
}

// failingLayer fails its Compressed call number failOn (counting from 1).
type failingLayer struct {
	v1.Layer
	calls  *atomic.Int64
	failOn int64
}

func (l failingLayer) Compressed() (io.ReadCloser, error) {
	if n := l.calls.Add(1); n == l.failOn {
		return nil, errors.New("injected read failure")
	}
	return l.Layer.Compressed()
}

func TestWriteLocalFailureLeavesNothing(t *testing.T) {
	base := testImage(t, 1, 8<<10, "amd64")
	rl, err := random.Layer(64<<10, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	tg := tags(t, "r.example/a/b:t")
	build := func(failOn int64) (v1.Image, *atomic.Int64) {
		calls := new(atomic.Int64)
		img, err := mutate.AppendLayers(base, failingLayer{Layer: rl, calls: calls, failOn: failOn})
		if err != nil {
			t.Fatal(err)
		}
		return img, calls
	}
	// How often the layer is read in a full run: the last read is in the tarball, after the
	// OCI layout was completely written.
	img, calls := build(0)
	if _, err := WriteLocal(filepath.Join(t.TempDir(), "ok"), img, tg); err != nil {
		t.Fatal(err)
	}
	total := calls.Load()
	if total < 2 {
		t.Fatalf("layer read %d times", total)
	}

	for _, failOn := range []int64{1, total} {
		// A new directory: no output at all afterwards.
		parent := t.TempDir()
		dir := filepath.Join(parent, "out")
		img, _ := build(failOn)
		if _, err := WriteLocal(dir, img, tg); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("failOn %d: error %v", failOn, err)
		}
		assertEntries(t, parent)

		// An existing directory: the old outputs and other files are untouched.
		old := testImage(t, 1, 1024, "amd64")
		if _, err := WriteLocal(dir, old, tg); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(dir, "result.json"), "{}")
		img, _ = build(failOn)
		if _, err := WriteLocal(dir, img, tg); err == nil {
			t.Fatalf("failOn %d: no error", failOn)
		}
		assertEntries(t, dir, "image.tar", "oci", "result.json")
		lp, err := layout.FromPath(filepath.Join(dir, "oci"))
		if err != nil {
			t.Fatal(err)
		}
		ii, _ := lp.ImageIndex()
		im, _ := ii.IndexManifest()
		if im.Manifests[0].Digest != mustDigest(t, old) {
			t.Fatalf("old layout replaced")
		}

		// And a successful run replaces the outputs, keeping the other file.
		res, err := WriteLocal(dir, base, tg)
		if err != nil {
			t.Fatal(err)
		}
		assertEntries(t, dir, "image.tar", "oci", "result.json")
		lp, _ = layout.FromPath(res.Layout)
		ii, _ = lp.ImageIndex()
		im, _ = ii.IndexManifest()
		if len(im.Manifests) != 1 || im.Manifests[0].Digest != mustDigest(t, base) {
			t.Fatalf("layout not replaced: %+v", im.Manifests)
		}
	}
}

func TestWriteLocalRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeTestFile(t, file, "x")
	if _, err := WriteLocal(file, testImage(t, 1, 10, "amd64"), nil); err == nil {
		t.Fatal("wrote into a file")
	}
	var notImage struct{ Artifact }
	if _, err := WriteLocal(t.TempDir(), notImage, nil); err == nil {
		t.Fatal("accepted a non-image")
	}
	// Untagged output is fine.
	res, err := WriteLocal(filepath.Join(t.TempDir(), "o"), testImage(t, 1, 10, "amd64"), nil)
	if err != nil || !strings.HasPrefix(res.Reference, "oci:") {
		t.Fatalf("%+v %v", res, err)
	}
}

func assertEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, want)
	}
}
