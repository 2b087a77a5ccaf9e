package daggerexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"dagger.io/dagger"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/image"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// Files moves files between this process's file system and the engine. The
// CLI's implementation uses the session's Host() (internal/cli); the
// module's reads and writes its own scratch directory (ModuleFiles).
type Files interface {
	// Directory uploads the directory at path.
	Directory(ctx context.Context, path string) (*dagger.Directory, error)
	// File uploads the file at path.
	File(ctx context.Context, path string) (*dagger.File, error)
	// Export writes the contents of d into the directory at path.
	Export(ctx context.Context, d *dagger.Directory, path string) error
}

// ResolveFunc resolves a base reference for one platform to the digest of
// that platform's image ("sha256:...").
type ResolveFunc func(ctx context.Context, ref string, platform v1.Platform) (string, error)

// ResolveRemote resolves through the registry with go-containerregistry, the
// way graft.BuildImage pulls the base (image.Pull), so the build container
// and the assembled image start from the same image.
func ResolveRemote(opts ...remote.Option) ResolveFunc {
	return func(ctx context.Context, ref string, platform v1.Platform) (string, error) {
		b, err := image.Pull(ctx, ref, platform, opts...)
		if err != nil {
			return "", err
		}
		return b.Digest.DigestStr(), nil
	}
}

// Executors give graft.BuildImage (through its Compiler hook) and
// graft.Env.Compile a recipe.Executor per platform that runs in the engine.
// The builds of all Platforms run at once: the first Build call (the plan
// and the source are the same for every platform) starts one build per
// platform, concurrently, and later calls for the other platforms take
// their finished products.
type Executors struct {
	Query *dagger.Query
	Def   *imagedef.Definition
	// Base overrides Def.Base (a mirror, a test registry); it is resolved to
	// a digest per platform.
	Base string
	// Platforms are the platforms the caller will ask for; they are built
	// together. A platform asked for that is not listed is built alone.
	Platforms []v1.Platform
	Files     Files
	// Resolve pins the base; nil means ResolveRemote().
	Resolve ResolveFunc
	Log     logrus.FieldLogger

	mu      sync.Mutex
	targets map[string]Target
	batch   *batch
}

type batch struct {
	key  string
	done chan struct{}
	dirs map[string]*dagger.Directory
	err  error
}

// Compiler is the graft.Compiler over these executors; ctx bounds the
// resolution of the base for each platform.
func (e *Executors) Compiler(ctx context.Context) graft.Compiler {
	return func(p v1.Platform) (recipe.Executor, string, error) {
		if _, err := e.target(ctx, p); err != nil {
			return nil, "", err
		}
		return &Executor{set: e, platform: p}, CC, nil
	}
}

// Checker is the graft.Checker over these executors: each platform's images
// run in the engine (another architecture under the engine's emulation),
// the probe compiled in that platform's build container.
func (e *Executors) Checker(ctx context.Context) graft.Checker {
	return func(p v1.Platform) (check.Sandbox, error) {
		t, err := e.target(ctx, p)
		if err != nil {
			return nil, err
		}
		return &Sandbox{Query: e.Query, Files: e.Files, Target: t}, nil
	}
}

// Executor is a recipe.Executor for one platform.
func (e *Executors) Executor(ctx context.Context, p v1.Platform) (*Executor, error) {
	if _, err := e.target(ctx, p); err != nil {
		return nil, err
	}
	return &Executor{set: e, platform: p}, nil
}

// Target is the pinned target of platform p (resolving the base once).
func (e *Executors) Target(ctx context.Context, p v1.Platform) (Target, error) {
	return e.target(ctx, p)
}

func (e *Executors) log() logrus.FieldLogger {
	if e.Log == nil {
		return logrus.StandardLogger()
	}
	return e.Log
}

func (e *Executors) target(ctx context.Context, p v1.Platform) (Target, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.targets[p.String()]; ok {
		return t, nil
	}
	if e.Query == nil || e.Def == nil || e.Files == nil {
		return Target{}, fmt.Errorf("daggerexec: Executors needs a Query, a definition and Files")
	}
	ref := e.Base
	if ref == "" {
		ref = e.Def.Base
	}
	resolve := e.Resolve
	if resolve == nil {
		resolve = ResolveRemote()
	}
	digest, err := resolve(ctx, ref, p)
	if err != nil {
		return Target{}, err
	}
	t, err := NewTarget(e.Def, ref, p.String(), digest)
	if err != nil {
		return Target{}, err
	}
	if e.targets == nil {
		e.targets = map[string]Target{}
	}
	e.targets[p.String()] = t
	e.log().WithField("platform", p.String()).Infof("build container: %s", t.Base)
	return t, nil
}

// Executor runs the recipe for one platform in the engine.
type Executor struct {
	set      *Executors
	platform v1.Platform
}

// CC is the compiler the plan must name.
func (x *Executor) CC() string { return CC }

// Toolchain identifies the compiler in the build container.
func (x *Executor) Toolchain(ctx context.Context) (string, error) {
	t, err := x.set.target(ctx, x.platform)
	if err != nil {
		return "", err
	}
	return Toolchain(ctx, x.set.Query, t)
}

// Build runs plan on the source directory src in the engine and writes the
// products to out. Every platform of the set is built at the same time.
func (x *Executor) Build(ctx context.Context, plan recipe.Plan, src, out string) error {
	e := x.set
	// By content: graft.Env.Compile fetches into a fresh directory per
	// platform, so the path says nothing.
	key, err := buildcache.ContentKey("", plan, src)
	if err != nil {
		return err
	}
	platforms := slices.Clone(e.Platforms)
	if !slices.ContainsFunc(platforms, func(p v1.Platform) bool { return p.String() == x.platform.String() }) {
		platforms = []v1.Platform{x.platform}
	}

	e.mu.Lock()
	b := e.batch
	if b == nil || b.key != key || !b.has(x.platform) {
		b = &batch{key: key, done: make(chan struct{})}
		e.batch = b
		e.mu.Unlock()
		b.dirs, b.err = e.buildAll(ctx, platforms, plan, src)
		close(b.done)
	} else {
		e.mu.Unlock()
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.err != nil {
		return b.err
	}
	dir := b.dirs[x.platform.String()]
	if dir == nil {
		return fmt.Errorf("daggerexec: no build for %s", x.platform)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := e.Files.Export(ctx, dir, out); err != nil {
		return fmt.Errorf("export the products for %s to %s: %w", x.platform, out, err)
	}
	for _, p := range plan.Products {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			return fmt.Errorf("compile for %s: product %s missing after export: %w", x.platform, p, err)
		}
	}
	return nil
}

func (b *batch) has(p v1.Platform) bool {
	select {
	case <-b.done:
		_, ok := b.dirs[p.String()]
		return ok || b.err != nil
	default:
		return true // running: it was started with every platform of the set
	}
}

func (e *Executors) buildAll(ctx context.Context, platforms []v1.Platform, plan recipe.Plan, src string) (map[string]*dagger.Directory, error) {
	targets := make([]Target, len(platforms))
	for i, p := range platforms {
		t, err := e.target(ctx, p)
		if err != nil {
			return nil, err
		}
		targets[i] = t
	}
	inputs, err := stageInputs(src)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(inputs)
	dir, err := e.Files.Directory(ctx, inputs)
	if err != nil {
		return nil, fmt.Errorf("upload the source %s: %w", src, err)
	}
	var names []string
	for _, p := range platforms {
		names = append(names, p.String())
	}
	e.log().Infof("compiling in the engine for %v (%d steps each)", names, len(plan.Steps))
	dirs, err := BuildAll(ctx, e.Query, targets, plan, dir)
	if err != nil {
		return nil, err
	}
	out := map[string]*dagger.Directory{}
	for i, p := range platforms {
		out[p.String()] = dirs[i]
	}
	return out, nil
}

// stageInputs links the source files of src into a fresh directory beside
// it, without source.json: that file records where the source was fetched to
// (a fresh temporary directory on every call), and the engine keys an
// uploaded directory by its content, so with it no compile would ever be
// found in the engine's cache. The same files as buildcache.ContentKey.
func stageInputs(src string) (string, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(filepath.Dir(src), ".inputs-")
	if err != nil {
		return "", err
	}
	for _, ent := range entries {
		if !ent.Type().IsRegular() || ent.Name() == source.SourceJSON {
			continue
		}
		from, to := filepath.Join(src, ent.Name()), filepath.Join(dir, ent.Name())
		if err := os.Link(from, to); err != nil {
			if err := fsutil.CopyFile(from, to); err != nil {
				os.RemoveAll(dir)
				return "", err
			}
		}
	}
	return dir, nil
}
