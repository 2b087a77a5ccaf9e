// Package publish writes a finished image out: pushed to a registry (by digest first, then
// every tag, nothing at all when the registry already has it), or to local files (an OCI image
// layout and a docker-loadable tarball).
//
// The image is either a single v1.Image or a multi-platform v1.ImageIndex; both satisfy
// Artifact.
package publish

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
)

// Artifact is what can be published: a v1.Image or a v1.ImageIndex. Any other implementation
// is rejected at run time.
type Artifact interface {
	Digest() (v1.Hash, error)
	MediaType() (types.MediaType, error)
	RawManifest() ([]byte, error)
}

// Result describes a published image. It is also what WriteResult writes as JSON.
type Result struct {
	// Reference is the final, immutable reference: "registry/repo@sha256:...".
	Reference string `json:"reference"`
	// Digest is the manifest (or index) digest, "sha256:...".
	Digest string `json:"digest"`
	// MediaType is the media type of the manifest or index.
	MediaType string `json:"mediaType,omitempty"`
	// Tags are the full tag references asked for ("registry/repo:tag").
	Tags []string `json:"tags"`
	// Unchanged is true when the registry already had this digest under every tag, so
	// nothing was written.
	Unchanged bool `json:"unchanged"`
	// Pushed lists the tags (full references) that this run wrote. Tags that already pointed
	// at the digest are not in it.
	Pushed []string `json:"pushed"`
	// Platforms lists "os/arch[/variant]" of the image, or of every image of an index.
	Platforms []string `json:"platforms"`
	// Layout and Tarball are the local outputs written by WriteLocal.
	Layout  string `json:"layout,omitempty"`
	Tarball string `json:"tarball,omitempty"`
	// Stats counts what went over the wire during Push.
	Stats Stats `json:"stats"`
	// Checks says how each platform's image was checked before anything was
	// written (set by the build; empty when nothing was built).
	Checks []Check `json:"checks,omitempty"`
	// SQLiteTests is the release gate's result (internal/sqltests.Result
	// as JSON): passed, failed, or not run and why.
	SQLiteTests json.RawMessage `json:"sqlite_tests,omitempty"`
}

// Check records how one platform's image was checked: what the graft was
// compared with, and the downstream check — a throwaway copy of the image
// with the distribution's SQLite package added — with the package it used,
// or why it did not run (an opt-out is recorded, never silent).
type Check struct {
	Platform   string        `json:"platform"`
	Baseline   string        `json:"baseline"`   // base, none, or not run
	Downstream string        `json:"downstream"` // in words: "sqlite-libs 3.48.0-r4", "not needed: ...", "skipped: ..."
	Package    *CheckPackage `json:"package,omitempty"`
	// Summary is the check's verdict in one line: the SQLite the image
	// gives, as which user, the files mapped.
	Summary string `json:"summary,omitempty"`
}

// CheckPackage is a distribution package used by the check only.
type CheckPackage struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Origin   string   `json:"origin"` // URL or file
	SHA256   string   `json:"sha256"`
	Verified []string `json:"verified"`
}

// Stats counts the traffic of a Push, measured on the HTTP transport.
type Stats struct {
	// BlobsUploaded counts blob uploads that the registry committed (PUT .../blobs/uploads/...
	// ?digest= answered 201). Blobs the registry already had, or mounted, are not counted.
	BlobsUploaded int64 `json:"blobsUploaded"`
	// BytesUploaded counts request body bytes sent to .../blobs/uploads/ (POST, PATCH, PUT),
	// including bytes of attempts that failed and were retried.
	BytesUploaded int64 `json:"bytesUploaded"`
	// ManifestsWritten counts manifest PUTs the registry accepted (by digest and by tag,
	// including the children of an index).
	ManifestsWritten int64 `json:"manifestsWritten"`
	// Requests counts every HTTP request sent.
	Requests int64 `json:"requests"`
	// Retries counts how many times a step was tried again after a transient error.
	Retries int64 `json:"retries"`
}

// WriteResult writes r as indented JSON to path, atomically: it writes a temporary file in the
// same directory and renames it over path, so readers see the old file or the new one, never
// a partial one.
func WriteResult(path string, r *Result) error {
	if r == nil {
		return fmt.Errorf("write result %s: nil result", path)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	if err := fsutil.WriteFileAtomic(path, b, 0o644); err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	return nil
}

// describe returns the digest and media type of a, and checks that it is an image or an index.
func describe(a Artifact) (v1.Hash, types.MediaType, error) {
	switch a.(type) {
	case v1.Image, v1.ImageIndex:
	case nil:
		return v1.Hash{}, "", fmt.Errorf("no image given")
	default:
		return v1.Hash{}, "", fmt.Errorf("unsupported artifact %T: want a v1.Image or a v1.ImageIndex", a)
	}
	d, err := a.Digest()
	if err != nil {
		return v1.Hash{}, "", fmt.Errorf("compute digest: %w", err)
	}
	mt, err := a.MediaType()
	if err != nil {
		return v1.Hash{}, "", fmt.Errorf("media type: %w", err)
	}
	return d, mt, nil
}

// platforms lists the platforms of an image (from its config) or of an index (from its
// descriptors, falling back to each child's config).
func platforms(a Artifact) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p *v1.Platform) {
		if p == nil {
			return
		}
		s := p.String()
		if s == "" || seen[s] {
			return
		}
		seen[s] = true
		out = append(out, s)
	}
	switch a := a.(type) {
	case v1.Image:
		cf, err := a.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read image config: %w", err)
		}
		add(cf.Platform())
	case v1.ImageIndex:
		im, err := a.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("read index manifest: %w", err)
		}
		for _, d := range im.Manifests {
			if d.Platform != nil {
				add(d.Platform)
				continue
			}
			if !d.MediaType.IsImage() {
				continue
			}
			img, err := a.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("read index child %s: %w", d.Digest, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, fmt.Errorf("read config of index child %s: %w", d.Digest, err)
			}
			add(cf.Platform())
		}
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out, nil
}
