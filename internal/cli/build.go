package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
)

// BuildOptions are the flags of `build`.
type BuildOptions struct {
	Image        string
	Local        bool
	Base         string
	Platforms    []string
	Output       string
	Push         string
	Result       string
	Registry     RegistryOptions
	CheckTimeout time.Duration
	Revision     string
	DryRun       bool
	// MaxUnpackedSize caps what a base's (and the finished image's) layers
	// may unpack to, e.g. "4GiB".
	MaxUnpackedSize string
	// The downstream check (a base without a SQLite of its own).
	DistroPackage    string
	DistroRepository string
	SkipDownstream   bool
}

func (o *BuildOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Image, "image", imagedef.DefaultName, "image definition: a file (images/NAME.yaml) or the name of a built-in one ("+strings.Join(imagedef.EmbeddedNames(), ", ")+")")
	fs.BoolVar(&o.Local, "local", false, "compile with the host's toolchain (cc / musl-gcc) instead of Dagger; builds the host's platform")
	fs.StringVar(&o.Base, "base", "", "base image reference overriding the definition's (e.g. a mirror, or a test registry)")
	fs.StringSliceVar(&o.Platforms, "platform", nil, "platforms to build, e.g. linux/amd64,linux/arm64 (default: the definition's; with --local, the host's)")
	fs.StringVar(&o.Output, "output", "out", "without --push: directory for the OCI layout (oci/) and the docker-loadable tarball (image.tar)")
	fs.StringVar(&o.Push, "push", "", "push to REPOSITORY (tags from the definition) or REPOSITORY:TAG")
	fs.StringVar(&o.Result, "result", "", "write the result (ref@digest, tags, unchanged, bytes uploaded) as JSON to this file")
	o.Registry.AddFlags(fs)
	fs.DurationVar(&o.CheckTimeout, "check-timeout", check.DefaultRunTimeout, "longest run of one probe or client inside the image during the image checks (the base's code runs in each); the stress test gets more for its rows")
	fs.BoolVar(&o.DryRun, "dry-run", false, "resolve the inputs (base digests, pin, patches, recipe), compare them with what the registry holds, print the plan and the reasons, build nothing")
	fs.StringVar(&o.Revision, "revision", os.Getenv("GITHUB_SHA"), "source revision recorded in org.opencontainers.image.revision")
	fs.StringVar(&o.MaxUnpackedSize, "max-unpacked-size", humanize.IBytes(uint64(imagefs.DefaultMaxUnpackedSize)),
		"refuse a base (or finished image) whose layers unpack to more than this, e.g. 512MiB, 8GiB: a small compressed layer can unpack to a disk's worth")
	fs.StringVar(&o.DistroPackage, "distro-package", "", "the distribution's SQLite package file (.apk, .deb) for the downstream check, instead of fetching it (air-gapped builds); it must be the definition's distro_package at distro_sqlite")
	fs.StringVar(&o.DistroRepository, "distro-repository", "", "repository to fetch the downstream check's package from, instead of the definition's distro_repository (a mirror: Alpine .../alpine/v3.21/main, Debian .../debian/dists/trixie/main)")
	fs.BoolVar(&o.SkipDownstream, "skip-downstream-check", false, "do not run the downstream check on a base without a SQLite of its own (recorded in --result and the provenance)")
}

// maxUnpacked parses --max-unpacked-size.
func (o *BuildOptions) maxUnpacked() (int64, error) {
	n, err := humanize.ParseBytes(o.MaxUnpackedSize)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, usageErrorf("--max-unpacked-size %q: want a size such as 512MiB or 8GiB", o.MaxUnpackedSize)
	}
	return int64(n), nil
}

func (a *app) buildCmd() *cobra.Command {
	var src SourceOptions
	var bo BuildOptions
	var tests SQLiteTestsOptions
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the hardened base image: base + grafted SQLite, checked under runc, then written or pushed",
		Long: `build compiles the pinned SQLite (as 'compile' does), appends one layer to the
base image — /usr/local/lib/libsqlite3.so.<version> and its libsqlite3.so.0 link,
/usr/local/bin/sqlite3, /usr/local/bin/sqlite-preload, the licence and a
metadata file — sets the config (non-root user, preload environment, labels),
then runs the image checks inside the finished image with runc, as its user:
the pinned version and source id from a probe linked against
libsqlite3.so.0, exactly one libsqlite3 mapped in that process (the graft),
the stress test, no setuid files, a non-root user. Only then is anything
written.

What the probe links, and what the graft must be a superset of (compile
options, exported symbols), depends on the base:
  - a base with its own SQLite (python:3.13-alpine3.21, debian:13): that
    library;
  - a base without one (alpine:3.21, alpine:3.22): the soname alone, which
    the image's loader must resolve to the graft; then the downstream check
    runs on a throwaway copy of the image (never written or pushed) with the
    distribution's package added (distro_package at distro_sqlite: Alpine's
    sqlite-libs, Debian's libsqlite3-0), as an application image that runs
    'apk add sqlite-libs' gets it: a program linked against that package
    must still get the graft. The package is fetched from distro_repository
    (or --distro-repository) and verified against the index (APKINDEX
    checksum, Packages SHA256), or given with --distro-package FILE. Without
    it the build fails; --skip-downstream-check opts out, and the result
    file and the provenance say so.

With --sqlite-tests LEVEL it first runs SQLite's own tests (quick, wal,
veryquick) from the release's verified canonical source tree, built with the
recipe's options for the image's libc: a failure stops the build; where no
verified tree of the version exists the tests are reported "not run", an
error with --require-sqlite-tests. The result is recorded in the image's
build.json, the provenance, the result file and a test-result referrer.

Without --push the image goes to --output as an OCI layout and a tarball that
'docker load' reads. With --push it is pushed by digest, then tagged; when the
registry already has this exact digest under every tag, nothing is pushed and
build says "unchanged". The same inputs always give the same digest (every
timestamp is SOURCE_DATE_EPOCH, default the SQLite release date).`,
		Example: `  # the default image (alpine-3.21, SQLite 3.53.4) into ./out, no registry
  sqlite-graft build --local

  # push; credentials from ~/.docker/config.json, or a user and a secret from the environment
  sqlite-graft build --local --image images/alpine-3.21.yaml --push ghcr.io/acme/alpine
  REGISTRY_TOKEN=... sqlite-graft build --local --push ghcr.io/acme/alpine --registry-username ci --registry-password-env REGISTRY_TOKEN --result result.json

  # air-gapped: the downstream check's package from a file (alpine:3.21 has no SQLite of its own)
  sqlite-graft build --local --image alpine-3.21 --distro-package ./sqlite-libs-3.48.0-r4.apk`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, err := bo.definition(a)
			if err != nil {
				return err
			}
			env, err := a.env()
			if err != nil {
				return err
			}
			// The SQLite of a build is the definition's unless --sqlite says
			// otherwise: decided by the definition, as the Dagger module does.
			v, err := def.Version(src.SQLite)
			if err != nil {
				return usageErrorf("--sqlite: %v", err)
			}
			req := graft.SourceRequest{Version: v, SHA3: src.SHA3, From: src.From}
			cache, err := a.global.Cache()
			if err != nil {
				return err
			}
			platforms, err := bo.platforms(a, def)
			if err != nil {
				return err
			}
			compiler, err := a.compiler(cmd.Context(), &bo, def, cache)
			if err != nil {
				return err
			}
			baseRef := def.Base
			if bo.Base != "" {
				baseRef = bo.Base
			}
			ra, err := bo.Registry.access(bo.Push, baseRef)
			if err != nil {
				return err
			}
			if bo.CheckTimeout <= 0 {
				return usageErrorf("--check-timeout %s: want a positive duration", bo.CheckTimeout)
			}
			maxUnpacked, err := bo.maxUnpacked()
			if err != nil {
				return err
			}
			gate, err := tests.request(a)
			if err != nil {
				return err
			}
			stress := check.DefaultStress()
			ireq := graft.ImageRequest{
				SQLiteTests:     gate,
				Def:             def,
				Source:          req,
				Base:            bo.Base,
				Platforms:       platforms,
				Compiler:        compiler,
				Revision:        bo.Revision,
				SourceURL:       "https://github.com/sqlite-graft/sqlite-graft",
				Output:          bo.Output,
				Push:            bo.Push,
				BaseOptions:     ra.remote,
				PushOptions:     append([]publish.Option{publish.WithLogger(a.log)}, ra.push...),
				RegistryOptions: ra.remote,
				Stress:          &stress,
				MaxUnpackedSize: maxUnpacked,
				CheckTimeout:    bo.CheckTimeout,
				Downstream: graft.Downstream{
					Package: bo.DistroPackage, Repository: bo.DistroRepository, Skip: bo.SkipDownstream,
				},
			}
			if bo.Result != "" {
				// The provenance statement goes beside the result file.
				ireq.ProvenanceFile = filepath.Join(filepath.Dir(bo.Result), provenance.FileName)
			}
			if bo.DryRun {
				plan, err := env.PlanImage(cmd.Context(), ireq)
				if err != nil {
					return ra.explain(err)
				}
				return printPlan(a, plan)
			}
			res, err := env.BuildImage(cmd.Context(), ireq)
			if errors.Is(err, imagefs.ErrTooLarge) {
				return fmt.Errorf("%w (--max-unpacked-size raises the cap)", err)
			}
			if err != nil {
				return ra.explain(err)
			}
			if bo.Result != "" {
				if err := publish.WriteResult(bo.Result, res); err != nil {
					return err
				}
			}
			switch {
			case res.Unchanged:
				fmt.Fprintf(a.stdout, "unchanged %s: every tag already holds a build of these inputs; nothing built or pushed\n", res.Reference)
			case bo.Push == "":
				fmt.Fprintf(a.stdout, "%s written to %s (OCI layout %s, docker tarball %s)\n", res.Reference, bo.Output, res.Layout, res.Tarball)
			default:
				fmt.Fprintf(a.stdout, "%s\n", res.Reference)
			}
			return nil
		},
	}
	src.AddFlags(cmd.Flags(), SQLiteDefaultDefinition)
	bo.AddFlags(cmd.Flags())
	tests.addGateFlags(cmd.Flags(), "")
	return cmd
}

func printPlan(a *app, p *graft.BuildPlan) error {
	if a.global.LogFormat == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	w := a.stdout
	fmt.Fprintf(w, "image:       %s, SQLite %s\n", p.Image, p.SQLite)
	for _, pl := range p.Platforms {
		fmt.Fprintf(w, "base:        %s  %s\n", pl, p.Inputs.Bases[pl])
	}
	fmt.Fprintf(w, "tags:        %s\n", strings.Join(p.Tags, ", "))
	fmt.Fprintf(w, "fingerprint: %s\n", p.Fingerprint)
	if p.Unchanged {
		fmt.Fprintln(w, "plan:        nothing to do")
	} else {
		fmt.Fprintln(w, "plan:        build, check, write")
	}
	for _, r := range p.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	return nil
}

// definition loads --image: a file when it names one, else a built-in name.
func (o *BuildOptions) definition(a *app) (*imagedef.Definition, error) {
	p, err := a.global.Pins()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Image); err == nil || strings.ContainsAny(o.Image, "/") || strings.HasSuffix(o.Image, ".yaml") {
		return imagedef.LoadWithPins(o.Image, p)
	}
	return imagedef.Embedded(o.Image)
}

// platforms are --platform, or with --local the host's (others need Dagger).
func (o *BuildOptions) platforms(a *app, def *imagedef.Definition) ([]v1.Platform, error) {
	list := o.Platforms
	if len(list) == 0 && o.Local {
		host := "linux/" + runtime.GOARCH
		if len(def.Platforms) > 1 || def.Platforms[0] != host {
			a.log.Warnf("--local builds %s only; %s lists %v (build those with the Dagger module)", host, def.File, def.Platforms)
		}
		list = []string{host}
	}
	var out []v1.Platform
	for _, s := range list {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return nil, usageErrorf("--platform %q: %v", s, err)
		}
		out = append(out, *p)
	}
	return out, nil
}
