// The Dagger module of sqlite-graft: it grafts a pinned, verified SQLite onto
// a container base image whose distribution ships a vulnerable one.
//
// This file is glue only: signatures, documentation, pragmas and the ID
// bridge. The work is in the repository's root packages
// (internal/daggerexec.Module), which are written against dagger.io/dagger
// and run here over this module's own connection. Objects cross between the
// module's generated types and dagger.io/dagger's by ID, through node(id:)
// (dagger.Ref): load<Type>FromID is served only to modules whose
// engineVersion is below v0.22.0.
//
// The module object holds nothing: a constructor's result is cached across
// sessions, and a file kept in it would point at a result of a session that
// has ended ("missing shared result"). Whatever a call needs comes with the
// call; the probe the checks compile is built into this program.
//
// Cache: build, library and check are cached for the session only, so a
// moved base tag is seen by the next call (the default keeps a result for a
// week); release and upstream are never cached.
package main

import (
	"context"

	sdk "dagger.io/dagger"

	"github.com/sqlite-graft/sqlite-graft/ci/internal/dagger"
	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
)

type SqliteGraft struct{}

// pipeline is the root packages' pipeline over this module's connection.
func pipeline() (*daggerexec.Module, error) {
	q := new(sdk.Query).WithGraphQLQuery(dag.QueryBuilder())
	files, err := daggerexec.NewModuleFiles(q)
	if err != nil {
		return nil, err
	}
	return &daggerexec.Module{Query: q, Files: files}, nil
}

// spec is what to build: a shipped definition by name, or a definition file.
func spec(ctx context.Context, image string, definition *dagger.File, base, sqlite string, tests gate) (daggerexec.Spec, error) {
	s := daggerexec.Spec{Image: image, Base: base, SQLite: sqlite, SQLiteTests: tests.level, RequireSQLiteTests: tests.require}
	if definition == nil {
		return s, nil
	}
	name, err := definition.Name(ctx)
	if err != nil {
		return s, err
	}
	text, err := definition.Contents(ctx)
	if err != nil {
		return s, err
	}
	s.DefinitionFile, s.DefinitionYAML = name, []byte(text)
	return s, nil
}

// gate is the release gate as asked: SQLite's own tests at a level.
type gate struct {
	level   string
	require bool
}

// toModule hands an object made by the root packages (dagger.io/dagger) back
// as this module's type, by ID.
func toModule[T dagger.Loadable[T]](ctx context.Context, obj sdk.DaggerObject) (T, error) {
	id, err := obj.ID(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	return dagger.Ref[T](dag, dagger.ID(id)), nil
}

// Build compiles SQLite in the image definition's own base image (pinned by
// digest, with its own toolchain), grafts it onto the base as one layer,
// checks the image from inside as its user, and returns it for one platform.
//
//	dagger call build --image alpine-3.21 export --path=image.tar
//	dagger call build --definition ./my-image.yaml export --path=image.tar
//	dagger call build publish --address=registry.example/alpine:3.21-sqlite3.53.4
//
// +cache="session"
func (m *SqliteGraft) Build(
	ctx context.Context,
	// An image definition shipped in images/: alpine-3.21, alpine-3.22,
	// debian-13, python-3.13-alpine3.21.
	// +default="alpine-3.21"
	image string,
	// An image definition file (images/*.yaml format), instead of --image.
	// +optional
	definition *dagger.File,
	// A base image reference that overrides the definition's (a mirror, a
	// test registry); it is pinned by digest like the definition's.
	// +optional
	base string,
	// SQLite version, e.g. 3.53.4 (default: the definition's).
	// +optional
	sqlite string,
	// One platform, e.g. linux/arm64 (default: the engine's). A container
	// holds one platform; release pushes every platform of the definition.
	// +optional
	platforms []string,
	// The release gate first: SQLite's own tests (quick, wal or veryquick)
	// built from the verified source tree of the pinned release in the
	// definition's base; the result goes into the image's build.json.
	// Default: not run (and said so).
	// +optional
	sqliteTests string,
	// Fail when SQLite's tests cannot run (no verified source tree of the
	// version), instead of recording "not run".
	// +optional
	requireSqliteTests bool,
) (*dagger.Container, error) {
	s, err := spec(ctx, image, definition, base, sqlite, gate{sqliteTests, requireSqliteTests})
	if err != nil {
		return nil, err
	}
	p, err := pipeline()
	if err != nil {
		return nil, err
	}
	ctr, err := p.Image(ctx, s, platforms)
	if err != nil {
		return nil, err
	}
	return toModule[*dagger.Container](ctx, ctr)
}

// Library compiles SQLite for one platform in the definition's base image and
// returns libsqlite3.so.0, the sqlite3 shell and build.json.
//
//	dagger call library --image debian-13 --platform linux/arm64 export --path=lib
//
// +cache="session"
func (m *SqliteGraft) Library(
	ctx context.Context,
	// +default="alpine-3.21"
	image string,
	// An image definition file, instead of --image.
	// +optional
	definition *dagger.File,
	// A base image reference that overrides the definition's.
	// +optional
	base string,
	// SQLite version (default: the definition's).
	// +optional
	sqlite string,
	// e.g. linux/arm64 (default: the engine's).
	// +optional
	platform string,
) (*dagger.Directory, error) {
	s, err := spec(ctx, image, definition, base, sqlite, gate{})
	if err != nil {
		return nil, err
	}
	p, err := pipeline()
	if err != nil {
		return nil, err
	}
	dir, err := p.Library(ctx, s, platform)
	if err != nil {
		return nil, err
	}
	return toModule[*dagger.Directory](ctx, dir)
}

// Check builds the image for every platform of the definition and checks each
// from inside, as the image's user, with the checks of `sqlite-graft build
// --local`: the pinned version and source id, exactly one SQLite mapped (the
// grafted one), the compile options and symbols against the distribution's
// library (the downstream check for a base without one), a process with a
// cleared environment, the stress test, no set-id files, not root; with
// --sqlite-tests, first SQLite's own tests (the release gate). Writes
// nothing. Prints one line per platform, and the gate's; a failed check is
// an error that carries the whole report.
//
//	dagger call check --image debian-13 --sqlite-tests quick
//
// +cache="session"
func (m *SqliteGraft) Check(
	ctx context.Context,
	// +default="alpine-3.21"
	image string,
	// An image definition file, instead of --image.
	// +optional
	definition *dagger.File,
	// A base image reference that overrides the definition's.
	// +optional
	base string,
	// SQLite version (default: the definition's).
	// +optional
	sqlite string,
	// SQLite's own tests first (quick, wal or veryquick), built from the
	// verified source tree of the pinned release in the definition's base.
	// Default: not run.
	// +optional
	sqliteTests string,
	// Fail when SQLite's tests cannot run (no verified source tree).
	// +optional
	requireSqliteTests bool,
) (string, error) {
	s, err := spec(ctx, image, definition, base, sqlite, gate{sqliteTests, requireSqliteTests})
	if err != nil {
		return "", err
	}
	p, err := pipeline()
	if err != nil {
		return "", err
	}
	return p.Check(ctx, s)
}

// Release builds every platform of the definition, checks each image, and
// pushes the multi-platform image with go-containerregistry (same inputs,
// same digest), its SBOM, provenance, VEX and SQLite test-result referrers,
// then its tags. The release gate comes first: SQLite's own tests (default
// level wal) from the verified source tree of the pinned release; a failure
// pushes nothing. When every tag already holds a build of the same inputs
// nothing is built, tested, checked or pushed. Returns repository@sha256:...
//
//	dagger call release --image alpine-3.21 --registry-username ci --registry-password env://REGISTRY_TOKEN --require-sqlite-tests
//
// +cache="never"
func (m *SqliteGraft) Release(
	ctx context.Context,
	// An image definition shipped in images/ (release names one: it has no
	// default).
	// +optional
	image string,
	// REPOSITORY (tags from the definition) or REPOSITORY:TAG (default: the
	// definition's repository).
	// +optional
	repository string,
	registryUsername string,
	registryPassword *dagger.Secret,
	// An image definition file, instead of --image.
	// +optional
	definition *dagger.File,
	// A base image reference that overrides the definition's.
	// +optional
	base string,
	// The release gate's level: quick, wal or veryquick.
	// +default="wal"
	sqliteTests string,
	// Fail when SQLite's tests cannot run (no verified source tree of the
	// pinned version) instead of recording "not run": the nightly sets it.
	// +optional
	requireSqliteTests bool,
) (string, error) {
	s, err := spec(ctx, image, definition, base, "", gate{sqliteTests, requireSqliteTests})
	if err != nil {
		return "", err
	}
	password, err := registryPassword.Plaintext(ctx)
	if err != nil {
		return "", err
	}
	p, err := pipeline()
	if err != nil {
		return "", err
	}
	return p.Release(ctx, s, repository, registryUsername, password)
}

// Upstream reports the watch as JSON, the document of `sqlite-graft upstream
// --json`: per Alpine branch (and Debian suite, with
// SQLITE_GRAFT_DEBIAN_MIRROR) the distribution's SQLite and whether it has
// the WAL-reset fix; per image definition "keep the graft" or "retire: move
// to <branch>"; SQLite releases newer than the pins; and exit_code, the CLI's
// exit status: 0 nothing to do, 3 a newer SQLite, 4 a graft can be retired.
// Where the CLI exits 1 (an index or the download page could not be read, an
// image not judged) this fails, with the problems and the JSON.
//
//	dagger call upstream | jq -e '.exit_code == 0'
//
// +cache="never"
func (m *SqliteGraft) Upstream(ctx context.Context) (string, error) {
	p, err := pipeline()
	if err != nil {
		return "", err
	}
	return p.Upstream(ctx)
}
