// Package vex writes the OpenVEX document of a grafted image: for each
// advisory of the distribution's SQLite package that the grafted SQLite does
// not have, a statement "not_affected, vulnerable_code_not_in_execute_path"
// about that package inside this image. Scanners that still list the
// distribution's package (its database is untouched) drop those findings;
// findings that the graft itself has stay, because no statement is ever made
// for an advisory that affects the grafted build. "Not in execute path" must
// hold without the environment: on musl the loader searches /usr/local/lib
// first; on glibc only an /etc/ld.so.cache that lists /usr/local/lib first
// makes it so (internal/ldcache), and Document refuses a glibc graft without
// one.
//
// The document is built with OpenVEX's own library (github.com/openvex/go-vex)
// and is a pure function of its Input: the same Input gives the same bytes,
// the document id included (a hash of the Input). It travels two ways: as
// plain OpenVEX JSON beside the build's outputs (Grype --vex FILE), and as an
// in-toto statement (predicate type https://openvex.dev/ns/v0.2.0) attached
// to the image as a referrer (Trivy --vex oci).
//
// Identifiers, chosen for what the scanners match (go-vex's purl matching:
// every qualifier of the statement's purl must be in the scanner's):
//   - product: the image's OCI purl with its digest,
//     pkg:oci/<name>@sha256:<hex>?repository_url=<registry>/<repository>, as
//     Trivy derives it (Trivy adds arch, which the product leaves out so that
//     it matches every platform); plus the digest as a sha-256 hash, which is
//     what Grype's bare-digest identifier matches (Grype's purl drops the last
//     path element from repository_url, so the purl alone would not match).
//   - subcomponents: the distribution package's purl without qualifiers,
//     pkg:apk/alpine/sqlite-libs@3.48.0-r4, pkg:deb/debian/libsqlite3-0@3.46.1-7:
//     Trivy adds arch and distro, Syft adds arch, upstream and distro; a purl
//     without them matches both, on every architecture.
package vex

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/openvex/go-vex/pkg/attestation"
	openvex "github.com/openvex/go-vex/pkg/vex"
	"github.com/package-url/packageurl-go"

	"github.com/sqlite-graft/sqlite-graft/internal/advisories"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// PredicateType is the in-toto predicate type of an OpenVEX v0.2.0 document,
// the value of the in-toto.io/predicate-type annotation Trivy looks for.
const PredicateType = "https://openvex.dev/ns/v0.2.0"

// MediaType is the in-toto statement's media type as an OCI artifact.
const MediaType = "application/vnd.in-toto+json"

// FileName is the conventional name of the plain OpenVEX document.
const FileName = "vex.openvex.json"

// Author is the document's author: the tool that makes the claim.
const Author = "sqlite-graft"

// Namespace prefixes every document id.
const Namespace = "https://github.com/sqlite-graft/sqlite-graft/vex/"

// DefaultLibrary is where the graft puts libsqlite3.so.0 (internal/layer).
const DefaultLibrary = "/usr/local/lib/libsqlite3.so.0"

// Package is a distribution package whose libsqlite3 the graft overrides.
type Package struct {
	Type      string       `json:"type"`      // purl type: apk or deb
	Namespace string       `json:"namespace"` // purl namespace: alpine, debian
	Name      string       `json:"name"`      // sqlite-libs, libsqlite3-0
	Version   string       `json:"version"`   // the package version as installed: 3.48.0-r4, 3.46.1-7
	SQLite    pins.Version `json:"sqlite"`    // its upstream SQLite version, judged against the advisories
}

// Graft is the SQLite the image's processes load instead.
type Graft struct {
	Version pins.Version `json:"version"`
	Defines []string     `json:"defines"` // compile options as the recipe lists them
	Library string       `json:"library"` // "" : DefaultLibrary
	Libc    string       `json:"libc"`    // musl or glibc: how the loader finds the library
	// LDCache says the image ships an /etc/ld.so.cache that lists
	// /usr/local/lib first (internal/ldcache). glibc needs it for "not in
	// execute path" to hold in a process whose environment was cleared
	// (env -i, sudo, cron): without it the cache lists the distribution's
	// copy first and only LD_PRELOAD reaches the graft.
	LDCache bool `json:"ld_cache"`
}

// Values of Graft.Libc.
const (
	Musl  = "musl"
	Glibc = "glibc"
)

// Input is what the document speaks about.
type Input struct {
	// Repository is where the image is published, e.g. ghcr.io/sqlite-graft/alpine.
	Repository string `json:"repository"`
	// Digests are the image digests the statements are about: the pushed
	// index and each platform's image (sha256:...).
	Digests  []string  `json:"digests"`
	Packages []Package `json:"packages"`
	Graft    Graft     `json:"graft"`
	// Advisories judge both sides; nil is the embedded sqlite-advisories.yaml.
	Advisories *advisories.File `json:"-"`
	// Created is the document's timestamp: the build's SOURCE_DATE_EPOCH time.
	Created     time.Time `json:"created"`
	ToolVersion string    `json:"tool_version"` // sqlite-graft version ("" : dev)
}

var (
	digestRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	purlPart  = regexp.MustCompile(`^[a-z][a-z0-9.+-]*$`)
	versionOK = regexp.MustCompile(`^[A-Za-z0-9.+~:_-]+$`)
)

func (in Input) check() error {
	var errs []error
	if _, err := name.NewRepository(in.Repository, name.StrictValidation); err != nil {
		errs = append(errs, fmt.Errorf("repository %q: %v", in.Repository, err))
	}
	if len(in.Digests) == 0 {
		errs = append(errs, errors.New("no image digest: the statements need a product"))
	}
	for _, d := range in.Digests {
		if !digestRE.MatchString(d) {
			errs = append(errs, fmt.Errorf("digest %q: want sha256:<64 lower-case hex digits>", d))
		}
	}
	if len(in.Packages) == 0 {
		errs = append(errs, errors.New("no distribution package: nothing is overridden"))
	}
	for _, p := range in.Packages {
		switch {
		case p.Type != "apk" && p.Type != "deb":
			errs = append(errs, fmt.Errorf("package %s: type %q, want apk or deb", p.Name, p.Type))
		case !purlPart.MatchString(p.Namespace) || !purlPart.MatchString(p.Name):
			errs = append(errs, fmt.Errorf("package %q/%q: want lower-case purl namespace and name", p.Namespace, p.Name))
		case !versionOK.MatchString(p.Version):
			errs = append(errs, fmt.Errorf("package %s: version %q", p.Name, p.Version))
		case p.SQLite == (pins.Version{}):
			errs = append(errs, fmt.Errorf("package %s %s: its upstream SQLite version is missing", p.Name, p.Version))
		}
	}
	if in.Graft.Version == (pins.Version{}) {
		errs = append(errs, errors.New("graft: no SQLite version"))
	}
	switch {
	case in.Graft.Libc == Glibc && !in.Graft.LDCache:
		errs = append(errs, errors.New("graft: glibc without a generated ld.so.cache: the distribution's copy is in the execute path of any process without LD_PRELOAD, so not_affected would not be true"))
	case in.Graft.Libc != Musl && in.Graft.Libc != Glibc:
		errs = append(errs, fmt.Errorf("graft: libc %q, want musl or glibc", in.Graft.Libc))
	}
	if in.Created.IsZero() {
		errs = append(errs, errors.New("created is zero: pass the build's SOURCE_DATE_EPOCH time"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vex: %w", err)
	}
	return nil
}

// Document builds the OpenVEX document for in.
func Document(in Input) (*openvex.VEX, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	known := in.Advisories
	if known == nil {
		var err error
		if known, err = advisories.Embedded(); err != nil {
			return nil, err
		}
	}
	library := in.Graft.Library
	if library == "" {
		library = DefaultLibrary
	}
	products, err := imageProducts(in.Repository, in.Digests)
	if err != nil {
		return nil, err
	}
	created := in.Created.UTC().Truncate(time.Second)
	doc := openvex.VEX{
		Metadata: openvex.Metadata{
			Context:   openvex.ContextLocator(),
			Author:    Author,
			Timestamp: &created,
			Version:   1,
			Tooling:   "sqlite-graft " + toolVersion(in.ToolVersion),
		},
		Statements: []openvex.Statement{},
	}
	for _, a := range known.Advisories {
		if a.Affects(in.Graft.Version, in.Graft.Defines) {
			continue // never a statement for what the graft itself has
		}
		var subs []openvex.Subcomponent
		var names []string
		for _, p := range in.Packages {
			if !a.AffectsVersion(p.SQLite) {
				continue
			}
			subs = append(subs, openvex.Subcomponent{Component: openvex.Component{ID: PackagePURL(p)}})
			names = append(names, p.Name+" "+p.Version)
		}
		if len(subs) == 0 {
			continue // no package here has it: nothing to say
		}
		st := openvex.Statement{
			Vulnerability:   openvex.Vulnerability{Name: openvex.VulnerabilityID(a.ID)},
			Status:          openvex.StatusNotAffected,
			Justification:   openvex.VulnerableCodeNotInExecutePath,
			ImpactStatement: impact(a, in.Graft, library, names),
		}
		for _, prod := range products {
			prod.Subcomponents = subs
			st.Products = append(st.Products, prod)
		}
		if err := st.Validate(); err != nil {
			return nil, fmt.Errorf("vex: statement for %s: %w", a.ID, err)
		}
		doc.Statements = append(doc.Statements, st)
	}
	id, err := documentID(in)
	if err != nil {
		return nil, err
	}
	doc.ID = id
	return &doc, nil
}

// impact says which library is loaded instead and why it is not affected.
func impact(a advisories.Advisory, g Graft, library string, packages []string) string {
	// In words, not "<3.51.2": JSON writers escape '<' as \u003c.
	why := a.ID + " affects SQLite"
	if a.Introduced != nil {
		why += " " + a.Introduced.String() + " and later"
	}
	if a.Fixed != nil {
		if a.Introduced != nil {
			why += ","
		}
		why += " before " + a.Fixed.String()
	}
	switch {
	case !a.AffectsVersion(g.Version):
		why += fmt.Sprintf("; the graft is SQLite %s", g.Version)
	case a.Requires != "":
		why += fmt.Sprintf(" built with %s; the graft (SQLite %s) is built without it", a.Requires, g.Version)
	}
	how := "musl's loader searches /usr/local/lib before /usr/lib"
	if g.Libc == Glibc {
		how = "the image's /etc/ld.so.cache lists /usr/local/lib first (ldconfig keeps that order: libc.conf lists it first)"
	}
	return fmt.Sprintf("Processes in this image load the grafted SQLite %s, %s, not the libsqlite3.so.0 of %s, "+
		"which stays installed but is not loaded: %s, and the image preloads the graft. %s.",
		g.Version, library, strings.Join(packages, ", "), how, why)
}

// imageProducts are the products: one per digest, identified by the image's
// OCI purl and by the digest itself.
func imageProducts(repository string, digests []string) ([]openvex.Product, error) {
	repo, err := name.NewRepository(repository, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("vex: repository %q: %w", repository, err)
	}
	var out []openvex.Product
	seen := map[string]bool{}
	for _, d := range digests {
		if seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, openvex.Product{Component: openvex.Component{
			ID:     ImagePURL(repo, d),
			Hashes: map[openvex.Algorithm]openvex.Hash{openvex.SHA256: openvex.Hash(strings.TrimPrefix(d, "sha256:"))},
		}})
	}
	return out, nil
}

// ImagePURL is the OCI purl of an image by digest as Trivy derives it, less
// the arch qualifier: pkg:oci/<last path element>@<digest>?repository_url=<repo>.
// Docker Hub repositories are spelled index.docker.io/..., as Trivy and
// Grype spell them.
func ImagePURL(repo name.Repository, digest string) string {
	short := strings.ToLower(repo.RepositoryStr())
	if i := strings.LastIndex(short, "/"); i >= 0 {
		short = short[i+1:]
	}
	q := packageurl.QualifiersFromMap(map[string]string{"repository_url": repo.Name()})
	return packageurl.NewPackageURL(packageurl.TypeOCI, "", short, digest, q, "").ToString()
}

// PackagePURL is the package's purl without qualifiers.
func PackagePURL(p Package) string {
	return packageurl.NewPackageURL(p.Type, p.Namespace, p.Name, p.Version, nil, "").ToString()
}

// JSON is the OpenVEX document as indented JSON (go-vex's writer).
func JSON(in Input) ([]byte, error) {
	doc, err := Document(in)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := doc.ToJSON(&buf); err != nil {
		return nil, fmt.Errorf("vex: %w", err)
	}
	return buf.Bytes(), nil
}

// Statement is the in-toto statement whose predicate is the OpenVEX document
// and whose subjects are the image digests (go-vex's attestation package
// derives them from the products), as compact JSON with sorted keys.
func Statement(in Input) ([]byte, error) {
	doc, err := Document(in)
	if err != nil {
		return nil, err
	}
	att, err := attestation.NewWithError(attestation.WithPredicate(doc))
	if err != nil {
		return nil, fmt.Errorf("vex: attestation: %w", err)
	}
	if got := string(att.GetPredicateType()); got != PredicateType {
		return nil, fmt.Errorf("vex: attestation predicate type %q, want %q", got, PredicateType)
	}
	b, err := json.Marshal(att)
	if err != nil {
		return nil, fmt.Errorf("vex: attestation: %w", err)
	}
	return b, nil
}

// Parse reads a plain OpenVEX document back with go-vex.
func Parse(data []byte) (*openvex.VEX, error) {
	return openvex.Parse(data)
}

// documentID is unique per input and stable: a hash of the Input.
func documentID(in Input) (string, error) {
	in.Created = in.Created.UTC().Truncate(time.Second)
	digests := append([]string(nil), in.Digests...)
	sort.Strings(digests)
	in.Digests = digests
	b, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	if in.Advisories != nil {
		ab, err := json.Marshal(in.Advisories)
		if err != nil {
			return "", err
		}
		b = append(b, ab...)
	}
	sum := sha256.Sum256(b)
	return Namespace + hex.EncodeToString(sum[:16]), nil
}

func toolVersion(v string) string {
	if v = strings.TrimSpace(v); v == "" {
		return "dev"
	}
	return v
}
