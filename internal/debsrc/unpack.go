package debsrc

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// maxUnpacked bounds what one tarball may unpack to (SQLite's tree is ~50 MB,
// Tcl's ~30 MB) against archive bombs.
const maxUnpacked = 1 << 30

// Unpack extracts an orig tarball (.tar.xz or .tar.gz) into dst, which must
// not exist yet, dropping its single top-level directory. Only directories
// and regular files are accepted: a link, a device, an absolute path or a
// path leaving dst is an error, and dst is removed again.
func Unpack(archive, dst string) (err error) {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	switch {
	case strings.HasSuffix(archive, ".xz"):
		if r, err = xz.NewReader(r); err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
	case strings.HasSuffix(archive, ".gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		defer zr.Close()
		r = zr
	default:
		return fmt.Errorf("%s: not a .tar.xz or .tar.gz", archive)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dst)
		}
	}()
	tr := tar.NewReader(io.LimitReader(r, maxUnpacked))
	top := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		name := path.Clean(h.Name)
		first, rest, _ := strings.Cut(name, "/")
		if top == "" {
			top = first
		}
		if first != top || path.IsAbs(h.Name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("%s: entry %q is outside the top-level directory %s/", archive, h.Name, top)
		}
		if rest == "" {
			continue
		}
		p := filepath.Join(dst, filepath.FromSlash(rest))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(p, tr, os.FileMode(h.Mode)&0o755|0o644); err != nil {
				return fmt.Errorf("%s: %s: %w", archive, h.Name, err)
			}
		case tar.TypeXGlobalHeader:
		default:
			return fmt.Errorf("%s: entry %q is not a regular file or directory (type %q)", archive, h.Name, h.Typeflag)
		}
	}
	if top == "" {
		return fmt.Errorf("%s: empty archive", archive)
	}
	return nil
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
