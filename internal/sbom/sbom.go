// Package sbom writes the SPDX 2.3 document that explains what sqlite-graft put
// into an image: the grafted SQLite (version, download location, SHA3-256 of
// the archive and of sqlite3.c, patches, compile options, licence, its purl
// and CPE), the base image by digest, and that the graft overrides the
// distro's libsqlite3. It describes the graft, not the whole image, and is
// attached as a referrer under its own ArtifactType, which scanners do not
// take for the image's SBOM.
//
// Scanners read the distro's package database, which still lists the
// vulnerable distro SQLite; this document is where the truth is written down.
// The document is built with the SPDX project's Go library
// (github.com/spdx/tools-golang, v2_3 types, its JSON writer and reader) and is
// a pure function of its Input: the same Input gives the same bytes, the
// document namespace included (it is derived from a hash of the Input).
//
// Modelling choices, each allowed by SPDX 2.3:
//   - sqlite3.c and the patches are Packages (primaryPackagePurpose SOURCE),
//     not Files: SPDX 2.3 §8.4 requires every File to carry a SHA1 checksum,
//     and sqlite.org publishes SHA3-256 only. A Package checksum may be any of
//     the listed algorithms, SHA3-256 included (§7.10).
//   - The licence is `blessing` (SPDX License List: "SQLite Blessing"), the
//     exact text at the top of every SQLite source file. SQLite is in the
//     public domain (https://sqlite.org/copyright.html); the blessing is how
//     its sources say so, and it is on the list, so no LicenseRef is needed.
//   - SPDX 2.3 has no "overrides" relationship: the graft package has an
//     OTHER relationship to the base image whose comment says what it
//     overrides and how; the image is a DESCENDANT_OF the base and CONTAINS
//     the graft.
package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"
)

// MediaType is the media type of the JSON document (IANA registered).
const MediaType = "application/spdx+json"

// ArtifactType is the artifact type the document is attached under as an OCI
// referrer. Not MediaType: this document describes the graft, not the whole
// image (the base's packages are in its apk or dpkg database, and a layer
// scan also finds language packages and binaries that no package database
// lists), and scanners take a referrer of type application/spdx+json as the
// image's complete SBOM — Trivy's --sbom-sources oci (SupportedSBOMArtifactTypes:
// CycloneDX, SPDX and Sigstore bundles) then scans it instead of the layers
// and reports fewer packages than a layer scan. Under this type no scanner
// mistakes it for the image's SBOM; the layer inside stays MediaType, so
// tools that fetch it by this type read plain SPDX JSON.
const ArtifactType = "application/vnd.sqlite-graft.graft.spdx+json"

// CPE is the CPE 2.3 name of a SQLite release, as NVD records SQLite's
// vulnerabilities (vendor sqlite, product sqlite): the name matchers such as
// Grype look up.
func CPE(version string) string {
	return "cpe:2.3:a:sqlite:sqlite:" + version + ":*:*:*:*:*:*:*"
}

// FileName is the conventional name of the document in the image.
const FileName = "sbom.spdx.json"

// License is the SPDX License List identifier of SQLite's blessing.
const License = "blessing"

// Namespace prefixes every document namespace.
const Namespace = "https://github.com/sqlite-graft/sqlite-graft/spdx/"

// Supplier is who makes SQLite.
const Supplier = "SQLite Development Team"

// Where the graft lives in the image (see internal/layer).
const graftLibrary = "/usr/local/lib/libsqlite3.so.0"

// Element ids (rendered with the SPDXRef- prefix).
const (
	IDImage    common.ElementID = "Image"
	IDBase     common.ElementID = "BaseImage"
	IDSQLite   common.ElementID = "Package-sqlite"
	IDSQLite3C common.ElementID = "Source-sqlite3.c"
	idPatch                     = "Patch-"
)

// Patch is one patch applied to sqlite3.c.
type Patch struct {
	Name string `json:"name"`
	SHA3 string `json:"sha3"`
}

// Input is what the document says.
type Input struct {
	ImageName    string    `json:"image_name"`     // image definition, e.g. alpine-3.21
	ImageRef     string    `json:"image_ref"`      // repository the image is published to ("" if none)
	Base         string    `json:"base"`           // base reference as asked (usually a tag)
	BaseDigest   string    `json:"base_digest"`    // sha256:...
	SQLite       string    `json:"sqlite"`         // 3.51.3
	DownloadURL  string    `json:"download_url"`   // where the archive came from ("" : NOASSERTION)
	ArchiveSHA3  string    `json:"archive_sha3"`   // SHA3-256 of the archive; "" for a directory source
	SQLite3CSHA3 string    `json:"sqlite3_c_sha3"` // SHA3-256 of sqlite3.c as verified, before patches
	SourceID     string    `json:"source_id"`      // SQLITE_SOURCE_ID
	Patches      []Patch   `json:"patches"`        // in the order applied
	Defines      []string  `json:"defines"`        // compile options (-D...), recipe order
	Toolchain    string    `json:"toolchain"`      // compiler identity
	ToolVersion  string    `json:"tool_version"`   // sqlite-graft version ("" : dev)
	Created      time.Time `json:"created"`        // SOURCE_DATE_EPOCH: the document's created time
}

var (
	sha3Re    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	idRe      = regexp.MustCompile(`^SPDXRef-[a-zA-Z0-9.-]+$`)
	dateRe    = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]|23:59:60)Z$`)
	unsafeID  = regexp.MustCompile(`[^a-zA-Z0-9.-]+`)
)

func (in Input) check() error {
	var errs []error
	need := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s is empty", field))
		}
	}
	need("ImageName", in.ImageName)
	need("Base", in.Base)
	if !versionRe.MatchString(in.SQLite) {
		errs = append(errs, fmt.Errorf("SQLite %q: want a version like 3.51.3", in.SQLite))
	}
	if _, err := sha256Hex(in.BaseDigest); err != nil {
		errs = append(errs, fmt.Errorf("BaseDigest: %w", err))
	}
	if in.ArchiveSHA3 != "" && !sha3Re.MatchString(in.ArchiveSHA3) {
		errs = append(errs, fmt.Errorf("ArchiveSHA3 %q: want 64 lower-case hex digits", in.ArchiveSHA3))
	}
	if !sha3Re.MatchString(in.SQLite3CSHA3) {
		errs = append(errs, fmt.Errorf("SQLite3CSHA3 %q: want 64 lower-case hex digits", in.SQLite3CSHA3))
	}
	for i, p := range in.Patches {
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("patch %d has no name", i+1))
		}
		if !sha3Re.MatchString(p.SHA3) {
			errs = append(errs, fmt.Errorf("patch %s: SHA3 %q: want 64 lower-case hex digits", p.Name, p.SHA3))
		}
	}
	if in.DownloadURL != "" {
		if u, err := url.Parse(in.DownloadURL); err != nil || u.Scheme == "" {
			errs = append(errs, fmt.Errorf("DownloadURL %q: want an absolute URL", in.DownloadURL))
		}
	}
	if in.Created.IsZero() {
		errs = append(errs, errors.New("Created is zero: pass SOURCE_DATE_EPOCH or the SQLite release date"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sbom: %w", err)
	}
	return nil
}

func sha256Hex(digest string) (string, error) {
	hexPart, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexPart) != 64 {
		return "", fmt.Errorf("%q: want sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(hexPart); err != nil || strings.ToLower(hexPart) != hexPart {
		return "", fmt.Errorf("%q: want sha256:<64 lower-case hex digits>", digest)
	}
	return hexPart, nil
}

// Document builds the SPDX 2.3 document for in.
func Document(in Input) (*v2_3.Document, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	created := in.Created.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z")
	tool := "sqlite-graft-" + toolVersion(in.ToolVersion)
	ns, err := namespace(in)
	if err != nil {
		return nil, err
	}
	baseHex, _ := sha256Hex(in.BaseDigest)
	basePURL, baseName, baseVersion, err := ociPURL(in.Base, in.BaseDigest)
	if err != nil {
		return nil, err
	}
	noAssertion := &common.Supplier{Supplier: "NOASSERTION"}
	download := in.DownloadURL
	if download == "" {
		download = "NOASSERTION"
	}

	image := &v2_3.Package{
		PackageName:               in.ImageName,
		PackageSPDXIdentifier:     IDImage,
		PackageVersion:            imageVersion(in.Base, in.SQLite),
		PackageSupplier:           noAssertion,
		PackageDownloadLocation:   "NOASSERTION",
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageLicenseConcluded:   "NOASSERTION",
		PackageLicenseDeclared:    "NOASSERTION",
		PackageCopyrightText:      "NOASSERTION",
		PrimaryPackagePurpose:     "CONTAINER",
		BuiltDate:                 created,
		PackageSummary:            fmt.Sprintf("%s with SQLite %s grafted on by sqlite-graft", in.Base, in.SQLite),
		PackageComment: fmt.Sprintf("The base image %s@%s plus one layer written by %s. Its digest is not "+
			"recorded here: this document is part of the image it describes.", in.Base, in.BaseDigest, tool),
	}
	if in.ImageRef != "" {
		p, err := imagePURL(in.ImageRef)
		if err != nil {
			return nil, err
		}
		image.PackageExternalReferences = []*v2_3.PackageExternalReference{purlRef(p)}
	}

	base := &v2_3.Package{
		PackageName:               baseName,
		PackageSPDXIdentifier:     IDBase,
		PackageVersion:            baseVersion,
		PackageSupplier:           noAssertion,
		PackageDownloadLocation:   "NOASSERTION",
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: baseHex}},
		PackageLicenseConcluded:   "NOASSERTION",
		PackageLicenseDeclared:    "NOASSERTION",
		PackageCopyrightText:      "NOASSERTION",
		PrimaryPackagePurpose:     "CONTAINER",
		PackageExternalReferences: []*v2_3.PackageExternalReference{purlRef(basePURL)},
		PackageComment:            fmt.Sprintf("Base image %s, resolved once to the manifest digest %s (the checksum above).", in.Base, in.BaseDigest),
	}

	source := fmt.Sprintf("Downloaded from %s", download)
	if in.DownloadURL == "" {
		source = "Download location not recorded"
	}
	if in.ArchiveSHA3 != "" {
		source += fmt.Sprintf("; archive SHA3-256 %s verified against the published hash", in.ArchiveSHA3)
	}
	source += fmt.Sprintf("; sqlite3.c SHA3-256 %s verified before patches", in.SQLite3CSHA3)
	if in.SourceID != "" {
		source += fmt.Sprintf("; SQLITE_SOURCE_ID %q", in.SourceID)
	}
	switch len(in.Patches) {
	case 0:
		source += "; no patches applied."
	default:
		var names []string
		for _, p := range in.Patches {
			names = append(names, p.Name)
		}
		source += fmt.Sprintf("; patches applied in order: %s.", strings.Join(names, ", "))
	}
	comment := fmt.Sprintf("Compiled by %s", tool)
	if in.Toolchain != "" {
		comment += " with " + in.Toolchain
	}
	comment += ". Compile options (recipe order):"
	if len(in.Defines) == 0 {
		comment += " none."
	} else {
		comment += " " + strings.Join(in.Defines, " ") + "."
	}
	comment += fmt.Sprintf(" Installed as %s; the distro's own sqlite package stays in the package database "+
		"but is not the library processes load.", graftLibrary)

	sqlite := &v2_3.Package{
		PackageName:               "sqlite",
		PackageSPDXIdentifier:     IDSQLite,
		PackageVersion:            in.SQLite,
		PackageSupplier:           &common.Supplier{Supplier: Supplier, SupplierType: "Organization"},
		PackageOriginator:         &common.Originator{Originator: Supplier, OriginatorType: "Organization"},
		PackageDownloadLocation:   download,
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageHomePage:           "https://sqlite.org/",
		PackageSourceInfo:         source,
		PackageLicenseConcluded:   License,
		PackageLicenseDeclared:    License,
		PackageLicenseComments: "SQLite is in the public domain (https://sqlite.org/copyright.html); every source " +
			"file carries the blessing that the SPDX License List records as `blessing`.",
		PackageCopyrightText:  "NONE",
		PrimaryPackagePurpose: "LIBRARY",
		PackageSummary:        "SQLite " + in.SQLite + ", grafted over the distribution's libsqlite3.so.0",
		PackageComment:        comment,
		PackageExternalReferences: []*v2_3.PackageExternalReference{
			purlRef(sqlitePURL(in.SQLite, in.DownloadURL)),
			// The grafted SQLite is SQLite itself, so its CPE is true. The
			// base gets none: a CPE for a whole image would be made up.
			{Category: common.CategorySecurity, RefType: common.TypeSecurityCPE23Type, Locator: CPE(in.SQLite)},
		},
	}
	if in.DownloadURL != "" {
		if u, err := url.Parse(in.DownloadURL); err == nil {
			if f := u.Path[strings.LastIndex(u.Path, "/")+1:]; f != "" {
				sqlite.PackageFileName = f
			}
		}
	}
	if in.ArchiveSHA3 != "" {
		sqlite.PackageChecksums = []common.Checksum{{Algorithm: common.SHA3_256, Value: in.ArchiveSHA3}}
	}

	sqlite3c := &v2_3.Package{
		PackageName:               "sqlite3.c",
		PackageSPDXIdentifier:     IDSQLite3C,
		PackageVersion:            in.SQLite,
		PackageFileName:           "sqlite3.c",
		PackageSupplier:           &common.Supplier{Supplier: Supplier, SupplierType: "Organization"},
		PackageDownloadLocation:   "NOASSERTION",
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageChecksums:          []common.Checksum{{Algorithm: common.SHA3_256, Value: in.SQLite3CSHA3}},
		PackageLicenseConcluded:   License,
		PackageLicenseDeclared:    License,
		PackageCopyrightText:      "NONE",
		PrimaryPackagePurpose:     "SOURCE",
		PackageComment: "The SQLite amalgamation as extracted from the archive and verified against the SHA3-256 " +
			"sqlite.org publishes on its change log, before any patch.",
	}
	if in.SourceID != "" {
		sqlite3c.PackageSourceInfo = "SQLITE_SOURCE_ID " + in.SourceID
	}

	doc := &v2_3.Document{
		SPDXVersion:       v2_3.Version,
		DataLicense:       v2_3.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      fmt.Sprintf("sqlite-graft %s sqlite %s", in.ImageName, in.SQLite),
		DocumentNamespace: ns,
		DocumentComment: "SQLite " + in.SQLite + " grafted onto " + in.Base + " by sqlite-graft. The distribution's " +
			"package database still lists its own SQLite; this document says which SQLite processes in the image load.",
		CreationInfo: &v2_3.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  created,
		},
		Packages: []*v2_3.Package{image, sqlite, sqlite3c, base},
	}
	rel := func(a common.ElementID, typ string, b common.ElementID, comment string) *v2_3.Relationship {
		return &v2_3.Relationship{
			RefA:                common.MakeDocElementID("", string(a)),
			RefB:                common.MakeDocElementID("", string(b)),
			Relationship:        typ,
			RelationshipComment: comment,
		}
	}
	doc.Relationships = []*v2_3.Relationship{
		rel("DOCUMENT", common.TypeRelationshipDescribe, IDImage, ""),
		rel(IDImage, common.TypeRelationshipDescendantOf, IDBase, "built FROM the base image by appending one layer"),
		rel(IDImage, common.TypeRelationshipContains, IDSQLite, "in "+graftLibrary),
		rel(IDSQLite, common.TypeRelationshipOther, IDBase, fmt.Sprintf(
			"overrides the base image's distro libsqlite3.so.0: the grafted library is installed as %s and "+
				"loaded in its place (LD_PRELOAD; on musl also the search order, /usr/local/lib before /usr/lib), "+
				"so dynamically linked programs use it instead of the distro's copy", graftLibrary)),
		rel(IDSQLite, common.TypeRelationshipGeneratedFrom, IDSQLite3C, "compiled from the (patched) amalgamation"),
	}
	for i, p := range in.Patches {
		id := common.ElementID(fmt.Sprintf("%s%d-%s", idPatch, i+1, strings.Trim(unsafeID.ReplaceAllString(p.Name, "-"), "-")))
		doc.Packages = append(doc.Packages, &v2_3.Package{
			PackageName:               p.Name,
			PackageSPDXIdentifier:     id,
			PackageFileName:           p.Name,
			PackageSupplier:           noAssertion,
			PackageDownloadLocation:   "NOASSERTION",
			FilesAnalyzed:             false,
			IsFilesAnalyzedTagPresent: true,
			PackageChecksums:          []common.Checksum{{Algorithm: common.SHA3_256, Value: p.SHA3}},
			PackageLicenseConcluded:   "NOASSERTION",
			PackageLicenseDeclared:    "NOASSERTION",
			PackageCopyrightText:      "NOASSERTION",
			PrimaryPackagePurpose:     "SOURCE",
			PackageComment:            fmt.Sprintf("Patch %d of %d, applied in this order to sqlite3.c.", i+1, len(in.Patches)),
		})
		doc.Relationships = append(doc.Relationships,
			rel(id, common.TypeRelationshipPatchApplied, IDSQLite3C, fmt.Sprintf("applied in order (%d of %d)", i+1, len(in.Patches))))
	}
	if err := Validate(doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// JSON is the document as indented JSON, written by the library's JSON writer.
// The same Input gives the same bytes. The bytes are read back with the
// library's reader before they are returned.
func JSON(in Input) ([]byte, error) {
	doc, err := Document(in)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return nil, fmt.Errorf("sbom: write: %w", err)
	}
	back, err := spdxjson.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("sbom: the written document does not read back: %w", err)
	}
	if err := Validate(back); err != nil {
		return nil, fmt.Errorf("sbom: the written document, read back: %w", err)
	}
	return buf.Bytes(), nil
}

// imageVersion is "<base tag>-sqlite<version>" (the shape of the image's
// tags), or "sqlite<version>" for a base asked by digest.
func imageVersion(base, version string) string {
	if t, err := name.NewTag(base); err == nil && !strings.Contains(base, "@") {
		return t.TagStr() + "-sqlite" + version
	}
	return "sqlite" + version
}

func toolVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "sqlite-graft-")
	if v == "" {
		return "dev"
	}
	return strings.ReplaceAll(v, " ", "-")
}

// namespace is unique per input and stable: a hash of the Input, not a random
// UUID, so that the same build writes the same bytes.
func namespace(in Input) (string, error) {
	in.Created = in.Created.UTC().Truncate(time.Second)
	b, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	slug := strings.Trim(unsafeID.ReplaceAllString(in.ImageName, "-"), "-")
	return fmt.Sprintf("%s%s-sqlite%s-%s", Namespace, slug, in.SQLite, hex.EncodeToString(sum[:16])), nil
}

func purlRef(locator string) *v2_3.PackageExternalReference {
	return &v2_3.PackageExternalReference{
		Category: common.CategoryPackageManager,
		RefType:  common.TypePackageManagerPURL,
		Locator:  locator,
	}
}

// purlEscape percent-encodes s for a purl version or qualifier value: the
// unreserved characters of RFC 3986 and those in keep stay as they are.
func purlEscape(s, keep string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sqlitePURL is pkg:generic/sqlite@<version>[?download_url=<url>], the purl
// of the ELF .note.package (internal/recipe) plus where the source came from.
func sqlitePURL(version, download string) string {
	p := "pkg:generic/sqlite@" + purlEscape(version, "")
	if download != "" {
		p += "?download_url=" + purlEscape(download, ":/")
	}
	return p
}

// ociPURL is the purl of an image by digest:
// pkg:oci/<name>@sha256%3A<hex>?repository_url=<registry/repo>[&tag=<tag>].
func ociPURL(ref, digest string) (purl, shortName, version string, err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", "", "", fmt.Errorf("sbom: base %q: %w", ref, err)
	}
	repo := repositoryURL(r.Context())
	shortName = strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
	purl = fmt.Sprintf("pkg:oci/%s@%s?repository_url=%s", shortName, purlEscape(digest, ""), purlEscape(repo, "/:"))
	version = digest
	if t, ok := r.(name.Tag); ok {
		version = t.TagStr()
		purl += "&tag=" + purlEscape(t.TagStr(), "")
	}
	return purl, shortName, version, nil
}

// imagePURL is the purl of the published repository, without a version: the
// image's digest is not known while its own SBOM is being written.
func imagePURL(repository string) (string, error) {
	r, err := name.NewRepository(repository)
	if err != nil {
		return "", fmt.Errorf("sbom: image repository %q: %w", repository, err)
	}
	repo := repositoryURL(r)
	short := strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
	return fmt.Sprintf("pkg:oci/%s?repository_url=%s", short, purlEscape(repo, "/:")), nil
}

// repositoryURL is registry/repository with Docker Hub spelled docker.io.
func repositoryURL(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.RepositoryStr()
}

// Validate checks doc with the library's validator (spdxlib.ValidateDocument:
// every relationship names an element of the document;
// spdxlib.GetDescribedPackageIDs: the document describes a package) and then
// the SPDX 2.3 JSON schema's structural rules that the library does not check:
// required fields, identifier and date patterns, enumerations, checksum
// lengths, unique identifiers, and the spec's conditions (a package with
// filesAnalyzed has a verification code, every File has a SHA1 checksum).
func Validate(doc *v2_3.Document) error {
	if doc == nil {
		return errors.New("spdx: no document")
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		return fmt.Errorf("spdx: %w", err)
	}
	if _, err := spdxlib.GetDescribedPackageIDs(doc); err != nil {
		return fmt.Errorf("spdx: %w", err)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if doc.SPDXVersion != v2_3.Version {
		bad("spdxVersion %q, want %q", doc.SPDXVersion, v2_3.Version)
	}
	if doc.DataLicense != v2_3.DataLicense {
		bad("dataLicense %q, want %q", doc.DataLicense, v2_3.DataLicense)
	}
	if doc.SPDXIdentifier != "DOCUMENT" {
		bad("SPDXID %q, want SPDXRef-DOCUMENT", common.RenderElementID(doc.SPDXIdentifier))
	}
	if doc.DocumentName == "" {
		bad("document name is empty")
	}
	if u, err := url.Parse(doc.DocumentNamespace); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" || strings.Contains(doc.DocumentNamespace, "#") {
		bad("documentNamespace %q: want an absolute URI without '#'", doc.DocumentNamespace)
	}
	if ci := doc.CreationInfo; ci == nil {
		bad("creationInfo is missing")
	} else {
		if !dateRe.MatchString(ci.Created) {
			bad("creationInfo.created %q: want YYYY-MM-DDThh:mm:ssZ", ci.Created)
		}
		if len(ci.Creators) == 0 {
			bad("creationInfo.creators is empty")
		}
		for _, c := range ci.Creators {
			switch c.CreatorType {
			case "Person", "Organization", "Tool":
			default:
				bad("creator %q: type %q, want Person, Organization or Tool", c.Creator, c.CreatorType)
			}
			if c.Creator == "" {
				bad("creator of type %s has no name", c.CreatorType)
			}
		}
	}

	ids := map[common.ElementID]bool{"DOCUMENT": true}
	seen := func(id common.ElementID, what string) {
		rendered := common.RenderElementID(id)
		if !idRe.MatchString(rendered) {
			bad("%s SPDXID %q does not match SPDXRef-[a-zA-Z0-9.-]+", what, rendered)
		}
		if ids[id] {
			bad("SPDXID %q is used twice", rendered)
		}
		ids[id] = true
	}
	for _, p := range doc.Packages {
		if p == nil {
			bad("nil package")
			continue
		}
		what := fmt.Sprintf("package %q", p.PackageName)
		seen(p.PackageSPDXIdentifier, what)
		if p.PackageName == "" {
			bad("package %s has no name", common.RenderElementID(p.PackageSPDXIdentifier))
		}
		if p.PackageDownloadLocation == "" {
			bad("%s has no downloadLocation (use NOASSERTION or NONE)", what)
		}
		if p.FilesAnalyzed && p.PackageVerificationCode == nil {
			bad("%s: filesAnalyzed needs a packageVerificationCode", what)
		}
		if !p.FilesAnalyzed && len(p.PackageLicenseInfoFromFiles) > 0 {
			bad("%s: licenseInfoFromFiles without filesAnalyzed", what)
		}
		if p.PackageSupplier != nil && p.PackageSupplier.Supplier != "NOASSERTION" {
			if t := p.PackageSupplier.SupplierType; t != "Person" && t != "Organization" {
				bad("%s: supplier type %q, want Person or Organization", what, t)
			}
		}
		if p.PackageOriginator != nil && p.PackageOriginator.Originator != "NOASSERTION" {
			if t := p.PackageOriginator.OriginatorType; t != "Person" && t != "Organization" {
				bad("%s: originator type %q, want Person or Organization", what, t)
			}
		}
		checkChecksums(what, p.PackageChecksums, bad)
		for _, r := range p.PackageExternalReferences {
			switch strings.ReplaceAll(r.Category, "_", "-") {
			case common.CategorySecurity, common.CategoryPackageManager, common.CategoryPersistentId, common.CategoryOther:
			default:
				bad("%s: externalRef category %q", what, r.Category)
			}
			if r.RefType == "" || r.Locator == "" || strings.ContainsAny(r.Locator, " \t\n") {
				bad("%s: externalRef %q/%q: want a type and a locator without spaces", what, r.RefType, r.Locator)
			}
			if r.RefType == common.TypePackageManagerPURL && !strings.HasPrefix(r.Locator, "pkg:") {
				bad("%s: purl %q does not start with pkg:", what, r.Locator)
			}
		}
		switch p.PrimaryPackagePurpose {
		case "", "APPLICATION", "FRAMEWORK", "LIBRARY", "CONTAINER", "OPERATING-SYSTEM", "DEVICE",
			"FIRMWARE", "SOURCE", "ARCHIVE", "FILE", "INSTALL", "OTHER":
		default:
			bad("%s: primaryPackagePurpose %q", what, p.PrimaryPackagePurpose)
		}
		for field, d := range map[string]string{"releaseDate": p.ReleaseDate, "builtDate": p.BuiltDate, "validUntilDate": p.ValidUntilDate} {
			if d != "" && !dateRe.MatchString(d) {
				bad("%s: %s %q: want YYYY-MM-DDThh:mm:ssZ", what, field, d)
			}
		}
		for _, a := range p.Annotations {
			checkAnnotation(what, a, bad)
		}
	}
	for _, f := range doc.Files {
		if f == nil {
			bad("nil file")
			continue
		}
		what := fmt.Sprintf("file %q", f.FileName)
		seen(f.FileSPDXIdentifier, what)
		if f.FileName == "" {
			bad("file %s has no fileName", common.RenderElementID(f.FileSPDXIdentifier))
		}
		if len(f.Checksums) == 0 {
			bad("%s has no checksums", what)
		}
		hasSHA1 := false
		for _, c := range f.Checksums {
			hasSHA1 = hasSHA1 || c.Algorithm == common.SHA1
		}
		if !hasSHA1 {
			bad("%s has no SHA1 checksum (SPDX 2.3 §8.4)", what)
		}
		checkChecksums(what, f.Checksums, bad)
	}
	for _, a := range doc.Annotations {
		if a != nil {
			checkAnnotation("document", *a, bad)
		}
	}
	known := relationshipTypes()
	for _, r := range doc.Relationships {
		if r == nil {
			bad("nil relationship")
			continue
		}
		if !known[r.Relationship] {
			bad("relationship %s %s %s: unknown type", common.RenderDocElementID(r.RefA), r.Relationship, common.RenderDocElementID(r.RefB))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spdx: %w", err)
	}
	return nil
}

// checksumLen is the hex length of each SPDX 2.3 checksum algorithm with a
// fixed size.
var checksumLen = map[common.ChecksumAlgorithm]int{
	common.SHA1: 40, common.SHA224: 56, common.SHA256: 64, common.SHA384: 96, common.SHA512: 128,
	common.MD2: 32, common.MD4: 32, common.MD5: 32, common.MD6: 0,
	common.SHA3_256: 64, common.SHA3_384: 96, common.SHA3_512: 128,
	common.BLAKE2b_256: 64, common.BLAKE2b_384: 96, common.BLAKE2b_512: 128, common.BLAKE3: 0, common.ADLER32: 8,
}

var hexRe = regexp.MustCompile(`^[0-9a-fA-F]+$`)

func checkChecksums(what string, cs []common.Checksum, bad func(string, ...any)) {
	for _, c := range cs {
		n, ok := checksumLen[c.Algorithm]
		if !ok {
			bad("%s: checksum algorithm %q", what, c.Algorithm)
			continue
		}
		if !hexRe.MatchString(c.Value) || (n > 0 && len(c.Value) != n) {
			bad("%s: %s checksum %q: want %d hex digits", what, c.Algorithm, c.Value, n)
		}
	}
}

func checkAnnotation(what string, a v2_3.Annotation, bad func(string, ...any)) {
	if a.AnnotationType != "OTHER" && a.AnnotationType != "REVIEW" {
		bad("%s: annotation type %q", what, a.AnnotationType)
	}
	if !dateRe.MatchString(a.AnnotationDate) {
		bad("%s: annotation date %q", what, a.AnnotationDate)
	}
	if a.Annotator.Annotator == "" || a.AnnotationComment == "" {
		bad("%s: annotation without annotator or comment", what)
	}
}

func relationshipTypes() map[string]bool {
	m := map[string]bool{}
	for _, t := range []string{
		common.TypeRelationshipDescribe, common.TypeRelationshipDescribeBy, common.TypeRelationshipContains,
		common.TypeRelationshipContainedBy, common.TypeRelationshipDependsOn, common.TypeRelationshipDependencyOf,
		common.TypeRelationshipBuildDependencyOf, common.TypeRelationshipDevDependencyOf,
		common.TypeRelationshipOptionalDependencyOf, common.TypeRelationshipProvidedDependencyOf,
		common.TypeRelationshipTestDependencyOf, common.TypeRelationshipRuntimeDependencyOf,
		common.TypeRelationshipExampleOf, common.TypeRelationshipGenerates, common.TypeRelationshipGeneratedFrom,
		common.TypeRelationshipAncestorOf, common.TypeRelationshipDescendantOf, common.TypeRelationshipVariantOf,
		common.TypeRelationshipDistributionArtifact, common.TypeRelationshipPatchFor,
		common.TypeRelationshipPatchApplied, common.TypeRelationshipCopyOf, common.TypeRelationshipFileAdded,
		common.TypeRelationshipFileDeleted, common.TypeRelationshipFileModified,
		common.TypeRelationshipExpandedFromArchive, common.TypeRelationshipDynamicLink,
		common.TypeRelationshipStaticLink, common.TypeRelationshipDataFileOf, common.TypeRelationshipTestCaseOf,
		common.TypeRelationshipBuildToolOf, common.TypeRelationshipDevToolOf, common.TypeRelationshipTestOf,
		common.TypeRelationshipTestToolOf, common.TypeRelationshipDocumentationOf,
		common.TypeRelationshipOptionalComponentOf, common.TypeRelationshipMetafileOf,
		common.TypeRelationshipPackageOf, common.TypeRelationshipAmends, common.TypeRelationshipPrerequisiteFor,
		common.TypeRelationshipHasPrerequisite, common.TypeRelationshipRequirementDescriptionFor,
		common.TypeRelationshipSpecificationFor, common.TypeRelationshipOther,
	} {
		m[t] = true
	}
	return m
}
