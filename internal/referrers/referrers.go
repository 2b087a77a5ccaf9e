// Package referrers attaches documents about a pushed image — its SBOM and
// its provenance — as OCI 1.1 referrers, and finds them again.
//
// Each document becomes one OCI image manifest that follows the OCI 1.1
// artifact guidance: artifactType names the kind of document, the config is
// the empty descriptor (application/vnd.oci.empty.v1+json, "{}"), the one
// layer is the document with its own media type, and subject points at the
// image (go-containerregistry's mutate.Subject). It is pushed by digest with
// remote.Write. An in-toto statement (the provenance, the VEX document) also
// carries the annotation in-toto.io/predicate-type with the statement's own
// predicate type, which scanners read from the referrers listing.
//
// Registries without the referrers API (Debian's docker-registry 2.8 has
// none) are handled by the referrers tag schema of the OCI distribution spec:
// an image index tagged sha256-<hex of the subject> lists the referrers.
// go-containerregistry v0.22.1 does that itself: when remote.Write PUTs a
// manifest that has a subject, it asks GET /v2/<repo>/referrers/<digest>; on
// 404/400 it reads the fallback index, appends the new descriptor (with
// artifactType and annotations) unless it is already there, sorts it by
// digest and PUTs it back; remote.Referrers reads that tag when the API
// answers 404/400/406. Two gaps remain, and Attach closes them: remote.Write
// skips a manifest the registry already has, so a referrer whose fallback
// entry was lost (a run that died between the two PUTs, a deleted tag) would
// never be listed again — Attach checks the listing after writing and re-PUTs
// the manifest with remote.Put, which updates the index; and the index update
// is a read-modify-write without conditional requests, so Attach writes its
// artifacts one after another, never concurrently.
package referrers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact types (and layer media types) of the documents sqlite-graft attaches.
const (
	SBOM = "application/spdx+json"
	// InToto is an in-toto statement: the provenance and the VEX document
	// both travel as one.
	InToto     = "application/vnd.in-toto+json"
	Provenance = InToto
)

// PredicateTypeAnnotation is the manifest annotation that says which
// predicate an in-toto statement carries. Scanners read it from the
// referrers listing to pick a statement without downloading each one (Trivy's
// --vex oci keeps the referrers annotated with an OpenVEX predicate type and
// skips those annotated with any other).
const PredicateTypeAnnotation = "in-toto.io/predicate-type"

// maxData bounds what Fetch reads from a registry.
const maxData = 64 << 20

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// Artifact is one document to attach.
type Artifact struct {
	ArtifactType string            // the manifest's artifactType, e.g. SBOM
	MediaType    string            // the layer's media type ("" : ArtifactType)
	Data         []byte            // the document
	Annotations  map[string]string // manifest annotations (they appear in the referrers listing)
}

func (a Artifact) check() error {
	if a.ArtifactType == "" {
		return errors.New("no artifact type")
	}
	if len(a.Data) == 0 {
		return fmt.Errorf("%s: no data", a.ArtifactType)
	}
	for _, mt := range []string{a.ArtifactType, a.MediaType} {
		if mt != "" && (!strings.Contains(mt, "/") || strings.ContainsAny(mt, " \t\n")) {
			return fmt.Errorf("media type %q: want type/subtype", mt)
		}
	}
	return nil
}

// annotations are the manifest annotations of a: its own, plus, for an
// in-toto statement, the predicate type read from the statement itself, so
// that the listing can never disagree with the document.
func (a Artifact) annotations() (map[string]string, error) {
	ann := maps.Clone(a.Annotations)
	mt := a.MediaType
	if mt == "" {
		mt = a.ArtifactType
	}
	if mt != InToto {
		return ann, nil
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(a.Data, &st); err != nil || st.PredicateType == "" {
		return nil, fmt.Errorf("%s: not an in-toto statement with a predicateType (%v)", mt, err)
	}
	if have, ok := ann[PredicateTypeAnnotation]; ok && have != st.PredicateType {
		return nil, fmt.Errorf("%s: annotation %s = %q, but the statement's predicateType is %q", mt, PredicateTypeAnnotation, have, st.PredicateType)
	}
	if ann == nil {
		ann = map[string]string{}
	}
	ann[PredicateTypeAnnotation] = st.PredicateType
	return ann, nil
}

// Image is the artifact manifest of a for subject, as a v1.Image that
// remote.Write can push. The same subject and artifact give the same digest.
func Image(subject v1.Descriptor, a Artifact) (v1.Image, error) {
	if err := a.check(); err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	ann, err := a.annotations()
	if err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	mt := a.MediaType
	if mt == "" {
		mt = a.ArtifactType
	}
	layer := static.NewLayer(a.Data, types.MediaType(mt))
	ld, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	cd, err := partial.Descriptor(static.NewLayer(emptyJSON, types.OCIEmptyJSON))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  a.ArtifactType,
		Config:        v1.Descriptor{MediaType: cd.MediaType, Size: cd.Size, Digest: cd.Digest},
		Layers:        []v1.Descriptor{{MediaType: ld.MediaType, Size: ld.Size, Digest: ld.Digest}},
		Annotations:   ann,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	base, err := partial.CompressedToImage(&artifactCore{manifest: raw, layer: layer, digest: ld.Digest})
	if err != nil {
		return nil, err
	}
	subj := v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest}
	img, ok := mutate.Subject(base, subj).(v1.Image)
	if !ok {
		return nil, errors.New("referrers: mutate.Subject did not return an image")
	}
	return img, nil
}

// artifactCore is the artifact manifest before its subject is set.
type artifactCore struct {
	manifest []byte
	layer    v1.Layer
	digest   v1.Hash
}

func (c *artifactCore) RawConfigFile() ([]byte, error)      { return bytes.Clone(emptyJSON), nil }
func (c *artifactCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (c *artifactCore) RawManifest() ([]byte, error)        { return c.manifest, nil }
func (c *artifactCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == c.digest {
		return c.layer, nil
	}
	return nil, fmt.Errorf("referrers: no blob %s in the artifact", h)
}

// Attach pushes each artifact as a referrer of subject (which must exist in
// the registry) and returns the artifacts' manifest digests, in order.
// Attaching the same artifacts again writes nothing new and returns the same
// digests. On registries without the referrers API the fallback tag is kept
// up to date (see the package comment).
func Attach(ctx context.Context, subject name.Digest, arts []Artifact, opts ...remote.Option) ([]name.Digest, error) {
	opts = withContext(ctx, opts)
	desc, err := remote.Head(subject, opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers: subject %s: %w", subject, err)
	}
	if desc.Digest.String() != subject.DigestStr() {
		return nil, fmt.Errorf("referrers: subject %s: the registry answered with %s", subject, desc.Digest)
	}
	imgs := make([]v1.Image, len(arts))
	refs := make([]name.Digest, len(arts))
	for i, a := range arts {
		img, err := Image(*desc, a)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		imgs[i], refs[i] = img, subject.Context().Digest(d.String())
	}
	// One after another: the fallback index is updated read-modify-write.
	for i, img := range imgs {
		if err := remote.Write(refs[i], img, opts...); err != nil {
			return nil, fmt.Errorf("referrers: push %s (%s): %w", refs[i], arts[i].ArtifactType, err)
		}
	}

	have, err := listed(subject, opts)
	if err != nil {
		return nil, fmt.Errorf("referrers: list the referrers of %s: %w", subject, err)
	}
	for i, img := range imgs {
		if have[refs[i].DigestStr()] {
			continue
		}
		// The manifest was there already, but the listing (the fallback
		// index) lost it: PUT it again, which updates the index.
		if err := remote.Put(refs[i], img, opts...); err != nil {
			return nil, fmt.Errorf("referrers: re-attach %s: %w", refs[i], err)
		}
		if have, err = listedOne(subject, opts, refs[i].DigestStr()); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

func listedOne(subject name.Digest, opts []remote.Option, digest string) (map[string]bool, error) {
	l, err := listed(subject, opts)
	if err != nil {
		return nil, fmt.Errorf("referrers: list the referrers of %s: %w", subject, err)
	}
	if !l[digest] {
		return nil, fmt.Errorf("referrers: %s was pushed, but the registry does not list it as a referrer of %s", digest, subject)
	}
	return l, nil
}

func listed(subject name.Digest, opts []remote.Option) (map[string]bool, error) {
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range im.Manifests {
		out[d.Digest.String()] = true
	}
	return out, nil
}

// Find lists the referrers of subject whose artifact type is artifactType
// ("" lists all), sorted by digest, through the registry's referrers API or
// the fallback tag. Registries that report an artifact's config media type
// instead of its artifactType (go-containerregistry's in-memory registry, for
// one) are corrected by reading the manifest: the descriptors returned carry
// the manifest's artifactType.
func Find(ctx context.Context, subject name.Digest, artifactType string, opts ...remote.Option) ([]v1.Descriptor, error) {
	opts = withContext(ctx, opts)
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers: list the referrers of %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers: list the referrers of %s: %w", subject, err)
	}
	var out []v1.Descriptor
	for _, d := range im.Manifests {
		if d.ArtifactType == "" || d.ArtifactType == string(types.OCIEmptyJSON) {
			at, err := manifestArtifactType(subject.Context().Digest(d.Digest.String()), opts)
			if err != nil {
				return nil, err
			}
			d.ArtifactType = at
		}
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return out, nil
}

func manifestArtifactType(ref name.Digest, opts []remote.Option) (string, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("referrers: read %s: %w", ref, err)
	}
	var m struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return "", fmt.Errorf("referrers: read %s: %w", ref, err)
	}
	if m.ArtifactType != "" {
		return m.ArtifactType, nil
	}
	return m.Config.MediaType, nil
}

// Fetch reads an attached artifact back: its artifact type, its one layer's
// media type and content (checked against the layer digest), and its
// manifest annotations.
func Fetch(ctx context.Context, ref name.Digest, opts ...remote.Option) (*Artifact, error) {
	opts = withContext(ctx, opts)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers: read %s: %w", ref, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("referrers: read %s: %w", ref, err)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("referrers: %s has %d layers, want 1", ref, len(m.Layers))
	}
	l, err := remote.Layer(ref.Context().Digest(m.Layers[0].Digest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers: %s: layer: %w", ref, err)
	}
	rc, err := l.Compressed() // the digest is verified while reading
	if err != nil {
		return nil, fmt.Errorf("referrers: %s: layer: %w", ref, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxData+1))
	if err != nil {
		return nil, fmt.Errorf("referrers: %s: layer: %w", ref, err)
	}
	if len(data) > maxData || int64(len(data)) != m.Layers[0].Size {
		return nil, fmt.Errorf("referrers: %s: layer is %d bytes, the manifest says %d", ref, len(data), m.Layers[0].Size)
	}
	at := m.ArtifactType
	if at == "" {
		at = string(m.Config.MediaType)
	}
	return &Artifact{ArtifactType: at, MediaType: string(m.Layers[0].MediaType), Data: data, Annotations: m.Annotations}, nil
}

// withContext makes ctx the context of every request; later options win.
func withContext(ctx context.Context, opts []remote.Option) []remote.Option {
	return append(slices.Clip(opts), remote.WithContext(ctx))
}
