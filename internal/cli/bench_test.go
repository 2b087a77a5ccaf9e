package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/referrers"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/sbom"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// bareCompile is the floor the figures are measured against: the recipe's
// library step alone, by hand, on the release's official sqlite3.c.
func bareCompile(b *testing.B, libc local.Libc, version string) time.Duration {
	b.Helper()
	plan, err := recipe.Default().Plan(recipe.Params{CC: local.New(libc).CC(), Version: version})
	if err != nil {
		b.Fatal(err)
	}
	src := fixtures.Amalgamation(b, version)
	work := b.TempDir()
	for _, f := range []string{"sqlite3.c", "sqlite3.h"} {
		os.Symlink(filepath.Join(src, f), filepath.Join(work, f))
	}
	start := time.Now()
	cmd := exec.Command(plan.Steps[0].Argv[0], plan.Steps[0].Argv[1:]...)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("bare compile: %v %s", err, out)
	}
	return time.Since(start)
}

// BenchmarkBuildFigures measures the image figures once (run with
// `go test -run XXX -bench BuildFigures -benchtime 1x ./internal/cli/`):
//   - cold build (compile + image + checks + push) over a bare compile;
//   - warm build with unchanged inputs over cold, and the blobs it uploaded;
//   - a new SQLite version onto the already-pushed base: bytes uploaded
//     against the new layer's compressed size;
//   - the graft layer's compressed size;
//   - two full builds a minute apart (fresh caches): same digest.
func BenchmarkBuildFigures(b *testing.B) {
	for range b.N {
		reg := registrytest.Start(b)
		base := testbase.Push(b, testbase.Musl(b), reg.Host+"/library/alpine-like:3.21")
		repo := reg.Host + "/sqlite-graft/alpine"

		bare := bareCompile(b, local.Musl, "3.51.3")

		// From 3.51.3 (the earlier default, its advisories accepted) to 3.53.4.
		def := legacyDefinition(b, "alpine-3.21")
		build := func(cache, version, push string) (result, time.Duration) {
			b.Helper()
			zip, err := fixtures.GoModuleZip("github.com/mattn/go-sqlite3", fixtures.GoSQLite3Module[version])
			if err != nil {
				b.Fatal(err)
			}
			res := filepath.Join(b.TempDir(), "result.json")
			start := time.Now()
			r := sqliteGraft(b, "build", "--local", "--image", def, "--base", base.String(), "--sqlite", version, "--from", zip,
				"--push", push, "--result", res, "--cache-dir", cache, "--log-level", "warn")
			d := time.Since(start)
			if r.code != 0 {
				b.Fatalf("build %s: %s", version, r.stderr)
			}
			return readResult(b, res), d
		}
		cache := b.TempDir()
		cold, coldT := build(cache, "3.51.3", repo)
		warm, warmT := build(cache, "3.51.3", repo)
		newer, _ := build(cache, "3.53.4", repo+":newer")

		d, _ := name.NewDigest(newer.Reference)
		img, err := remote.Image(d, reg.RemoteOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		layers, _ := img.Layers()
		newLayer, _ := layers[len(layers)-1].Size()
		d1, _ := name.NewDigest(cold.Reference)
		img1, _ := remote.Image(d1, reg.RemoteOptions()...)
		l1, _ := img1.Layers()
		graftSize, _ := l1[len(l1)-1].Size()

		// What the push of the new version uploaded besides the new layer:
		// the image's config blob, and the SBOM, provenance and VEX documents.
		var refBytes int64
		for typ, want := range map[string]int{sbom.ArtifactType: 1, provenance.MediaType: 2} {
			descs, err := referrers.Find(context.Background(), d, typ, reg.RemoteOptions()...)
			if err != nil || len(descs) != want {
				b.Fatalf("referrers %s: %v %v, want %d (in-toto: the provenance and the VEX statement)", typ, descs, err, want)
			}
			for _, desc := range descs {
				art, err := referrers.Fetch(context.Background(), d.Context().Digest(desc.Digest.String()), reg.RemoteOptions()...)
				if err != nil {
					b.Fatal(err)
				}
				// Blobs only, as the upload counter counts them (manifests
				// are not blob uploads): the document and its 2-byte empty config.
				refBytes += int64(len(art.Data)) + 2
			}
		}

		time.Sleep(61 * time.Second)
		again, _ := build(b.TempDir(), "3.51.3", reg.Host+"/sqlite-graft/again")

		b.ReportMetric(bare.Seconds(), "bare-compile-s")
		b.ReportMetric(coldT.Seconds(), "cold-build-s")
		b.ReportMetric(coldT.Seconds()/bare.Seconds(), "cold/bare")
		b.ReportMetric(warmT.Seconds(), "warm-build-s")
		b.ReportMetric(warmT.Seconds()/coldT.Seconds(), "warm/cold")
		b.ReportMetric(float64(warm.Stats.BlobsUploaded), "warm-blobs-uploaded")
		b.ReportMetric(float64(newer.Stats.BytesUploaded), "newver-bytes-uploaded")
		b.ReportMetric(float64(newLayer), "newver-layer-bytes")
		b.ReportMetric(float64(newer.Stats.BytesUploaded-newLayer), "newver-excess-bytes")
		b.ReportMetric(float64(refBytes), "newver-referrer-bytes")
		b.ReportMetric(float64(newer.Stats.BytesUploaded-newLayer-refBytes), "newver-image-excess-bytes")
		b.ReportMetric(float64(graftSize), "graft-layer-bytes")
		same := 0.0
		if again.Digest == cold.Digest {
			same = 1
		}
		b.ReportMetric(same, "same-digest-61s-later")
		b.Logf("cold %s, again 61 s later with fresh caches %s; warm unchanged=%v", cold.Digest, again.Digest, warm.Unchanged)
	}
}

// BenchmarkReleaseGateFigures measures what the release gate adds to a cold
// build (run with `go test -run XXX -bench ReleaseGateFigures -benchtime 1x
// ./internal/cli/`), per libc: the bare compile of 3.53.4's library (the
// recipe's library step alone), a cold build of the shipped definition
// without the gate and one with `--sqlite-tests wal` (fresh caches each:
// the tree verified, testfixture built and the wal level run beside the
// compile), and from the gated build's result the testfixture build and the
// level's wall time. musl's Tcl is built once per machine, like a
// toolchain, and is not counted.
func BenchmarkReleaseGateFigures(b *testing.B) {
	for _, tc := range []struct {
		libc local.Libc
		def  string
		base func(testing.TB) v1.Image
	}{{local.Glibc, "debian-13", testbase.Glibc}, {local.Musl, "alpine-3.21", testbase.Musl}} {
		b.Run(string(tc.libc), func(b *testing.B) {
			for range b.N {
				reg := registrytest.Start(b)
				base := testbase.Push(b, tc.base(b), reg.Host+"/library/base:1").String()
				repo := reg.Host + "/sqlite-graft/gated"
				tree := fixtures.CanonicalTreeArchive(b, "3.53.4")

				bare := bareCompile(b, tc.libc, "3.53.4")

				// A fresh cache per build; for musl, with the machine's Tcl.
				freshCache := func() string {
					dir := b.TempDir()
					if tc.libc != local.Musl {
						return dir
					}
					shared, err := fixtures.CacheDir()
					if err != nil {
						b.Fatal(err)
					}
					r := sqliteGraft(b, "check", "--sqlite-tests", "quick", "--sqlite", "3.53.4", "--libc", "musl",
						"--sqlite-tree", tree, "--cache-dir", shared, "--log-level", "warn")
					if r.code != 0 {
						b.Fatalf("musl Tcl: %s", r.stderr)
					}
					if err := os.CopyFS(filepath.Join(dir, "tcl"), os.DirFS(filepath.Join(shared, "tcl"))); err != nil {
						b.Fatal(err)
					}
					return dir
				}
				build := func(tag string, extra ...string) (time.Duration, string) {
					b.Helper()
					cache := freshCache()
					res := filepath.Join(b.TempDir(), "result.json")
					args := append([]string{"build", "--local", "--image", tc.def, "--base", base, "--from", moduleZip(b, "3.53.4"),
						"--push", repo + ":" + tag, "--result", res, "--cache-dir", cache, "--log-level", "warn"}, extra...)
					start := time.Now()
					r := sqliteGraft(b, args...)
					d := time.Since(start)
					if r.code != 0 {
						b.Fatalf("build %s: %s", tag, r.stderr)
					}
					return d, res
				}
				plain, _ := build("plain")
				gated, res := build("gated", "--sqlite-tests", "wal", "--require-sqlite-tests", "--sqlite-tree", tree)
				var result struct {
					SQLiteTests sqltests.Result `json:"sqlite_tests"`
				}
				j, err := os.ReadFile(res)
				if err != nil {
					b.Fatal(err)
				}
				if err := json.Unmarshal(j, &result); err != nil {
					b.Fatal(err)
				}
				g := result.SQLiteTests
				if g.Status != sqltests.Passed || g.Level != sqltests.WAL {
					b.Fatalf("the gated build's sqlite_tests = %s, want the wal level passed", g.Summary())
				}
				b.ReportMetric(bare.Seconds(), "bare-compile-s")
				b.ReportMetric(plain.Seconds(), "cold-build-s")
				b.ReportMetric(gated.Seconds(), "cold-gated-build-s")
				b.ReportMetric((gated-plain).Seconds()/bare.Seconds(), "gate-adds/bare")
				b.ReportMetric(g.BuildSeconds, "testfixture-s")
				b.ReportMetric(g.Seconds, "wal-level-s")
				b.Logf("%s: %s", tc.libc, g.Summary())
			}
		})
	}
}
