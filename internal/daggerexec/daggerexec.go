// Package daggerexec is the Dagger executor of the compile recipe: the same
// plan (internal/recipe) that the local executor runs, step by step, inside
// the image definition's own base image, pinned by digest, with the
// definition's own toolchain. It is written against dagger.io/dagger's
// *dagger.Query, so it runs over any engine connection — a `dagger run`
// session (the CLI), the module's own connection (ci/, through the ID bridge)
// or a recording connection (the tests) — and it never calls Host() or
// Connect() itself: files cross between this process and the engine through
// a Files given by the caller.
//
// What runs in the engine, for one target (a definition and a platform):
//
//	container(platform) . from(<base>@sha256:...)            the base, by digest, never a tag
//	  . withMountedCache(<package cache>, cacheVolume(...))  /var/cache/apk, or apt's cache and lists
//	  . withExec(["sh", "-c", <toolchain>])                  e.g. apk add --no-cache build-base
//	  . withDirectory("/build", <verified source>)           verified (SHA3-256) in Go before upload
//	  . withNewFile("/sqlite-graft/plan.json", <plan>)
//	  . withWorkdir("/build")
//	  . withExec(<plan step 1 argv>) ... withExec(<plan step n argv>)
//
// and the products are collected into a fresh directory. Nothing else is
// added: the argv are the plan's, byte for byte (no shell, no variable
// expansion: "$ORIGIN" in the shell's rpath reaches the linker as written).
package daggerexec

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"

	"dagger.io/dagger"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// CC is the compiler command the plans for this executor name: the
// toolchain's own cc (Alpine's build-base and Debian's gcc both provide it).
const CC = "cc"

// Paths inside the build container.
const (
	WorkDir  = "/build"                  // source files, then every step's outputs
	PlanPath = "/sqlite-graft/plan.json" // the plan being run, for a person inspecting the container
)

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Target is where one build runs: a base image pinned by digest, for one
// platform, with the definition's toolchain.
type Target struct {
	// Base is the base image by digest, as "<tag reference>@sha256:<hex>"
	// (e.g. docker.io/library/alpine:3.21@sha256:...): the tag for people,
	// the digest for the engine.
	Base string
	// Platform is os/arch[/variant], e.g. linux/arm64.
	Platform string
	// Libc is imagedef.Musl or imagedef.Glibc; it picks the package caches.
	Libc string
	// Toolchain is the definition's shell command that installs a C
	// toolchain, run as `sh -c <toolchain>`.
	Toolchain string
	// CacheKey names the base for the package-cache volumes, e.g.
	// "alpine-3.21": the last path element of the base repository and its tag.
	CacheKey string
}

// NewTarget is the target for def on platform, with the base (def.Base, or
// base when given) pinned to digest, the digest of the platform's image (or
// of the multi-platform index) that the base resolved to.
func NewTarget(def *imagedef.Definition, base, platform, digest string) (Target, error) {
	if base == "" {
		base = def.Base
	}
	tag, err := name.NewTag(base, name.StrictValidation)
	if err != nil || strings.Contains(base, "@") {
		return Target{}, fmt.Errorf("%s: base %q: want a tag reference, which is then pinned by digest", def.File, base)
	}
	if !digestRE.MatchString(digest) {
		return Target{}, fmt.Errorf("%s: base %s: digest %q: want sha256: and 64 lower-case hex digits", def.File, base, digest)
	}
	if _, err := v1.ParsePlatform(platform); err != nil || !strings.Contains(platform, "/") {
		return Target{}, fmt.Errorf("%s: platform %q: want os/arch[/variant]", def.File, platform)
	}
	t := Target{
		Base:      base + "@" + digest,
		Platform:  platform,
		Libc:      def.Libc,
		Toolchain: def.Toolchain,
		CacheKey:  path.Base(tag.RepositoryStr()) + "-" + tag.TagStr(),
	}
	return t, t.validate()
}

func (t Target) validate() error {
	ref, dig, ok := strings.Cut(t.Base, "@")
	if !ok || !digestRE.MatchString(dig) {
		return fmt.Errorf("daggerexec: base %q is not pinned by digest (want <reference>@sha256:<64 hex>)", t.Base)
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("daggerexec: base %q: %v", t.Base, err)
	}
	if _, err := name.NewDigest(t.Base); err != nil {
		return fmt.Errorf("daggerexec: base %q: %v", t.Base, err)
	}
	if t.Platform == "" {
		return fmt.Errorf("daggerexec: base %s: no platform", t.Base)
	}
	if strings.TrimSpace(t.Toolchain) == "" {
		return fmt.Errorf("daggerexec: base %s: no toolchain command", t.Base)
	}
	if t.Libc != imagedef.Musl && t.Libc != imagedef.Glibc {
		return fmt.Errorf("daggerexec: base %s: libc %q: want %s or %s", t.Base, t.Libc, imagedef.Musl, imagedef.Glibc)
	}
	if t.CacheKey == "" {
		return fmt.Errorf("daggerexec: base %s: no cache key", t.Base)
	}
	return nil
}

// Cache is one package-cache volume of a target.
type Cache struct {
	Path string // where it is mounted
	Key  string // the cache volume's key
}

// Caches are the package-manager caches mounted while the toolchain is
// installed, one volume per base and architecture (packages differ per
// architecture): /var/cache/apk on musl (Alpine), /var/cache/apt and
// /var/lib/apt/lists on glibc (Debian).
//
// Note: `apk add --no-cache` (the shipped definitions' toolchain) bypasses
// /var/cache/apk, and Debian's images delete downloaded .debs
// (/etc/apt/apt.conf.d/docker-clean); what keeps the install from running
// again is the engine's cache of the toolchain step itself, keyed by the base
// digest and the command. The volumes pay off for toolchain commands that
// keep a cache, and for apt's lists.
func (t Target) Caches() []Cache {
	arch := strings.ReplaceAll(strings.TrimPrefix(t.Platform, "linux/"), "/", "-")
	suffix := t.CacheKey + "-" + arch
	if t.Libc == imagedef.Glibc {
		return []Cache{
			{Path: "/var/cache/apt", Key: "sqlite-graft-apt-" + suffix},
			{Path: "/var/lib/apt/lists", Key: "sqlite-graft-apt-lists-" + suffix},
		}
	}
	return []Cache{{Path: "/var/cache/apk", Key: "sqlite-graft-apk-" + suffix}}
}

// Builder is the target's base with the toolchain installed: the container
// every step runs in. The package caches are mounted LOCKED: two runs for
// the same base and architecture take turns (apt and apk lock them anyway).
func Builder(q *dagger.Query, t Target) (*dagger.Container, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	ctr := q.Container(dagger.ContainerOpts{Platform: dagger.Platform(t.Platform)}).From(t.Base)
	for _, c := range t.Caches() {
		ctr = ctr.WithMountedCache(c.Path, q.CacheVolume(c.Key), dagger.ContainerWithMountedCacheOpts{Sharing: dagger.CacheSharingModeLocked})
	}
	return ctr.WithExec([]string{"sh", "-c", t.Toolchain}), nil
}

// Build runs plan for target t on the source directory src (sqlite3.c,
// sqlite3.h and maybe shell.c, verified and patched before it was
// uploaded) and returns a directory holding exactly the plan's products.
// Like every Dagger call it is lazy: the engine runs it when the directory
// is used (Sync, Export, an ID passed on); BuildAll runs several at once.
//
// The steps run in plan order, one withExec each, with the plan's argv
// unchanged: plans for this executor are made with CC ("cc").
func Build(q *dagger.Query, t Target, plan recipe.Plan, src *dagger.Directory) (*dagger.Directory, error) {
	if src == nil {
		return nil, fmt.Errorf("daggerexec: no source directory")
	}
	if len(plan.Steps) == 0 || len(plan.Products) == 0 {
		return nil, fmt.Errorf("daggerexec: the plan has no steps or no products")
	}
	for _, s := range plan.Steps {
		if len(s.Argv) == 0 {
			return nil, fmt.Errorf("daggerexec: plan step %s has no argv", s.Name)
		}
	}
	for _, p := range plan.Products {
		if p == "" || strings.Contains(p, "/") || p == "." || p == ".." {
			return nil, fmt.Errorf("daggerexec: product %q: want a file name", p)
		}
	}
	planJSON, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return nil, err
	}
	ctr, err := Builder(q, t)
	if err != nil {
		return nil, err
	}
	// A copy (withDirectory), not a mount: the steps write their outputs
	// beside the sources, and a copy keeps them in the container's own
	// file system, where File() reads them.
	ctr = ctr.WithDirectory(WorkDir, src).
		WithNewFile(PlanPath, string(planJSON)+"\n").
		WithWorkdir(WorkDir)
	for _, s := range plan.Steps {
		ctr = ctr.WithExec(s.Argv)
	}
	out := q.Directory()
	for _, p := range plan.Products {
		out = out.WithFile(p, ctr.File(WorkDir+"/"+p))
	}
	return out, nil
}

// BuildAll builds plan for every target at once (one engine evaluation per
// target, concurrently) and returns each target's products, evaluated, in
// the order of targets. The first failure cancels the others; its error
// names the platform.
func BuildAll(ctx context.Context, q *dagger.Query, targets []Target, plan recipe.Plan, src *dagger.Directory) ([]*dagger.Directory, error) {
	dirs := make([]*dagger.Directory, len(targets))
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range targets {
		d, err := Build(q, t, plan, src)
		if err != nil {
			return nil, err
		}
		g.Go(func() error {
			synced, err := d.Sync(gctx)
			if err != nil {
				return fmt.Errorf("compile in %s (%s): %w", t.Base, t.Platform, withOutput(err))
			}
			dirs[i] = synced
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return dirs, nil
}

// ToolchainScript prints the compiler's first --version line and its target
// triple; Toolchain runs it in the builder.
const ToolchainScript = CC + " --version | head -n 1 && " + CC + " -dumpmachine"

// Toolchain identifies the compiler of target t (version, target triple,
// libc, base by digest, platform) for provenance and cache keys.
func Toolchain(ctx context.Context, q *dagger.Query, t Target) (string, error) {
	ctr, err := Builder(q, t)
	if err != nil {
		return "", err
	}
	out, err := ctr.WithExec([]string{"sh", "-c", ToolchainScript}).Stdout(ctx)
	if err != nil {
		return "", fmt.Errorf("toolchain in %s (%s): %w", t.Base, t.Platform, withOutput(err))
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	version, machine := strings.TrimSpace(lines[0]), ""
	if len(lines) > 1 {
		machine = strings.TrimSpace(lines[len(lines)-1])
	}
	return fmt.Sprintf("%s: %s; target %s; libc %s; in %s (%s) via Dagger", CC, version, machine, t.Libc, t.Base, t.Platform), nil
}
