package cli_test

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// mutateAppendFile is img with one more small layer holding a file.
func mutateAppendFile(img v1.Image, path, data string) (v1.Image, error) {
	l, err := testbase.Layer(testbase.Regular(path, 0o644, []byte(data)))
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, l)
}

// mustParseSPDX reads an SPDX 2.3 JSON document with the SPDX library.
func mustParseSPDX(t *testing.T, data []byte) *v2_3.Document {
	t.Helper()
	var doc v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(data), &doc); err != nil {
		t.Fatalf("SPDX JSON: %v", err)
	}
	return &doc
}
