// Package debsrc fetches files of Debian source packages (orig tarballs) from
// a Debian mirror, pinned by the SHA-256 and size that the suite's Sources
// index published, and unpacks them.
//
// Debian's mirrors serve plain http: what makes a download trustworthy is the
// pinned SHA-256, which Debian published in dists/<suite>/main/source/Sources.xz,
// whose own SHA-256 is in dists/<suite>/InRelease, signed with the Debian
// archive key (/usr/share/keyrings/debian-archive-keyring.gpg). VerifyIndex
// walks that chain for a pin.
package debsrc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// DefaultMirror is Debian's mirror network (plain http, as apt uses it).
const DefaultMirror = "http://deb.debian.org/debian"

// Mirror downloads pool files from one Debian mirror.
type Mirror struct {
	Base    string          // "" is DefaultMirror
	Fetcher *source.Fetcher // retries, stall timeout, progress
	Log     logrus.FieldLogger
}

func (m Mirror) base() string {
	if m.Base == "" {
		return DefaultMirror
	}
	return strings.TrimRight(m.Base, "/")
}

// URL is where the mirror serves f.
func (m Mirror) URL(f pins.DebianFile) string { return m.base() + "/" + f.Path() }

// Fetch returns the path of f in cacheDir (named by its SHA-256), downloading
// it when absent. Whatever is returned matched the pinned size and SHA-256; a
// download that does not is deleted.
func (m Mirror) Fetch(ctx context.Context, f pins.DebianFile, cacheDir string) (string, error) {
	if err := f.Validate(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(cacheDir, f.SHA256+"-"+f.File)
	if err := Check(final, f); err == nil {
		return final, nil
	} else if !os.IsNotExist(err) {
		m.logger().WithError(err).Warnf("cached %s is damaged; downloading it again", final)
		os.Remove(final)
	}
	fetcher := m.Fetcher
	if fetcher == nil {
		fetcher = source.New(source.WithLogger(m.logger()))
	}
	tmp, err := fetcher.FetchFile(ctx, m.URL(f), cacheDir)
	if err != nil {
		return "", err
	}
	if err := Check(tmp, f); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("%s: %w", m.URL(f), err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return final, nil
}

func (m Mirror) logger() logrus.FieldLogger {
	if m.Log == nil {
		return logrus.StandardLogger()
	}
	return m.Log
}

// Check verifies a file against its pinned size and SHA-256; the error names
// the file, the expected and the actual value, and where the pin was published.
func Check(path string, f pins.DebianFile) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case got != f.SHA256:
		return fmt.Errorf("%s: SHA-256 = %s, want %s (%s %s, published in %s)", path, got, f.SHA256, f.Package, f.Version, f.Published)
	case n != f.Size:
		return fmt.Errorf("%s: %d bytes, want %d (%s %s, published in %s)", path, n, f.Size, f.Package, f.Version, f.Published)
	}
	return nil
}
