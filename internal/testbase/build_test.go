package testbase

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Building a base again gives the same digest: the client compile, the host
// files and the tar layout are all deterministic.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	for name, build := range map[string]func(testing.TB, bool) (v1.Image, error){"musl": buildMusl, "glibc": buildGlibc} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var digests [2]v1.Hash
			for i := range digests {
				img, err := build(t, true)
				if err != nil {
					t.Fatal(err)
				}
				if digests[i], err = img.Digest(); err != nil {
					t.Fatal(err)
				}
			}
			if digests[0] != digests[1] {
				t.Errorf("two builds: %s, %s", digests[0], digests[1])
			}
			t.Logf("%s base: %s", name, digests[0])
		})
	}
}
