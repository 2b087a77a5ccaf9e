package graft

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/image"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/referrers"
)

// labelBaseDigest is the config label (and manifest annotation) that names
// the base an image was grafted onto.
const labelBaseDigest = "org.opencontainers.image.base.digest"

// notOurs says why the image (or index) desc, whose inputs label equals
// the plan's, is not a build of the plan's inputs by this tool ("" : it is):
// a label is only text that anyone who can push can copy. An image of ours
// is, per platform, the resolved base's layers plus exactly one, with a
// config that names the base's digest; and a provenance referrer whose
// subject is desc's digest records the plan's inputs fingerprint.
func (p *BuildPlan) notOurs(ctx context.Context, ref name.Digest, desc *remote.Descriptor, opts []remote.Option) (string, error) {
	imgs := map[string]v1.Image{} // platform -> image
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", ref, err)
		}
		if len(im.Manifests) != len(p.Bases) {
			return fmt.Sprintf("an index of %d manifests, want one per platform (%d)", len(im.Manifests), len(p.Bases)), nil
		}
		for _, m := range im.Manifests {
			if m.Platform == nil || !m.MediaType.IsImage() {
				return fmt.Sprintf("index entry %s is not a platform's image", m.Digest), nil
			}
			img, err := idx.Image(m.Digest)
			if err != nil {
				return "", fmt.Errorf("reading %s: %w", ref, err)
			}
			imgs[m.Platform.String()] = img
		}
	case desc.MediaType.IsImage():
		if len(p.Bases) != 1 {
			return fmt.Sprintf("one image, want an index of %d platforms", len(p.Bases)), nil
		}
		img, err := desc.Image()
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", ref, err)
		}
		imgs[p.Bases[0].Platform.String()] = img
	default:
		return fmt.Sprintf("media type %s is neither an image nor an index", desc.MediaType), nil
	}
	for _, base := range p.Bases {
		img, ok := imgs[base.Platform.String()]
		if !ok {
			return fmt.Sprintf("no image for %s", base.Platform), nil
		}
		if why, err := graftedOnto(img, base); why != "" || err != nil {
			return why, err
		}
	}
	return p.provenanceRecords(ctx, ref, opts)
}

// graftedOnto says why img is not base plus one layer with a config that
// names base ("" : it is).
func graftedOnto(img v1.Image, base *image.Base) (string, error) {
	have, err := layerDigests(img)
	if err != nil {
		return "", err
	}
	want, err := layerDigests(base.Image)
	if err != nil {
		return "", fmt.Errorf("base %s: %w", base.Digest, err)
	}
	if len(have) != len(want)+1 || !slices.Equal(have[:len(want)], want) {
		return fmt.Sprintf("its layers (%d) are not the layers of base %s (%d) plus one", len(have), base.Digest, len(want)), nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	if got := cf.Config.Labels[labelBaseDigest]; got != base.Digest.DigestStr() {
		return fmt.Sprintf("its config names base digest %q, want %s", got, base.Digest.DigestStr()), nil
	}
	return "", nil
}

func layerDigests(img v1.Image) ([]v1.Hash, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out, nil
}

// provenanceRecords says why no provenance referrer of ref records the
// plan's fingerprint for ref ("" : one does).
func (p *BuildPlan) provenanceRecords(ctx context.Context, ref name.Digest, opts []remote.Option) (string, error) {
	found, err := referrers.Find(ctx, ref, provenance.MediaType, opts...)
	if err != nil {
		return "", err
	}
	for _, d := range found {
		art, err := referrers.Fetch(ctx, ref.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			return "", err
		}
		st, pred, err := provenance.Parse(art.Data)
		if err != nil {
			continue // not a statement of ours
		}
		about := false
		for _, s := range st.GetSubject() {
			about = about || "sha256:"+s.GetDigest()[provenance.SHA256] == ref.DigestStr()
		}
		if about && provenance.InputsFingerprint(pred) == p.Fingerprint {
			return "", nil
		}
	}
	return fmt.Sprintf("no provenance referrer of %s records these inputs (fingerprint %s)", short(ref.DigestStr()), short(p.Fingerprint)), nil
}
