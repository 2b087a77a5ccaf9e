// Package sourcetree gets SQLite's canonical source tree of a pinned release
// (the check-in itself: manifest, src/, test/, tool/ — what SQLite's own tests
// are built from) and verifies it, fail-closed, in this order:
//
//  1. the archive's SHA-256 against the pin (Debian's orig tarball, as the
//     suite's Sources index published it);
//  2. manifest.uuid against the check-in hash inside the pinned
//     SQLITE_SOURCE_ID (published by sqlite.org in changes.html), and the
//     manifest's own SHA3-256 against manifest.uuid;
//  3. every file of the tree against the hash of its F-card in that manifest
//     (SHA3-256, or SHA1 for files unchanged since 2017); a file the manifest
//     does not list is refused, and so is a tree missing a listed file.
//
// A mismatch anywhere is an error naming the file, the expected and the actual
// value; nothing is kept.
package sourcetree

import (
	"context"
	"crypto/sha1"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/lockfile"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// ErrNoTree says that no canonical tree of a release can be had: the pins
// list none and none was given. Callers report the tests as not run.
var ErrNoTree = errors.New("no verified source tree")

// unlisted are the files of a published tree that its manifest cannot list:
// the manifest itself, its hash, and manifest.tags (branch and tag names the
// SCM writes, which end up in sqlite3.h's SQLITE_SCM_* strings — covered when
// the tree's generated sqlite3.c is checked against the published hash).
var unlisted = map[string]bool{"manifest": true, "manifest.uuid": true, "manifest.tags": true}

// Tree is a verified canonical source tree.
type Tree struct {
	Dir           string       `json:"dir"`
	Version       pins.Version `json:"version"`
	CheckIn       string       `json:"check_in"` // manifest.uuid
	Origin        string       `json:"origin"`   // the URL, archive or directory read
	ArchiveSHA256 string       `json:"archive_sha256,omitempty"`
	Files         int          `json:"files"` // files checked against their F-card
	Verified      []string     `json:"verified"`
}

// Request says which tree to get.
type Request struct {
	Pin    pins.Pin
	From   string // "": the pinned Debian orig tarball from Mirror; else an orig tarball or a tree directory
	Mirror debsrc.Mirror
}

// Open returns the verified tree of req.Pin. Archives are cached by SHA-256
// in cacheDir/debian and unpacked into cacheDir/trees/<sha256>; a cached tree
// is verified again on every use. A directory given as From is verified in
// place and nothing is written.
func Open(ctx context.Context, req Request, cacheDir string, log logrus.FieldLogger) (*Tree, error) {
	v := req.Pin.Version
	if req.Pin.CheckIn() == "" {
		return nil, fmt.Errorf("%w for %s: sqlite-pins.yaml has no source_id for it to check manifest.uuid against", ErrNoTree, v)
	}
	if req.From != "" {
		if st, err := os.Stat(req.From); err == nil && st.IsDir() {
			return Verify(req.From, req.Pin)
		}
	}
	deb := (*pins.DebianFile)(nil)
	if t := req.Pin.CanonicalTree; t != nil {
		deb = t.Debian
	}
	var archive, origin string
	switch {
	case req.From != "" && deb == nil:
		return nil, fmt.Errorf("%s: SQLite %s pins no archive of its source tree to check it against; give the tree as a directory (it is checked against the manifest) or pin canonical_tree.debian", req.From, v)
	case req.From != "":
		if err := debsrc.Check(req.From, *deb); err != nil {
			return nil, err
		}
		archive, origin = req.From, req.From
	case deb == nil:
		return nil, fmt.Errorf("%w for %s: sqlite-pins.yaml lists no canonical_tree", ErrNoTree, v)
	default:
		p, err := req.Mirror.Fetch(ctx, *deb, filepath.Join(cacheDir, "debian"))
		if err != nil {
			return nil, fmt.Errorf("SQLite %s source tree: %w", v, err)
		}
		archive, origin = p, req.Mirror.URL(*deb)
	}
	dir := filepath.Join(cacheDir, "trees", deb.SHA256)
	unlock, err := lockfile.Lock(dir + ".lock")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		if err := unpackVerified(archive, dir, req.Pin); err != nil {
			unlock()
			return nil, err
		}
	}
	unlock()
	t, err := Verify(dir, req.Pin)
	if err != nil {
		return nil, err
	}
	t.Origin, t.ArchiveSHA256 = origin, deb.SHA256
	t.Verified = append([]string{fmt.Sprintf("%s SHA-256 %s (%s)", deb.File, deb.SHA256, deb.Published)}, t.Verified...)
	if log != nil {
		log.WithFields(logrus.Fields{"dir": t.Dir, "check_in": t.CheckIn, "files": t.Files}).Infof("SQLite %s source tree verified", v)
	}
	return t, nil
}

// unpackVerified unpacks next to dir and renames only a verified tree into place.
func unpackVerified(archive, dir string, pin pins.Pin) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	if err := debsrc.Unpack(archive, tree); err != nil {
		return err
	}
	if _, err := Verify(tree, pin); err != nil {
		return err
	}
	return os.Rename(tree, dir)
}

// Verify checks a tree directory against the pin (steps 2 and 3 of the
// package comment) without writing anything.
func Verify(dir string, pin pins.Pin) (*Tree, error) {
	v := pin.Version
	want := pin.CheckIn()
	if want == "" {
		return nil, fmt.Errorf("SQLite %s: no source_id pinned to check the tree against", v)
	}
	uuidFile := filepath.Join(dir, "manifest.uuid")
	b, err := os.ReadFile(uuidFile)
	if err != nil {
		return nil, fmt.Errorf("%s: not a canonical SQLite source tree: %w", dir, err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		return nil, fmt.Errorf("%s = %s, want %s (the check-in in SQLITE_SOURCE_ID of SQLite %s's sqlite3.c, %s)", uuidFile, got, want, v, pin.SourceIDPublished)
	}
	manifestFile := filepath.Join(dir, "manifest")
	manifest, err := os.ReadFile(manifestFile)
	if err != nil {
		return nil, err
	}
	if got := sha3Hex(artifact(manifest)); got != want {
		return nil, fmt.Errorf("%s: SHA3-256 = %s, want %s (manifest.uuid, the check-in of SQLite %s)", manifestFile, got, want, v)
	}
	cards, err := parseFCards(manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() || unlisted[rel] {
			return nil
		}
		wantSum, listed := cards[rel]
		if !d.Type().IsRegular() || !listed {
			return fmt.Errorf("%s: not a file of check-in %s (the manifest does not list it); refusing the tree", p, want)
		}
		got, algo, err := hashFile(p, len(wantSum))
		if err != nil {
			return err
		}
		if got != wantSum {
			return fmt.Errorf("%s: %s = %s, want %s (its F-card in the manifest of check-in %s)", p, algo, got, wantSum, want)
		}
		seen[rel] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	var missing []string
	for name := range cards {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: %d file(s) of check-in %s missing, first %s", dir, len(missing), want, missing[0])
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Tree{
		Dir: abs, Version: v, CheckIn: want, Origin: abs, Files: len(seen),
		Verified: []string{
			fmt.Sprintf("manifest.uuid %s = the check-in in SQLITE_SOURCE_ID (%s)", want, pin.SourceIDPublished),
			fmt.Sprintf("manifest SHA3-256 = manifest.uuid; %d files match their F-cards; no unlisted files", len(seen)),
		},
	}, nil
}

func sha3Hex(b []byte) string {
	s := sha3.Sum256(b)
	return hex.EncodeToString(s[:])
}

// hashFile hashes p the way an F-card of hexLen digits did: SHA1 (40) or
// SHA3-256 (64).
func hashFile(p string, hexLen int) (sum, algo string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	var h hash.Hash = sha3.New256()
	algo = "SHA3-256"
	if hexLen == 40 {
		h, algo = sha1.New(), "SHA1"
	}
	if _, err := io.Copy(h, f); err != nil {
		return "", "", fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), algo, nil
}
