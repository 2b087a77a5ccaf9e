package distropkg

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AddTo returns img with the package's files as one more layer, as an
// application image that installs the package would have them: a throwaway
// image for the check, never to be pushed. Package scripts are not run.
func (p *Package) AddTo(img v1.Image) (v1.Image, error) {
	l, err := p.layer()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	lmt := types.OCILayer
	if mt == types.DockerManifestSchema2 {
		lmt = types.DockerLayer
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: l, MediaType: lmt,
		History: v1.History{CreatedBy: fmt.Sprintf("sqlite-graft check: %s %s from %s (a throwaway copy for the check, never pushed)", p.Name, p.Version, p.Origin)},
	})
}

// layer copies the package's data tar into a gzip'd layer, keeping only
// directories, regular files and links, owned by root, with paths that
// stay inside the image.
func (p *Package) layer() (v1.Layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	err := eachEntry(p.data, func(name string, h *tar.Header, r io.Reader) error {
		out := &tar.Header{Name: name, Mode: h.Mode & 0o7777, ModTime: h.ModTime, Typeflag: h.Typeflag, Format: tar.FormatPAX}
		switch h.Typeflag {
		case tar.TypeDir:
			out.Name += "/"
		case tar.TypeReg:
			out.Size = h.Size
		case tar.TypeSymlink:
			out.Linkname = h.Linkname
		case tar.TypeLink:
			target, ok := clean(h.Linkname)
			if !ok {
				return fmt.Errorf("%s: hard link to %q, outside the image", name, h.Linkname)
			}
			out.Linkname = target
		default:
			return fmt.Errorf("%s: tar type %q is not a directory, file or link", name, h.Typeflag)
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Origin, err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// An uncompressed tar: go-containerregistry gzips it (a throwaway
	// layer, so its digest need not be pinned).
	blob := raw.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// eachEntry calls f for every entry of the tar t but the root, with its
// name cleaned to a relative path ("./usr/lib/x" -> "usr/lib/x").
func eachEntry(t []byte, f func(name string, h *tar.Header, r io.Reader) error) error {
	tr := tar.NewReader(bytes.NewReader(t))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, ok := clean(h.Name)
		if !ok {
			return fmt.Errorf("entry %q lies outside the image", h.Name)
		}
		if name == "" {
			continue
		}
		if err := f(name, h, tr); err != nil {
			return err
		}
	}
}

// clean makes a tar name relative to the image's root; ok is false for a
// name that climbs out of it.
func clean(name string) (string, bool) {
	c := path.Clean("/" + name)
	if strings.Contains("/"+name+"/", "/../") {
		return "", false
	}
	return strings.TrimPrefix(c, "/"), true
}

// findLibrary is the package's libsqlite3.so.0 (the file or the link).
func findLibrary(t []byte) (string, error) {
	found := ""
	err := eachEntry(t, func(name string, h *tar.Header, _ io.Reader) error {
		if found == "" && path.Base(name) == "libsqlite3.so.0" && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink) {
			found = "/" + name
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", errNoLibrary
	}
	return found, nil
}
