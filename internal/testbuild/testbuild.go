// Package testbuild compiles the SQLite variants tests need — real sources,
// the real recipe, the real compiler — once per machine: builds go through
// the build cache, keyed by content and locked across test processes, so
// parallel test packages share one compile of each variant.
package testbuild

import (
	"context"
	"crypto/sha3"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/lockfile"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// Library returns a libsqlite3.so.0 of sqliteVersion (an official amalgamation
// from fixtures) built by the recipe for libc ("glibc" or "musl").
func Library(t testing.TB, sqliteVersion, libc string) string {
	t.Helper()
	src := fixtures.Amalgamation(t, sqliteVersion)
	return build(t, src, sqliteVersion, sqliteVersion+"-"+libc, libc) + "/libsqlite3.so.0"
}

// ShellVersion is the SQLite whose official autoconf tarball (npm sqlite3
// 5.1.7) gives the tests a real shell.c; go-sqlite3 ships none.
const ShellVersion = "3.44.2"

// Shell returns a directory with libsqlite3.so.0 and the recipe's sqlite3
// shell, built from the official ShellVersion autoconf tarball.
func Shell(t testing.TB, libc string) string {
	t.Helper()
	src, err := autoconfSource(ShellVersion)
	if err != nil {
		t.Fatalf("testbuild.Shell: %v", err)
	}
	return build(t, src, ShellVersion, ShellVersion+"-shell-"+libc, libc)
}

// MuslBaseline returns an older real SQLite (3.46.1) built with musl-gcc: a
// stand-in for an Alpine-like distro's /usr/lib/libsqlite3.so.0.
func MuslBaseline(t testing.TB) string {
	t.Helper()
	return Library(t, "3.46.1", "musl")
}

// AutoconfSource extracts the official autoconf tarball of version into a
// cached directory holding sqlite3.c, sqlite3.h, sqlite3ext.h and shell.c.
func AutoconfSource(t testing.TB, version string) string {
	t.Helper()
	dir, err := autoconfSource(version)
	if err != nil {
		t.Fatalf("testbuild.AutoconfSource(%s): %v", version, err)
	}
	return dir
}

func build(t testing.TB, src, version, variant, libc string) string {
	t.Helper()
	lc, err := local.ParseLibc(libc)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := fixtures.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	exec := local.New(lc, local.WithLogger(quiet()))
	_, hasShell := os.Stat(filepath.Join(src, "shell.c"))
	plan, err := recipe.Default().Plan(recipe.Params{CC: exec.CC(), HasShell: hasShell == nil, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(cache, "variants", variant)
	if err := installOnce(buildcache.New(exec, cache, quiet()), plan, src, out); err != nil {
		t.Fatalf("testbuild: compile %s: %v", variant, err)
	}
	return out
}

// installOnce installs the cached build into out unless out already holds
// the build of the same key. Reinstalling renames over files another test
// process may have mapped right now (it then sees "(deleted)" in its maps),
// so the variant directory changes only when its inputs do.
func installOnce(cache *buildcache.Executor, plan recipe.Plan, src, out string) error {
	ctx := context.Background()
	key, err := cache.Key(ctx, plan, src)
	if err != nil {
		return err
	}
	unlock, err := lockfile.Lock(out + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	stamp := filepath.Join(out, ".build-key")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key && buildcache.Complete(out, plan.Products) {
		return nil
	}
	os.Remove(stamp)
	if err := cache.Build(ctx, plan, src, out); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte(key), 0o644)
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func autoconfSource(version string) (string, error) {
	tgz, err := fixtures.AutoconfTarballPath(version)
	if err != nil {
		return "", err
	}
	cache, err := fixtures.CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "autoconf-src-"+version)
	return dir, fixtures.OnceDir(dir, func(tmp string) error {
		// Through the real source stage, vouching for the tarball as --sha3 does.
		data, err := os.ReadFile(tgz)
		if err != nil {
			return err
		}
		sum := sha3.Sum256(data)
		v, err := pins.ParseVersion(version)
		if err != nil {
			return err
		}
		pin := pins.Pin{Version: v, AutoconfArchive: &pins.Hash{SHA3: hex.EncodeToString(sum[:]), Published: source.OverridePublished}}
		f := source.New(source.WithCacheDir(""), source.WithLogger(quiet()), source.WithGoProxy())
		_, err = f.Fetch(context.Background(), source.Request{Pin: pin, From: tgz}, tmp)
		return err
	})
}
