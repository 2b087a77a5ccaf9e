package debsrc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ulikunitz/xz"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// DefaultKeyring is Debian's archive keyring (package debian-archive-keyring):
// the trust root of everything fetched from a Debian mirror.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// sourcesIndex is the Sources index VerifyIndex reads, relative to dists/<suite>/.
const sourcesIndex = "main/source/Sources.xz"

// Evidence is what VerifyIndex checked, for logs and provenance.
type Evidence struct {
	InRelease     string `json:"in_release"` // URL of the signed Release file
	Date          string `json:"date"`       // its Date field
	Signer        string `json:"signer"`     // the archive key that signed it
	SourcesSHA256 string `json:"sources_sha256"`
}

// VerifyIndex walks Debian's chain of trust for a pinned source file: the
// suite's InRelease must carry a good signature by a key of keyring; the
// SHA-256 it lists for main/source/Sources.xz must match that file; and the
// Sources stanza of the pinned package version must list the pinned file
// with the pinned SHA-256 and size. Downloads go to a temporary directory.
func (m Mirror) VerifyIndex(ctx context.Context, f pins.DebianFile, keyring string) (*Evidence, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "debsrc-index-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dists := m.base() + "/dists/" + f.Suite + "/"
	inRelease, err := m.get(ctx, dists+"InRelease", tmp)
	if err != nil {
		return nil, err
	}
	sources, err := m.get(ctx, dists+sourcesIndex, tmp)
	if err != nil {
		return nil, err
	}
	return VerifyIndexFiles(f, keyring, dists+"InRelease", inRelease, sources)
}

func (m Mirror) get(ctx context.Context, u, dir string) ([]byte, error) {
	fetcher := m.Fetcher
	if fetcher == nil {
		return nil, fmt.Errorf("debsrc: Mirror.Fetcher is needed to download %s", u)
	}
	p, err := fetcher.FetchFile(ctx, u, dir)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// VerifyIndexFiles is VerifyIndex on files already at hand: the InRelease
// (named by inReleaseName in errors) and the suite's Sources.xz.
func VerifyIndexFiles(f pins.DebianFile, keyring, inReleaseName string, inRelease, sourcesXZ []byte) (*Evidence, error) {
	kf, err := os.Open(keyring)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w (install debian-archive-keyring)", err)
	}
	defer kf.Close()
	keys, err := openpgp.ReadKeyRing(kf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyring, err)
	}
	block, _ := clearsign.Decode(inRelease)
	if block == nil {
		return nil, fmt.Errorf("%s: not a clear-signed Release file", inReleaseName)
	}
	signer, err := openpgp.CheckDetachedSignature(keys, bytes.NewReader(block.Bytes), block.ArmoredSignature.Body, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: signature not good for any key of %s: %w", inReleaseName, keyring, err)
	}
	ev := &Evidence{InRelease: inReleaseName, Signer: signerName(signer)}
	release := string(block.Plaintext)
	ev.Date = field(release, "Date")
	want, err := checksum(release, "SHA256", sourcesIndex)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", inReleaseName, err)
	}
	sum := sha256.Sum256(sourcesXZ)
	ev.SourcesSHA256 = hex.EncodeToString(sum[:])
	if got := fmt.Sprintf("%s %d", ev.SourcesSHA256, len(sourcesXZ)); got != want {
		return nil, fmt.Errorf("%s: SHA-256 and size = %s, want %s (from %s)", sourcesIndex, got, want, inReleaseName)
	}
	stanza, err := findStanza(sourcesXZ, f.Package, f.Version)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", sourcesIndex, inReleaseName, err)
	}
	listed, err := checksum(stanza, "Checksums-Sha256", f.File)
	if err != nil {
		return nil, fmt.Errorf("%s, %s %s: %w", sourcesIndex, f.Package, f.Version, err)
	}
	if pinned := fmt.Sprintf("%s %d", f.SHA256, f.Size); listed != pinned {
		return nil, fmt.Errorf("%s: Debian lists SHA-256 and size %s in %s, the pin says %s", f.File, listed, sourcesIndex, pinned)
	}
	if dir := field(stanza, "Directory"); dir != f.Directory {
		return nil, fmt.Errorf("%s %s: Directory = %q in %s, the pin says %q", f.Package, f.Version, dir, sourcesIndex, f.Directory)
	}
	return ev, nil
}

func signerName(e *openpgp.Entity) string {
	for name := range e.Identities {
		return fmt.Sprintf("%s (%X)", name, e.PrimaryKey.Fingerprint)
	}
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
}

// field is the value of a one-line field of an RFC 822-style paragraph.
func field(par, name string) string {
	for _, l := range strings.Split(par, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checksum finds "<hash> <size> <name>" among the continuation lines of the
// multi-line field name and returns "<hash> <size>".
func checksum(par, name, file string) (string, error) {
	in := false
	for _, l := range strings.Split(par, "\n") {
		switch {
		case strings.HasPrefix(l, name+":"):
			in = true
		case in && strings.HasPrefix(l, " "):
			if f := strings.Fields(l); len(f) == 3 && f[2] == file {
				return f[0] + " " + f[1], nil
			}
		case in:
			in = false
		}
	}
	return "", fmt.Errorf("no %s line for %s", name, file)
}

// findStanza returns the paragraph of a source package version from an
// xz-compressed Sources index.
func findStanza(sourcesXZ []byte, pkg, version string) (string, error) {
	zr, err := xz.NewReader(bytes.NewReader(sourcesXZ))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(io.LimitReader(zr, maxUnpacked))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var par strings.Builder
	flush := func() (string, bool) {
		p := par.String()
		par.Reset()
		return p, field(p, "Package") == pkg && field(p, "Version") == version
	}
	for sc.Scan() {
		if sc.Text() == "" {
			if p, ok := flush(); ok {
				return p, nil
			}
			continue
		}
		par.WriteString(sc.Text())
		par.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if p, ok := flush(); ok {
		return p, nil
	}
	return "", fmt.Errorf("no stanza for %s %s (the suite has moved on?)", pkg, version)
}
