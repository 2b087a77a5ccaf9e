// Package provenance writes the in-toto Statement (v1) with a SLSA Provenance
// v1 predicate that records how a grafted image was built: the base image by
// digest, the SQLite source (URL, archive SHA3-256, sqlite3.c SHA3-256, source
// id), every patch with its hash, the exact recipe steps, the compiler and the
// tool version.
//
// The statement is built with the in-toto attestation Go types
// (github.com/in-toto/attestation go/v1 and go/predicates/provenance/v1),
// checked with their validators, serialised with protojson and then
// canonicalised (keys sorted, fixed indentation): protojson deliberately
// varies its whitespace between runs, and the same inputs must give the same
// bytes.
//
// Timestamps: Started and Finished are written as given. Callers pass the
// build's SOURCE_DATE_EPOCH-based time (the time every other timestamp of the
// image uses), not the wall clock, so that an unchanged build reproduces its
// provenance byte for byte; zero times leave runDetails.metadata out.
package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MediaType is the media type of an in-toto statement as an OCI artifact.
const MediaType = "application/vnd.in-toto+json"

// FileName is the conventional file name of the statement.
const FileName = "provenance.intoto.json"

// PredicateType is SLSA Provenance v1.
const PredicateType = "https://slsa.dev/provenance/v1"

// DefaultBuildType is the build type when Input.BuildType is empty.
const DefaultBuildType = "https://github.com/sqlite-graft/sqlite-graft/build/v1"

// DefaultBuilderID is runDetails.builder.id when Input.BuilderID is empty.
const DefaultBuilderID = "https://github.com/sqlite-graft/sqlite-graft"

// Digest-set keys (in-toto digest_set spec: "sha3_256", not "sha3-256").
const (
	SHA256  = string(intoto.AlgorithmSHA256)
	SHA3256 = string(intoto.AlgorithmSHA3_256)
)

// Subject is one artifact the statement is about.
type Subject struct {
	Name   string // the repository (or reference) the image is published as
	Digest string // sha256:...
}

// Patch is one applied patch.
type Patch struct {
	Name string
	SHA3 string
}

// CheckPackage is a package the image check used.
type CheckPackage struct {
	Name, Version string
	URI           string // where it came from
	SHA256        string // hex
}

// Input is what the statement records.
type Input struct {
	Subjects  []Subject // the image (index) and, for a multi-arch build, each platform's image
	BuildType string    // "" : DefaultBuildType
	BuilderID string    // "" : DefaultBuilderID

	Image      string // image definition name (externalParameters.image)
	Base       string // base reference as asked
	BaseDigest string // sha256:...
	SQLite     string // version, e.g. 3.51.3 (externalParameters.sqlite; may be empty)

	// InheritedLabels and InheritedAnnotations are the base's config labels
	// and manifest annotations that pass into the image unchanged (those the
	// graft does not own), recorded on the base dependency as
	// inherited_labels and inherited_annotations.
	InheritedLabels, InheritedAnnotations map[string]string

	SourceURL    string // where the archive came from ("" : not recorded)
	ArchiveSHA3  string // "" for a directory source
	SQLite3CSHA3 string
	SourceID     string
	Patches      []Patch

	// Recipe is the exact steps/argv (externalParameters.recipe). It must
	// marshal to JSON; it is carried through encoding/json first.
	Recipe any

	// DownstreamCheck says how the downstream image check ran
	// (externalParameters.downstream_check; "" leaves it out), e.g.
	// "skipped: --skip-downstream-check"; CheckPackages are the
	// distribution packages it used, never part of the image
	// (resolvedDependencies "check:<name>").
	DownstreamCheck string
	CheckPackages   []CheckPackage

	// SQLiteTests is the release gate's result as recorded
	// (externalParameters.sqlite_tests; nil leaves it out). It must marshal
	// to JSON.
	SQLiteTests any

	Toolchain   string // compiler identity (internalParameters.toolchain)
	ToolVersion string // sqlite-graft version (runDetails.builder.version)
	// InputsFingerprint is the build's fingerprint of everything it
	// resolved (sha256:..., internalParameters.inputs_fingerprint): a later
	// run that finds an image under its tags trusts it as a build of the
	// same inputs only when a provenance referrer of it says so.
	InputsFingerprint string

	Started, Finished time.Time // SOURCE_DATE_EPOCH-based; zero leaves them out
}

var hexRe = regexp.MustCompile(`^[0-9a-f]+$`)

func hexDigest(field, v string, n int) (string, error) {
	if len(v) != n || !hexRe.MatchString(v) {
		return "", fmt.Errorf("provenance: %s %q: want %d lower-case hex digits", field, v, n)
	}
	return v, nil
}

func sha256Digest(field, d string) (map[string]string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok {
		return nil, fmt.Errorf("provenance: %s %q: want sha256:<hex>", field, d)
	}
	if _, err := hexDigest(field, h, 64); err != nil {
		return nil, err
	}
	return map[string]string{SHA256: h}, nil
}

func sha3Digest(field, h string) (map[string]string, error) {
	if _, err := hexDigest(field, h, 64); err != nil {
		return nil, err
	}
	return map[string]string{SHA3256: h}, nil
}

// Build returns the statement as in-toto types, validated.
func Build(in Input) (*intoto.Statement, error) {
	if len(in.Subjects) == 0 {
		return nil, fmt.Errorf("provenance: no subjects")
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, PredicateType: PredicateType}
	for _, s := range in.Subjects {
		d, err := sha256Digest("subject "+s.Name, s.Digest)
		if err != nil {
			return nil, err
		}
		if s.Name == "" {
			return nil, fmt.Errorf("provenance: subject %s has no name", s.Digest)
		}
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{Name: s.Name, Digest: d})
	}

	var deps []*intoto.ResourceDescriptor
	if in.Base == "" {
		return nil, fmt.Errorf("provenance: no base image")
	}
	baseDigest, err := sha256Digest("base digest", in.BaseDigest)
	if err != nil {
		return nil, err
	}
	base := &intoto.ResourceDescriptor{Name: "base", Uri: "oci://" + in.Base, Digest: baseDigest}
	inherited := map[string]any{}
	for key, m := range map[string]map[string]string{"inherited_labels": in.InheritedLabels, "inherited_annotations": in.InheritedAnnotations} {
		if len(m) == 0 {
			continue
		}
		kv := map[string]any{}
		for k, v := range m {
			kv[k] = v
		}
		inherited[key] = kv
	}
	if len(inherited) > 0 {
		if base.Annotations, err = structpb.NewStruct(inherited); err != nil {
			return nil, fmt.Errorf("provenance: inherited labels: %w", err)
		}
	}
	deps = append(deps, base)

	src := &intoto.ResourceDescriptor{Name: "sqlite-source", Uri: in.SourceURL}
	if in.ArchiveSHA3 != "" {
		if src.Digest, err = sha3Digest("archive SHA3", in.ArchiveSHA3); err != nil {
			return nil, err
		}
	}
	deps = append(deps, src)

	c := &intoto.ResourceDescriptor{Name: "sqlite3.c"}
	if c.Digest, err = sha3Digest("sqlite3.c SHA3", in.SQLite3CSHA3); err != nil {
		return nil, err
	}
	if in.SourceID != "" {
		if c.Annotations, err = structpb.NewStruct(map[string]any{"source_id": in.SourceID}); err != nil {
			return nil, err
		}
	}
	deps = append(deps, c)

	var patchNames []any
	for i, p := range in.Patches {
		if p.Name == "" {
			return nil, fmt.Errorf("provenance: patch %d has no name", i+1)
		}
		d, err := sha3Digest("patch "+p.Name, p.SHA3)
		if err != nil {
			return nil, err
		}
		ann, _ := structpb.NewStruct(map[string]any{"order": float64(i + 1)})
		deps = append(deps, &intoto.ResourceDescriptor{Name: "patch:" + p.Name, Digest: d, Annotations: ann})
		patchNames = append(patchNames, p.Name)
	}

	for _, p := range in.CheckPackages {
		d, err := hexDigest("check package "+p.Name, p.SHA256, 64)
		if err != nil {
			return nil, err
		}
		ann, _ := structpb.NewStruct(map[string]any{"version": p.Version, "use": "the downstream image check only; not in the image"})
		deps = append(deps, &intoto.ResourceDescriptor{Name: "check:" + p.Name, Uri: p.URI, Digest: map[string]string{SHA256: d}, Annotations: ann})
	}

	ext := map[string]any{"base": in.Base}
	if in.DownstreamCheck != "" {
		ext["downstream_check"] = in.DownstreamCheck
	}
	if in.Image != "" {
		ext["image"] = in.Image
	}
	if in.SQLite != "" {
		ext["sqlite"] = in.SQLite
	}
	if len(patchNames) > 0 {
		ext["patches"] = patchNames
	}
	if in.SQLiteTests != nil {
		b, err := json.Marshal(in.SQLiteTests)
		if err != nil {
			return nil, fmt.Errorf("provenance: sqlite_tests: %w", err)
		}
		var r any
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("provenance: sqlite_tests: %w", err)
		}
		ext["sqlite_tests"] = r
	}
	if in.Recipe != nil {
		b, err := json.Marshal(in.Recipe)
		if err != nil {
			return nil, fmt.Errorf("provenance: recipe: %w", err)
		}
		var r any
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("provenance: recipe: %w", err)
		}
		ext["recipe"] = r
	}
	extStruct, err := structpb.NewStruct(ext)
	if err != nil {
		return nil, fmt.Errorf("provenance: externalParameters: %w", err)
	}

	buildType := in.BuildType
	if buildType == "" {
		buildType = DefaultBuildType
	}
	def := &slsa.BuildDefinition{
		BuildType:            buildType,
		ExternalParameters:   extStruct,
		ResolvedDependencies: deps,
	}
	internal := map[string]any{}
	if in.Toolchain != "" {
		internal["toolchain"] = in.Toolchain
	}
	if in.InputsFingerprint != "" {
		if _, err := sha256Digest("inputs fingerprint", in.InputsFingerprint); err != nil {
			return nil, err
		}
		internal[inputsFingerprintKey] = in.InputsFingerprint
	}
	if len(internal) > 0 {
		if def.InternalParameters, err = structpb.NewStruct(internal); err != nil {
			return nil, err
		}
	}

	builderID := in.BuilderID
	if builderID == "" {
		builderID = DefaultBuilderID
	}
	run := &slsa.RunDetails{Builder: &slsa.Builder{Id: builderID}}
	if in.ToolVersion != "" {
		run.Builder.Version = map[string]string{"sqlite-graft": in.ToolVersion}
	}
	if !in.Started.IsZero() || !in.Finished.IsZero() {
		md := &slsa.BuildMetadata{}
		if !in.Started.IsZero() {
			md.StartedOn = timestamppb.New(in.Started.UTC())
		}
		if !in.Finished.IsZero() {
			md.FinishedOn = timestamppb.New(in.Finished.UTC())
		}
		run.Metadata = md
	}

	pred := &slsa.Provenance{BuildDefinition: def, RunDetails: run}
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	predJSON, err := protojson.Marshal(pred)
	if err != nil {
		return nil, err
	}
	st.Predicate = &structpb.Struct{}
	if err := protojson.Unmarshal(predJSON, st.Predicate); err != nil {
		return nil, err
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: statement: %w", err)
	}
	return st, nil
}

const inputsFingerprintKey = "inputs_fingerprint"

// InputsFingerprint is the inputs fingerprint a statement's predicate
// records ("" : none).
func InputsFingerprint(pred *slsa.Provenance) string {
	v, _ := pred.GetBuildDefinition().GetInternalParameters().AsMap()[inputsFingerprintKey].(string)
	return v
}

// Statement is the statement as JSON: protojson's field names, keys sorted,
// two-space indentation, a final newline. The same Input gives the same bytes.
func Statement(in Input) ([]byte, error) {
	st, err := Build(in)
	if err != nil {
		return nil, err
	}
	raw, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	return canonical(raw)
}

// canonical re-encodes JSON with sorted keys and fixed whitespace, keeping
// numbers exactly as written.
func canonical(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads a statement written by Statement back into the in-toto types
// (the predicate as SLSA Provenance v1) and validates both.
func Parse(data []byte) (*intoto.Statement, *slsa.Provenance, error) {
	st := &intoto.Statement{}
	if err := protojson.Unmarshal(data, st); err != nil {
		return nil, nil, fmt.Errorf("provenance: statement: %w", err)
	}
	if err := st.Validate(); err != nil {
		return nil, nil, fmt.Errorf("provenance: statement: %w", err)
	}
	// in-toto/attestation v1.2.0's Validate also accepts the older v0.1
	// statement type; this package writes and reads v1 only.
	if st.GetType() != intoto.StatementTypeUri {
		return nil, nil, fmt.Errorf("provenance: _type %q, want %q", st.GetType(), intoto.StatementTypeUri)
	}
	if st.GetPredicateType() != PredicateType {
		return nil, nil, fmt.Errorf("provenance: predicateType %q, want %q", st.GetPredicateType(), PredicateType)
	}
	pb, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, nil, err
	}
	pred := &slsa.Provenance{}
	if err := protojson.Unmarshal(pb, pred); err != nil {
		return nil, nil, fmt.Errorf("provenance: predicate: %w", err)
	}
	if err := pred.Validate(); err != nil {
		return nil, nil, fmt.Errorf("provenance: predicate: %w", err)
	}
	return st, pred, nil
}
