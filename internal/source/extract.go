package source

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// maxFile bounds each extracted file (sqlite3.c is ~9 MB) against archive bombs.
const maxFile = 256 << 20

// Files taken from an amalgamation or autoconf archive; the rest is ignored.
var amalgamationFiles = map[string]string{
	"sqlite3.c": "sqlite3.c", "sqlite3.h": "sqlite3.h", "sqlite3ext.h": "sqlite3ext.h", "shell.c": "shell.c",
}

// Files taken from a go-sqlite3 module, and their SQLite names.
var goModuleFiles = map[string]string{
	"sqlite3-binding.c": "sqlite3.c", "sqlite3-binding.h": "sqlite3.h", "sqlite3ext.h": "sqlite3ext.h",
}

// goModuleC matches <module>@<version>/sqlite3-binding.c in a module zip.
var goModuleC = regexp.MustCompile(`^(.+@[^/]+)/sqlite3-binding\.c$`)

const goWrapper = "#ifndef USE_LIBSQLITE3\n"

// StripGoSQLite3 removes go-sqlite3's `#ifndef USE_LIBSQLITE3` ... `#else` ...
// `#endif` wrapper, giving back SQLite's file byte for byte.
func StripGoSQLite3(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte(goWrapper)) {
		return nil, fmt.Errorf("no %q wrapper at the start", strings.TrimSuffix(goWrapper, "\n"))
	}
	i := bytes.LastIndex(b, []byte("#else // USE_LIBSQLITE3"))
	if i < 0 {
		return nil, fmt.Errorf("no closing #else // USE_LIBSQLITE3")
	}
	return b[len(goWrapper):i], nil
}

// archive is an archive file to unpack.
type archive struct {
	path   string
	origin string // URL or path, for errors and Source.Origin
	sha3   string // "" until hashed
	temp   bool   // path is a download of ours: remove it when done
	cache  string // move it here instead once fully verified
}

func (a *archive) cleanup() {
	if a.temp {
		os.Remove(a.path)
	}
}

// unpackVerify checks the archive's hash, extracts it into work and verifies
// the files.
func (f *Fetcher) unpackVerify(a *archive, pin pins.Pin, work string, src *Source) (archiveChecked bool, err error) {
	if a.sha3 == "" {
		if a.sha3, err = hashFile(a.path); err != nil {
			return false, err
		}
	}
	fh, err := os.Open(a.path)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return false, err
	}
	kind, extract, err := detect(fh, fi.Size())
	if err != nil {
		return false, fmt.Errorf("%s: %w", a.origin, err)
	}
	src.Origin, src.ArchiveKind, src.ArchiveSHA3 = a.origin, kind, a.sha3

	// (a) The archive, before anything in it is used.
	if want := archiveHash(pin, kind); want != nil {
		if a.sha3 != want.SHA3 {
			return false, mismatch(a.origin, a.sha3, want)
		}
		archiveChecked = true
		src.Verified = append(src.Verified, fmt.Sprintf("%s archive SHA3-256 %s (%s)", kind, want.SHA3, publishedAt(want.Published)))
	} else {
		f.log.WithField("archive", a.origin).Infof("no published SHA3-256 for a %s archive of SQLite %s; relying on sqlite3.c's", kind, pin.Version)
	}
	if err := extract(work); err != nil {
		return false, fmt.Errorf("%s: %w", a.origin, err)
	}
	// (b), (c) The files inside.
	if err := f.verifyFiles(work, pin, src, archiveChecked); err != nil {
		return false, fmt.Errorf("%s: %w", a.origin, err)
	}
	return archiveChecked, nil
}

// detect tells the archive kind from its content and returns its extractor.
func detect(r io.ReaderAt, size int64) (string, func(work string) error, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return "", nil, fmt.Errorf("not an archive: %w", err)
	}
	switch {
	case bytes.Equal(magic[:], []byte("PK\x03\x04")):
		zr, err := zip.NewReader(r, size)
		if err != nil {
			return "", nil, err
		}
		return detectZip(zr)
	case magic[0] == 0x1f && magic[1] == 0x8b:
		return KindAutoconf, func(work string) error {
			return extractTarGz(io.NewSectionReader(r, 0, size), work)
		}, nil
	}
	return "", nil, fmt.Errorf("neither a zip nor a gzip'd tar (starts with %q)", magic[:])
}

// detectZip tells an amalgamation zip (sqlite-amalgamation-N/sqlite3.c) from a
// Go module zip (<module>@<version>/sqlite3-binding.c).
func detectZip(zr *zip.Reader) (string, func(string) error, error) {
	type layout struct{ kind, prefix string }
	var found []layout
	for _, zf := range zr.File {
		if m := goModuleC.FindStringSubmatch(zf.Name); m != nil {
			found = append(found, layout{KindGoModule, m[1] + "/"})
		} else if path.Base(zf.Name) == "sqlite3.c" && strings.Count(zf.Name, "/") <= 1 {
			found = append(found, layout{KindAmalgamation, strings.TrimSuffix(zf.Name, "sqlite3.c")})
		}
	}
	if len(found) != 1 {
		return "", nil, fmt.Errorf("zip: want exactly one sqlite-amalgamation-N/sqlite3.c or <module>@<version>/sqlite3-binding.c, found %d", len(found))
	}
	l := found[0]
	names := amalgamationFiles
	if l.kind == KindGoModule {
		names = goModuleFiles
	}
	return l.kind, func(work string) error {
		got := map[string][]byte{}
		for _, zf := range zr.File {
			rel, ok := strings.CutPrefix(zf.Name, l.prefix)
			if !ok || names[rel] == "" {
				continue
			}
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("%s: %w", zf.Name, err)
			}
			b, err := readLimited(rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", zf.Name, err)
			}
			got[rel] = b
		}
		return writeFiles(work, l.prefix, got, l.kind == KindGoModule)
	}, nil
}

// extractTarGz takes the SQLite files from <dir>/ of an autoconf tarball.
func extractTarGz(r io.Reader, work string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	byDir := map[string]map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(h.Name, "./")
		dir, base := path.Split(name)
		if h.Typeflag != tar.TypeReg || strings.Count(name, "/") > 1 || amalgamationFiles[base] == "" {
			continue
		}
		b, err := readLimited(tr)
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if byDir[dir] == nil {
			byDir[dir] = map[string][]byte{}
		}
		byDir[dir][base] = b
	}
	var dirs []string
	for d, files := range byDir {
		if files["sqlite3.c"] != nil {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) != 1 {
		return fmt.Errorf("tar.gz: want exactly one sqlite-autoconf-N/sqlite3.c, found %d", len(dirs))
	}
	return writeFiles(work, dirs[0], byDir[dirs[0]], false)
}

// copyDir takes the files of an extracted amalgamation or go-sqlite3 module.
func copyDir(dir, work string) error {
	names, goModule := amalgamationFiles, false
	if _, err := os.Stat(filepath.Join(dir, "sqlite3.c")); err != nil {
		if _, err := os.Stat(filepath.Join(dir, "sqlite3-binding.c")); err != nil {
			return fmt.Errorf("%s: neither sqlite3.c nor go-sqlite3's sqlite3-binding.c", dir)
		}
		names, goModule = goModuleFiles, true
	}
	got := map[string][]byte{}
	for from := range names {
		b, err := os.ReadFile(filepath.Join(dir, from))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		got[from] = b
	}
	return writeFiles(work, dir+string(filepath.Separator), got, goModule)
}

// writeFiles writes the files found (keyed by their name in the source) under
// their SQLite names, stripping go-sqlite3's wrapper. where prefixes names in errors.
func writeFiles(work, where string, got map[string][]byte, goModule bool) error {
	names := amalgamationFiles
	if goModule {
		names = goModuleFiles
	}
	for from, to := range names {
		b, ok := got[from]
		if !ok {
			if to == "sqlite3.c" || to == "sqlite3.h" {
				return fmt.Errorf("no %s%s", where, from)
			}
			continue
		}
		// go-sqlite3 wraps every file; sqlite3ext.h may be wrapped even in a
		// directory copied from it, and official files never start that way.
		if goModule && to != "sqlite3ext.h" || to == "sqlite3ext.h" && bytes.HasPrefix(b, []byte(goWrapper)) {
			var err error
			if b, err = StripGoSQLite3(b); err != nil {
				return fmt.Errorf("%s%s: %w", where, from, err)
			}
		}
		if err := os.WriteFile(filepath.Join(work, to), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("larger than %d MiB", maxFile>>20)
	}
	return b, nil
}

// obtain puts the verified, unpatched files of req into work.
func (f *Fetcher) obtain(ctx context.Context, req Request, work string, src *Source) error {
	if req.From != "" && !isURL(req.From) {
		fi, err := os.Stat(req.From)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			_, err := f.unpackVerify(&archive{path: req.From, origin: req.From}, req.Pin, work, src)
			return err
		}
		src.Origin, src.ArchiveKind = req.From, KindDirectory
		if err := copyDir(req.From, work); err != nil {
			return err
		}
		if err := f.verifyFiles(work, req.Pin, src, false); err != nil {
			return fmt.Errorf("%s: %w", req.From, err)
		}
		return nil
	}

	var a *archive
	var err error
	if req.From == "" {
		a, err = f.download(ctx, req, work)
	} else {
		a, err = f.downloadURL(ctx, req.From, work)
	}
	if err != nil {
		return err
	}
	defer a.cleanup()
	checked, err := f.unpackVerify(a, req.Pin, work, src)
	if err != nil {
		return err
	}
	// Only an archive that matched its published hash enters the cache: the
	// cache is looked up by that hash.
	if checked && a.temp && a.cache != "" {
		dst := filepath.Join(a.cache, src.ArchiveSHA3)
		if err := os.Rename(a.path, dst); err != nil {
			f.log.WithError(err).Warn("could not cache the archive")
		} else {
			a.temp = false
			f.log.WithFields(logrus.Fields{"path": dst}).Debug("cached archive")
		}
	}
	return nil
}
