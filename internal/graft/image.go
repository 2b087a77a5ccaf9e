package graft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/image"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/ldcache"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/sbom"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
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
	// Checker gives the sandbox that runs each platform's images for the
	// image checks; nil: LocalChecker (runc, this machine's platform).
	Checker   Checker
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
	// SQLiteTests asks for the release gate, run beside the compiles.
	SQLiteTests SQLiteTests
	// CheckOnly builds and checks, and writes nothing: no output, no push
	// (the result names the digest that passed).
	CheckOnly bool
	// Downstream gets the distribution's SQLite package for the downstream
	// check of a base without a SQLite of its own.
	Downstream Downstream
	// MaxUnpackedSize caps what an image's layers may unpack to, when the
	// base is read and when the finished image is checked; 0 means
	// imagefs.DefaultMaxUnpackedSize.
	MaxUnpackedSize int64
}

// BuildImage builds one image definition, in named steps:
//
//	plan      PlanImage: every input resolved, compared with what the tags hold (no-op first)
//	harden    every base read, verified and its hardening planned, before any compile
//	gate      SQLite's own tests from the verified canonical tree (releaseGate), when asked,
//	          beside the compiles (compilePlatform: per platform, the Compiler)
//	graft     per platform, with the gate's result: the graft layer, the image (assemblePlatform)
//	document  the SBOM, the provenance and the other referrers (documents)
//	check     every image checked from inside, in its platform's Sandbox (checkImages)
//	publish   the check as the gate, then an OCI layout or a push: referrers, then tags (publish)
//
// Nothing is written (no output directory, no tag, no provenance file)
// unless the checks passed.
func (e *Env) BuildImage(ctx context.Context, req ImageRequest) (*publish.Result, error) {
	plan, err := e.PlanImage(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, r := range plan.Reasons {
		e.Log.WithField("image", req.Def.Name).Info(r)
	}
	if req.Push != "" && plan.Unchanged {
		return plan.unchangedResult(), nil
	}
	work, err := os.MkdirTemp("", "sqlite-graft-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	hards, err := hardenBases(req.Def, plan, imagefs.Limits{MaxUnpackedSize: req.MaxUnpackedSize})
	defer func() {
		for _, h := range hards {
			h.scan.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	// The gate and the compiles need nothing of each other until a layer
	// records the gate's result, so they run side by side: the
	// testfixture's compile beside the library's, and the WAL tests, which
	// mostly wait, beside the rest. The first failure cancels the other.
	var tests *sqltests.Result
	imgs := make([]*platformImage, len(plan.Bases))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		tests, err = e.releaseGate(gctx, req, plan)
		return err
	})
	g.Go(func() error {
		for i, base := range plan.Bases {
			pi, err := e.compilePlatform(gctx, req, plan, base, hards[i], work)
			if err != nil {
				return err
			}
			imgs[i] = pi
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, pi := range imgs {
		if err := e.assemblePlatform(req, plan, pi, hards[i], work, tests); err != nil {
			return nil, err
		}
	}
	docs, err := e.documents(req, plan, imgs, hards[0], tests)
	if err != nil {
		return nil, err
	}
	res, err := e.publish(ctx, req, plan, imgs, docs)
	if res != nil && !res.Unchanged {
		res.SQLiteTests = testsJSON(tests)
	}
	return res, err
}

// unchangedResult is the result of a push whose every tag already holds a
// build of the plan's inputs: nothing built, nothing pushed.
func (p *BuildPlan) unchangedResult() *publish.Result {
	res := &publish.Result{Unchanged: true, Tags: p.Tags, Pushed: []string{}, Platforms: p.Platforms}
	for _, d := range p.Current {
		res.Digest = d.(string)
	}
	res.Reference = p.Repository + "@" + res.Digest
	return res
}

// platformImage is one platform's image and what made it.
type platformImage struct {
	platform v1.Platform
	base     *image.Base
	build    *Build
	sbom     []byte
	img      v1.Image
	// sandbox runs the image's processes for the check; nil when no
	// sandbox of the request's Checker can run this platform.
	sandbox check.Sandbox
	checks  *downstreamPlan
}

// compilePlatform compiles SQLite for one platform: how its image will be
// checked is decided first (a package the downstream check needs and cannot
// have stops the build before any compile), then the library is compiled.
func (e *Env) compilePlatform(ctx context.Context, req ImageRequest, plan *BuildPlan, base *image.Base, hard hardened, work string) (*platformImage, error) {
	pl := base.Platform
	log := e.Log.WithField("platform", pl.String())
	log.WithField("digest", base.Digest.DigestStr()).Infof("base %s", base.Ref)
	pi := &platformImage{platform: pl, base: base}
	sandbox, err := req.checker()(pl)
	switch {
	case errors.Is(err, ErrCannotRun):
		log.Warnf("the image checks of this platform are skipped: %v", err)
	case err != nil:
		return nil, err
	default:
		pi.sandbox = sandbox
	}
	ownSQLite := hard.scan.Exists(check.DistroLibrary(req.Def.Libc))
	if pi.checks, err = planChecks(ctx, req.Def, pl, pi.sandbox != nil, ownSQLite, req.Downstream, log); err != nil {
		return nil, err
	}
	exec, cc, err := req.Compiler(pl)
	if err != nil {
		return nil, err
	}
	src := req.Source
	src.Version = plan.Version
	if pi.build, err = e.Compile(ctx, src, exec, cc, platformDir(work, pl)); err != nil {
		return nil, err
	}
	return pi, nil
}

// assemblePlatform grafts pi's compiled SQLite onto its hardened base: the
// layer (which records the gate's result, tests) and the image.
func (e *Env) assemblePlatform(req ImageRequest, plan *BuildPlan, pi *platformImage, hard hardened, work string, tests *sqltests.Result) error {
	l, err := e.graftLayer(req.Def, plan, pi, platformDir(work, pi.platform), hard, req.MaxUnpackedSize, tests)
	if err != nil {
		return err
	}
	hard.scan.Close() // the layer holds its own copy of the base's files now
	_, inputsJSON := plan.Inputs.Fingerprint()
	b := pi.build.Source
	pi.img, err = image.Assemble(image.Graft{
		Def: req.Def, Base: pi.base, Layer: l, Version: plan.Version, SourceID: b.SourceID,
		SQLite3C: b.SQLite3CSHA3, Archive: b.ArchiveSHA3, Created: plan.Created,
		Revision: req.Revision, SourceURL: req.SourceURL,
		Labels: map[string]string{LabelInputs: string(inputsJSON), LabelFingerprint: plan.Fingerprint},
	})
	return err
}

// platformDir is where a platform's compile puts its products.
func platformDir(work string, pl v1.Platform) string {
	return filepath.Join(work, pl.OS+"-"+pl.Architecture+pl.Variant)
}

// graftLayer writes the one layer of pi: the compiled products in out, the
// SBOM (also kept in pi), the build metadata, the base's hardening and, on
// glibc, the loader's cache.
func (e *Env) graftLayer(def *imagedef.Definition, plan *BuildPlan, pi *platformImage, out string, hard hardened, maxUnpacked int64, tests *sqltests.Result) (v1.Layer, error) {
	b := pi.build
	shell := ""
	if b.Source.HasShell {
		shell = filepath.Join(out, "sqlite3")
	} else {
		e.Log.WithField("platform", pi.platform.String()).Warn("the source has no shell.c: the image ships no sqlite3 shell (the distro's refuses a preloaded library of another version)")
	}
	var err error
	pi.sbom, err = sbom.JSON(sbom.Input{
		// No ImageRef: the image's bytes must not depend on where it is
		// pushed (same inputs, same digest in every registry).
		ImageName: def.Name, Base: pi.base.Ref.String(), BaseDigest: pi.base.Digest.DigestStr(),
		SQLite: plan.Version.String(), DownloadURL: e.downloadURL(plan.Pin, b.Source), ArchiveSHA3: b.Source.ArchiveSHA3,
		SQLite3CSHA3: b.Source.SQLite3CSHA3, SourceID: b.Source.SourceID, Patches: sbomPatches(b.Source.Patches),
		Defines: e.Recipe.DefineFlags(), Toolchain: b.Toolchain, ToolVersion: ToolVersion, Created: plan.Created,
	})
	if err != nil {
		return nil, fmt.Errorf("SBOM: %w", err)
	}
	in := layer.Input{
		Library:   filepath.Join(out, "libsqlite3.so.0"),
		Shell:     shell,
		Version:   plan.Version,
		Libc:      def.Libc,
		Preload:   def.Preload,
		Metadata:  metadata(def, pi.base, b, tests),
		Created:   plan.Created,
		Extra:     append(slices.Clone(hard.extra), layer.File{Path: SBOMPath, Mode: 0o644, Data: pi.sbom}),
		Whiteouts: hard.whiteouts,
	}
	l, err := layer.Build(in)
	if err != nil || def.Libc != imagedef.Glibc {
		return l, err
	}
	// glibc finds libraries through /etc/ld.so.cache, which lists the
	// distribution's copy first until ldconfig runs again: the graft ships
	// the cache ldconfig would write with it in place (/usr/local/lib first,
	// as Debian's libc.conf says), so that a process whose environment was
	// cleared (env -i, sudo, cron) gets the graft too.
	cache, err := loaderCache(pi.base, l, maxUnpacked)
	if err != nil {
		return nil, err
	}
	in.Extra = append(in.Extra, layer.File{Path: ldcache.Path, Mode: 0o644, Data: cache})
	return layer.Build(in)
}

// loaderCache is the /etc/ld.so.cache of base with the layer l on top, as
// glibc's ldconfig would write it there.
func loaderCache(base *image.Base, l v1.Layer, maxUnpacked int64) ([]byte, error) {
	img, err := mutate.AppendLayers(base.Image, l)
	if err != nil {
		return nil, err
	}
	files, err := imagefs.Open(img, imagefs.Limits{MaxUnpackedSize: maxUnpacked})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ldcache.Path, err)
	}
	defer files.Close()
	cache, err := ldcache.Generate(files.IOFS(), ldcache.Options{Arch: base.Platform.Architecture})
	if err != nil {
		return nil, fmt.Errorf("%s for %s: %w", ldcache.Path, base.Digest, err)
	}
	return cache, nil
}

// hardened is what hardening adds to one base.
type hardened struct {
	scan               *image.Scan // open until the graft layer holds its copies
	extra              []layer.File
	whiteouts          []string
	labels, annotation map[string]string // the base's, inherited
}

// hardenBases reads each base of the plan and plans its hardening; the
// scans it returns (also with an error) are the caller's to close.
func hardenBases(def *imagedef.Definition, plan *BuildPlan, limits imagefs.Limits) ([]hardened, error) {
	var hards []hardened
	for _, base := range plan.Bases {
		scan, err := image.ScanBase(base.Image, limits)
		if err != nil {
			return hards, fmt.Errorf("base %s: %w", base.Digest, err)
		}
		h := hardened{scan: scan}
		hards = append(hards, h)
		if h.extra, h.whiteouts, err = image.Hardening(def, scan); err != nil {
			return hards, fmt.Errorf("base %s: %w", base.Digest, err)
		}
		written := []string{layer.LibraryFile(plan.Version), layer.ShellPath, layer.WrapperPath, layer.LicensePath, layer.MetadataPath, SBOMPath}
		if def.Libc == imagedef.Glibc {
			written = append(written, ldcache.Path)
		}
		for _, f := range h.extra {
			written = append(written, f.Path)
		}
		if err := scan.CheckParents(written...); err != nil {
			return hards, fmt.Errorf("base %s: %w", base.Digest, err)
		}
		if h.labels, h.annotation, err = image.Inherited(base.Image); err != nil {
			return hards, fmt.Errorf("base %s: %w", base.Digest, err)
		}
		hards[len(hards)-1] = h
	}
	return hards, nil
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
func metadata(def *imagedef.Definition, base *image.Base, b *Build, tests *sqltests.Result) map[string]any {
	m := map[string]any{
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
	if rec := testsRecord(tests); rec != nil {
		m["sqlite_tests"] = rec
	}
	return m
}
