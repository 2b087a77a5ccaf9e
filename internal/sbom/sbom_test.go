package sbom

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"
)

const (
	archiveSHA3  = "ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea"
	sqlite3cSHA3 = "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e"
	baseDigest   = "sha256:1c4eef651f65e2f7daee7ee785882ac164b02b78fb74503052a26dc061c90474"
	patchSHA3    = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
)

func input() Input {
	return Input{
		ImageName:    "alpine-3.21",
		ImageRef:     "registry.example/sqlite-graft/alpine",
		Base:         "alpine:3.21",
		BaseDigest:   baseDigest,
		SQLite:       "3.51.3",
		DownloadURL:  "https://sqlite.org/2026/sqlite-amalgamation-3510300.zip",
		ArchiveSHA3:  archiveSHA3,
		SQLite3CSHA3: sqlite3cSHA3,
		SourceID:     "2026-03-13 10:38:09 737ae4a34738ffa0c3ff7f9bb18df914dd1cad163f28fd6b6e114a344fe6d618",
		Patches:      []Patch{{Name: "0001-log & trace.patch", SHA3: patchSHA3}},
		Defines:      []string{"-DSQLITE_ENABLE_FTS5", "-DSQLITE_ENABLE_RTREE", "-DSQLITE_MAX_VARIABLE_NUMBER=250000"},
		Toolchain:    "gcc (Debian 14.2.0-19) 14.2.0",
		ToolVersion:  "0.3.0",
		Created:      time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC),
	}
}

func pkg(t *testing.T, doc *v2_3.Document, id common.ElementID) *v2_3.Package {
	t.Helper()
	for _, p := range doc.Packages {
		if p.PackageSPDXIdentifier == id {
			return p
		}
	}
	t.Fatalf("no package %s", common.RenderElementID(id))
	return nil
}

func hasRel(doc *v2_3.Document, a common.ElementID, typ string, b common.ElementID) *v2_3.Relationship {
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == a && r.Relationship == typ && r.RefB.ElementRefID == b {
			return r
		}
	}
	return nil
}

func TestDocumentContent(t *testing.T) {
	doc, err := Document(input())
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(doc); err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatal(err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != IDImage {
		t.Fatalf("described = %v, %v; want [Image]", described, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" {
		t.Errorf("version/licence = %s/%s", doc.SPDXVersion, doc.DataLicense)
	}
	if got := doc.CreationInfo.Created; got != "2026-03-13T00:00:00Z" {
		t.Errorf("created = %s", got)
	}
	if c := doc.CreationInfo.Creators; len(c) != 1 || c[0].CreatorType != "Tool" || c[0].Creator != "sqlite-graft-0.3.0" {
		t.Errorf("creators = %+v", c)
	}
	if !strings.HasPrefix(doc.DocumentNamespace, Namespace+"alpine-3.21-sqlite3.51.3-") {
		t.Errorf("namespace = %s", doc.DocumentNamespace)
	}

	s := pkg(t, doc, IDSQLite)
	if s.PackageName != "sqlite" || s.PackageVersion != "3.51.3" {
		t.Errorf("sqlite package = %s %s", s.PackageName, s.PackageVersion)
	}
	if s.PackageDownloadLocation != input().DownloadURL || s.PackageFileName != "sqlite-amalgamation-3510300.zip" {
		t.Errorf("download = %s (%s)", s.PackageDownloadLocation, s.PackageFileName)
	}
	if len(s.PackageChecksums) != 1 || s.PackageChecksums[0].Algorithm != common.SHA3_256 || s.PackageChecksums[0].Value != archiveSHA3 {
		t.Errorf("checksums = %+v", s.PackageChecksums)
	}
	if s.PackageLicenseConcluded != "blessing" || s.PackageLicenseDeclared != "blessing" {
		t.Errorf("licence = %s / %s", s.PackageLicenseConcluded, s.PackageLicenseDeclared)
	}
	if s.PackageSupplier.SupplierType != "Organization" || s.PackageOriginator.OriginatorType != "Organization" {
		t.Errorf("supplier/originator = %+v %+v", s.PackageSupplier, s.PackageOriginator)
	}
	wantPURL := "pkg:generic/sqlite@3.51.3?download_url=https://sqlite.org/2026/sqlite-amalgamation-3510300.zip"
	if r := s.PackageExternalReferences; len(r) != 2 || r[0].Locator != wantPURL || r[0].Category != "PACKAGE-MANAGER" || r[0].RefType != "purl" ||
		r[1].Category != "SECURITY" || r[1].RefType != "cpe23Type" || r[1].Locator != "cpe:2.3:a:sqlite:sqlite:3.51.3:*:*:*:*:*:*:*" {
		t.Errorf("sqlite externalRefs = %+v, want its purl and its CPE 2.3", r)
	}
	for _, d := range input().Defines {
		if !strings.Contains(s.PackageComment, d) {
			t.Errorf("compile option %s missing from the package comment %q", d, s.PackageComment)
		}
	}
	if !strings.Contains(s.PackageSourceInfo, input().SourceID) {
		t.Errorf("source info %q lacks the source id", s.PackageSourceInfo)
	}

	c := pkg(t, doc, IDSQLite3C)
	if len(c.PackageChecksums) != 1 || c.PackageChecksums[0].Value != sqlite3cSHA3 || c.PackageChecksums[0].Algorithm != common.SHA3_256 {
		t.Errorf("sqlite3.c checksums = %+v", c.PackageChecksums)
	}
	patch := pkg(t, doc, "Patch-1-0001-log-trace.patch")
	if patch.PackageName != "0001-log & trace.patch" || patch.PackageChecksums[0].Value != patchSHA3 {
		t.Errorf("patch = %+v", patch)
	}

	b := pkg(t, doc, IDBase)
	// The base is described by its purl and digest only: no CPE is made up
	// for a whole image (nor for the image itself).
	for _, p := range []*v2_3.Package{b, pkg(t, doc, IDImage)} {
		for _, r := range p.PackageExternalReferences {
			if r.Category == "SECURITY" || strings.HasPrefix(r.Locator, "cpe:") {
				t.Errorf("%s carries a security reference %+v", p.PackageName, r)
			}
		}
	}
	wantBase := "pkg:oci/alpine@sha256%3A" + strings.TrimPrefix(baseDigest, "sha256:") + "?repository_url=docker.io/library/alpine&tag=3.21"
	if b.PackageExternalReferences[0].Locator != wantBase {
		t.Errorf("base purl = %s, want %s", b.PackageExternalReferences[0].Locator, wantBase)
	}
	if b.PackageChecksums[0].Algorithm != common.SHA256 || "sha256:"+b.PackageChecksums[0].Value != baseDigest {
		t.Errorf("base checksum = %+v", b.PackageChecksums)
	}
	img := pkg(t, doc, IDImage)
	if img.PackageVersion != "3.21-sqlite3.51.3" || img.PrimaryPackagePurpose != "CONTAINER" {
		t.Errorf("image = %s %s", img.PackageVersion, img.PrimaryPackagePurpose)
	}
	if l := img.PackageExternalReferences[0].Locator; l != "pkg:oci/alpine?repository_url=registry.example/sqlite-graft/alpine" {
		t.Errorf("image purl = %s", l)
	}

	for _, want := range []struct {
		a   common.ElementID
		typ string
		b   common.ElementID
	}{
		{"DOCUMENT", "DESCRIBES", IDImage},
		{IDImage, "DESCENDANT_OF", IDBase},
		{IDImage, "CONTAINS", IDSQLite},
		{IDSQLite, "OTHER", IDBase},
		{IDSQLite, "GENERATED_FROM", IDSQLite3C},
		{"Patch-1-0001-log-trace.patch", "PATCH_APPLIED", IDSQLite3C},
	} {
		r := hasRel(doc, want.a, want.typ, want.b)
		if r == nil {
			t.Errorf("missing relationship %s %s %s", want.a, want.typ, want.b)
		}
	}
	if r := hasRel(doc, IDSQLite, "OTHER", IDBase); r != nil && !strings.Contains(r.RelationshipComment, "overrides") {
		t.Errorf("override comment = %q", r.RelationshipComment)
	}
}

func TestJSONDeterministicAndRoundTrips(t *testing.T) {
	a, err := JSON(input())
	if err != nil {
		t.Fatal(err)
	}
	b, err := JSON(input())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same input, different bytes")
	}
	in2 := input()
	in2.SQLite = "3.53.4"
	c, err := JSON(in2)
	if err != nil {
		t.Fatal(err)
	}
	var da, dc struct {
		Namespace string `json:"documentNamespace"`
	}
	_ = json.Unmarshal(a, &da)
	_ = json.Unmarshal(c, &dc)
	if da.Namespace == "" || da.Namespace == dc.Namespace {
		t.Errorf("namespaces %q and %q: want distinct, non-empty", da.Namespace, dc.Namespace)
	}

	// The library's reader reads it back into the same document.
	var back v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(a), &back); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&back); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := spdxjson.Write(&back, &again, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, again.Bytes()) {
		t.Errorf("read and written again, the document changed:\n%s\n---\n%s", a, again.Bytes())
	}

	// Required fields of the SPDX 2.3 JSON schema, in the bytes themselves.
	var raw map[string]any
	if err := json.Unmarshal(a, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo", "packages", "relationships"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("document lacks %s", k)
		}
	}
	for _, p := range raw["packages"].([]any) {
		m := p.(map[string]any)
		for _, k := range []string{"SPDXID", "name", "downloadLocation", "filesAnalyzed"} {
			if _, ok := m[k]; !ok {
				t.Errorf("package %v lacks %s", m["name"], k)
			}
		}
	}
	if bytes.Contains(a, []byte(`\u0026`)) {
		t.Error("HTML escaping in the output")
	}
}

func TestOptionalInputs(t *testing.T) {
	in := input()
	in.ImageRef = ""
	in.DownloadURL = ""
	in.ArchiveSHA3 = ""
	in.Patches = nil
	in.Defines = nil
	in.ToolVersion = ""
	in.Base = "alpine@" + baseDigest
	doc, err := Document(in)
	if err != nil {
		t.Fatal(err)
	}
	s := pkg(t, doc, IDSQLite)
	if s.PackageDownloadLocation != "NOASSERTION" || len(s.PackageChecksums) != 0 {
		t.Errorf("sqlite = %s %v", s.PackageDownloadLocation, s.PackageChecksums)
	}
	if l := s.PackageExternalReferences[0].Locator; l != "pkg:generic/sqlite@3.51.3" {
		t.Errorf("purl = %s", l)
	}
	if doc.CreationInfo.Creators[0].Creator != "sqlite-graft-dev" {
		t.Errorf("creator = %s", doc.CreationInfo.Creators[0].Creator)
	}
	if v := pkg(t, doc, IDImage).PackageVersion; v != "sqlite3.51.3" {
		t.Errorf("image version = %s", v)
	}
	if _, err := JSON(in); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	for name, mutate := range map[string]func(*Input){
		"no image":      func(in *Input) { in.ImageName = "" },
		"bad digest":    func(in *Input) { in.BaseDigest = "sha256:abc" },
		"bad version":   func(in *Input) { in.SQLite = "3.51" },
		"bad sqlite3.c": func(in *Input) { in.SQLite3CSHA3 = "" },
		"bad archive":   func(in *Input) { in.ArchiveSHA3 = "XYZ" },
		"bad patch":     func(in *Input) { in.Patches[0].SHA3 = "00" },
		"no created":    func(in *Input) { in.Created = time.Time{} },
		"relative url":  func(in *Input) { in.DownloadURL = "sqlite.zip" },
		"bad base":      func(in *Input) { in.Base = "Not A Ref" },
	} {
		in := input()
		mutate(&in)
		if _, err := JSON(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestValidateCatches(t *testing.T) {
	for name, mutate := range map[string]func(*v2_3.Document){
		"dangling relationship": func(d *v2_3.Document) {
			d.Relationships[1].RefB = common.MakeDocElementID("", "Nowhere")
		},
		"bad id": func(d *v2_3.Document) { d.Packages[1].PackageSPDXIdentifier = "has space" },
		"dup id": func(d *v2_3.Document) {
			d.Packages[2].PackageSPDXIdentifier = d.Packages[1].PackageSPDXIdentifier
		},
		"no download":   func(d *v2_3.Document) { d.Packages[0].PackageDownloadLocation = "" },
		"bad checksum":  func(d *v2_3.Document) { d.Packages[1].PackageChecksums[0].Value = "abc" },
		"bad purpose":   func(d *v2_3.Document) { d.Packages[1].PrimaryPackagePurpose = "LIB" },
		"bad created":   func(d *v2_3.Document) { d.CreationInfo.Created = "2026-03-13" },
		"bad namespace": func(d *v2_3.Document) { d.DocumentNamespace = "x#y" },
		"bad relation":  func(d *v2_3.Document) { d.Relationships[1].Relationship = "OVERRIDES" },
		"analyzed without code": func(d *v2_3.Document) {
			d.Packages[1].FilesAnalyzed = true
		},
		"file without sha1": func(d *v2_3.Document) {
			d.Files = append(d.Files, &v2_3.File{FileName: "./sqlite3.c", FileSPDXIdentifier: "File-x",
				Checksums: []common.Checksum{{Algorithm: common.SHA3_256, Value: sqlite3cSHA3}}})
		},
		"no describes":  func(d *v2_3.Document) { d.Relationships = d.Relationships[1:] },
		"wrong version": func(d *v2_3.Document) { d.SPDXVersion = "SPDX-2.2" },
	} {
		doc, err := Document(input())
		if err != nil {
			t.Fatal(err)
		}
		mutate(doc)
		if err := Validate(doc); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
}

// The referrer's artifact type is none that a scanner takes for the image's
// complete SBOM: Trivy's --sbom-sources oci accepts exactly these (its
// pkg/oci SupportedSBOMArtifactTypes), and would then skip the layer scan.
func TestArtifactTypeIsNotAnImageSBOM(t *testing.T) {
	for _, taken := range []string{"application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.dev.sigstore.bundle.v0.3+json"} {
		if ArtifactType == taken {
			t.Errorf("ArtifactType = %s, which Trivy takes for the image's SBOM", ArtifactType)
		}
	}
	if !strings.HasPrefix(ArtifactType, "application/vnd.") || !strings.HasSuffix(ArtifactType, "+json") || MediaType != "application/spdx+json" {
		t.Errorf("ArtifactType %s, MediaType %s", ArtifactType, MediaType)
	}
}
