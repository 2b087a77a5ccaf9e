// Package layer writes the one image layer sqlite-graft adds to a base: the
// grafted library, its shell, the preload wrapper, the licence and the build
// metadata. The layer is a pure function of its Input: entries are sorted,
// owned by 0:0 with fixed modes and one mtime, written as USTAR (no PAX
// records, so no access or change times; only a name USTAR cannot encode,
// too long or not ASCII, gets a PAX record for that entry) and gzipped at a
// pinned level by the Go standard library, so the same Input gives the same
// digest, byte for byte, on every machine running the same Go release.
// Contents are streamed: a large file is never held in memory.
package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Where things go in the image. /usr/local is outside every distro package
// database, so no package upgrade overwrites the graft, and musl searches
// /usr/local/lib before /usr/lib.
const (
	LibDir       = "/usr/local/lib"
	Soname       = "libsqlite3.so.0"
	LibraryPath  = LibDir + "/" + Soname // the symlink loaders and preloads name
	ShellPath    = "/usr/local/bin/sqlite3"
	WrapperPath  = "/usr/local/bin/sqlite-preload"
	LicensePath  = "/usr/local/share/licenses/sqlite/LICENSE"
	MetadataPath = "/usr/local/share/sqlite-graft/build.json"
)

// GzipLevel is the pinned compression level. gzip output depends on the
// level and on the Go release (compress/flate): changing either changes the
// layer digest, so both are pinned (go.mod, this constant). Best compression
// because the layer is compressed once per build and pulled many times.
const GzipLevel = gzip.BestCompression

// WhiteoutPrefix marks an OCI whiteout: <dir>/.wh.<name> hides <dir>/<name>
// of the lower layers.
const WhiteoutPrefix = ".wh."

// Libc and preload mode values, as in the image definitions.
const (
	Musl  = "musl"
	Glibc = "glibc"

	PreloadEnv     = "env"
	PreloadWrapper = "wrapper"
)

// Input is everything the layer is made of.
type Input struct {
	Library string       // path of the built libsqlite3.so.0
	Shell   string       // path of the built sqlite3 shell; "" if none
	Version pins.Version // names the library file: libsqlite3.so.<version>
	Libc    string       // musl|glibc: picks how the wrapper preloads
	Preload string       // env|wrapper ("" means env); the wrapper ships in both modes
	// Metadata is written as JSON with sorted keys to MetadataPath; it must
	// marshal to a JSON object (nil writes {}).
	Metadata any
	// Created is every entry's mtime, truncated to whole seconds (USTAR);
	// callers pass SOURCE_DATE_EPOCH or the SQLite release date.
	Created time.Time
	Extra   []File // further files, e.g. an SBOM
	// Whiteouts are absolute paths to hide from lower layers (hardening). They
	// must be the real path in the base, not one through a symlink: on a
	// merged-/usr base /bin/su is /usr/bin/su.
	Whiteouts []string
}

// File is an extra regular file: its content is Data, or, when Open is set,
// the Size bytes Open streams (a program of the base rewritten by hardening
// may be large; it is read twice, to hash it and to write it, and must be
// the same both times).
type File struct {
	Path string      // absolute
	Mode fs.FileMode // permission bits; 0 means 0644
	Data []byte
	Open func() (io.ReadCloser, error)
	Size int64
}

// Type is the kind of an entry.
type Type string

const (
	TypeDir      Type = "dir"
	TypeFile     Type = "file"
	TypeSymlink  Type = "symlink"
	TypeWhiteout Type = "whiteout" // an empty regular file named .wh.<name>
)

// Entry is one planned tar entry.
type Entry struct {
	Path     string      // absolute and clean, e.g. /usr/local/lib
	Type     Type        //
	Mode     fs.FileMode // permission bits as written to the tar header
	Linkname string      // symlink target, relative
	Size     int64       // regular files
	SHA256   string      // hex, regular files
	data     []byte
	open     func() (io.ReadCloser, error) // the content when data is nil
}

// Fixed modes: nothing group- or other-writable, no set-id bits. Symlinks are
// 0777 as the kernel reports them (their mode is never applied on extraction).
const (
	modeDir      fs.FileMode = 0o755
	modeExec     fs.FileMode = 0o755
	modeData     fs.FileMode = 0o644
	modeSymlink  fs.FileMode = 0o777
	modeWhiteout fs.FileMode = 0o644
)

// LibraryFile is the real file behind LibraryPath.
func LibraryFile(v pins.Version) string { return LibDir + "/libsqlite3.so." + v.String() }

// Files returns the planned entries, sorted by path, with their contents read.
func Files(in Input) ([]Entry, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	var files []Entry
	addFile := func(p string, mode fs.FileMode, data []byte) {
		sum := sha256.Sum256(data)
		files = append(files, Entry{Path: p, Type: TypeFile, Mode: mode, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), data: data})
	}
	addStream := func(p string, mode fs.FileMode, size int64, open func() (io.ReadCloser, error)) error {
		sum, err := hashContent(open, size)
		if err != nil {
			return fmt.Errorf("layer: %s: %w", p, err)
		}
		files = append(files, Entry{Path: p, Type: TypeFile, Mode: mode, Size: size, SHA256: sum, open: open})
		return nil
	}

	size, open, err := regularFile("library", in.Library)
	if err != nil {
		return nil, err
	}
	if err := addStream(LibraryFile(in.Version), modeExec, size, open); err != nil {
		return nil, err
	}
	files = append(files, Entry{Path: LibraryPath, Type: TypeSymlink, Mode: modeSymlink, Linkname: path.Base(LibraryFile(in.Version))})
	if in.Shell != "" {
		size, open, err := regularFile("shell", in.Shell)
		if err != nil {
			return nil, err
		}
		if err := addStream(ShellPath, modeExec, size, open); err != nil {
			return nil, err
		}
	}
	addFile(WrapperPath, modeExec, wrapperScript(in.Libc))
	addFile(LicensePath, modeData, []byte(License))
	meta, err := canonicalJSON(in.Metadata)
	if err != nil {
		return nil, err
	}
	addFile(MetadataPath, modeData, meta)
	for i, f := range in.Extra {
		mode := f.Mode
		if mode == 0 {
			mode = modeData
		}
		if err := checkExtra(i, f.Path, mode); err != nil {
			return nil, err
		}
		if f.Open == nil {
			addFile(f.Path, mode, f.Data)
		} else if err := addStream(f.Path, mode, f.Size, f.Open); err != nil {
			return nil, err
		}
	}

	// Parent directories of every file, as explicit entries.
	byPath := map[string]Entry{}
	for _, e := range files {
		if old, dup := byPath[e.Path]; dup {
			return nil, fmt.Errorf("layer: %s planned twice (%s and %s)", e.Path, old.Type, e.Type)
		}
		byPath[e.Path] = e
	}
	for _, e := range files {
		for d := path.Dir(e.Path); d != "/"; d = path.Dir(d) {
			if old, ok := byPath[d]; ok {
				if old.Type != TypeDir {
					return nil, fmt.Errorf("layer: %s is a %s in this layer, and also the directory of %s", d, old.Type, e.Path)
				}
				continue
			}
			byPath[d] = Entry{Path: d, Type: TypeDir, Mode: modeDir}
		}
	}

	// Whiteouts get no parent entries: a directory entry would replace the
	// base's metadata of that directory, or a symlink there (merged /usr)
	// with an empty directory.
	for _, w := range in.Whiteouts {
		wp := path.Join(path.Dir(w), WhiteoutPrefix+path.Base(w))
		if _, dup := byPath[wp]; dup {
			return nil, fmt.Errorf("layer: whiteout %s listed twice", w)
		}
		for _, p := range sortedKeys(byPath) {
			e := byPath[p]
			if p == w || strings.HasPrefix(p, w+"/") {
				return nil, fmt.Errorf("layer: whiteout %s would hide %s, which this layer adds", w, p)
			}
			if e.Type != TypeDir && strings.HasPrefix(w, p+"/") {
				return nil, fmt.Errorf("layer: whiteout %s is under %s, a %s in this layer", w, p, e.Type)
			}
		}
		byPath[wp] = Entry{Path: wp, Type: TypeWhiteout, Mode: modeWhiteout}
	}

	entries := make([]Entry, 0, len(byPath))
	for _, p := range sortedKeys(byPath) {
		entries = append(entries, byPath[p])
	}
	return entries, nil
}

func sortedKeys(m map[string]Entry) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Build returns the layer, gzipped at GzipLevel, with the OCI media type.
// The compressed layer goes to an unlinked temporary file (nothing is left
// behind; the space is freed when the layer is garbage): the tar is streamed
// through gzip, never held in memory.
func Build(in Input) (v1.Layer, error) {
	entries, err := Files(in)
	if err != nil {
		return nil, err
	}
	blob, err := os.CreateTemp("", "sqlite-graft-layer-*.tar.gz")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(blob.Name()); err != nil {
		blob.Close()
		return nil, err
	}
	zw, err := gzip.NewWriterLevel(blob, GzipLevel) // zero Header: no name, MTIME 0
	if err != nil {
		blob.Close()
		return nil, err
	}
	if err := writeTar(zw, entries, mtime(in.Created)); err != nil {
		blob.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		blob.Close()
		return nil, err
	}
	size, err := blob.Seek(0, io.SeekEnd)
	if err != nil {
		blob.Close()
		return nil, err
	}
	// The opener hands back our gzip stream as is: go-containerregistry then
	// only hashes it (and gunzips it for the diffID), never recompresses it.
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(blob, 0, size)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func mtime(t time.Time) time.Time { return time.Unix(t.Unix(), 0).UTC() }

// writeTar writes the entries to w. Format PAX lets the writer choose USTAR
// for every header USTAR can encode (the bytes are then those of a USTAR
// header) and a PAX record only for a name it cannot.
func writeTar(w io.Writer, entries []Entry, mt time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.Path, "/"),
			Mode:    int64(e.Mode.Perm()),
			ModTime: mt,
			Format:  tar.FormatPAX,
		}
		switch e.Type {
		case TypeDir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case TypeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Linkname
		case TypeFile, TypeWhiteout:
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		default:
			return fmt.Errorf("layer: %s: unknown entry type %q", e.Path, e.Type)
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("layer: tar header of %s: %w", e.Path, err)
		}
		if e.Type == TypeFile || e.Type == TypeWhiteout {
			if err := e.copyContent(tw); err != nil {
				return fmt.Errorf("layer: tar data of %s: %w", e.Path, err)
			}
		}
	}
	return tw.Close()
}

// copyContent writes the entry's content, checking that it is still the
// content that was hashed when the entry was planned.
func (e Entry) copyContent(w io.Writer) error {
	if e.open == nil {
		_, err := w.Write(e.data)
		return err
	}
	rc, err := e.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(w, h), rc, e.Size); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("content changed while the layer was written: sha256 %s, planned %s", got, e.SHA256)
	}
	return nil
}

// hashContent reads size bytes from open and returns their SHA-256; a
// stream of another length is an error.
func hashContent(open func() (io.ReadCloser, error), size int64) (string, error) {
	rc, err := open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, size+1))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("content has %d bytes or more, want %d", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (in Input) validate() error {
	if in.Library == "" {
		return fmt.Errorf("layer: no library given")
	}
	if in.Version == (pins.Version{}) {
		return fmt.Errorf("layer: no SQLite version given")
	}
	if in.Libc != Musl && in.Libc != Glibc {
		return fmt.Errorf("layer: libc %q: want %s or %s", in.Libc, Musl, Glibc)
	}
	if in.Preload != "" && in.Preload != PreloadEnv && in.Preload != PreloadWrapper {
		return fmt.Errorf("layer: preload %q: want %s or %s", in.Preload, PreloadEnv, PreloadWrapper)
	}
	// USTAR stores whole seconds from 1970 in 11 octal digits.
	if in.Created.Unix() < 0 || in.Created.Unix() >= 1<<33 {
		return fmt.Errorf("layer: created %s: want a time from 1970-01-01 to 2242 (SOURCE_DATE_EPOCH)", in.Created.UTC().Format(time.RFC3339))
	}
	for _, w := range in.Whiteouts {
		if err := checkAbs("whiteout", w); err != nil {
			return err
		}
		if w == "/" {
			return fmt.Errorf("layer: whiteout %q: cannot hide the root", w)
		}
	}
	return nil
}

// pathMax is Linux's PATH_MAX, the terminating NUL included.
const pathMax = 4096

func checkAbs(what, p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("layer: %s %q: want an absolute, clean path", what, p)
	}
	for _, c := range strings.Split(p[1:], "/") {
		if strings.HasPrefix(c, WhiteoutPrefix) {
			return fmt.Errorf("layer: %s %q: %q is a whiteout name", what, p, c)
		}
	}
	// Names USTAR cannot hold get a PAX record; the kernel's limit stays.
	if len(p) >= pathMax {
		return fmt.Errorf("layer: %s %q: longer than %d bytes", what, p, pathMax-1)
	}
	return nil
}

func checkExtra(i int, p string, mode fs.FileMode) error {
	if err := checkAbs(fmt.Sprintf("extra[%d]", i), p); err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("layer: extra[%d] %q: not a file name", i, p)
	}
	if mode&^fs.ModePerm != 0 || mode&0o022 != 0 {
		return fmt.Errorf("layer: extra[%d] %s: mode %v: want permission bits only, not group- or other-writable", i, p, mode)
	}
	return nil
}

// regularFile checks a file that must be a non-empty regular file and
// returns its size and an opener; only its bytes matter, never its mode,
// owner or mtime on disk.
func regularFile(what, name string) (int64, func() (io.ReadCloser, error), error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, nil, fmt.Errorf("layer: %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, nil, fmt.Errorf("layer: %s %s: not a regular file (%v)", what, name, fi.Mode().Type())
	}
	if fi.Size() == 0 {
		return 0, nil, fmt.Errorf("layer: %s %s: empty file", what, name)
	}
	return fi.Size(), func() (io.ReadCloser, error) { return os.Open(name) }, nil
}

// canonicalJSON marshals v with sorted keys (struct fields too), two-space
// indent and a final newline. Numbers keep their exact text.
func canonicalJSON(v any) ([]byte, error) {
	if v == nil {
		return []byte("{}\n"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("layer: metadata: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("layer: metadata: %w", err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, fmt.Errorf("layer: metadata of type %T: want something that marshals to a JSON object", v)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(generic); err != nil { // maps encode with sorted keys
		return nil, fmt.Errorf("layer: metadata: %w", err)
	}
	return out.Bytes(), nil
}
