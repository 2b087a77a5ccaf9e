// The Dagger module of sqlite-graft: it grafts a pinned, verified SQLite onto
// a container base image whose distribution ships a vulnerable one.
//
// This file is glue only: signatures, documentation, pragmas and the ID
// bridge. The work is in the repository's root packages
// (internal/daggerexec.Module), which are written against dagger.io/dagger
// and run here over this module's own connection. Objects cross between the
// module's generated types and dagger.io/dagger's by ID.
package main

import (
	"context"

	sdk "dagger.io/dagger"

	"github.com/sqlite-graft/sqlite-graft/ci/internal/dagger"
	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
)

type SqliteGraft struct {
	// internal/check/probe.c: the client the image checks run in the image.
	// +private
	Probe *dagger.File
}

func New(
	// The repository; only internal/check/probe.c is read.
	// +defaultPath="/"
	// +ignore=["*", "!internal/check/probe.c"]
	source *dagger.Directory,
) *SqliteGraft {
	return &SqliteGraft{Probe: source.File("internal/check/probe.c")}
}

// pipeline is the root packages' pipeline over this module's connection.
func (m *SqliteGraft) pipeline(ctx context.Context) (*daggerexec.Module, error) {
	q := new(sdk.Query).WithGraphQLQuery(dag.QueryBuilder())
	files, err := daggerexec.NewModuleFiles(q)
	if err != nil {
		return nil, err
	}
	id, err := m.Probe.ID(ctx)
	if err != nil {
		return nil, err
	}
	return &daggerexec.Module{Query: q, Files: files, ProbeSource: q.LoadFileFromID(sdk.FileID(id))}, nil
}

// Build compiles SQLite in the image definition's own base image (pinned by
// digest, with its own toolchain), grafts it onto the base as one layer,
// checks the image from inside as its user, and returns it for one platform.
//
//	dagger call build --image alpine-3.21 export --path=image.tar
//	dagger call build publish --address=registry.example/alpine:3.21-sqlite3.51.3
func (m *SqliteGraft) Build(
	ctx context.Context,
	// An image definition shipped in images/: alpine-3.21, alpine-3.22,
	// debian-13, python-3.13-alpine3.21.
	// +default="alpine-3.21"
	image string,
	// SQLite version, e.g. 3.53.4 (default: the definition's).
	// +optional
	sqlite string,
	// One platform, e.g. linux/arm64 (default: the engine's). A container
	// holds one platform; release pushes every platform of the definition.
	// +optional
	platforms []string,
) (*dagger.Container, error) {
	p, err := m.pipeline(ctx)
	if err != nil {
		return nil, err
	}
	ctr, err := p.Image(ctx, image, sqlite, platforms)
	if err != nil {
		return nil, err
	}
	id, err := ctr.ID(ctx)
	if err != nil {
		return nil, err
	}
	return dag.LoadContainerFromID(dagger.ContainerID(id)), nil
}

// Library compiles SQLite for one platform in the definition's base image and
// returns libsqlite3.so.0, the sqlite3 shell and build.json.
//
//	dagger call library --image debian-13 --platform linux/arm64 export --path=lib
func (m *SqliteGraft) Library(
	ctx context.Context,
	// +default="alpine-3.21"
	image string,
	// SQLite version (default: the definition's).
	// +optional
	sqlite string,
	// e.g. linux/arm64 (default: the engine's).
	// +optional
	platform string,
) (*dagger.Directory, error) {
	p, err := m.pipeline(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := p.Library(ctx, image, sqlite, platform)
	if err != nil {
		return nil, err
	}
	id, err := dir.ID(ctx)
	if err != nil {
		return nil, err
	}
	return dag.LoadDirectoryFromID(dagger.DirectoryID(id)), nil
}

// Check builds the image for every platform of the definition and checks each
// from inside, as the image's user: the pinned version and source id, exactly
// one SQLite mapped (the grafted one), not root. Prints one line per platform.
func (m *SqliteGraft) Check(
	ctx context.Context,
	// +default="alpine-3.21"
	image string,
	// SQLite version (default: the definition's).
	// +optional
	sqlite string,
) (string, error) {
	p, err := m.pipeline(ctx)
	if err != nil {
		return "", err
	}
	return p.Check(ctx, image, sqlite)
}

// Release builds every platform of the definition, checks each image, and
// pushes the multi-platform image with go-containerregistry (same inputs,
// same digest). Nothing is pushed, and no check runs, when the registry
// already has this digest under every tag. Returns repository@sha256:...
//
//	dagger call release --image alpine-3.21 --registry-username ci --registry-password env:REGISTRY_TOKEN
//
// +cache="never"
func (m *SqliteGraft) Release(
	ctx context.Context,
	image string,
	// REPOSITORY (tags from the definition) or REPOSITORY:TAG (default: the
	// definition's repository).
	// +optional
	repository string,
	registryUsername string,
	registryPassword *dagger.Secret,
) (string, error) {
	password, err := registryPassword.Plaintext(ctx)
	if err != nil {
		return "", err
	}
	p, err := m.pipeline(ctx)
	if err != nil {
		return "", err
	}
	return p.Release(ctx, image, repository, registryUsername, password)
}

// Upstream reports the watch as JSON: per Alpine branch (and Debian suite,
// with SQLITE_GRAFT_DEBIAN_MIRROR) the distribution's SQLite and whether it
// has the WAL-reset fix; per image definition "keep the graft" or "retire:
// move to <branch>"; and SQLite releases newer than the pins.
//
//	dagger call upstream
//
// +cache="never"
func (m *SqliteGraft) Upstream(ctx context.Context) (string, error) {
	p, err := m.pipeline(ctx)
	if err != nil {
		return "", err
	}
	return p.Upstream(ctx)
}
