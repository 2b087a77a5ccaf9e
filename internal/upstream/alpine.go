package upstream

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// AlpineSQLiteSoname is what Alpine's sqlite-libs provides.
const AlpineSQLiteSoname = "so:libsqlite3.so.0"

// APKPackage is one stanza of an APKINDEX.
type APKPackage struct {
	Name     string   `json:"name"`             // P:
	Version  string   `json:"version"`          // V:, e.g. 3.48.0-r4
	Origin   string   `json:"origin,omitempty"` // o:, the source package
	Provides []string `json:"provides,omitempty"`
	// Checksum is C:, the package's identity: "Q1" and the base64 SHA-1 of
	// the .apk's gzip'd control segment (which carries the data's hash).
	Checksum string `json:"checksum,omitempty"`
	Arch     string `json:"arch,omitempty"` // A:, e.g. x86_64
	Line     int    `json:"line"`           // first line of the stanza in APKINDEX
}

// APKIndex is a parsed APKINDEX.tar.gz.
type APKIndex struct {
	Name        string       `json:"source"`
	Description string       `json:"description,omitempty"` // DESCRIPTION, e.g. v3.21.3-123-g...
	Signatures  []string     `json:"signatures,omitempty"`  // names of the .SIGN.* entries (not verified)
	Packages    []APKPackage `json:"-"`
}

// ParseAPKIndexArchive reads an APKINDEX.tar.gz: gzip members, each a tar;
// Alpine's signed indexes are a signature member (a tar holding
// .SIGN.RSA.<key>.pub, cut before the tar end blocks) followed by a member
// holding DESCRIPTION and APKINDEX. Each member is read as its own tar, so
// end blocks between members do not hide what follows. The signature is
// recorded, not verified: the index is trusted as far as the https
// download it came from.
func ParseAPKIndexArchive(name string, data []byte) (*APKIndex, error) {
	br := bytes.NewReader(data)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: not a gzip'd APKINDEX: %v", name, err)
	}
	ix := &APKIndex{Name: name}
	var index []byte
	var unpacked int64
	for member := 1; ; member++ {
		zr.Multistream(false)
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: gzip member %d: %v", name, member, truncated(err))
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			body, err := io.ReadAll(io.LimitReader(tr, maxUnpacked-unpacked+1))
			if err != nil {
				return nil, fmt.Errorf("%s: gzip member %d: %s: %v", name, member, h.Name, truncated(err))
			}
			if unpacked += int64(len(body)); unpacked > maxUnpacked {
				return nil, fmt.Errorf("%s: unpacks to more than %d MiB", name, maxUnpacked>>20)
			}
			switch {
			case strings.HasPrefix(h.Name, ".SIGN."):
				ix.Signatures = append(ix.Signatures, h.Name)
			case h.Name == "DESCRIPTION":
				ix.Description = strings.TrimSpace(string(body))
			case h.Name == "APKINDEX":
				if index != nil {
					return nil, fmt.Errorf("%s: gzip member %d: a second APKINDEX", name, member)
				}
				index = body
			}
		}
		// The rest of the member: tar end blocks and record padding; and
		// the gzip trailer, whose checksum is checked here.
		if _, err := io.Copy(io.Discard, zr); err != nil {
			return nil, fmt.Errorf("%s: gzip member %d: %v", name, member, truncated(err))
		}
		err := zr.Reset(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: after gzip member %d: %v", name, member, truncated(err))
		}
	}
	if index == nil {
		return nil, fmt.Errorf("%s: no APKINDEX file in the archive (signature only or truncated?)", name)
	}
	pkgs, err := ParseAPKIndex(name+": APKINDEX", index)
	if err != nil {
		return nil, err
	}
	ix.Packages = pkgs
	return ix, nil
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated (%v)", err)
	}
	return err
}

// ParseAPKIndex parses the APKINDEX file itself: stanzas of K:value lines
// separated by blank lines. Every stanza needs P: and V:.
func ParseAPKIndex(name string, text []byte) ([]APKPackage, error) {
	var pkgs []APKPackage
	var cur *APKPackage
	finish := func() error {
		if cur == nil {
			return nil
		}
		switch {
		case cur.Name == "":
			return fmt.Errorf("%s:%d: stanza without P: (package name)", name, cur.Line)
		case cur.Version == "":
			return fmt.Errorf("%s:%d: stanza of %s without V: (version)", name, cur.Line, cur.Name)
		}
		pkgs = append(pkgs, *cur)
		cur = nil
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	ln := 0
	for sc.Scan() {
		ln++
		l := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(l) == "" {
			if err := finish(); err != nil {
				return nil, err
			}
			continue
		}
		if len(l) < 2 || l[1] != ':' || !isASCIILetter(l[0]) {
			return nil, fmt.Errorf("%s:%d: %q is not a K:value line", name, ln, clip(l))
		}
		if cur == nil {
			cur = &APKPackage{Line: ln}
		}
		k, v := l[0], l[2:]
		switch k {
		case 'P', 'V':
			field := &cur.Name
			if k == 'V' {
				field = &cur.Version
			}
			if *field != "" {
				return nil, fmt.Errorf("%s:%d: a second %c: line in the stanza starting on line %d", name, ln, k, cur.Line)
			}
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t") {
				return nil, fmt.Errorf("%s:%d: %c:%q is not a package name or version", name, ln, k, clip(v))
			}
			*field = v
		case 'o':
			cur.Origin = v
		case 'C':
			cur.Checksum = v
		case 'A':
			cur.Arch = v
		case 'p':
			cur.Provides = append(cur.Provides, strings.Fields(v)...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: reading stopped after line %d: %v", name, ln, err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("%s: no package stanzas", name)
	}
	return pkgs, nil
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// ProvidesName says whether the package provides name (e.g. so:libsqlite3.so.0),
// with or without a version.
func (p APKPackage) ProvidesName(name string) bool {
	for _, pr := range p.Provides {
		n, _, _ := strings.Cut(pr, "=")
		if n == name {
			return true
		}
	}
	return false
}

// SQLite returns the package providing so:libsqlite3.so.0 (sqlite-libs).
func (ix *APKIndex) SQLite() (APKPackage, error) {
	var found []APKPackage
	for _, p := range ix.Packages {
		if p.ProvidesName(AlpineSQLiteSoname) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return APKPackage{}, fmt.Errorf("%s: no package provides %s (Alpine's sqlite-libs) among %d packages", ix.Name, AlpineSQLiteSoname, len(ix.Packages))
	case 1:
		return found[0], nil
	}
	var names []string
	for _, p := range found {
		if p.Name == "sqlite-libs" {
			return p, nil
		}
		names = append(names, fmt.Sprintf("%s %s (line %d)", p.Name, p.Version, p.Line))
	}
	return APKPackage{}, fmt.Errorf("%s: several packages provide %s and none is sqlite-libs: %s", ix.Name, AlpineSQLiteSoname, strings.Join(names, ", "))
}

var alpineVersionRE = regexp.MustCompile(`^(\d+\.\d+(?:\.\d+)?)-r\d+$`)

// AlpineUpstream is the SQLite release of an Alpine package version:
// 3.48.0-r4 -> 3.48.0. Versions with suffixes (_pre, _git, letters) are
// not judged.
func AlpineUpstream(version string) (pins.Version, error) {
	m := alpineVersionRE.FindStringSubmatch(version)
	if m == nil {
		return pins.Version{}, fmt.Errorf("package version %q: want X.Y.Z-rN", version)
	}
	v, err := pins.ParseVersion(m[1])
	if err != nil {
		return pins.Version{}, fmt.Errorf("package version %q: %v", version, err)
	}
	return v, nil
}
