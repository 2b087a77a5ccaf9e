package testbase

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
)

// File is one entry of a layer built by Layer.
type File struct {
	// Path is absolute and clean, e.g. /usr/lib/libsqlite3.so.0.
	Path string
	// Mode holds the type (fs.ModeDir, fs.ModeSymlink, or none for a regular
	// file), the permission bits and the set-id and sticky bits
	// (fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky).
	Mode fs.FileMode
	Data []byte // regular files
	Link string // symlinks: the target, as written
}

// Regular is a regular file.
func Regular(p string, mode fs.FileMode, data []byte) File {
	return File{Path: p, Mode: mode &^ fs.ModeType, Data: data}
}

// Dir is a directory.
func Dir(p string, mode fs.FileMode) File { return File{Path: p, Mode: fs.ModeDir | mode&^fs.ModeType} }

// Symlink is a symbolic link to target.
func Symlink(p, target string) File { return File{Path: p, Mode: fs.ModeSymlink | 0o777, Link: target} }

// Layer returns a deterministic OCI layer of files: entries sorted by path,
// parent directories added (0755) where not listed, owner 0:0, every mtime
// Epoch, USTAR headers, gzip at the default level of the Go standard library.
func Layer(files ...File) (v1.Layer, error) {
	byPath, paths, err := tree(files)
	if err != nil {
		return nil, err
	}

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, p := range paths {
		f := byPath[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(fsutil.UnixMode(f.Mode)),
			ModTime: Epoch,
			Format:  tar.FormatUSTAR,
		}
		switch f.Mode.Type() {
		case fs.ModeDir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case fs.ModeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		case 0:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		default:
			return nil, fmt.Errorf("testbase: layer entry %s: unsupported type %v", p, f.Mode.Type())
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("testbase: tar header of %s: %w", p, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz) // zero header: no name, no mtime
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// tree is files by path, with their parent directories (0755) added where
// not listed, and the paths sorted.
func tree(files []File) (map[string]File, []string, error) {
	byPath := map[string]File{}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, nil, fmt.Errorf("testbase: layer entry %q: want an absolute, clean path", f.Path)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, nil, fmt.Errorf("testbase: layer entry %s listed twice", f.Path)
		}
		byPath[f.Path] = f
	}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = Dir(d, 0o755)
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return byPath, paths, nil
}

// MustLayer is Layer that fails the test on error.
func MustLayer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	l, err := Layer(files...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ReadFile returns the contents of the regular file p (absolute) in the
// image's flattened filesystem.
func ReadFile(t testing.TB, img v1.Image, p string) []byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	want := strings.TrimPrefix(p, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("testbase: read %s: %v", p, err)
		}
		if strings.TrimPrefix(path.Clean("/"+h.Name), "/") != want {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			t.Fatalf("testbase: %s is not a regular file in the image (tar type %q)", p, h.Typeflag)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("testbase: %s is not in the image", p)
	return nil
}
