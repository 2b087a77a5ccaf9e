package graft_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// A gate that fails stops the build before anything is written: here the
// real testfixture of the verified 3.53.4 tree with the WAL-reset fix
// reverted (the test-only patch of internal/sqltests), whose
// walrestart.test fails. No tag, no referrer tag, no provenance file.
func TestReleaseGateFailureLeavesNoTag(t *testing.T) {
	cache, err := fixtures.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	pf, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
	if err != nil {
		t.Fatal(err)
	}
	env := &graft.Env{Pins: pf, Patches: sqlitegraft.Patches(), Recipe: recipe.Default(),
		Fetcher: source.New(source.WithCacheDir(cache), source.WithLogger(log)), Log: log}
	def, err := imagedef.Embedded("debian-13")
	if err != nil {
		t.Fatal(err)
	}
	revert, err := os.ReadFile("../sqltests/testdata/revert-walreset.patch")
	if err != nil {
		t.Fatal(err)
	}
	zip, err := fixtures.GoModuleZip("github.com/mattn/go-sqlite3", fixtures.GoSQLite3Module["3.53.4"])
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t)
	base := testbase.Push(t, testbase.Glibc(t), reg.Host+"/library/debian-like:13")
	repo := reg.Host + "/sqlite-graft/reverted"
	provFile := t.TempDir() + "/provenance.intoto.json"
	_, err = env.BuildImage(t.Context(), graft.ImageRequest{
		Def: def, Source: graft.SourceRequest{Version: pins.MustParseVersion("3.53.4"), From: zip}, Base: base.String(),
		Compiler: func(v1.Platform) (recipe.Executor, string, error) {
			x := local.New(local.Glibc, local.WithLogger(log))
			return buildcache.New(x, cache, log), x.CC(), nil
		},
		Push: repo, RegistryOptions: reg.RemoteOptions(), BaseOptions: reg.RemoteOptions(), ProvenanceFile: provFile,
		SQLiteTests: graft.SQLiteTests{
			Level: sqltests.Quick, Require: true, Tree: fixtures.CanonicalTreeArchive(t, "3.53.4"), CacheDir: cache, LogDir: t.TempDir(),
			Gate: func(ctx context.Context, req sqltests.BuildRequest, level sqltests.Level, opts sqltests.RunOptions) (*sqltests.Result, error) {
				req.Patches = append(req.Patches, sqltests.Patch{Name: "revert-walreset.patch", Data: revert})
				return sqltests.Gate(ctx, &sqltests.Builder{CacheDir: cache, Mirror: fixtures.Mirror(), Log: log}, req, level, opts)
			},
		},
	})
	if err == nil || !strings.Contains(err.Error(), "the release gate failed") || !strings.Contains(err.Error(), "walrestart.test") {
		t.Fatalf("BuildImage with the fix reverted = %v, want the release gate failed, naming walrestart.test", err)
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r, reg.RemoteOptions()...)
	var te *transport.Error
	if err == nil && len(tags) > 0 || err != nil && !(asTransport(err, &te) && te.StatusCode == http.StatusNotFound) {
		t.Errorf("tags of %s after a failed gate = %v, %v; want none", repo, tags, err)
	}
	if _, err := os.Stat(provFile); err == nil {
		t.Errorf("%s written after a failed gate", provFile)
	}
}

func asTransport(err error, te **transport.Error) bool {
	e, ok := err.(*transport.Error)
	if ok {
		*te = e
	}
	return ok
}
