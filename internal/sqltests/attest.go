package sqltests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	testresult "github.com/in-toto/attestation/go/predicates/test_result/v0"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// PredicateType is in-toto's test-result predicate.
const PredicateType = "https://in-toto.io/attestation/test-result/v0.1"

// Subject is an artifact the test result speaks for: a pushed image.
type Subject struct {
	Name   string // the repository
	Digest string // sha256:...
}

// Statement is the in-toto statement of r about subjects, with the
// test-result predicate: PASSED or FAILED, the configuration (the verified
// tree by its check-in, the level, the libc, the testfixture's key), the
// test files that passed with their counts, the tests that failed. Nothing
// in it varies between runs of the same gate (no times, no paths), and its
// JSON has sorted keys: the same result gives the same bytes.
func Statement(r *Result, subjects []Subject) ([]byte, error) {
	if r == nil || r.Status == NotRun {
		return nil, fmt.Errorf("sqltests: no statement for a gate that did not run")
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, PredicateType: PredicateType}
	for _, s := range subjects {
		alg, hex, ok := strings.Cut(s.Digest, ":")
		if !ok {
			return nil, fmt.Errorf("sqltests: subject digest %q", s.Digest)
		}
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{Name: s.Name, Digest: map[string]string{alg: hex}})
	}
	pred := &testresult.TestResult{Result: "PASSED", FailedTests: r.Failed}
	if r.Status != Passed {
		pred.Result = "FAILED"
	}
	for _, f := range r.Files {
		if f.Errors == 0 {
			pred.PassedTests = append(pred.PassedTests, fmt.Sprintf("test/%s (%d tests)", f.File, f.Tests))
		}
	}
	ann, err := structpb.NewStruct(map[string]any{"level": string(r.Level), "libc": string(r.Libc), "version": r.Version.String(),
		"tests": float64(r.Tests), "errors": float64(r.Errors), "files": float64(r.FilesRun)})
	if err != nil {
		return nil, err
	}
	pred.Configuration = append(pred.Configuration, &intoto.ResourceDescriptor{
		Name: "sqlite canonical source tree " + r.Version.String(), Digest: map[string]string{string(intoto.AlgorithmSHA3_256): r.CheckIn}, Annotations: ann,
	})
	if tf := r.Testfixture; tf != nil {
		pred.Configuration = append(pred.Configuration, &intoto.ResourceDescriptor{Name: "testfixture", Digest: map[string]string{"sha256": tf.Key}})
	}
	pb, err := protojson.Marshal(pred)
	if err != nil {
		return nil, err
	}
	if st.Predicate, err = structFromJSON(pb); err != nil {
		return nil, err
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("sqltests: statement: %w", err)
	}
	raw, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	// protojson varies its whitespace on purpose: re-encode with sorted keys.
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func structFromJSON(b []byte) (*structpb.Struct, error) {
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}
