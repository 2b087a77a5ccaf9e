package pins

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// Kind names a downloadable form of a release.
type Kind string

const (
	// Amalgamation is sqlite-amalgamation-3XXYYZZ.zip: sqlite3.c, sqlite3.h, sqlite3ext.h, shell.c.
	Amalgamation Kind = "amalgamation"
	// Autoconf is sqlite-autoconf-3XXYYZZ.tar.gz: the same files plus a build system.
	Autoconf Kind = "autoconf"
)

// Hash is a published SHA3-256 and where it was published.
type Hash struct {
	SHA3      string `yaml:"sha3" json:"sha3"`
	Published string `yaml:"published" json:"published"`
}

// Pin is one pinned release.
type Pin struct {
	Version           Version `yaml:"version" json:"version"`
	Year              int     `yaml:"year" json:"year"`
	Date              string  `yaml:"date" json:"date"`
	Note              string  `yaml:"note,omitempty" json:"note,omitempty"`
	SourceID          string  `yaml:"source_id,omitempty" json:"source_id,omitempty"`
	SourceIDPublished string  `yaml:"source_id_published,omitempty" json:"source_id_published,omitempty"`
	Amalgamation      *Hash   `yaml:"amalgamation,omitempty" json:"amalgamation,omitempty"`
	AutoconfArchive   *Hash   `yaml:"autoconf,omitempty" json:"autoconf,omitempty"`
	SQLite3C          *Hash   `yaml:"sqlite3_c,omitempty" json:"sqlite3_c,omitempty"`
	GoModule          string  `yaml:"go_module,omitempty" json:"go_module,omitempty"`
	// CanonicalTree is where SQLite's full source tree of this release (the
	// check-in with manifest, src/, test/, tool/) can be had: what SQLite's
	// own tests are built from.
	CanonicalTree *CanonicalTree `yaml:"canonical_tree,omitempty" json:"canonical_tree,omitempty"`
}

// CanonicalTree lists the published archives of a release's canonical source
// tree. Whichever is used, the tree inside is verified against the release's
// SQLITE_SOURCE_ID (manifest.uuid) and its own manifest.
type CanonicalTree struct {
	// Debian's source package of the same release: its orig tarball is the
	// tree as sqlite.org published it.
	Debian *DebianFile `yaml:"debian,omitempty" json:"debian,omitempty"`
	// SourceZip is sqlite.org's sqlite-src-3XXYYZZ.zip.
	SourceZip *Hash `yaml:"sqlite_src_zip,omitempty" json:"sqlite_src_zip,omitempty"`
}

// DebianFile is one file of a Debian source package in the archive's pool,
// pinned by the SHA-256 and size that the suite's Sources index (and the
// package's .dsc) published.
type DebianFile struct {
	Package   string `yaml:"package" json:"package"`     // source package, e.g. sqlite3
	Version   string `yaml:"version" json:"version"`     // e.g. 3.53.4-2
	Suite     string `yaml:"suite" json:"suite"`         // e.g. sid
	Directory string `yaml:"directory" json:"directory"` // e.g. pool/main/s/sqlite3
	File      string `yaml:"file" json:"file"`           // e.g. sqlite3_3.53.4.orig.tar.xz
	Size      int64  `yaml:"size" json:"size"`
	SHA256    string `yaml:"sha256" json:"sha256"`
	Published string `yaml:"published" json:"published"`
}

// Path is the file's path below a Debian mirror's base URL.
func (d DebianFile) Path() string { return d.Directory + "/" + d.File }

// Validate says what is missing or malformed.
func (d DebianFile) Validate() error {
	switch {
	case d.Package == "" || d.Version == "" || d.Suite == "":
		return fmt.Errorf("package, version and suite are needed (got %q, %q, %q)", d.Package, d.Version, d.Suite)
	case !strings.HasPrefix(d.Directory, "pool/") || strings.Contains(d.Directory, ".."):
		return fmt.Errorf("directory %q is not a pool/ path", d.Directory)
	case d.File == "" || strings.ContainsAny(d.File, "/\\") || strings.HasPrefix(d.File, "."):
		return fmt.Errorf("file %q is not a plain file name", d.File)
	case d.Size <= 0:
		return fmt.Errorf("%s: size %d, want the published size in bytes", d.File, d.Size)
	case !hexSHA256.MatchString(d.SHA256):
		return fmt.Errorf("%s: sha256 = %q, want 64 lower-case hex digits", d.File, d.SHA256)
	case strings.TrimSpace(d.Published) == "":
		return fmt.Errorf("%s: published is empty: say where the hash was published", d.File)
	}
	return nil
}

// CheckIn is the Fossil check-in hash inside a SQLITE_SOURCE_ID
// ("2026-07-24 19:02:57 bf7c7f30..."): what a canonical tree's manifest.uuid
// must say. Empty when the pin has no source id.
func (p Pin) CheckIn() string {
	if _, h, ok := strings.Cut(p.SourceID, " "); ok {
		if _, h, ok = strings.Cut(h, " "); ok {
			return h
		}
	}
	return ""
}

// File is a parsed sqlite-pins.yaml.
type File struct {
	Name      string   `yaml:"-" json:"-"` // where it was read from, for errors
	Default   Version  `yaml:"default" json:"default"`
	Mirrors   []string `yaml:"mirrors" json:"mirrors"`
	Withdrawn []struct {
		Version Version `yaml:"version" json:"version"`
		Reason  string  `yaml:"reason" json:"reason"`
	} `yaml:"withdrawn,omitempty" json:"withdrawn,omitempty"`
	Releases []Pin `yaml:"releases" json:"releases"`
}

var (
	hexSHA3 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// SHA-256 and SHA3-256 hex look alike; two names say which is meant.
	hexSHA256 = hexSHA3
	sourceID  = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [0-9a-f]{64}$`)
	dateRE    = regexp.MustCompile(`^(\d{4})-\d\d-\d\d$`)
)

// IsSHA3 reports whether s is a lower-case hex SHA3-256.
func IsSHA3(s string) bool { return hexSHA3.MatchString(s) }

// Load reads and validates a pins file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse validates pins file contents; name is used in errors.
func Parse(name string, data []byte) (*File, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty pins file", name)
	}
	f := &File{}
	if err := yaml.UnmarshalWithOptions(data, f, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s: %s", name, yaml.FormatError(err, false, false))
	}
	f.Name = name
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

func (f *File) validate() error {
	if len(f.Mirrors) == 0 {
		return fmt.Errorf("mirrors: at least one download base URL is needed")
	}
	for _, m := range f.Mirrors {
		if !strings.HasPrefix(m, "https://") {
			return fmt.Errorf("mirrors: %q is not an https URL", m)
		}
	}
	seen := map[Version]bool{}
	for i, p := range f.Releases {
		at := fmt.Sprintf("releases[%d] (%s)", i, p.Version)
		if p.Version == (Version{}) {
			return fmt.Errorf("releases[%d]: version is missing", i)
		}
		if seen[p.Version] {
			return fmt.Errorf("%s: listed twice", at)
		}
		seen[p.Version] = true
		m := dateRE.FindStringSubmatch(p.Date)
		if m == nil {
			return fmt.Errorf("%s: date %q is not YYYY-MM-DD", at, p.Date)
		}
		if m[1] != fmt.Sprint(p.Year) {
			return fmt.Errorf("%s: year = %d, but date %s says %s", at, p.Year, p.Date, m[1])
		}
		if p.Amalgamation == nil && p.AutoconfArchive == nil && p.SQLite3C == nil {
			return fmt.Errorf("%s: no published hash; a release without one is not pinned", at)
		}
		for name, h := range map[string]*Hash{"amalgamation": p.Amalgamation, "autoconf": p.AutoconfArchive, "sqlite3_c": p.SQLite3C} {
			if h == nil {
				continue
			}
			if !IsSHA3(h.SHA3) {
				return fmt.Errorf("%s: %s.sha3 = %q, want 64 lower-case hex digits", at, name, h.SHA3)
			}
			if strings.TrimSpace(h.Published) == "" {
				return fmt.Errorf("%s: %s.published is empty: say where the hash was published", at, name)
			}
		}
		if p.SourceID != "" {
			if !sourceID.MatchString(p.SourceID) {
				return fmt.Errorf("%s: source_id %q is not \"YYYY-MM-DD HH:MM:SS <64 hex>\"", at, p.SourceID)
			}
			if p.SourceIDPublished == "" {
				return fmt.Errorf("%s: source_id_published is empty", at)
			}
		}
		if t := p.CanonicalTree; t != nil {
			if p.SourceID == "" {
				return fmt.Errorf("%s: canonical_tree needs a source_id: the tree's manifest.uuid is checked against it", at)
			}
			if t.Debian == nil && t.SourceZip == nil {
				return fmt.Errorf("%s: canonical_tree lists no archive", at)
			}
			if t.Debian != nil {
				if err := t.Debian.Validate(); err != nil {
					return fmt.Errorf("%s: canonical_tree.debian: %w", at, err)
				}
			}
			if h := t.SourceZip; h != nil && (!IsSHA3(h.SHA3) || strings.TrimSpace(h.Published) == "") {
				return fmt.Errorf("%s: canonical_tree.sqlite_src_zip needs a SHA3-256 and where it was published", at)
			}
		}
		if p.GoModule != "" && p.SQLite3C == nil {
			return fmt.Errorf("%s: go_module needs a sqlite3_c hash to verify what it yields", at)
		}
	}
	for _, w := range f.Withdrawn {
		if seen[w.Version] {
			return fmt.Errorf("%s is both pinned and withdrawn", w.Version)
		}
	}
	if _, err := f.Lookup(f.Default); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	if err := WALResetError(f.Default); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	return nil
}

// Lookup returns the pin of v, or an error saying why v cannot be built.
func (f *File) Lookup(v Version) (Pin, error) {
	for _, w := range f.Withdrawn {
		if w.Version == v {
			return Pin{}, fmt.Errorf("SQLite %s was withdrawn upstream (%s) and is never offered as a pin", v, w.Reason)
		}
	}
	for _, p := range f.Releases {
		if p.Version == v {
			return p, nil
		}
	}
	return Pin{}, fmt.Errorf("SQLite %s is not pinned in %s (pinned: %s)", v, f.Name, strings.Join(f.VersionStrings(), ", "))
}

// Resolve returns what to fetch for v. An unpinned release is accepted only
// with an archive hash given by the user (sha3Override); for a pinned one an
// override must agree with the pin.
func (f *File) Resolve(v Version, sha3Override string) (Pin, error) {
	if sha3Override != "" && !IsSHA3(sha3Override) {
		return Pin{}, fmt.Errorf("--sha3 %q: want the archive's SHA3-256 as 64 lower-case hex digits", sha3Override)
	}
	p, err := f.Lookup(v)
	if err == nil {
		return p, nil
	}
	if sha3Override == "" || strings.Contains(err.Error(), "withdrawn") {
		if sha3Override == "" {
			return Pin{}, fmt.Errorf("%w; give --sha3 with the archive's published SHA3-256 to build it anyway", err)
		}
		return Pin{}, err
	}
	// The user vouches for the archive; everything else is checked as usual.
	return Pin{Version: v, Amalgamation: &Hash{SHA3: sha3Override, Published: "--sha3 on the command line"}}, nil
}

// Versions lists the pinned versions, oldest first.
func (f *File) Versions() []Version {
	var vs []Version
	for _, p := range f.Releases {
		vs = append(vs, p.Version)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Less(vs[j]) })
	return vs
}

func (f *File) VersionStrings() []string {
	var s []string
	for _, v := range f.Versions() {
		s = append(s, v.String())
	}
	return s
}

// ArchiveHash is the published hash of the given archive kind, if any.
func (p Pin) ArchiveHash(k Kind) *Hash {
	switch k {
	case Amalgamation:
		return p.Amalgamation
	case Autoconf:
		return p.AutoconfArchive
	}
	return nil
}

// PreferredKind is the archive to download: the amalgamation zip (smaller,
// has shell.c) when its hash is published, else the autoconf tarball.
func (p Pin) PreferredKind() (Kind, bool) {
	if p.Amalgamation != nil {
		return Amalgamation, true
	}
	if p.AutoconfArchive != nil {
		return Autoconf, true
	}
	return "", false
}

// ArchiveName is the file name of an archive on sqlite.org.
func ArchiveName(v Version, k Kind) string {
	if k == Autoconf {
		return fmt.Sprintf("sqlite-autoconf-%d.tar.gz", v.Number())
	}
	return fmt.Sprintf("sqlite-amalgamation-%d.zip", v.Number())
}

// URLs lists the download URLs of an archive, one per mirror, in order.
func (f *File) URLs(p Pin, k Kind) ([]string, error) {
	if p.Year == 0 {
		return nil, fmt.Errorf("SQLite %s: release year unknown (not in %s), so its download URL cannot be built; give --from URL", p.Version, f.Name)
	}
	var urls []string
	for _, m := range f.Mirrors {
		urls = append(urls, fmt.Sprintf("%s/%d/%s", strings.TrimRight(m, "/"), p.Year, ArchiveName(p.Version, k)))
	}
	return urls, nil
}
