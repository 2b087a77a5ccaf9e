package cli_test

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

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
