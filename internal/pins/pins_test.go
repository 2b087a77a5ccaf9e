package pins_test

import (
	"strconv"
	"strings"
	"testing"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

func embedded(t testing.TB) *pins.File {
	t.Helper()
	f, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
	if err != nil {
		t.Fatalf("Parse(embedded) = %v", err)
	}
	return f
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int{
		"3.51.3": 3510300, "3510300": 3510300, "3.48": 3480000, " 3.7.0 ": 3070000, "3.53.4": 3530400,
	} {
		v, err := pins.ParseVersion(in)
		if err != nil || v.Number() != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %d", in, v, err, want)
		}
	}
	for _, in := range []string{"", "3", "2.8.17", "3.51.3.1", "3.x.1", "3.051.3", "3510301", "351030", "4.0.0", "3.100.0", "3.-1.0", "3.+1.0"} {
		if v, err := pins.ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", in, v)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"3.51.3", "3510300", "3.48", "3.7.0", "", "3..1", "3.51.3.", "0003.1.1", "3.99.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := pins.ParseVersion(s)
		if err != nil {
			return
		}
		// Whatever parses must round-trip through both forms.
		for _, form := range []string{v.String(), strconv.Itoa(v.Number())} {
			w, err := pins.ParseVersion(form)
			if err != nil || w != v {
				t.Fatalf("ParseVersion(%q) = %v, %v; want %v (from %q)", form, w, err, v, s)
			}
		}
	})
}

func TestWALResetRule(t *testing.T) {
	for v, fixed := range map[string]bool{
		"3.6.23": true, "3.7.0": false, "3.44.2": false, "3.44.6": true, "3.45.0": false, "3.48.0": false,
		"3.49.2": false, "3.50.6": false, "3.50.7": true, "3.51.0": false, "3.51.2": false, "3.51.3": true,
		"3.52.0": true, "3.53.4": true,
	} {
		if got := pins.HasWALResetFix(pins.MustParseVersion(v)); got != fixed {
			t.Errorf("HasWALResetFix(%s) = %v, want %v", v, got, fixed)
		}
	}
	if err := pins.WALResetError(pins.MustParseVersion("3.51.2")); err == nil || !strings.Contains(err.Error(), "WAL-reset") {
		t.Errorf("WALResetError(3.51.2) = %v, want the WAL-reset reason", err)
	}
}

func TestEmbeddedPins(t *testing.T) {
	f := embedded(t)
	if f.Default.String() != "3.53.4" {
		t.Errorf("default = %s, want 3.53.4", f.Default)
	}
	p, err := f.Lookup(pins.MustParseVersion("3.51.3"))
	if err != nil {
		t.Fatal(err)
	}
	if p.SQLite3C.SHA3 != "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e" {
		t.Errorf("3.51.3 sqlite3.c sha3 = %s", p.SQLite3C.SHA3)
	}
	urls, err := f.URLs(p, pins.Amalgamation)
	if err != nil || urls[0] != "https://sqlite.org/2026/sqlite-amalgamation-3510300.zip" || len(urls) != 3 {
		t.Errorf("URLs(3.51.3) = %v, %v", urls, err)
	}
	for _, v := range f.Versions() {
		if !pins.HasWALResetFix(v) {
			t.Errorf("pinned %s lacks the WAL-reset fix", v)
		}
	}
}

// 3.53.4's canonical tree: the Debian orig tarball sid published, and the
// check-in that manifest.uuid must name.
func TestCanonicalTreePin(t *testing.T) {
	p, err := embedded(t).Lookup(pins.MustParseVersion("3.53.4"))
	if err != nil {
		t.Fatal(err)
	}
	d := p.CanonicalTree.Debian
	if d.Path() != "pool/main/s/sqlite3/sqlite3_3.53.4.orig.tar.xz" || d.Size != 8656972 {
		t.Errorf("canonical_tree.debian = %s, %d bytes", d.Path(), d.Size)
	}
	if got := p.CheckIn(); got != "bf7c7f30031888f4e796e429ab3978879485813aaca6f641c7b33e4e09459bcc" {
		t.Errorf("CheckIn() = %q", got)
	}
	if (pins.Pin{}).CheckIn() != "" {
		t.Error("CheckIn() of a pin without source id is not empty")
	}
}

func TestResolve(t *testing.T) {
	f := embedded(t)
	if _, err := f.Resolve(pins.MustParseVersion("3.52.0"), strings.Repeat("a", 64)); err == nil || !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("Resolve(3.52.0) = %v, want withdrawn", err)
	}
	if _, err := f.Resolve(pins.MustParseVersion("3.50.9"), ""); err == nil || !strings.Contains(err.Error(), "--sha3") {
		t.Errorf("Resolve(3.50.9, no hash) = %v, want a hint about --sha3", err)
	}
	p, err := f.Resolve(pins.MustParseVersion("3.50.9"), strings.Repeat("b", 64))
	if err != nil || p.Amalgamation.SHA3 != strings.Repeat("b", 64) {
		t.Errorf("Resolve(3.50.9, hash) = %+v, %v", p, err)
	}
	if _, err := f.Resolve(pins.MustParseVersion("3.51.3"), "XYZ"); err == nil {
		t.Errorf("Resolve with a malformed --sha3 succeeded")
	}
}

func TestParseRejects(t *testing.T) {
	base := string(sqlitegraft.PinsYAML)
	for name, tc := range map[string]struct{ data, want string }{
		"empty":         {"", "empty pins file"},
		"unknown key":   {base + "\nextra: 1\n", "unknown field"},
		"bad hash":      {strings.Replace(base, "ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea", "ced02ff", 1), `amalgamation.sha3 = "ced02ff"`},
		"year mismatch": {strings.Replace(base, "year: 2026\n    date: 2026-03-13", "year: 2025\n    date: 2026-03-13", 1), "year = 2025"},
		"bad default":   {strings.Replace(base, "default: 3.53.4", "default: 3.49.0", 1), "not pinned"},
		"bad version":   {strings.Replace(base, "version: 3.53.1", "version: 3.x", 1), "3.x"},
		"tree sha256":   {strings.Replace(base, "sha256: 05366adc", "sha256: 05366ADC", 1), "canonical_tree.debian: sqlite3_3.53.4.orig.tar.xz: sha256"},
		"tree path":     {strings.Replace(base, "directory: pool/main/s/sqlite3", "directory: ../s/sqlite3", 1), "not a pool/ path"},
		"tree no id":    {strings.Replace(base, `source_id: "2026-07-24 19:02:57 bf7c7f30031888f4e796e429ab3978879485813aaca6f641c7b33e4e09459bcc"`, "", 1), "canonical_tree needs a source_id"},
	} {
		_, err := pins.Parse("test-pins.yaml", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test-pins.yaml") {
			t.Errorf("%s: Parse = %v, want an error naming the file and containing %q", name, err, tc.want)
		}
	}
}

func FuzzParsePins(f *testing.F) {
	f.Add(sqlitegraft.PinsYAML)
	f.Add([]byte("default: 3.51.3\nmirrors: [https://x]\nreleases: []\n"))
	f.Add([]byte("releases:\n  - version: 3.51.3\n    year: 2026\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pins.Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A file that parses has a buildable, fixed default.
		if _, err := p.Lookup(p.Default); err != nil || !pins.HasWALResetFix(p.Default) {
			t.Fatalf("accepted file with default %s: %v", p.Default, err)
		}
	})
}
