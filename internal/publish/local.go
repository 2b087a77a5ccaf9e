package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Names of the local outputs inside the directory given to WriteLocal.
const (
	LayoutDir   = "oci"
	TarballFile = "image.tar"
)

// WriteLocal writes a (a v1.Image, or a v1.ImageIndex for a multi-platform build) to dir:
//
//   - dir/oci: an OCI image layout whose index.json has one entry per tag, annotated with
//     org.opencontainers.image.ref.name = the tag ("3.21-sqlite3.51.3") and
//     io.containerd.image.name = the full reference, so `skopeo copy oci:dir/oci:TAG ...`
//     and `umoci ls --layout dir/oci` find it;
//   - dir/image.tar: a `docker load`-able tarball with every tag as a RepoTag. That format
//     cannot hold an index: for an index it holds the image for the host's platform (linux
//     and runtime.GOARCH), or else the first image of the index.
//
// The outputs are written atomically: when dir does not exist, both are written to a temporary
// sibling directory that is renamed to dir at the end; when it exists, they are written to a
// temporary directory inside it and then moved over the old outputs (other files in dir are
// left alone). A failure leaves no half-written output behind.
func WriteLocal(dir string, a Artifact, tags []name.Tag) (*Result, error) {
	digest, mt, err := describe(a)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", dir, err)
	}
	plats, err := platforms(a)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", dir, err)
	}
	dir = filepath.Clean(dir)

	existing := false
	switch fi, err := os.Stat(dir); {
	case err == nil && fi.IsDir():
		existing = true
	case err == nil:
		return nil, fmt.Errorf("write %s: exists and is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("write %s: %w", dir, err)
	}

	var stage string
	if existing {
		stage, err = os.MkdirTemp(dir, ".publish-tmp-*")
	} else {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("write %s: %w", dir, err)
		}
		stage, err = os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*")
	}
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", dir, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, fmt.Errorf("write %s: %w", dir, err)
	}

	if err := writeLayout(filepath.Join(stage, LayoutDir), a, tags); err != nil {
		return nil, fmt.Errorf("write %s: OCI layout: %w", dir, err)
	}
	if err := writeTarball(filepath.Join(stage, TarballFile), a, tags); err != nil {
		return nil, fmt.Errorf("write %s: tarball: %w", dir, err)
	}

	if existing {
		if err := replaceOutputs(dir, stage); err != nil {
			return nil, fmt.Errorf("write %s: %w", dir, err)
		}
		_ = os.RemoveAll(stage)
	} else {
		if err := os.Rename(stage, dir); err != nil {
			return nil, fmt.Errorf("write %s: %w", dir, err)
		}
	}
	committed = true

	res := &Result{
		Digest:    digest.String(),
		MediaType: string(mt),
		Tags:      []string{},
		Pushed:    []string{},
		Platforms: plats,
		Layout:    filepath.Join(dir, LayoutDir),
		Tarball:   filepath.Join(dir, TarballFile),
	}
	for _, t := range tags {
		res.Tags = append(res.Tags, t.Name())
	}
	if len(tags) > 0 {
		res.Reference = tags[0].Context().Digest(digest.String()).Name()
	} else {
		res.Reference = "oci:" + res.Layout + "@" + digest.String()
	}
	return res, nil
}

func writeLayout(path string, a Artifact, tags []name.Tag) error {
	lp, err := layout.Write(path, empty.Index)
	if err != nil {
		return err
	}
	annotations := []map[string]string{nil}
	if len(tags) > 0 {
		annotations = annotations[:0]
		for _, t := range tags {
			annotations = append(annotations, map[string]string{
				"org.opencontainers.image.ref.name": t.TagStr(),
				"io.containerd.image.name":          t.Name(),
			})
		}
	}
	for _, ann := range annotations {
		var opts []layout.Option
		if ann != nil {
			opts = append(opts, layout.WithAnnotations(ann))
		}
		switch a := a.(type) {
		case v1.ImageIndex:
			err = lp.AppendIndex(a, opts...)
		case v1.Image:
			err = lp.AppendImage(a, opts...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeTarball(path string, a Artifact, tags []name.Tag) error {
	img, err := tarballImage(a)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		refs[t] = img
	}
	if len(refs) == 0 {
		// No tag: an untagged image (docker load prints its ID).
		d, err := img.Digest()
		if err != nil {
			return err
		}
		ref, err := name.NewDigest("image@" + d.String())
		if err != nil {
			return err
		}
		refs[ref] = img
	}
	return tarball.MultiRefWriteToFile(path, refs)
}

// tarballImage picks the image that goes into the docker tarball.
func tarballImage(a Artifact) (v1.Image, error) {
	switch a := a.(type) {
	case v1.Image:
		return a, nil
	case v1.ImageIndex:
		im, err := a.IndexManifest()
		if err != nil {
			return nil, err
		}
		want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		var first *v1.Descriptor
		for i, d := range im.Manifests {
			if !d.MediaType.IsImage() {
				continue
			}
			if first == nil {
				first = &im.Manifests[i]
			}
			if d.Platform != nil && d.Platform.Satisfies(want) {
				return a.Image(d.Digest)
			}
		}
		if first == nil {
			return nil, errors.New("the index holds no image")
		}
		return a.Image(first.Digest)
	}
	return nil, fmt.Errorf("unsupported artifact %T", a)
}

// replaceOutputs moves the staged outputs over the ones in dir: each old output is first moved
// aside into the stage, so that a failed swap can put it back.
func replaceOutputs(dir, stage string) error {
	names := []string{LayoutDir, TarballFile}
	type moved struct{ name, old string }
	var done []moved
	rollback := func() {
		for i := len(done) - 1; i >= 0; i-- {
			m := done[i]
			_ = os.Rename(filepath.Join(dir, m.name), filepath.Join(stage, m.name))
			if m.old != "" {
				_ = os.Rename(m.old, filepath.Join(dir, m.name))
			}
		}
	}
	for _, n := range names {
		dst := filepath.Join(dir, n)
		old := ""
		if _, err := os.Lstat(dst); err == nil {
			old = filepath.Join(stage, ".old-"+n)
			if err := os.Rename(dst, old); err != nil {
				rollback()
				return err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			rollback()
			return err
		}
		if err := os.Rename(filepath.Join(stage, n), dst); err != nil {
			if old != "" {
				_ = os.Rename(old, dst)
			}
			rollback()
			return err
		}
		done = append(done, moved{name: n, old: old})
	}
	return nil
}
