package referrers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/sbom"
)

const (
	baseDigest   = "sha256:1c4eef651f65e2f7daee7ee785882ac164b02b78fb74503052a26dc061c90474"
	archiveSHA3  = "ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea"
	sqlite3cSHA3 = "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e"
)

// documents are a real SBOM and a real provenance statement for subject.
func documents(t *testing.T, repo name.Repository, subject string) []Artifact {
	t.Helper()
	when := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	doc, err := sbom.JSON(sbom.Input{
		ImageName: "alpine-3.21", ImageRef: repo.String(), Base: "alpine:3.21", BaseDigest: baseDigest,
		SQLite: "3.51.3", DownloadURL: "https://sqlite.org/2026/sqlite-amalgamation-3510300.zip",
		ArchiveSHA3: archiveSHA3, SQLite3CSHA3: sqlite3cSHA3, Created: when,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := provenance.Statement(provenance.Input{
		Subjects: []provenance.Subject{{Name: repo.String(), Digest: subject}},
		Base:     "alpine:3.21", BaseDigest: baseDigest, SourceURL: "https://sqlite.org/2026/sqlite-amalgamation-3510300.zip",
		ArchiveSHA3: archiveSHA3, SQLite3CSHA3: sqlite3cSHA3, Recipe: map[string]any{"steps": []string{"cc"}},
		Started: when, Finished: when,
	})
	if err != nil {
		t.Fatal(err)
	}
	return []Artifact{
		{ArtifactType: SBOM, MediaType: sbom.MediaType, Data: doc, Annotations: map[string]string{"org.opencontainers.image.title": sbom.FileName}},
		{ArtifactType: Provenance, MediaType: provenance.MediaType, Data: st},
	}
}

// pushSubject pushes a small random image and returns it by digest.
func pushSubject(t *testing.T, repo name.Repository, opts []remote.Option) name.Digest {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag := repo.Tag("v1")
	if err := remote.Write(tag, img, opts...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return repo.Digest(d.String())
}

func fallbackTag(subject name.Digest) name.Tag {
	return subject.Context().Tag(strings.Replace(subject.DigestStr(), ":", "-", 1))
}

// exercise attaches, finds, fetches and re-attaches; it returns the digests.
func exercise(t *testing.T, ctx context.Context, repo name.Repository, opts []remote.Option) (name.Digest, []name.Digest, []Artifact) {
	t.Helper()
	subject := pushSubject(t, repo, opts)
	arts := documents(t, repo, subject.DigestStr())

	refs, err := Attach(ctx, subject, arts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 {
		t.Fatalf("Attach returned %v", refs)
	}

	for i, typ := range []string{SBOM, Provenance} {
		found, err := Find(ctx, subject, typ, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].Digest.String() != refs[i].DigestStr() || found[0].ArtifactType != typ {
			t.Fatalf("Find(%s) = %+v, want %s", typ, found, refs[i])
		}
		if found[0].MediaType != types.OCIManifestSchema1 {
			t.Errorf("Find(%s) media type %s", typ, found[0].MediaType)
		}
		got, err := Fetch(ctx, refs[i], opts...)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data, arts[i].Data) || got.ArtifactType != typ || got.MediaType != arts[i].MediaType {
			t.Errorf("Fetch(%s): type %s media type %s, %d bytes; want the %d bytes attached", typ, got.ArtifactType, got.MediaType, len(got.Data), len(arts[i].Data))
		}
	}
	sb, err := Find(ctx, subject, SBOM, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if sb[0].Annotations["org.opencontainers.image.title"] != sbom.FileName {
		t.Errorf("SBOM descriptor annotations = %v", sb[0].Annotations)
	}
	// The provenance statement's predicate type is in the listing, read from
	// the statement (as Trivy's --vex oci reads it to skip non-VEX statements).
	prov, err := Find(ctx, subject, Provenance, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if got := prov[0].Annotations[PredicateTypeAnnotation]; got != provenance.PredicateType {
		t.Errorf("provenance descriptor annotation %s = %q, want %q (all: %v)", PredicateTypeAnnotation, got, provenance.PredicateType, prov[0].Annotations)
	}
	if _, ok := sb[0].Annotations[PredicateTypeAnnotation]; ok {
		t.Errorf("the SBOM (not an in-toto statement) carries %s: %v", PredicateTypeAnnotation, sb[0].Annotations)
	}
	all, err := Find(ctx, subject, "", opts...)
	if err != nil || len(all) != 2 {
		t.Fatalf("Find(all) = %v, %v", all, err)
	}
	if none, err := Find(ctx, subject, "application/vnd.example", opts...); err != nil || len(none) != 0 {
		t.Errorf("Find(other type) = %v, %v", none, err)
	}

	// The artifact manifest follows the OCI 1.1 artifact guidance.
	desc, err := remote.Get(refs[0], opts...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != SBOM || m.Config.MediaType != types.OCIEmptyJSON || m.Config.Size != 2 ||
		m.Config.Digest.String() != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" ||
		m.Subject == nil || m.Subject.Digest.String() != subject.DigestStr() || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != sbom.MediaType {
		t.Errorf("artifact manifest:\n%s", desc.Manifest)
	}

	// Attaching again is a no-op with the same digests.
	again, err := Attach(ctx, subject, arts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 || again[0] != refs[0] || again[1] != refs[1] {
		t.Errorf("second Attach = %v, first %v", again, refs)
	}
	if all, err := Find(ctx, subject, "", opts...); err != nil || len(all) != 2 {
		t.Fatalf("after the second Attach, Find(all) = %v, %v", all, err)
	}
	return subject, refs, arts
}

func TestRealRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	opts := reg.RemoteOptions()
	repo := reg.Repo(t, "sqlite-graft/alpine")
	subject, refs, arts := exercise(t, ctx, repo, opts)

	// docker-registry 2.8 has no referrers API: the referrers live in the
	// fallback tag, an OCI index go-containerregistry keeps up to date.
	fb, err := remote.Get(fallbackTag(subject), opts...)
	if err != nil {
		t.Fatalf("no fallback tag: %v\n%s", err, reg.Logs())
	}
	if fb.MediaType != types.OCIImageIndex {
		t.Errorf("fallback tag media type %s", fb.MediaType)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(fb.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("fallback index lists %d referrers:\n%s", len(idx.Manifests), fb.Manifest)
	}
	types := map[string]string{}
	for _, d := range idx.Manifests {
		types[d.Digest.String()] = d.ArtifactType
	}
	if types[refs[0].DigestStr()] != SBOM || types[refs[1].DigestStr()] != Provenance {
		t.Errorf("fallback index:\n%s", fb.Manifest)
	}

	// A lost fallback index (here: deleted) is repaired by the next Attach,
	// although remote.Write finds the artifact manifests already there.
	if err := remote.Delete(subject.Context().Digest(fb.Digest.String()), opts...); err != nil {
		t.Fatal(err)
	}
	if all, err := Find(ctx, subject, "", opts...); err != nil || len(all) != 0 {
		t.Fatalf("after deleting the fallback index, Find = %v, %v", all, err)
	}
	if _, err := Attach(ctx, subject, arts, opts...); err != nil {
		t.Fatal(err)
	}
	all, err := Find(ctx, subject, "", opts...)
	if err != nil || len(all) != 2 {
		t.Fatalf("after repair, Find = %v, %v", all, err)
	}
	fb2, err := remote.Get(fallbackTag(subject), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if fb2.Digest != fb.Digest {
		t.Errorf("repaired fallback index %s differs from the original %s:\n%s\n%s", fb2.Digest, fb.Digest, fb.Manifest, fb2.Manifest)
	}
}

func inMemory(t *testing.T, opts ...registry.Option) name.Repository {
	t.Helper()
	srv := httptest.NewServer(registry.New(append(opts, registry.Logger(log.New(io.Discard, "", 0)))...))
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/sqlite-graft/debian", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestInMemoryRegistryWithReferrersAPI(t *testing.T) {
	repo := inMemory(t, registry.WithReferrersSupport(true))
	subject, _, _ := exercise(t, context.Background(), repo, nil)
	// The registry answered the referrers API: no fallback tag was written.
	_, err := remote.Get(fallbackTag(subject))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("fallback tag on a registry with the referrers API: %v", err)
	}
}

func TestInMemoryRegistryFallback(t *testing.T) {
	repo := inMemory(t)
	subject, _, _ := exercise(t, context.Background(), repo, nil)
	if _, err := remote.Get(fallbackTag(subject)); err != nil {
		t.Errorf("no fallback tag: %v", err)
	}
}

func TestAttachMissingSubject(t *testing.T) {
	repo := inMemory(t)
	subject := repo.Digest("sha256:" + strings.Repeat("ab", 32))
	arts := []Artifact{{ArtifactType: SBOM, Data: []byte("{}")}}
	if _, err := Attach(context.Background(), subject, arts); err == nil || !strings.Contains(err.Error(), subject.DigestStr()) {
		t.Errorf("Attach to a missing subject: %v", err)
	}
}

func TestImage(t *testing.T) {
	subj := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 100, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)},
		Annotations: map[string]string{"ignored": "yes"}}
	a := Artifact{ArtifactType: SBOM, Data: []byte(`{"spdxVersion":"SPDX-2.3"}`), Annotations: map[string]string{"k": "v"}}
	i1, err := Image(subj, a)
	if err != nil {
		t.Fatal(err)
	}
	i2, err := Image(subj, a)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := i1.Digest()
	d2, _ := i2.Digest()
	if d1 != d2 {
		t.Errorf("same artifact, digests %s and %s", d1, d2)
	}
	raw, _ := i1.RawManifest()
	if bytes.Contains(raw, []byte("ignored")) {
		t.Errorf("subject annotations copied into the manifest:\n%s", raw)
	}
	m, _ := i1.Manifest()
	if m.Layers[0].MediaType != SBOM {
		t.Errorf("layer media type defaults to the artifact type, got %s", m.Layers[0].MediaType)
	}
	a.Annotations = map[string]string{"k": "w"}
	i3, _ := Image(subj, a)
	if d3, _ := i3.Digest(); d3 == d1 {
		t.Error("different annotations, same digest")
	}

	for name, bad := range map[string]Artifact{
		"no type":       {Data: []byte("x")},
		"no data":       {ArtifactType: SBOM},
		"bad type":      {ArtifactType: "spdx", Data: []byte("x")},
		"bad mediatype": {ArtifactType: SBOM, MediaType: "a b/c", Data: []byte("x")},
	} {
		if _, err := Image(subj, bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// An in-toto statement's annotation comes from the statement: a caller's
// annotation that disagrees, or data that is no statement, is refused.
func TestInTotoAnnotation(t *testing.T) {
	subject := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 2, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}}
	st := []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://openvex.dev/ns/v0.2.0","subject":[],"predicate":{}}`)
	img, err := Image(subject, Artifact{ArtifactType: InToto, Data: st})
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations[PredicateTypeAnnotation] != "https://openvex.dev/ns/v0.2.0" {
		t.Errorf("annotations = %v", m.Annotations)
	}
	// The same annotation given by the caller is fine; another is not.
	if _, err := Image(subject, Artifact{ArtifactType: InToto, Data: st, Annotations: map[string]string{PredicateTypeAnnotation: "https://openvex.dev/ns/v0.2.0"}}); err != nil {
		t.Errorf("matching annotation: %v", err)
	}
	if _, err := Image(subject, Artifact{ArtifactType: InToto, Data: st, Annotations: map[string]string{PredicateTypeAnnotation: "https://slsa.dev/provenance/v1"}}); err == nil || !strings.Contains(err.Error(), "predicateType") {
		t.Errorf("disagreeing annotation = %v, want an error", err)
	}
	for _, bad := range []string{`{}`, `[1]`, `not json`} {
		if _, err := Image(subject, Artifact{ArtifactType: InToto, Data: []byte(bad)}); err == nil {
			t.Errorf("in-toto artifact %q: no error", bad)
		}
	}
	// Other documents are left as they are.
	img, err = Image(subject, Artifact{ArtifactType: SBOM, Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := img.Manifest(); len(m.Annotations) != 0 {
		t.Errorf("SBOM annotations = %v", m.Annotations)
	}
}
