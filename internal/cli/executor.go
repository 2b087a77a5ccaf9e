package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"dagger.io/dagger"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// compiler picks the executor of the recipe: the local toolchain with
// --local, else Dagger.
func (a *app) compiler(ctx context.Context, bo *BuildOptions, def *imagedef.Definition, cache string) (graft.Compiler, error) {
	if bo.Local {
		return a.localCompiler(def.Libc, cache), nil
	}
	return a.daggerCompiler(ctx, bo, def)
}

// errNoDaggerSession says how to get a session, or to do without one.
var errNoDaggerSession = errors.New("no Dagger session (DAGGER_SESSION_PORT and DAGGER_SESSION_TOKEN are not set). " +
	"Compile in the base image through Dagger by running inside a session: dagger run sqlite-graft build ... " +
	"(or use the Dagger module: dagger call build --image alpine-3.21 export --path=image.tar); " +
	"or compile with the host's toolchain: sqlite-graft build --local (needs cc, musl-gcc, umoci and runc: scripts/setup installs them)")

// daggerSession connects to the session that `dagger run` opened for this
// process. Only then: without DAGGER_SESSION_PORT, dagger.Connect would look
// for a dagger CLI and download one.
func daggerSession(ctx context.Context) (*dagger.Client, error) {
	if os.Getenv("DAGGER_SESSION_PORT") == "" || os.Getenv("DAGGER_SESSION_TOKEN") == "" {
		return nil, errNoDaggerSession
	}
	// With DAGGER_SESSION_PORT set, engineconn.Get returns the session's
	// connection (engineconn.FromSessionEnv) before any CLI lookup.
	c, err := dagger.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the Dagger session: %w", err)
	}
	return c, nil
}

// daggerCompiler runs the recipe in the definition's base image, pinned by
// digest, through the Dagger session of `dagger run`; every platform is
// compiled at once. The session's connection needs no closing (a session
// connection's Close does nothing; `dagger run` ends the session).
func (a *app) daggerCompiler(ctx context.Context, bo *BuildOptions, def *imagedef.Definition) (graft.Compiler, error) {
	client, err := daggerSession(ctx)
	if err != nil {
		return nil, err
	}
	list := bo.Platforms
	if len(list) == 0 {
		list = def.Platforms
	}
	var platforms []v1.Platform
	for _, s := range list {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return nil, usageErrorf("--platform %q: %v", s, err)
		}
		platforms = append(platforms, *p)
	}
	ex := &daggerexec.Executors{
		Query:     client.Query,
		Def:       def,
		Base:      bo.Base,
		Platforms: platforms,
		Files:     hostFiles{client},
		Log:       a.log,
	}
	return ex.Compiler(ctx), nil
}

// hostFiles moves files through the session's host: the machine `dagger run`
// runs on, which is this process's.
type hostFiles struct{ c *dagger.Client }

func (h hostFiles) Directory(_ context.Context, p string) (*dagger.Directory, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	return h.c.Host().Directory(abs), nil
}

func (h hostFiles) File(_ context.Context, p string) (*dagger.File, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	return h.c.Host().File(abs), nil
}

func (h hostFiles) Export(ctx context.Context, d *dagger.Directory, p string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	_, err = d.Export(ctx, abs)
	return err
}

// localCompiler builds the host's platform with the local executor.
func (a *app) localCompiler(libc string, cache string) graft.Compiler {
	return func(p v1.Platform) (recipe.Executor, string, error) {
		host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		if p.OS != host.OS || p.Architecture != host.Architecture {
			return nil, "", fmt.Errorf("--local builds %s only, not %s: use the Dagger module for other platforms", host.String(), p.String())
		}
		lc, err := local.ParseLibc(libc)
		if err != nil {
			return nil, "", err
		}
		exec := local.New(lc, local.WithLogger(a.log))
		return buildcache.New(exec, cache, a.log), exec.CC(), nil
	}
}
