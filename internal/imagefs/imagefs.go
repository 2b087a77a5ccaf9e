// Package imagefs reads the flattened file system of a container image
// without trusting the image: what the build learns about a base's files
// (set-id programs, file capabilities, /etc/passwd, the libraries the check
// reads) comes from here, never from a stream that stopped early or a
// directory a hostile image could shape.
//
// Open reads every layer to its end into an unlinked temporary file while
// hashing it, and compares both the compressed digest (the manifest's) and
// the diffID (the config's) before any entry of that layer is looked at: a
// registry that serves other bytes than the digest names is refused, whatever
// go-containerregistry would report later. Entries whose names leave the root
// (".." or a leading "/"), hard links to paths outside it, duplicate names in
// one layer (go-containerregistry keeps the first, runtimes the last), sparse
// files and unknown entry types are refused; so is an image whose layers
// unpack to more than a cap. Errors name the layer digest and the entry.
//
// The layers are applied as a runtime applies them (containerd, umoci):
// whiteouts and opaque whiteouts of a layer hide only what lower layers hold;
// an entry whose parent directory is a symlink lands where the symlink leads
// (resolved inside the image: an absolute target starts again at the image's
// root, ".." stops there), so every path this package reports is a real path
// in the image; a hard link shares its target's content, mode and xattrs.
package imagefs

import (
	"archive/tar"
	"bufio"
	"bytes"

	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/dustin/go-humanize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// DefaultMaxUnpackedSize is the cap on the bytes an image's layers unpack
// to, when Limits give none: a gzip bomb of a few megabytes must not fill the
// disk. Real bases are far smaller (alpine 8 MB, debian 120 MB, python 1 GB).
const DefaultMaxUnpackedSize int64 = 4 << 30

// ErrTooLarge is wrapped by the error of an image whose layers unpack to more
// than the cap.
var ErrTooLarge = errors.New("over the unpacked-size cap")

// Limits bound what Open reads.
type Limits struct {
	// MaxUnpackedSize caps the sum of the layers' uncompressed sizes; 0 means
	// DefaultMaxUnpackedSize. It also caps the number of entries, which
	// are held in memory: one per EntryBytes of it (1,048,576 at 4 GiB), so
	// that a layer of empty files cannot exhaust memory within the size cap.
	MaxUnpackedSize int64
}

// EntryBytes is how many bytes of MaxUnpackedSize allow one entry.
const EntryBytes = 4 << 10

// FS is the flattened file system of one image. Close releases its
// temporary files; readers opened from it stop working then.
type FS struct {
	root    *node
	layers  []*os.File
	entries int64 // left before the cap
}

// node is one name in the tree; hard links share an inode.
type node struct {
	children map[string]*node // directories only
	ino      *inode
}

type inode struct {
	mode     fs.FileMode // type, permission, set-id and sticky bits
	uid, gid int
	size     int64
	link     string // symlink target, as written
	xattrs   map[string]string
	layer    v1.Hash  // the layer that wrote it
	src      *os.File // regular files: the layer's verified tar
	off      int64    // regular files: where the content starts in src
	nlink    int
}

// Entry is one file of the image as the flattened file system has it.
type Entry struct {
	Path   string      // real path in the image: absolute, clean, no symlink among its parents
	Mode   fs.FileMode // type, permission, set-id and sticky bits
	UID    int
	GID    int
	Size   int64             // regular files
	Link   string            // symlinks: the target, as written
	Xattrs map[string]string // security.capability when the file has one (no other attribute is kept)
	Layer  v1.Hash           // digest of the layer the entry came from
	Nlink  int               // names sharing this file (hard links) in the image

	src *os.File
	off int64
}

// CapabilityXattr is the extended attribute that holds file capabilities.
const CapabilityXattr = "security.capability"

// Open reads and verifies every layer of img and builds its flattened file
// system. Nothing of a layer is used unless its digest and diffID match.
func Open(img v1.Image, lim Limits) (*FS, error) {
	if lim.MaxUnpackedSize <= 0 {
		lim.MaxUnpackedSize = DefaultMaxUnpackedSize
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("image config lists %d diffIDs for %d layers", len(cf.RootFS.DiffIDs), len(layers))
	}
	f := &FS{root: &node{children: map[string]*node{}, ino: &inode{mode: fs.ModeDir | 0o755, nlink: 1}},
		entries: max(lim.MaxUnpackedSize/EntryBytes, 1<<12)}
	budget := lim.MaxUnpackedSize
	for i, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %d: digest: %w", i+1, err)
		}
		src, n, err := fetchVerified(l, digest, cf.RootFS.DiffIDs[i], budget, lim.MaxUnpackedSize)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: %w", digest, err)
		}
		f.layers = append(f.layers, src)
		budget -= n
		if err := f.apply(src, n, digest); err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: %w", digest, err)
		}
	}
	return f, nil
}

// Close releases the temporary copies of the layers.
func (f *FS) Close() error {
	var errs []error
	for _, l := range f.layers {
		errs = append(errs, l.Close())
	}
	f.layers = nil
	return errors.Join(errs...)
}

// fetchVerified copies the layer's uncompressed tar into an unlinked
// temporary file, hashing the compressed stream to its very end and the
// uncompressed one, and compares both with what the image claims. It
// returns the file and the tar's size.
func fetchVerified(l v1.Layer, digest, diffID v1.Hash, budget, limit int64) (*os.File, int64, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, 0, fmt.Errorf("fetch: %w", err)
	}
	defer rc.Close()
	compressed := sha256.New()
	br := bufio.NewReader(io.TeeReader(rc, compressed))
	var r io.Reader = br
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	tmp, err := os.CreateTemp("", "sqlite-graft-layer-*.tar")
	if err != nil {
		return nil, 0, err
	}
	// Unlinked at once: nothing is left behind, whatever ends the process.
	if err := os.Remove(tmp.Name()); err != nil {
		tmp.Close()
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int64, error) {
		tmp.Close()
		return nil, 0, err
	}
	uncompressed := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, uncompressed), io.LimitReader(r, budget+1))
	if err != nil {
		return fail(fmt.Errorf("read: %w", err))
	}
	if n > budget {
		return fail(fmt.Errorf("the image's layers unpack to more than %s (%d bytes): %w", humanize.IBytes(uint64(limit)), limit, ErrTooLarge))
	}
	// Whatever follows the compressed stream counts for the digest too, and a
	// verifying reader reports a mismatch only at its end.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fail(fmt.Errorf("read: %w", err))
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", compressed.Sum(nil))}); digest.Algorithm != "sha256" || got != digest {
		return fail(fmt.Errorf("content has digest %s, want %s (the registry or layout served other bytes than the manifest names)", got, digest))
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", uncompressed.Sum(nil))}); got != diffID {
		return fail(fmt.Errorf("uncompressed content has diffID %s, want %s (the image config's)", got, diffID))
	}
	return tmp, n, nil
}

// header is what apply keeps of one tar entry.
type header struct {
	name, linkname string // clean, relative to the root
	typ            byte
	ino            *inode
}

// apply reads one verified layer and applies it to the tree: first its
// whiteouts (they hide only what lower layers hold), then its entries in
// order.
func (f *FS) apply(src *os.File, size int64, layer v1.Hash) error {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(src)
	var entries []header
	var whiteouts []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if f.entries--; f.entries < 0 {
			return fmt.Errorf("more entries than the image may hold (one per %d bytes of the unpacked-size cap): %w", EntryBytes, ErrTooLarge)
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue // the root itself
		}
		if base := path.Base(name); strings.HasPrefix(base, whiteoutPrefix) {
			// AUFS metadata (.wh..wh.plnk, ...) is not a whiteout; runtimes skip it too.
			if base == opaqueWhiteout || !strings.HasPrefix(base, whiteoutMetaPrefix) {
				whiteouts = append(whiteouts, name)
			}
			continue
		}
		e := header{name: name, typ: h.Typeflag, ino: &inode{uid: h.Uid, gid: h.Gid, layer: layer}}
		e.ino.mode = h.FileInfo().Mode()
		switch h.Typeflag {
		case tar.TypeReg:
			if isSparse(h) {
				return fmt.Errorf("entry %q: a sparse file (not supported)", h.Name)
			}
			off, err := src.Seek(0, io.SeekCurrent)
			if err != nil {
				return err
			}
			if h.Size < 0 || off+h.Size > size {
				return fmt.Errorf("entry %q: %d bytes at offset %d run past the end of the layer (%d bytes)", h.Name, h.Size, off, size)
			}
			e.ino.src, e.ino.off, e.ino.size = src, off, h.Size
		case tar.TypeLink:
			if e.linkname, err = cleanName(h.Linkname); err != nil {
				return fmt.Errorf("hard link %q: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			e.ino.link = h.Linkname
		case tar.TypeDir, tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		case tar.TypeGNUSparse:
			return fmt.Errorf("entry %q: a sparse file (not supported)", h.Name)
		default:
			return fmt.Errorf("entry %q: tar type %q not supported", h.Name, h.Typeflag)
		}
		if e.ino.xattrs, err = xattrs(h); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		entries = append(entries, e)
	}

	for _, w := range whiteouts {
		if err := f.whiteout(w); err != nil {
			return fmt.Errorf("whiteout %q: %w", w, err)
		}
	}
	seen := map[string]string{} // real path -> entry name, in this layer
	for _, e := range entries {
		real, err := f.put(e)
		if err != nil {
			return fmt.Errorf("entry %q: %w", e.name, err)
		}
		if first, dup := seen[real]; dup {
			return fmt.Errorf("%s appears twice in the layer (entries %q and %q): go-containerregistry keeps the first, runtimes the last", real, first, e.name)
		}
		seen[real] = e.name
	}
	return nil
}

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	opaqueWhiteout     = ".wh..wh..opq"
)

// pathMax is Linux's PATH_MAX: no runtime makes a longer name.
const pathMax = 4096

// cleanName is a tar name relative to the root, refusing names that leave
// it. An absolute name is relative to the image's root, as every runtime
// unpacks it (umoci writes the root itself as "/").
func cleanName(name string) (string, error) {
	if len(name) >= pathMax {
		return "", fmt.Errorf("entry %.64q...: a name of %d bytes (PATH_MAX is %d)", name, len(name), pathMax)
	}
	if strings.HasPrefix(name, `\`) {
		return "", fmt.Errorf("entry %q: a name that starts with a backslash", name)
	}
	if strings.HasPrefix(name, "/") {
		if name = strings.TrimLeft(name, "/"); name == "" {
			name = "."
		}
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("entry %q: the name leaves the image's root", name)
	}
	return c, nil
}

func isSparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// maxCapability bounds a file capability's value: the kernel's are 20
// bytes (revision 2) or 24 (revision 3).
const maxCapability = 64

// xattrs keeps of an entry's extended attributes the one that matters here,
// security.capability: written as SCHILY.xattr.* (what Go and runtimes
// write and apply) or libarchive's LIBARCHIVE.xattr.* (name URL-encoded,
// value base64). Others are dropped, so memory stays bounded.
func xattrs(h *tar.Header) (map[string]string, error) {
	var out map[string]string
	for k, v := range h.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			if name, ok = strings.CutPrefix(k, "LIBARCHIVE.xattr."); !ok {
				continue
			}
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				v = string(b)
			}
		}
		if name != CapabilityXattr {
			continue
		}
		if len(v) > maxCapability {
			return nil, fmt.Errorf("%s of %d bytes is no file capability (at most %d)", name, len(v), maxCapability)
		}
		out = map[string]string{name: v}
	}
	return out, nil
}

// whiteout hides a name of the lower layers, or with an opaque whiteout
// everything under a directory.
func (f *FS) whiteout(name string) error {
	dir, base := path.Split(name)
	parent, _, err := f.walk(dir, true, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing there to hide
	}
	if err != nil {
		return err
	}
	if parent.children == nil {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if base == opaqueWhiteout {
		for n, c := range parent.children {
			unlink(c)
			delete(parent.children, n)
		}
		return nil
	}
	hidden := strings.TrimPrefix(base, whiteoutPrefix)
	if hidden == "" || hidden == "." || hidden == ".." {
		return fmt.Errorf("not a whiteout of a name")
	}
	if c, ok := parent.children[hidden]; ok {
		unlink(c)
		delete(parent.children, hidden)
	}
	return nil
}

// unlink drops a subtree's names from their inodes' link counts.
func unlink(n *node) {
	n.ino.nlink--
	for _, c := range n.children {
		unlink(c)
	}
}

// put adds one entry: its parent resolved through symlinks (missing
// directories created, as runtimes do), the entry itself replacing what is
// at its name unless both are directories. It returns the real path.
func (f *FS) put(e header) (string, error) {
	dir, base := path.Split(e.name)
	parent, parentPath, err := f.walk(dir, true, true)
	if err != nil {
		return "", err
	}
	if parent.children == nil {
		return "", fmt.Errorf("%s is not a directory", parentPath)
	}
	real := path.Join(parentPath, base)
	ino := e.ino
	if e.typ == tar.TypeLink {
		target, targetPath, err := f.walk(e.linkname, false, false)
		if err != nil {
			return "", fmt.Errorf("hard link to %q: %w", e.linkname, err)
		}
		if target.children != nil {
			return "", fmt.Errorf("hard link to %s, a directory", targetPath)
		}
		if targetPath == real {
			return real, nil
		}
		ino = target.ino
	}
	old := parent.children[base]
	if old != nil && old.children != nil && ino.mode.IsDir() {
		old.ino.nlink--
		old.ino = ino // a directory's metadata changes, its contents stay
		ino.nlink++
		return real, nil
	}
	if old != nil {
		unlink(old)
	}
	n := &node{ino: ino}
	if ino.mode.IsDir() {
		n.children = map[string]*node{}
	}
	ino.nlink++
	parent.children[base] = n
	return real, nil
}

// maxLinks is how many symlinks one lookup follows (Linux: 40).
const maxLinks = 40

// walk finds the node at p (relative or absolute, in the image), following
// symlinks in every component but the last, and the last too when
// followLast. With create, missing directories on the way are made (0755,
// as runtimes make the parents of an entry). It returns the node and its
// real path.
func (f *FS) walk(p string, followLast, create bool) (*node, string, error) {
	stack := []*node{f.root}
	names := []string{}
	todo := strings.Split(p, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack, names = stack[:len(stack)-1], names[:len(names)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if cur.children == nil {
			return nil, "", fmt.Errorf("%s: %s is not a directory", p, "/"+strings.Join(names, "/"))
		}
		next, ok := cur.children[c]
		if !ok {
			if !create {
				return nil, "", fmt.Errorf("%s: %w", p, fs.ErrNotExist)
			}
			next = &node{children: map[string]*node{}, ino: &inode{mode: fs.ModeDir | 0o755, nlink: 1}}
			cur.children[c] = next
		}
		last := !hasMore(todo)
		if next.ino.mode&fs.ModeSymlink != 0 && (!last || followLast) {
			if links++; links > maxLinks {
				return nil, "", fmt.Errorf("%s: more than %d symbolic links", p, maxLinks)
			}
			target := next.ino.link
			if strings.HasPrefix(target, "/") {
				stack, names = stack[:1], names[:0]
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		stack, names = append(stack, next), append(names, c)
	}
	return stack[len(stack)-1], "/" + strings.Join(names, "/"), nil
}

// hasMore reports whether a path remainder has a real component left.
func hasMore(todo []string) bool {
	for _, c := range todo {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// Lstat returns the entry at p, following symlinks among its parents but not
// a symlink at p itself. A missing path wraps fs.ErrNotExist.
func (f *FS) Lstat(p string) (*Entry, error) {
	n, real, err := f.walk(p, false, false)
	if err != nil {
		return nil, err
	}
	return entry(real, n), nil
}

// Stat returns the entry p leads to, following every symlink.
func (f *FS) Stat(p string) (*Entry, error) {
	n, real, err := f.walk(p, true, false)
	if err != nil {
		return nil, err
	}
	return entry(real, n), nil
}

// Resolve returns the real path p leads to, following every symlink inside
// the image. A missing component wraps fs.ErrNotExist.
func (f *FS) Resolve(p string) (string, error) {
	_, real, err := f.walk(p, true, false)
	return real, err
}

// ReadDir lists the directory p leads to, sorted by name.
func (f *FS) ReadDir(p string) ([]*Entry, error) {
	n, real, err := f.walk(p, true, false)
	if err != nil {
		return nil, err
	}
	if n.children == nil {
		return nil, fmt.Errorf("%s: not a directory", p)
	}
	var out []*Entry
	for _, name := range sortedNames(n) {
		out = append(out, entry(path.Join(real, name), n.children[name]))
	}
	return out, nil
}

// Walk calls fn for every entry of the image but the root, parents before
// their children, in path order.
func (f *FS) Walk(fn func(*Entry) error) error {
	var walk func(dir string, n *node) error
	walk = func(dir string, n *node) error {
		for _, name := range sortedNames(n) {
			c := n.children[name]
			p := path.Join(dir, name)
			if err := fn(entry(p, c)); err != nil {
				return err
			}
			if c.children != nil {
				if err := walk(p, c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("/", f.root)
}

func sortedNames(n *node) []string {
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func entry(p string, n *node) *Entry {
	i := n.ino
	return &Entry{Path: p, Mode: i.mode, UID: i.uid, GID: i.gid, Size: i.size, Link: i.link, Xattrs: i.xattrs,
		Layer: i.layer, Nlink: i.nlink, src: i.src, off: i.off}
}

// Open returns the content of a regular file. Other types are refused
// before anything is read: a FIFO or a device in an image is never opened.
func (e *Entry) Open() (*io.SectionReader, error) {
	if !e.Mode.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", e.Path, typeName(e.Mode))
	}
	if e.src == nil {
		return io.NewSectionReader(bytes.NewReader(nil), 0, 0), nil
	}
	return io.NewSectionReader(e.src, e.off, e.Size), nil
}

// ReadFile returns the content of the regular file p leads to, refusing one
// larger than limit bytes.
func (f *FS) ReadFile(p string, limit int64) ([]byte, error) {
	e, err := f.Stat(p)
	if err != nil {
		return nil, err
	}
	if e.Mode.IsRegular() && e.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d this reads", e.Path, e.Size, limit)
	}
	r, err := e.Open()
	if err != nil {
		return nil, err
	}
	b := make([]byte, e.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	return b, nil
}

// typeName names a file type for errors.
func typeName(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "regular file"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symlink"
	case t&fs.ModeNamedPipe != 0:
		return "fifo"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "block device"
	default:
		return t.String()
	}
}
