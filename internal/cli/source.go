package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// env builds the shared stage wiring from the global flags.
func (a *app) env() (*graft.Env, error) {
	p, err := a.global.Pins()
	if err != nil {
		return nil, err
	}
	cache, err := a.global.Cache()
	if err != nil {
		return nil, err
	}
	patches := sqlitegraft.Patches()
	if a.global.Patches != "" {
		if st, err := os.Stat(a.global.Patches); err != nil || !st.IsDir() {
			return nil, usageErrorf("--patches %s: not a directory", a.global.Patches)
		}
		patches = os.DirFS(a.global.Patches)
	}
	return &graft.Env{
		Pins:    p,
		Patches: patches,
		Recipe:  recipe.Default(),
		Fetcher: source.New(source.WithCacheDir(cache), source.WithLogger(a.log)),
		Log:     a.log,
	}, nil
}

// sourceRequest wires the stages and resolves the source flags.
func (a *app) sourceRequest(src *SourceOptions) (*graft.Env, graft.SourceRequest, error) {
	env, err := a.env()
	if err != nil {
		return nil, graft.SourceRequest{}, err
	}
	v, err := src.Version(env.Pins)
	if err != nil {
		return nil, graft.SourceRequest{}, err
	}
	return env, graft.SourceRequest{Version: v, SHA3: src.SHA3, From: src.From}, nil
}

func (a *app) fetchCmd() *cobra.Command {
	var src SourceOptions
	var out string
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download, verify, extract and patch a SQLite source",
		Long: `fetch gets the SQLite amalgamation of a pinned version (from sqlite.org, its
mirrors www2/www3, or --from), and verifies it before anything reaches --out:

  1. the archive's SHA3-256 against the published hash in the pins file;
  2. sqlite3.c's SHA3-256 against the hash published in changes.html;
  3. SQLITE_VERSION and SQLITE_SOURCE_ID inside sqlite3.c against the request.

Then it applies patches/<version>/*.patch in name order. Verified archives are
cached by hash, so a second run downloads nothing. A version that is not in
the pins file is refused unless --sha3 gives its archive hash.`,
		Example: `  sqlite-graft fetch --out ./src
  sqlite-graft fetch --sqlite 3.53.4 --out ./src
  sqlite-graft fetch --from ./sqlite-amalgamation-3510300.zip --out ./src
  sqlite-graft fetch --sqlite 3.50.4 --sha3 <published SHA3-256> --from https://sqlite.org/2025/sqlite-amalgamation-3500400.zip --out ./src`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("fetch needs --out DIR")
			}
			env, req, err := a.sourceRequest(&src)
			if err != nil {
				return err
			}
			s, err := env.Fetch(cmd.Context(), req, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "SQLite %s (%s) verified: sqlite3.c SHA3-256 %s, %d patch(es), in %s\n",
				s.Version, s.SourceID, s.SQLite3CSHA3, len(s.Patches), s.Dir)
			return nil
		},
	}
	src.AddFlags(cmd.Flags(), SQLiteDefaultPins)
	cmd.Flags().StringVar(&out, "out", "", "directory to write the verified source to (replaced only when every check passed)")
	return cmd
}

func (a *app) compileCmd() *cobra.Command {
	var src SourceOptions
	var out, libc string
	cmd := &cobra.Command{
		Use:   "compile",
		Short: "Fetch, verify and compile a drop-in libsqlite3.so.0 and sqlite3 shell",
		Long: `compile fetches and verifies the source exactly as 'fetch' does, then runs the
compile recipe with the host's toolchain: cc for --libc glibc (Debian-family
targets), musl-gcc for --libc musl (Alpine targets). It writes

  DIR/libsqlite3.so.0   the library (soname libsqlite3.so.0)
  DIR/sqlite3           the shell, linked against that library (when the source has shell.c)
  DIR/build.json        what went in: source, hashes, patches, toolchain, exact argv

Products are written only when every step succeeded. Builds are cached by the
hash of the source, the recipe and the toolchain: a second run compiles nothing.`,
		Example: `  sqlite-graft compile --out ./out/lib
  sqlite-graft compile --sqlite 3.53.4 --libc glibc --out ./out/lib-glibc`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("compile needs --out DIR")
			}
			lc, err := local.ParseLibc(libc)
			if err != nil {
				return usageErrorf("--libc: %v", err)
			}
			env, req, err := a.sourceRequest(&src)
			if err != nil {
				return err
			}
			cache, err := a.global.Cache()
			if err != nil {
				return err
			}
			exec := local.New(lc, local.WithLogger(a.log))
			b, err := env.Compile(cmd.Context(), req, buildcache.New(exec, cache, a.log), exec.CC(), out)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "SQLite %s compiled for %s: %v in %s\n", b.Source.Version, lc, b.Products, out)
			return nil
		},
	}
	src.AddFlags(cmd.Flags(), SQLiteDefaultPins)
	cmd.Flags().StringVar(&out, "out", "", "directory for libsqlite3.so.0, sqlite3 and build.json")
	cmd.Flags().StringVar(&libc, "libc", "musl", "target C library: musl (Alpine) or glibc (Debian, Ubuntu, ...)")
	return cmd
}
