package vex_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	openvex "github.com/openvex/go-vex/pkg/vex"

	"github.com/sqlite-graft/sqlite-graft/internal/advisories"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/vex"
)

const (
	index = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	amd64 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	other = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

var created = time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)

// alpine is the default image: Alpine 3.21's sqlite-libs under a 3.51.3 graft
// compiled with the real recipe's options.
func alpine() vex.Input {
	return vex.Input{
		Repository: "ghcr.io/sqlite-graft/alpine",
		Digests:    []string{index, amd64},
		Packages: []vex.Package{{Type: "apk", Namespace: "alpine", Name: "sqlite-libs", Version: "3.48.0-r4",
			SQLite: pins.MustParseVersion("3.48.0")}},
		Graft:   vex.Graft{Version: pins.MustParseVersion("3.51.3"), Defines: recipe.Default().Defines, Libc: vex.Musl},
		Created: created,
	}
}

func debian() vex.Input {
	in := alpine()
	in.Repository = "ghcr.io/sqlite-graft/debian"
	in.Packages = []vex.Package{{Type: "deb", Namespace: "debian", Name: "libsqlite3-0", Version: "3.46.1-7",
		SQLite: pins.MustParseVersion("3.46.1")}}
	in.Graft.Libc, in.Graft.LDCache = vex.Glibc, true
	return in
}

func document(t *testing.T, in vex.Input) *openvex.VEX {
	t.Helper()
	b, err := vex.JSON(in)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := vex.Parse(b) // read back with go-vex, as a scanner would
	if err != nil {
		t.Fatalf("go-vex cannot read the document back: %v\n%s", err, b)
	}
	return doc
}

// What Trivy and Syft/Grype call the image and its packages (read from their
// sources: Trivy's purl.New and Syft's apk/dpkg catalogers).
const (
	trivyImage     = "pkg:oci/alpine@sha256%3A1111111111111111111111111111111111111111111111111111111111111111?arch=amd64&repository_url=ghcr.io%2Fsqlite-graft%2Falpine"
	trivyPlatform  = "pkg:oci/alpine@sha256%3A2222222222222222222222222222222222222222222222222222222222222222?arch=amd64&repository_url=ghcr.io%2Fsqlite-graft%2Falpine"
	trivyAPK       = "pkg:apk/alpine/sqlite-libs@3.48.0-r4?arch=x86_64&distro=3.21.3"
	trivyAPKArm    = "pkg:apk/alpine/sqlite-libs@3.48.0-r4?arch=aarch64&distro=3.21.3"
	syftAPK        = "pkg:apk/alpine/sqlite-libs@3.48.0-r4?arch=x86_64&upstream=sqlite&distro=alpine-3.21.3"
	trivyDeb       = "pkg:deb/debian/libsqlite3-0@3.46.1-7?arch=amd64&distro=debian-13.1"
	syftDeb        = "pkg:deb/debian/libsqlite3-0@3.46.1-7?arch=amd64&upstream=sqlite3&distro=debian-13"
	trivyDebImage  = "pkg:oci/debian@sha256%3A1111111111111111111111111111111111111111111111111111111111111111?arch=amd64&repository_url=ghcr.io%2Fsqlite-graft%2Fdebian"
	grypeRepoDig   = "ghcr.io/sqlite-graft/alpine@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	grypeImagePURL = "pkg:oci/alpine@sha256%3A1111111111111111111111111111111111111111111111111111111111111111?repository_url=ghcr.io%2Fsqlite-graft"
	grypeBareHex   = "1111111111111111111111111111111111111111111111111111111111111111"
)

// grypeMatches is Grype's OpenVEX lookup (grype/vex/openvex
// findMatchingStatement): each product identifier of the scanned image with
// the package's purl as subcomponent, then the package purl as product.
func grypeMatches(doc *openvex.VEX, vuln string, products []string, pkg string) []openvex.Statement {
	for _, p := range products {
		if st := doc.Matches(vuln, p, []string{pkg}); len(st) > 0 {
			return st
		}
	}
	return doc.Matches(vuln, pkg, nil)
}

// The distribution package's advisories that the graft does not have match,
// with go-vex's own matching, the purls Trivy and Syft/Grype give the image
// and the package; the graft's own advisories never do.
func TestMatchesScannerPURLs(t *testing.T) {
	doc := document(t, alpine())
	grypeImage := []string{grypeRepoDig, grypeImagePURL, grypeBareHex}
	notAffected := []string{"CVE-2025-3277", "CVE-2025-6965", "CVE-2025-70873"} // 3.48.0 has them, 3.51.3 does not
	for _, id := range notAffected {
		for _, tc := range []struct{ product, pkg string }{
			{trivyImage, trivyAPK}, {trivyPlatform, trivyAPK}, {trivyImage, trivyAPKArm}, {trivyImage, syftAPK},
		} {
			st := doc.Matches(id, tc.product, []string{tc.pkg})
			if len(st) != 1 || st[0].Status != openvex.StatusNotAffected || st[0].Justification != openvex.VulnerableCodeNotInExecutePath {
				t.Errorf("Matches(%s, %s, %s) = %+v, want one not_affected statement", id, tc.product, tc.pkg, st)
			}
		}
		if st := grypeMatches(doc, id, grypeImage, syftAPK); len(st) != 1 {
			t.Errorf("Grype's lookup of %s = %+v, want one statement", id, st)
		}
		if st := doc.StatementsByVulnerability(id); len(st) != 1 || !strings.Contains(st[0].ImpactStatement, "/usr/local/lib/libsqlite3.so.0") ||
			!strings.Contains(st[0].ImpactStatement, "3.51.3") || !strings.Contains(st[0].ImpactStatement, "sqlite-libs 3.48.0-r4") {
			t.Errorf("StatementsByVulnerability(%s) = %+v, want an impact statement naming the grafted library", id, st)
		}
	}
	// Advisories the grafted build has (FTS5, enabled by the recipe; fixed in
	// 3.54.0) get no statement: scanners keep reporting them.
	for _, id := range []string{"CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"} {
		if st := doc.StatementsByVulnerability(id); len(st) != 0 {
			t.Errorf("%s affects the graft, but the document says %+v", id, st)
		}
		if st := grypeMatches(doc, id, grypeImage, syftAPK); len(st) != 0 {
			t.Errorf("Grype's lookup of %s = %+v, want none", id, st)
		}
	}
	// Advisories the package does not have get none either (3.48.0 is
	// outside 3.39.2 to <3.41.2 and 3.49.1 to <3.50.3).
	for _, id := range []string{"CVE-2025-7458", "CVE-2025-7709"} {
		if st := doc.StatementsByVulnerability(id); len(st) != 0 {
			t.Errorf("%s does not affect sqlite-libs 3.48.0-r4, but the document says %+v", id, st)
		}
	}
	// Another image, another package, another version of the package.
	for _, tc := range []struct{ product, pkg string }{
		{strings.Replace(trivyImage, "1111", "3333", 1), trivyAPK},                           // another digest
		{strings.Replace(trivyImage, "sqlite-graft%2Falpine", "acme%2Falpine", 1), trivyAPK}, // another repository
		{trivyImage, "pkg:apk/alpine/musl@1.2.5-r9?arch=x86_64&distro=3.21.3"},               // another package
		{trivyImage, "pkg:apk/alpine/sqlite-libs@3.49.2-r1?arch=x86_64&distro=3.22.0"},       // another version
		{trivyImage, "pkg:generic/sqlite@3.51.3"},                                            // the graft itself
	} {
		if st := doc.Matches("CVE-2025-6965", tc.product, []string{tc.pkg}); len(st) != 0 {
			t.Errorf("Matches(CVE-2025-6965, %s, %s) = %+v, want none", tc.product, tc.pkg, st)
		}
	}
	if st := grypeMatches(doc, "CVE-2025-6965", []string{"ghcr.io/sqlite-graft/alpine@" + other, strings.TrimPrefix(other, "sha256:")}, syftAPK); len(st) != 0 {
		t.Errorf("Grype, another image: %+v", st)
	}
}

func TestDebianPackage(t *testing.T) {
	doc := document(t, debian())
	// 3.46.1 has CVE-2025-3277 (3.44.0 to <3.49.1) and CVE-2025-6965; 3.51.3 neither.
	for _, id := range []string{"CVE-2025-3277", "CVE-2025-6965", "CVE-2025-70873"} {
		for _, pkg := range []string{trivyDeb, syftDeb} {
			if st := doc.Matches(id, trivyDebImage, []string{pkg}); len(st) != 1 {
				t.Errorf("Matches(%s, debian image, %s) = %+v", id, pkg, st)
			}
		}
	}
	if st := doc.StatementsByVulnerability("CVE-2025-6965"); len(st) != 1 || !strings.Contains(st[0].ImpactStatement, "ld.so.cache lists /usr/local/lib first") {
		t.Errorf("Debian impact statement = %+v, want the ld.so.cache named", st)
	}
	if st := doc.Matches("CVE-2025-6965", trivyDebImage, []string{trivyAPK}); len(st) != 0 {
		t.Errorf("an apk purl matched a Debian statement: %+v", st)
	}
	// Debian 12's 3.40.1: CVE-2025-7458, but not the concat_ws one (3.44.0+).
	in := debian()
	in.Packages[0].Version, in.Packages[0].SQLite = "3.40.1-2+deb12u2", pins.MustParseVersion("3.40.1")
	doc = document(t, in)
	pkg := "pkg:deb/debian/libsqlite3-0@3.40.1-2%2Bdeb12u2?arch=amd64&distro=debian-12.12"
	if st := doc.Matches("CVE-2025-7458", trivyDebImage, []string{pkg}); len(st) != 1 {
		t.Errorf("Matches(CVE-2025-7458, Debian 12 package) = %+v", st)
	}
	if st := doc.StatementsByVulnerability("CVE-2025-3277"); len(st) != 0 {
		t.Errorf("CVE-2025-3277 on 3.40.1 (no concat_ws yet): %+v", st)
	}
}

// A graft built without FTS5 is not affected by the FTS5 pair: those get
// statements, with an impact statement that says why.
func TestRequiredOptionMissing(t *testing.T) {
	in := alpine()
	in.Graft.Defines = []string{"SQLITE_THREADSAFE=1"}
	doc := document(t, in)
	st := doc.StatementsByVulnerability("CVE-2026-11822")
	if len(st) != 1 || !strings.Contains(st[0].ImpactStatement, "built with SQLITE_ENABLE_FTS5; the graft (SQLite 3.51.3) is built without it") {
		t.Errorf("CVE-2026-11822 without FTS5 = %+v", st)
	}
	if st := doc.StatementsByVulnerability("CVE-2026-119374"); len(st) != 0 {
		t.Errorf("CVE-2026-119374 still affects 3.51.3: %+v", st)
	}
}

// The in-toto statement: predicate type https://openvex.dev/ns/v0.2.0, the
// image digests as subjects, and the same document as predicate, decoded the
// way Trivy's --vex oci decodes a bare statement.
func TestStatement(t *testing.T) {
	b, err := vex.Statement(alpine())
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Name   string
			URI    string `json:"uri"`
			Digest map[string]string
		}
		Predicate openvex.VEX
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != vex.PredicateType {
		t.Errorf("statement type %q predicate %q", st.Type, st.PredicateType)
	}
	if len(st.Subject) != 2 || st.Subject[0].Digest["sha256"] != strings.TrimPrefix(index, "sha256:") ||
		st.Subject[0].Name != "ghcr.io/sqlite-graft/alpine@"+index || st.Subject[1].Digest["sha256"] != strings.TrimPrefix(amd64, "sha256:") {
		t.Errorf("subjects = %+v", st.Subject)
	}
	if m := st.Predicate.Matches("CVE-2025-6965", trivyImage, []string{trivyAPK}); len(m) != 1 {
		t.Errorf("the predicate does not match: %+v", m)
	}
	again, _ := vex.Statement(alpine())
	if !bytes.Equal(b, again) {
		t.Error("Statement is not deterministic")
	}
}

// Same input, same bytes; another digest, another document id.
func TestDeterministic(t *testing.T) {
	a, err := vex.JSON(alpine())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := vex.JSON(alpine())
	if !bytes.Equal(a, b) {
		t.Fatal("JSON is not deterministic")
	}
	in := alpine()
	in.Digests = []string{amd64, index} // order does not matter to the id
	c, _ := vex.JSON(in)
	docA, docC := document(t, alpine()), document(t, in)
	if docA.ID != docC.ID || !strings.HasPrefix(docA.ID, vex.Namespace) {
		t.Errorf("ids %s, %s", docA.ID, docC.ID)
	}
	_ = c
	in = alpine()
	in.Digests = []string{other}
	if document(t, in).ID == docA.ID {
		t.Error("another digest, same document id")
	}
	if docA.Timestamp == nil || !docA.Timestamp.Equal(created) || docA.Author != vex.Author {
		t.Errorf("metadata = %+v", docA.Metadata)
	}
	if !bytes.Contains(a, []byte(`"@context": "https://openvex.dev/ns/v0.2.0"`)) {
		t.Errorf("no OpenVEX v0.2.0 context:\n%s", a)
	}
}

func TestInputErrors(t *testing.T) {
	for name, mutate := range map[string]func(*vex.Input){
		"no digest":       func(in *vex.Input) { in.Digests = nil },
		"bad digest":      func(in *vex.Input) { in.Digests = []string{"sha256:XYZ"} },
		"no repository":   func(in *vex.Input) { in.Repository = "" },
		"no package":      func(in *vex.Input) { in.Packages = nil },
		"bad type":        func(in *vex.Input) { in.Packages[0].Type = "rpm" },
		"no sqlite":       func(in *vex.Input) { in.Packages[0].SQLite = pins.Version{} },
		"bad version":     func(in *vex.Input) { in.Packages[0].Version = "3.48 0" },
		"no graft":        func(in *vex.Input) { in.Graft.Version = pins.Version{} },
		"no created time": func(in *vex.Input) { in.Created = time.Time{} },
		"no libc":         func(in *vex.Input) { in.Graft.Libc = "" },
		// glibc: only with the generated ld.so.cache is the claim true without the environment
		"glibc without ld.so.cache": func(in *vex.Input) { in.Graft.Libc = vex.Glibc },
	} {
		in := alpine()
		mutate(&in)
		if _, err := vex.JSON(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A custom advisories file is used when given.
	f, err := advisories.Parse("a.yaml", []byte("advisories:\n  - id: CVE-2020-11111\n    summary: s\n    fixed: 3.50.0\n    measured: test\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := alpine()
	in.Advisories = f
	doc := document(t, in)
	if len(doc.Statements) != 1 || doc.Statements[0].Vulnerability.Name != "CVE-2020-11111" {
		t.Errorf("statements with a custom advisories file = %+v", doc.Statements)
	}
}
