package graft

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/image"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/referrers"
	"github.com/sqlite-graft/sqlite-graft/internal/sbom"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// Compiler gives the executor and compiler command for a platform, or an
// error when it cannot build for it (the local executor builds the host's).
type Compiler func(platform v1.Platform) (recipe.Executor, string, error)

// ImageRequest is one `build`.
type ImageRequest struct {
	Def       *imagedef.Definition
	Source    SourceRequest // a zero Version means the definition's (imagedef.Definition.Version)
	Base      string        // overrides Def.Base
	Platforms []v1.Platform // default: the definition's
	Compiler  Compiler
	Created   time.Time // zero: SOURCE_DATE_EPOCH, else the SQLite release date
	Revision  string
	SourceURL string

	BaseOptions []remote.Option // pulling the base (auth, transport)
	Output      string          // local OCI layout + tarball when Push is empty
	Push        string          // REPOSITORY[:TAG]; a tag replaces the definition's tags
	PushOptions []publish.Option
	// RegistryOptions read the target repository (auth) for the no-op check.
	RegistryOptions []remote.Option
	Stress          *check.StressOptions // inside the image, before anything is written
	CheckTimeout    time.Duration        // of each process the image check runs; 0: the check's default
	// ProvenanceFile, when set, receives the in-toto provenance statement.
	ProvenanceFile string
	SkipChecks     bool // only for platforms that cannot run here
	// Downstream gets the distribution's SQLite package for the downstream
	// check of a base without a SQLite of its own.
	Downstream Downstream
}

// BuildImage compiles, assembles, checks and publishes one image definition.
// Nothing is written (no output directory, no tag) unless the checks passed.
func (e *Env) BuildImage(ctx context.Context, req ImageRequest) (*publish.Result, error) {
	def := req.Def
	plan, err := e.PlanImage(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, r := range plan.Reasons {
		e.Log.WithField("image", def.Name).Info(r)
	}
	if req.Push != "" && plan.Unchanged {
		// Nothing to build: every tag already holds a build of these inputs.
		res := &publish.Result{Unchanged: true, Tags: plan.Tags, Pushed: []string{}, Platforms: plan.Platforms}
		for _, d := range plan.Current {
			res.Digest = d.(string)
		}
		res.Reference = plan.Repository + "@" + res.Digest
		return res, nil
	}
	src := req.Source
	src.Version = plan.Version
	pin, created := plan.Pin, plan.Created
	_, inputsJSON := plan.Inputs.Fingerprint()
	work, err := os.MkdirTemp("", "sqlite-graft-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	type built struct {
		img      v1.Image
		platform v1.Platform
		check    bool
		sbom     []byte
		build    *Build
		base     *image.Base
		checks   *downstreamPlan
	}
	var imgs []built
	var checkPlans []*downstreamPlan
	for _, base := range plan.Bases {
		pl := base.Platform
		exec, cc, err := req.Compiler(pl)
		if err != nil {
			return nil, err
		}
		log := e.Log.WithField("platform", pl.String())
		log.WithField("digest", base.Digest.DigestStr()).Infof("base %s", base.Ref)
		out := filepath.Join(work, pl.OS+"-"+pl.Architecture+pl.Variant)
		b, err := e.Compile(ctx, src, exec, cc, out)
		if err != nil {
			return nil, err
		}
		scan, err := image.ScanBase(base.Image)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", base.Digest, err)
		}
		extra, whiteouts, err := image.Hardening(def, scan)
		if err != nil {
			return nil, err
		}
		// runc runs this machine's architecture only; other platforms are
		// checked where they run (the Dagger path).
		runnable := pl.OS == "linux" && pl.Architecture == runtime.GOARCH
		// What the checks compare the graft with; a package the downstream
		// check needs and cannot have stops the build here.
		checks, err := planChecks(ctx, def, pl, runnable, req.SkipChecks, scan.Exists[check.DistroLibrary(def.Libc)], req.Downstream, log)
		if err != nil {
			return nil, err
		}
		shell := ""
		if b.Source.HasShell {
			shell = filepath.Join(out, "sqlite3")
		} else {
			log.Warn("the source has no shell.c: the image ships no sqlite3 shell (the distro's refuses a preloaded library of another version)")
		}
		sbomJSON, err := sbom.JSON(sbom.Input{
			// No ImageRef: the image's bytes must not depend on where it is
			// pushed (same inputs, same digest in every registry).
			ImageName: def.Name, Base: base.Ref.String(), BaseDigest: base.Digest.DigestStr(),
			SQLite: src.Version.String(), DownloadURL: e.downloadURL(pin, b.Source), ArchiveSHA3: b.Source.ArchiveSHA3,
			SQLite3CSHA3: b.Source.SQLite3CSHA3, SourceID: b.Source.SourceID, Patches: sbomPatches(b.Source.Patches),
			Defines: e.Recipe.DefineFlags(), Toolchain: b.Toolchain, ToolVersion: ToolVersion, Created: created,
		})
		if err != nil {
			return nil, fmt.Errorf("SBOM: %w", err)
		}
		extra = append(extra, layer.File{Path: SBOMPath, Mode: 0o644, Data: sbomJSON})
		l, err := layer.Build(layer.Input{
			Library:   filepath.Join(out, "libsqlite3.so.0"),
			Shell:     shell,
			Version:   src.Version,
			Libc:      def.Libc,
			Preload:   def.Preload,
			Metadata:  metadata(def, base, b),
			Created:   created,
			Extra:     extra,
			Whiteouts: whiteouts,
		})
		if err != nil {
			return nil, err
		}
		img, err := image.Assemble(image.Graft{
			Def: def, Base: base, Layer: l, Version: src.Version, SourceID: b.Source.SourceID,
			SQLite3C: b.Source.SQLite3CSHA3, Archive: b.Source.ArchiveSHA3, Created: created,
			Revision: req.Revision, SourceURL: req.SourceURL,
			Labels: map[string]string{LabelInputs: string(inputsJSON), LabelFingerprint: plan.Fingerprint},
		})
		if err != nil {
			return nil, err
		}
		if !runnable {
			log.Warn("cannot run this platform's image here: its checks are skipped")
		}
		imgs = append(imgs, built{img: img, platform: pl, check: runnable && !req.SkipChecks, sbom: sbomJSON, build: b, base: base, checks: checks})
		checkPlans = append(checkPlans, checks)
	}

	// The checks run inside each finished image, before anything is written.
	checkAll := func(ctx context.Context) error {
		for _, b := range imgs {
			if !b.check {
				e.Log.WithField("platform", b.platform.String()).Warn("image checks skipped")
				continue
			}
			e.Log.WithField("platform", b.platform.String()).Info("checking the image under runc")
			opts := check.ImageOptions{Image: b.img, Want: &pin, Stress: req.Stress, Timeout: req.CheckTimeout, Logger: e.Log, BaselineKind: b.checks.baseline}
			if def.Preload == imagedef.PreloadWrapper {
				opts.Wrapper = []string{layer.WrapperPath}
			}
			r, err := check.Image(ctx, opts)
			if err != nil {
				return fmt.Errorf("image check (%s): %w", b.platform, err)
			}
			e.Log.WithFields(map[string]any{"sqlite": r.Report.Version, "mapped": r.Report.Mapped, "user": r.User, "baseline": r.BaselineKind}).Info("image check passed")
			if pkg := b.checks.pkg; pkg != nil {
				e.Log.WithField("platform", b.platform.String()).Infof("downstream check: a throwaway copy of the image with %s %s added", pkg.Name, pkg.Version)
				start := time.Now()
				r, err := CheckDownstream(ctx, b.img, pkg, opts)
				if err != nil {
					return fmt.Errorf("image check (%s): %w", b.platform, err)
				}
				e.Log.WithFields(map[string]any{"sqlite": r.Report.Version, "mapped": r.Report.Mapped, "baseline": r.BaselinePackage + " (" + r.Report.BaselineVersion + ")",
					"seconds": fmt.Sprintf("%.2f", time.Since(start).Seconds())}).Info("downstream check passed")
			}
		}
		return nil
	}

	var artifact publish.Artifact = imgs[0].img
	if len(imgs) > 1 {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		for _, b := range imgs {
			p := b.platform
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: b.img, Descriptor: v1.Descriptor{Platform: &p}})
		}
		artifact = idx
	}

	// Provenance: every resolved input, for the artifact and each platform image.
	first := imgs[0]
	top, err := artifact.Digest()
	if err != nil {
		return nil, err
	}
	subjects := []provenance.Subject{{Name: plan.Repository, Digest: top.String()}}
	if len(imgs) > 1 {
		for _, b := range imgs {
			d, err := b.img.Digest()
			if err != nil {
				return nil, err
			}
			subjects = append(subjects, provenance.Subject{Name: plan.Repository + " (" + b.platform.String() + ")", Digest: d.String()})
		}
	}
	downstream, checkPackages := downstreamProvenance(checkPlans)
	prov, err := provenance.Statement(provenance.Input{
		DownstreamCheck: downstream, CheckPackages: checkPackages,
		Subjects: subjects, Image: def.Name, Base: first.base.Ref.String(), BaseDigest: first.base.Digest.DigestStr(),
		SQLite: src.Version.String(), SourceURL: e.downloadURL(pin, first.build.Source), ArchiveSHA3: first.build.Source.ArchiveSHA3,
		SQLite3CSHA3: first.build.Source.SQLite3CSHA3, SourceID: first.build.Source.SourceID,
		Patches: provPatches(first.build.Source.Patches), Recipe: first.build.Plan, Toolchain: first.build.Toolchain,
		ToolVersion: ToolVersion, InputsFingerprint: plan.Fingerprint, Started: created, Finished: created,
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	if req.ProvenanceFile != "" {
		if err := fsutil.WriteFileAtomic(req.ProvenanceFile, prov, 0o644); err != nil {
			return nil, err
		}
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
	attach := func(ctx context.Context, ref name.Digest, opts []remote.Option) error {
		_, err := referrers.Attach(ctx, ref, []referrers.Artifact{
			{ArtifactType: sbom.MediaType, MediaType: sbom.MediaType, Data: sbomCompact.Bytes()},
			{ArtifactType: provenance.MediaType, MediaType: provenance.MediaType, Data: provCompact.Bytes()},
		}, opts...)
		return err
	}

	if req.Push == "" {
		if err := checkAll(ctx); err != nil {
			return nil, err
		}
		var tagRefs []name.Tag
		for _, t := range plan.Tags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, err
			}
			tagRefs = append(tagRefs, tag)
		}
		res, err := publish.WriteLocal(req.Output, artifact, tagRefs)
		if err != nil {
			return nil, err
		}
		res.Checks = checkRecords(checkPlans)
		// Beside the layout, where a person or a scanner finds them.
		for file, data := range map[string][]byte{sbom.FileName: first.sbom, provenance.FileName: prov} {
			if err := fsutil.WriteFileAtomic(filepath.Join(req.Output, file), data, 0o644); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
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
	res, err := publish.Push(ctx, repo, artifact, tags, append(req.PushOptions, publish.WithGate(checkAll), publish.WithAttach(attach))...)
	if res != nil && !res.Unchanged {
		res.Checks = checkRecords(checkPlans)
	}
	return res, err
}

// SBOMPath is where the image carries its SPDX document.
const SBOMPath = "/usr/local/share/sqlite-graft/" + sbom.FileName

// downloadURL is where the source came from: the URL used, else the pin's
// canonical sqlite.org address (a local file or mirror is not an identity).
func (e *Env) downloadURL(pin pins.Pin, s *source.Source) string {
	if strings.HasPrefix(s.Origin, "https://") || strings.HasPrefix(s.Origin, "http://") {
		return s.Origin
	}
	kind := pins.Kind(s.ArchiveKind)
	if kind != pins.Amalgamation && kind != pins.Autoconf {
		kind, _ = pin.PreferredKind()
	}
	if urls, err := e.Pins.URLs(pin, kind); err == nil && len(urls) > 0 {
		return urls[0]
	}
	return ""
}

func sbomPatches(ps []source.Patch) []sbom.Patch {
	var out []sbom.Patch
	for _, p := range ps {
		out = append(out, sbom.Patch{Name: p.Name, SHA3: p.SHA3})
	}
	return out
}

func provPatches(ps []source.Patch) []provenance.Patch {
	var out []provenance.Patch
	for _, p := range ps {
		out = append(out, provenance.Patch{Name: p.Name, SHA3: p.SHA3})
	}
	return out
}

// pushTarget splits REPOSITORY[:TAG]; a tag given there replaces the
// definition's tags.
func pushTarget(ref string, tags []string) (name.Repository, []string, error) {
	if t, err := name.NewTag(ref, name.StrictValidation); err == nil {
		return t.Context(), []string{t.TagStr()}, nil
	}
	repo, err := name.NewRepository(ref)
	if err != nil {
		return name.Repository{}, nil, fmt.Errorf("--push %q: want REPOSITORY or REPOSITORY:TAG: %w", ref, err)
	}
	return repo, tags, nil
}

// buildTime is every timestamp of the build: SOURCE_DATE_EPOCH when set, else
// the SQLite release date, so that the same inputs give the same digest.
func buildTime(given time.Time, pin pins.Pin) (time.Time, error) {
	if !given.IsZero() {
		return given.UTC(), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if pin.Date == "" {
		return time.Time{}, fmt.Errorf("SQLite %s has no release date in the pins; set SOURCE_DATE_EPOCH", pin.Version)
	}
	return time.Parse("2006-01-02", pin.Date)
}

// metadata is /usr/local/share/sqlite-graft/build.json: what went in, with
// nothing that varies between machines' temporary paths.
func metadata(def *imagedef.Definition, base *image.Base, b *Build) map[string]any {
	return map[string]any{
		"image":          def.Name,
		"base":           base.Ref.String(),
		"base_digest":    base.Digest.DigestStr(),
		"platform":       base.Platform.String(),
		"libc":           def.Libc,
		"preload":        def.Preload,
		"sqlite":         b.Source.Version.String(),
		"source_id":      b.Source.SourceID,
		"sqlite3_c_sha3": b.Source.SQLite3CSHA3,
		"archive_kind":   b.Source.ArchiveKind,
		"archive_sha3":   b.Source.ArchiveSHA3,
		"patches":        b.Source.Patches,
		"toolchain":      b.Toolchain,
		"steps":          b.Plan.Steps,
	}
}
