package source

import (
	"bytes"
	"crypto/sha3"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// archiveHash is the published hash an archive of kind must match, if any.
// A --sha3 override vouches for whatever archive the user supplies, so it
// applies to every archive kind; directories have no archive hash.
func archiveHash(p pins.Pin, kind string) *pins.Hash {
	if kind == KindDirectory {
		return nil
	}
	if isOverride(p) {
		return p.Amalgamation
	}
	switch kind {
	case KindAmalgamation:
		return p.ArchiveHash(pins.Amalgamation)
	case KindAutoconf:
		return p.ArchiveHash(pins.Autoconf)
	}
	return nil
}

func isOverride(p pins.Pin) bool {
	return p.Amalgamation != nil && p.Amalgamation.Published == OverridePublished && p.AutoconfArchive == nil
}

// mismatch is the error for a hash that does not match its published value.
func mismatch(file, got string, want *pins.Hash) error {
	return fmt.Errorf("%s: %w", file, hashMismatch(got, want))
}

func hashMismatch(got string, want *pins.Hash) error {
	return fmt.Errorf("SHA3-256 = %s, want %s (%s)", got, want.SHA3, publishedAt(want.Published))
}

func publishedAt(p string) string {
	if isURL(p) {
		return "published at " + p
	}
	return p
}

func sha3Hex(b []byte) string {
	s := sha3.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hashFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha3.New256()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifyFiles checks the extracted sqlite3.c (and sqlite3.h) against the pin:
// the published hash of sqlite3.c, then the version and source id it declares.
// archiveChecked says whether the archive itself matched a published hash.
func (f *Fetcher) verifyFiles(work string, pin pins.Pin, src *Source, archiveChecked bool) error {
	c, err := os.ReadFile(filepath.Join(work, "sqlite3.c"))
	if err != nil {
		return err
	}
	src.SQLite3CSHA3 = sha3Hex(c)
	switch h := pin.SQLite3C; {
	case h != nil:
		if src.SQLite3CSHA3 != h.SHA3 {
			return mismatch("sqlite3.c", src.SQLite3CSHA3, h)
		}
		src.Verified = append(src.Verified, fmt.Sprintf("sqlite3.c SHA3-256 %s (%s)", h.SHA3, publishedAt(h.Published)))
	case !archiveChecked:
		if src.ArchiveKind == KindDirectory {
			return fmt.Errorf("nothing published to verify against: a directory has no archive hash "+
				"and no SHA3-256 of sqlite3.c is pinned for SQLite %s", pin.Version)
		}
		return fmt.Errorf("nothing published to verify against: no SHA3-256 is known for a %s archive "+
			"nor for sqlite3.c of SQLite %s", src.ArchiveKind, pin.Version)
	}

	d, err := readDefines("sqlite3.c", c)
	if err != nil {
		return err
	}
	v := pin.Version
	if want := v.String(); d.version != want {
		return fmt.Errorf("sqlite3.c: SQLITE_VERSION = %q, want %q", d.version, want)
	}
	// SQLITE_VERSION_NUMBER is X*1000000+Y*1000+Z (3051003), unlike the
	// 3XXYYZZ of file names (3510300).
	if want := v.Major*1000000 + v.Minor*1000 + v.Patch; d.number != want {
		return fmt.Errorf("sqlite3.c: SQLITE_VERSION_NUMBER = %d, want %d", d.number, want)
	}
	if pin.SourceID != "" {
		if d.sourceID != pin.SourceID {
			return fmt.Errorf("sqlite3.c: SQLITE_SOURCE_ID = %q, want %q (%s)", d.sourceID, pin.SourceID, publishedAt(pin.SourceIDPublished))
		}
		src.Verified = append(src.Verified, fmt.Sprintf("SQLITE_SOURCE_ID %q (%s)", pin.SourceID, publishedAt(pin.SourceIDPublished)))
	}
	if pin.Date != "" && !strings.HasPrefix(d.sourceID, pin.Date+" ") {
		// Only a hint: a release check-in may be dated a day off its release.
		f.log.Warnf("sqlite3.c: SQLITE_SOURCE_ID %q is not dated %s, the release date of SQLite %s", d.sourceID, pin.Date, v)
	}
	src.SourceID = d.sourceID

	// sqlite3.h is not covered by sqlite3.c's hash: it must at least declare
	// the same release, or programs compiled against it would refuse to run.
	h, err := os.ReadFile(filepath.Join(work, "sqlite3.h"))
	if err != nil {
		return err
	}
	hd, err := readDefines("sqlite3.h", h)
	if err != nil {
		return err
	}
	if hd != d {
		return fmt.Errorf("sqlite3.h: SQLITE_VERSION %q, SQLITE_VERSION_NUMBER %d, SQLITE_SOURCE_ID %q; want those of sqlite3.c: %q, %d, %q",
			hd.version, hd.number, hd.sourceID, d.version, d.number, d.sourceID)
	}
	return nil
}

type defines struct {
	version  string
	number   int
	sourceID string
}

// readDefines reads the first SQLITE_VERSION, SQLITE_VERSION_NUMBER and
// SQLITE_SOURCE_ID #defines (in sqlite3.c they come from the inlined sqlite3.h).
func readDefines(file string, b []byte) (defines, error) {
	var d defines
	get := func(name string) (string, error) {
		s, ok := define(b, name)
		if !ok {
			return "", fmt.Errorf("%s: no #define %s", file, name)
		}
		return s, nil
	}
	quoted := func(name string) (string, error) {
		s, err := get(name)
		if err != nil {
			return "", err
		}
		u, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("%s: #define %s %s: not a string", file, name, s)
		}
		return u, nil
	}
	var err error
	if d.version, err = quoted("SQLITE_VERSION"); err != nil {
		return d, err
	}
	if d.sourceID, err = quoted("SQLITE_SOURCE_ID"); err != nil {
		return d, err
	}
	s, err := get("SQLITE_VERSION_NUMBER")
	if err != nil {
		return d, err
	}
	if d.number, err = strconv.Atoi(s); err != nil {
		return d, fmt.Errorf("%s: #define SQLITE_VERSION_NUMBER %s: not a number", file, s)
	}
	return d, nil
}

// define returns the value of the first "#define name value" line.
func define(b []byte, name string) (string, bool) {
	key := []byte("#define " + name)
	for i := 0; i < len(b); {
		j := bytes.Index(b[i:], key)
		if j < 0 {
			return "", false
		}
		at, end := i+j, i+j+len(key)
		i = end
		if (at > 0 && b[at-1] != '\n') || end >= len(b) || (b[end] != ' ' && b[end] != '\t') {
			continue
		}
		line := b[end:]
		if k := bytes.IndexByte(line, '\n'); k >= 0 {
			line = line[:k]
		}
		return strings.TrimSpace(string(line)), true
	}
	return "", false
}
