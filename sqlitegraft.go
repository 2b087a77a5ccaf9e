// Package sqlitegraft holds the data files that drive sqlite-graft — the pins,
// the advisories, the patches and the image definitions — embedded so the
// tool runs from anywhere with the repository's defaults; flags can point at
// other files.
package sqlitegraft

import (
	"embed"
	"io/fs"
)

//go:embed sqlite-pins.yaml
var PinsYAML []byte

// PinsFileName names the embedded pins file in errors.
const PinsFileName = "sqlite-pins.yaml"

//go:embed sqlite-advisories.yaml
var AdvisoriesYAML []byte

// AdvisoriesFileName names the embedded advisories file in errors.
const AdvisoriesFileName = "sqlite-advisories.yaml"

//go:embed patches
var patches embed.FS

// Patches is the patches/ tree: patches/<version>/NNNN-*.patch.
func Patches() fs.FS {
	sub, err := fs.Sub(patches, "patches")
	if err != nil {
		panic(err)
	}
	return sub
}

//go:embed images
var images embed.FS

// Images is the images/ tree: one <name>.yaml per published image.
func Images() fs.FS {
	sub, err := fs.Sub(images, "images")
	if err != nil {
		panic(err)
	}
	return sub
}
