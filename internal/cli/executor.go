package cli

import (
	"context"
	"fmt"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
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
	return a.daggerCompiler(ctx, def, cache)
}

// daggerCompiler runs the recipe in the base image through a Dagger session.
func (a *app) daggerCompiler(ctx context.Context, def *imagedef.Definition, cache string) (graft.Compiler, error) {
	return nil, fmt.Errorf("the Dagger executor is not available in this build; run with --local to compile with the host's toolchain (needs cc, musl-gcc, umoci and runc: scripts/setup installs them)")
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
