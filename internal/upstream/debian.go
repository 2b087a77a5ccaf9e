package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// DebianSQLitePackage is Debian's shared library package of SQLite.
const DebianSQLitePackage = "libsqlite3-0"

// DebPackage is one stanza of a Debian Packages file (the fields the watch
// uses).
type DebPackage struct {
	Package string `json:"package"`
	Version string `json:"version"` // e.g. 3.46.1-7, 3.40.1-2+deb12u2
	Source  string `json:"source,omitempty"`
	// Architecture, Filename (relative to the archive's root) and SHA256 (of
	// the .deb) say which file a download must be, and what it must hash to.
	Architecture string `json:"architecture,omitempty"`
	Filename     string `json:"filename,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	Line         int    `json:"line"` // first line of the stanza
}

// ParsePackagesXZ reads an xz-compressed Packages file.
func ParsePackagesXZ(name string, data []byte) ([]DebPackage, error) {
	zr, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not an xz'd Packages file: %v", name, err)
	}
	lr := &limitedReader{r: zr, n: maxUnpacked}
	pkgs, err := parsePackages(name, lr)
	if err != nil {
		return nil, err
	}
	return pkgs, nil
}

// ParsePackages parses a Packages file: RFC 822-style stanzas of "Field:
// value" lines (continuation lines start with a space or tab), separated
// by blank lines. Every stanza needs Package and Version.
func ParsePackages(name string, text []byte) ([]DebPackage, error) {
	return parsePackages(name, bytes.NewReader(text))
}

type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("unpacks to more than %d MiB", maxUnpacked>>20)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func parsePackages(name string, r io.Reader) ([]DebPackage, error) {
	var pkgs []DebPackage
	var cur *DebPackage
	lastField := ""
	finish := func() error {
		if cur == nil {
			return nil
		}
		switch {
		case cur.Package == "":
			return fmt.Errorf("%s:%d: stanza without a Package field", name, cur.Line)
		case cur.Version == "":
			return fmt.Errorf("%s:%d: stanza of %s without a Version field", name, cur.Line, cur.Package)
		}
		pkgs = append(pkgs, *cur)
		cur, lastField = nil, ""
		return nil
	}
	sc := bufio.NewScanner(r)
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
		if l[0] == ' ' || l[0] == '\t' {
			if cur == nil || lastField == "" {
				return nil, fmt.Errorf("%s:%d: continuation line outside a field: %q", name, ln, clip(l))
			}
			if lastField == "Package" || lastField == "Version" {
				return nil, fmt.Errorf("%s:%d: %s continues on another line", name, ln, lastField)
			}
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: %q is not a \"Field: value\" line", name, ln, clip(l))
		}
		if cur == nil {
			cur = &DebPackage{Line: ln}
		}
		v = strings.TrimSpace(v)
		lastField = k
		switch k {
		case "Package", "Version":
			field := &cur.Package
			if k == "Version" {
				field = &cur.Version
			}
			if *field != "" {
				return nil, fmt.Errorf("%s:%d: a second %s field in the stanza starting on line %d", name, ln, k, cur.Line)
			}
			if v == "" || strings.ContainsAny(v, " \t") {
				return nil, fmt.Errorf("%s:%d: %s %q is not a package name or version", name, ln, k, clip(v))
			}
			*field = v
		case "Source":
			cur.Source = v
		case "Architecture":
			cur.Architecture = v
		case "Filename":
			cur.Filename = v
		case "SHA256":
			cur.SHA256 = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: reading stopped after line %d: %v", name, ln, truncated(err))
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("%s: no package stanzas", name)
	}
	return pkgs, nil
}

// DebianSQLite returns the libsqlite3-0 stanza; with several, the highest
// version.
func DebianSQLite(name string, pkgs []DebPackage) (DebPackage, error) {
	var best *DebPackage
	for i := range pkgs {
		if pkgs[i].Package != DebianSQLitePackage {
			continue
		}
		if best == nil || CompareDebianVersions(pkgs[i].Version, best.Version) > 0 {
			best = &pkgs[i]
		}
	}
	if best == nil {
		return DebPackage{}, fmt.Errorf("%s: no %s package among %d packages", name, DebianSQLitePackage, len(pkgs))
	}
	return *best, nil
}

var debianVersionRE = regexp.MustCompile(`^(?:\d+:)?([0-9][A-Za-z0-9.+~-]*)$`)

// DebianUpstream is the SQLite release of a Debian package version: the
// upstream part without epoch, Debian revision and +dfsg/~ suffixes
// (3.40.1-2+deb12u2 -> 3.40.1).
func DebianUpstream(version string) (pins.Version, error) {
	m := debianVersionRE.FindStringSubmatch(version)
	if m == nil {
		return pins.Version{}, fmt.Errorf("package version %q is not a Debian version", version)
	}
	up := m[1]
	if i := strings.LastIndex(up, "-"); i >= 0 {
		up = up[:i]
	}
	if i := strings.IndexAny(up, "+~"); i >= 0 {
		up = up[:i]
	}
	v, err := pins.ParseVersion(up)
	if err != nil {
		return pins.Version{}, fmt.Errorf("package version %q: %v", version, err)
	}
	return v, nil
}

// CompareDebianVersions orders two Debian package versions as dpkg does
// (epoch, then upstream version, then revision; '~' sorts before
// everything, letters before other characters).
func CompareDebianVersions(a, b string) int {
	ea, ua, ra := splitDebian(a)
	eb, ub, rb := splitDebian(b)
	if c := cmpDigits(ea, eb); c != 0 {
		return c
	}
	if c := cmpDebianPart(ua, ub); c != 0 {
		return c
	}
	return cmpDebianPart(ra, rb)
}

func splitDebian(v string) (epoch, upstream, revision string) {
	epoch = "0"
	if i := strings.Index(v, ":"); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

func debOrder(c byte) int {
	switch {
	case c == '~':
		return -1
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return int(c)
	}
	return int(c) + 256
}

func cmpDebianPart(a, b string) int {
	for a != "" || b != "" {
		// Non-digit prefixes, character by character.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			oa, ob := 0, 0
			if a != "" && !isDigit(a[0]) {
				oa = debOrder(a[0])
			}
			if b != "" && !isDigit(b[0]) {
				ob = debOrder(b[0])
			}
			if oa != ob {
				return cmpInt(oa, ob)
			}
			if a != "" && !isDigit(a[0]) {
				a = a[1:]
			}
			if b != "" && !isDigit(b[0]) {
				b = b[1:]
			}
		}
		// Digit runs, numerically.
		da, db := digitRun(a), digitRun(b)
		if c := cmpDigits(da, db); c != 0 {
			return c
		}
		a, b = a[len(da):], b[len(db):]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

// cmpDigits compares decimal strings of any length numerically.
func cmpDigits(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	return strings.Compare(a, b)
}
