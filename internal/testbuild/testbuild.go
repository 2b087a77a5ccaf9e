// Package testbuild compiles the SQLite variants tests need — real sources,
// the real recipe, the real compiler — once per machine: builds go through
// the build cache, keyed by content and locked across test processes, so
// parallel test packages share one compile of each variant.
package testbuild

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/lockfile"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// Library returns a libsqlite3.so.0 of sqliteVersion (an official amalgamation
// from fixtures) built by the recipe for libc ("glibc" or "musl").
func Library(t testing.TB, sqliteVersion, libc string) string {
	t.Helper()
	src := fixtures.Amalgamation(t, sqliteVersion)
	return build(t, src, sqliteVersion+"-"+libc, libc) + "/libsqlite3.so.0"
}

// Shell returns a directory with libsqlite3.so.0 and the recipe's sqlite3
// shell, built from the official 3.52.0 autoconf tarball (npm sqlite3 6.0.1:
// the only real source here that ships shell.c next to a fixed sqlite3.c).
func Shell(t testing.TB, libc string) string {
	t.Helper()
	src, err := autoconfSource("3.52.0")
	if err != nil {
		t.Fatalf("testbuild.Shell: %v", err)
	}
	return build(t, src, "3.52.0-shell-"+libc, libc)
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

func build(t testing.TB, src, variant, libc string) string {
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
	plan, err := recipe.Default().Plan(recipe.Params{CC: exec.CC(), HasShell: hasShell == nil})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(cache, "variants", variant)
	if err := buildcache.New(exec, cache, quiet()).Build(context.Background(), plan, src, out); err != nil {
		t.Fatalf("testbuild: compile %s: %v", variant, err)
	}
	return out
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
	unlock, err := lockfile.Lock(dir + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "shell.c")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(cache, ".tmp-autoconf")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Open(tgz)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(zr)
	want := map[string]bool{"sqlite3.c": true, "sqlite3.h": true, "sqlite3ext.h": true, "shell.c": true}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		base := filepath.Base(h.Name)
		if !want[base] || filepath.Dir(filepath.Dir(h.Name)) != "." {
			continue
		}
		o, err := os.Create(filepath.Join(tmp, base))
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(o, tr); err != nil {
			return "", err
		}
		o.Close()
		delete(want, base)
	}
	if len(want) != 0 {
		return "", fmt.Errorf("%s: missing %v", tgz, want)
	}
	os.RemoveAll(dir)
	return dir, os.Rename(tmp, dir)
}
