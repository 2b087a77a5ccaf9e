package cli_test

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/distropkg"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// BenchmarkDownstreamFigures measures what the downstream check adds to a
// build on a base without a SQLite of its own (run with
// `go test -run XXX -bench DownstreamFigures -benchtime 1x ./internal/cli/`),
// per libc, on an image built by `build --local` and pulled back:
//   - fetch-s: the package from a loopback mirror — index read and parsed,
//     package downloaded and verified (Debian: bookworm's real Packages.xz,
//     50 MB unpacked; Alpine: a small test APKINDEX);
//   - check-s: the image check the build runs anyway (baseline none, the
//     build's default stress test);
//   - downstream-s: the throwaway copy with the package added, checked
//     (CheckDownstream: no stress test);
//   - added/check: (fetch + downstream) over check.
func BenchmarkDownstreamFigures(b *testing.B) {
	for range b.N {
		reg := registrytest.Start(b)
		pin, err := embeddedPin(b, "3.51.3")
		if err != nil {
			b.Fatal(err)
		}
		alpineRepo, _ := alpineMirror(b)
		debianRepo, deb := debianMirror(b)
		for _, c := range []struct {
			libc, def, distroSQLite, repo string
			base                          func(testing.TB) string
			want                          distropkg.Want
		}{
			{"musl", "alpine-3.21", muslPackageVersion, alpineRepo,
				func(tb testing.TB) string {
					return testbase.Push(tb, testbase.MuslBare(tb), reg.Host+"/library/alpine-like:bare").String()
				},
				distropkg.Want{Format: distropkg.APK, Name: "sqlite-libs", Version: muslPackageVersion, Arch: "x86_64"}},
			{"glibc", "debian-13", deb.Version, debianRepo,
				func(tb testing.TB) string {
					return testbase.Push(tb, testbase.GlibcBare(tb), reg.Host+"/library/debian-like:bare").String()
				},
				distropkg.Want{Format: distropkg.Deb, Name: "libsqlite3-0", Version: deb.Version, Arch: "amd64"}},
		} {
			args, resPath := buildArgs(b, definition(b, c.def, c.distroSQLite), c.base(b), reg.Host+"/bench/"+c.libc, "--distro-repository", c.repo)
			if r := sqliteGraft(b, args...); r.code != 0 {
				b.Fatalf("build %s: %s", c.def, r.stderr)
			}
			d, _ := name.NewDigest(readResult(b, resPath).Reference)
			img, err := remote.Image(d, reg.RemoteOptions()...)
			if err != nil {
				b.Fatal(err)
			}

			start := time.Now()
			pkg, err := distropkg.Fetch(b.Context(), c.repo, c.want, nil)
			if err != nil {
				b.Fatal(err)
			}
			fetch := time.Since(start)

			stress := check.DefaultStress()
			start = time.Now()
			if _, err := check.Image(b.Context(), check.ImageOptions{Image: img, Want: &pin, BaselineKind: check.BaselineNone, Stress: &stress}); err != nil {
				b.Fatal(err)
			}
			own := time.Since(start)

			start = time.Now()
			if _, err := graft.CheckDownstream(b.Context(), img, pkg, check.ImageOptions{Want: &pin}); err != nil {
				b.Fatal(err)
			}
			downstream := time.Since(start)

			b.ReportMetric(fetch.Seconds(), c.libc+"-fetch-s")
			b.ReportMetric(own.Seconds(), c.libc+"-check-s")
			b.ReportMetric(downstream.Seconds(), c.libc+"-downstream-s")
			b.ReportMetric((fetch+downstream).Seconds()/own.Seconds(), c.libc+"-added/check")
		}
	}
}
