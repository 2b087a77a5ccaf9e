package graft

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
	"github.com/sqlite-graft/sqlite-graft/internal/referrers"
	"github.com/sqlite-graft/sqlite-graft/internal/sbom"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
	"github.com/sqlite-graft/sqlite-graft/internal/vex"
)

// documents are what is published with the image: the artifact (one
// image, or an index of the platforms' images), the referrers attached to
// it before any tag, and the files written beside the output or the result.
type documents struct {
	artifact  publish.Artifact
	referrers []referrers.Artifact
	// beside are written, by file name, next to the OCI layout (no push)
	// or the result file (ImageRequest.ProvenanceFile's directory).
	beside map[string][]byte
	// vex is the OpenVEX statement, a referrer of each of vexSubjects.
	vex         *referrers.Artifact
	vexSubjects []string
}

// documents makes the artifact and its documents: the provenance names
// every resolved input, for the artifact and each platform's image.
func (e *Env) documents(req ImageRequest, plan *BuildPlan, imgs []*platformImage, hard hardened, tests *sqltests.Result) (*documents, error) {
	var artifact publish.Artifact = imgs[0].img
	if len(imgs) > 1 {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		for _, pi := range imgs {
			p := pi.platform
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: pi.img, Descriptor: v1.Descriptor{Platform: &p}})
		}
		artifact = idx
	}
	top, err := artifact.Digest()
	if err != nil {
		return nil, err
	}
	subjects := []provenance.Subject{{Name: plan.Repository, Digest: top.String()}}
	if len(imgs) > 1 {
		for _, pi := range imgs {
			d, err := pi.img.Digest()
			if err != nil {
				return nil, err
			}
			subjects = append(subjects, provenance.Subject{Name: plan.Repository + " (" + pi.platform.String() + ")", Digest: d.String()})
		}
	}
	first := imgs[0]
	src := first.build.Source
	downstream, checkPackages := downstreamProvenance(checkPlans(imgs))
	var testsRec any
	if rec := testsRecord(tests); rec != nil {
		testsRec = rec
	}
	prov, err := provenance.Statement(provenance.Input{
		DownstreamCheck: downstream, CheckPackages: checkPackages, SQLiteTests: testsRec,
		Subjects: subjects, Image: req.Def.Name, Base: first.base.Ref.String(), BaseDigest: first.base.Digest.DigestStr(),
		InheritedLabels: hard.labels, InheritedAnnotations: hard.annotation,
		SQLite: plan.Version.String(), SourceURL: e.downloadURL(plan.Pin, src), ArchiveSHA3: src.ArchiveSHA3,
		SQLite3CSHA3: src.SQLite3CSHA3, SourceID: src.SourceID,
		Patches: provPatches(src.Patches), Recipe: first.build.Plan, Toolchain: first.build.Toolchain,
		ToolVersion: ToolVersion, InputsFingerprint: plan.Fingerprint, Started: plan.Created, Finished: plan.Created,
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	// Referrers carry the documents without indentation: they are uploaded
	// on every change, read by tools rather than people.
	var sbomCompact, provCompact bytes.Buffer
	if err := json.Compact(&sbomCompact, first.sbom); err != nil {
		return nil, err
	}
	if err := json.Compact(&provCompact, prov); err != nil {
		return nil, err
	}
	docs := &documents{
		artifact: artifact,
		referrers: []referrers.Artifact{
			// Under its own artifact type: the SBOM describes the graft, not
			// the whole image, and a scanner that takes an SBOM referrer
			// instead of scanning the layers (Trivy --sbom-sources oci) must
			// not take it.
			{ArtifactType: sbom.ArtifactType, MediaType: sbom.MediaType, Data: sbomCompact.Bytes()},
			{ArtifactType: provenance.MediaType, MediaType: provenance.MediaType, Data: provCompact.Bytes()},
		},
		beside: map[string][]byte{sbom.FileName: first.sbom, provenance.FileName: prov},
	}
	var digests []string
	var testSubjects []sqltests.Subject
	for _, s := range subjects {
		digests = append(digests, s.Digest)
		testSubjects = append(testSubjects, sqltests.Subject{Name: s.Name, Digest: s.Digest})
	}
	if tests != nil && tests.Status != sqltests.NotRun {
		// The gate's result as an in-toto test-result attestation.
		stmt, err := sqltests.Statement(tests, testSubjects)
		if err != nil {
			return nil, err
		}
		docs.referrers = append(docs.referrers, referrers.Artifact{ArtifactType: referrers.InToto, MediaType: referrers.InToto, Data: stmt})
	}
	return docs, e.vexDocuments(req, plan, digests, docs)
}

// vexDocuments adds the OpenVEX document of the images with digests: the
// distribution package's advisories that the graft does not have are
// not_affected there. It is a referrer of every digest (scanners look it up
// by the image they scan: the index or one platform's) and a file beside
// the output and the result. A definition that names no distribution
// package has nothing to say.
func (e *Env) vexDocuments(req ImageRequest, plan *BuildPlan, digests []string, docs *documents) error {
	def := req.Def
	if def.DistroPackage == "" {
		e.Log.Warnf("%s names no distro_package: no VEX document", def.File)
		return nil
	}
	pkg := vex.Package{Type: "apk", Namespace: "alpine", Name: def.DistroPackage, Version: def.DistroSQLite}
	up, err := upstream.AlpineUpstream(def.DistroSQLite)
	if def.Libc == imagedef.Glibc {
		pkg.Type, pkg.Namespace = "deb", "debian"
		up, err = upstream.DebianUpstream(def.DistroSQLite)
	}
	if err != nil {
		return fmt.Errorf("%s: distro_sqlite %q: %w", def.File, def.DistroSQLite, err)
	}
	pkg.SQLite = up
	in := vex.Input{
		Repository: plan.Repository, Digests: digests, Packages: []vex.Package{pkg},
		Graft:   vex.Graft{Version: plan.Version, Defines: e.Recipe.Defines, Libc: def.Libc, LDCache: def.Libc == imagedef.Glibc},
		Created: plan.Created, ToolVersion: ToolVersion,
	}
	doc, err := vex.JSON(in)
	if err != nil {
		return err
	}
	stmt, err := vex.Statement(in)
	if err != nil {
		return err
	}
	docs.beside[vex.FileName] = doc
	docs.vex = &referrers.Artifact{ArtifactType: referrers.InToto, MediaType: vex.MediaType, Data: stmt}
	docs.vexSubjects = digests
	return nil
}

// publish is the one place anything is written: the checks are its gate
// (nothing is written unless they pass); without Push, the OCI layout and
// tarball with the documents beside them; with Push, the image by digest,
// its referrers, then its tags. The provenance file beside the result is
// written last, after the output or the push succeeded.
func (e *Env) publish(ctx context.Context, req ImageRequest, plan *BuildPlan, imgs []*platformImage, docs *documents) (*publish.Result, error) {
	gate := func(ctx context.Context) error { return e.checkImages(ctx, req, plan, imgs) }
	var res *publish.Result
	var err error
	switch {
	case req.CheckOnly:
		if err := gate(ctx); err != nil {
			return nil, err
		}
		d, err := docs.artifact.Digest()
		if err != nil {
			return nil, err
		}
		res = &publish.Result{Reference: plan.Repository + "@" + d.String(), Digest: d.String(), Tags: plan.Tags, Pushed: []string{}, Platforms: plan.Platforms}
	case req.Push == "":
		if res, err = e.writeLocal(ctx, req, plan, docs, gate); err != nil {
			return nil, err
		}
	default:
		if res, err = e.push(ctx, req, plan, docs, gate); err != nil || res.Unchanged {
			return res, err
		}
	}
	res.Checks = checkRecords(checkPlans(imgs))
	if req.ProvenanceFile != "" {
		if err := fsutil.WriteFileAtomic(req.ProvenanceFile, docs.beside[provenance.FileName], 0o644); err != nil {
			return nil, err
		}
		if v, ok := docs.beside[vex.FileName]; ok {
			if err := fsutil.WriteFileAtomic(filepath.Join(filepath.Dir(req.ProvenanceFile), vex.FileName), v, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// writeLocal writes the OCI layout and the tarball to req.Output, the
// documents beside them, once the gate passed.
func (e *Env) writeLocal(ctx context.Context, req ImageRequest, plan *BuildPlan, docs *documents, gate func(context.Context) error) (*publish.Result, error) {
	if err := gate(ctx); err != nil {
		return nil, err
	}
	var tags []name.Tag
	for _, t := range plan.Tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return nil, err
		}
		tags = append(tags, tag)
	}
	res, err := publish.WriteLocal(req.Output, docs.artifact, tags)
	if err != nil {
		return nil, err
	}
	// Beside the layout, where a person or a scanner finds them.
	for file, data := range docs.beside {
		if err := fsutil.WriteFileAtomic(filepath.Join(req.Output, file), data, 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// push pushes to the plan's repository and tags, the gate first, the
// referrers before any tag.
func (e *Env) push(ctx context.Context, req ImageRequest, plan *BuildPlan, docs *documents, gate func(context.Context) error) (*publish.Result, error) {
	repo, err := name.NewRepository(plan.Repository)
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, t := range plan.Tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return nil, err
		}
		tags = append(tags, tag.TagStr())
	}
	attach := func(ctx context.Context, ref name.Digest, opts []remote.Option) error {
		if _, err := referrers.Attach(ctx, ref, docs.referrers, opts...); err != nil {
			return err
		}
		if docs.vex == nil {
			return nil
		}
		for _, d := range docs.vexSubjects {
			if _, err := referrers.Attach(ctx, ref.Context().Digest(d), []referrers.Artifact{*docs.vex}, opts...); err != nil {
				return err
			}
		}
		return nil
	}
	return publish.Push(ctx, repo, docs.artifact, tags, append(req.PushOptions, publish.WithGate(gate), publish.WithAttach(attach))...)
}

// checkPlans are the platforms' check plans, in platform order.
func checkPlans(imgs []*platformImage) []*downstreamPlan {
	var out []*downstreamPlan
	for _, pi := range imgs {
		out = append(out, pi.checks)
	}
	return out
}
