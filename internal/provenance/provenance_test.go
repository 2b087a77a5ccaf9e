package provenance

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const (
	imageDigest  = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
	amd64Digest  = "sha256:0f5e5b1d1b4b56b39a0e5e7b6a6ba2a4f5d6c0b2a8d1c2f6a3c5e4b6d7f8a9b0"
	baseDigest   = "sha256:1c4eef651f65e2f7daee7ee785882ac164b02b78fb74503052a26dc061c90474"
	archiveSHA3  = "ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea"
	sqlite3cSHA3 = "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e"
	patchSHA3    = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
	sourceID     = "2026-03-13 10:38:09 737ae4a34738ffa0c3ff7f9bb18df914dd1cad163f28fd6b6e114a344fe6d618"
)

type step struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
}

func input() Input {
	when := time.Unix(1773360000, 0) // a SOURCE_DATE_EPOCH
	return Input{
		Subjects: []Subject{
			{Name: "registry.example/sqlite-graft/alpine", Digest: imageDigest},
			{Name: "registry.example/sqlite-graft/alpine", Digest: amd64Digest},
		},
		Image:        "alpine-3.21",
		Base:         "alpine:3.21",
		BaseDigest:   baseDigest,
		SQLite:       "3.51.3",
		SourceURL:    "https://sqlite.org/2026/sqlite-amalgamation-3510300.zip",
		ArchiveSHA3:  archiveSHA3,
		SQLite3CSHA3: sqlite3cSHA3,
		SourceID:     sourceID,
		Patches:      []Patch{{Name: "3.51.3/0001-a.patch", SHA3: patchSHA3}},
		Recipe: map[string]any{"steps": []step{
			{Name: "lib", Argv: []string{"cc", "-O2", "-DSQLITE_ENABLE_FTS5", "-shared", "-o", "libsqlite3.so.0", "sqlite3.c"}},
		}},
		Toolchain:         "gcc (Debian 14.2.0-19) 14.2.0",
		ToolVersion:       "0.3.0",
		InputsFingerprint: "sha256:" + strings.Repeat("ab", 32),
		Started:           when,
		Finished:          when,
	}
}

func TestStatementRoundTrip(t *testing.T) {
	data, err := Statement(input())
	if err != nil {
		t.Fatal(err)
	}
	st, pred, err := Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if st.GetType() != "https://in-toto.io/Statement/v1" || st.GetPredicateType() != "https://slsa.dev/provenance/v1" {
		t.Errorf("type %s, predicateType %s", st.GetType(), st.GetPredicateType())
	}
	if len(st.GetSubject()) != 2 || st.GetSubject()[0].GetDigest()["sha256"] != strings.TrimPrefix(imageDigest, "sha256:") ||
		st.GetSubject()[0].GetName() != "registry.example/sqlite-graft/alpine" {
		t.Errorf("subjects = %v", st.GetSubject())
	}
	def := pred.GetBuildDefinition()
	if def.GetBuildType() != DefaultBuildType {
		t.Errorf("buildType = %s", def.GetBuildType())
	}
	ext := def.GetExternalParameters().AsMap()
	if ext["image"] != "alpine-3.21" || ext["base"] != "alpine:3.21" || ext["sqlite"] != "3.51.3" {
		t.Errorf("externalParameters = %v", ext)
	}
	steps := ext["recipe"].(map[string]any)["steps"].([]any)
	argv := steps[0].(map[string]any)["argv"].([]any)
	if len(argv) != 7 || argv[2] != "-DSQLITE_ENABLE_FTS5" {
		t.Errorf("recipe argv = %v", argv)
	}
	if fp := InputsFingerprint(pred); fp != "sha256:"+strings.Repeat("ab", 32) {
		t.Errorf("InputsFingerprint = %q, want sha256:abab...", fp)
	}
	if tc := def.GetInternalParameters().AsMap()["toolchain"]; tc != "gcc (Debian 14.2.0-19) 14.2.0" {
		t.Errorf("toolchain = %v", tc)
	}

	deps := map[string]map[string]string{}
	uris := map[string]string{}
	for _, d := range def.GetResolvedDependencies() {
		deps[d.GetName()] = d.GetDigest()
		uris[d.GetName()] = d.GetUri()
	}
	if uris["base"] != "oci://alpine:3.21" || deps["base"]["sha256"] != strings.TrimPrefix(baseDigest, "sha256:") {
		t.Errorf("base = %s %v", uris["base"], deps["base"])
	}
	if uris["sqlite-source"] != input().SourceURL || deps["sqlite-source"]["sha3_256"] != archiveSHA3 {
		t.Errorf("source = %s %v", uris["sqlite-source"], deps["sqlite-source"])
	}
	if deps["sqlite3.c"]["sha3_256"] != sqlite3cSHA3 {
		t.Errorf("sqlite3.c = %v", deps["sqlite3.c"])
	}
	if deps["patch:3.51.3/0001-a.patch"]["sha3_256"] != patchSHA3 {
		t.Errorf("patch = %v", deps)
	}
	for _, d := range def.GetResolvedDependencies() {
		if d.GetName() == "sqlite3.c" && d.GetAnnotations().AsMap()["source_id"] != sourceID {
			t.Errorf("sqlite3.c annotations = %v", d.GetAnnotations())
		}
	}

	run := pred.GetRunDetails()
	if run.GetBuilder().GetId() != DefaultBuilderID || run.GetBuilder().GetVersion()["sqlite-graft"] != "0.3.0" {
		t.Errorf("builder = %v", run.GetBuilder())
	}
	if got := run.GetMetadata().GetStartedOn().AsTime(); !got.Equal(input().Started) {
		t.Errorf("startedOn = %v", got)
	}
	if !bytes.Contains(data, []byte(`"startedOn": "2026-03-13T00:00:00Z"`)) {
		t.Errorf("startedOn not in RFC 3339 UTC:\n%s", data)
	}
}

func TestStatementDeterministic(t *testing.T) {
	a, err := Statement(input())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := Statement(input())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("same input, different bytes:\n%s\n---\n%s", a, b)
		}
	}
	// Keys are sorted at every level: re-encoding with encoding/json (which
	// sorts map keys) changes nothing.
	var v any
	if err := json.Unmarshal(a, &v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	if !bytes.Equal(a, buf.Bytes()) {
		t.Error("output is not in canonical key order")
	}
	if !bytes.HasPrefix(a, []byte("{\n  \"_type\": \"https://in-toto.io/Statement/v1\",")) {
		t.Errorf("unexpected start:\n%s", a[:80])
	}
}

func TestOptional(t *testing.T) {
	in := input()
	in.Patches = nil
	in.ArchiveSHA3 = ""
	in.Started, in.Finished = time.Time{}, time.Time{}
	in.Recipe = nil
	in.Toolchain, in.InputsFingerprint = "", ""
	in.ToolVersion = ""
	in.BuildType = "https://example.test/build/v9"
	data, err := Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	_, pred, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if pred.GetRunDetails().GetMetadata() != nil {
		t.Error("metadata written for zero times")
	}
	if pred.GetBuildDefinition().GetBuildType() != "https://example.test/build/v9" {
		t.Error("build type not taken")
	}
	if pred.GetBuildDefinition().GetInternalParameters() != nil {
		t.Error("internal parameters without a toolchain or a fingerprint")
	}
}

func TestBadInput(t *testing.T) {
	for name, mutate := range map[string]func(*Input){
		"no subjects":     func(in *Input) { in.Subjects = nil },
		"subject digest":  func(in *Input) { in.Subjects[0].Digest = "sha512:00" },
		"subject name":    func(in *Input) { in.Subjects[0].Name = "" },
		"no base":         func(in *Input) { in.Base = "" },
		"base digest":     func(in *Input) { in.BaseDigest = "sha256:XYZ" },
		"archive":         func(in *Input) { in.ArchiveSHA3 = "abc" },
		"sqlite3.c":       func(in *Input) { in.SQLite3CSHA3 = "" },
		"patch":           func(in *Input) { in.Patches[0].SHA3 = strings.ToUpper(patchSHA3) },
		"patch name":      func(in *Input) { in.Patches[0].Name = "" },
		"recipe not json": func(in *Input) { in.Recipe = func() {} },
	} {
		in := input()
		mutate(&in)
		if _, err := Statement(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good, err := Statement(input())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"garbage":        "{",
		"wrong type":     strings.Replace(string(good), "https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1", 1),
		"wrong pred":     strings.Replace(string(good), PredicateType, "https://slsa.dev/provenance/v0.2", 1),
		"no builder id":  strings.Replace(string(good), `"id": "`+DefaultBuilderID+`"`, `"id": ""`, 1),
		"short sha3 dep": strings.Replace(string(good), archiveSHA3, archiveSHA3[:10], 1),
	} {
		if _, _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
}

// The downstream check is recorded: how it ran, and the package it used as
// a dependency of the build that is not part of the image.
func TestDownstreamCheck(t *testing.T) {
	in := input()
	in.DownstreamCheck = "with sqlite-libs 3.48.0-r4 added to a throwaway copy of the image"
	in.CheckPackages = []CheckPackage{{Name: "sqlite-libs", Version: "3.48.0-r4",
		URI: "https://dl-cdn.alpinelinux.org/alpine/v3.21/main/x86_64/sqlite-libs-3.48.0-r4.apk", SHA256: strings.Repeat("ab", 32)}}
	data, err := Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	_, pred, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	def := pred.GetBuildDefinition()
	if got := def.GetExternalParameters().GetFields()["downstream_check"].GetStringValue(); got != in.DownstreamCheck {
		t.Errorf("externalParameters.downstream_check = %q, want %q", got, in.DownstreamCheck)
	}
	var found bool
	for _, d := range def.GetResolvedDependencies() {
		if d.GetName() == "check:sqlite-libs" {
			found = d.GetDigest()[SHA256] == in.CheckPackages[0].SHA256 && d.GetUri() == in.CheckPackages[0].URI &&
				strings.Contains(d.GetAnnotations().GetFields()["use"].GetStringValue(), "not in the image")
		}
	}
	if !found {
		t.Errorf("no resolved dependency check:sqlite-libs with its URI, SHA-256 and use:\n%s", data)
	}
	in.CheckPackages[0].SHA256 = "abc"
	if _, err := Statement(in); err == nil {
		t.Error("Statement(check package with a bad SHA-256) = nil error")
	}
}
