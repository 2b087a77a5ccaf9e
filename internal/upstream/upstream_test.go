package upstream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

func TestUpstreamTargetOf(t *testing.T) {
	for base, want := range map[string]string{
		"docker.io/library/alpine:3.21":               "alpine v3.21",
		"alpine:3.22.1":                               "alpine v3.22",
		"alpine:edge":                                 "alpine edge",
		"docker.io/library/python:3.13-alpine3.21":    "alpine v3.21",
		"docker.io/library/node:22.11.0-alpine3.20":   "alpine v3.20",
		"docker.io/library/debian:13":                 "debian trixie",
		"debian:12.8-slim":                            "debian bookworm",
		"debian:trixie-slim":                          "debian trixie",
		"debian:bookworm-20250113":                    "debian bookworm",
		"docker.io/library/python:3.13-slim-bookworm": "debian bookworm",
		"docker.io/library/alpine:3.21@sha256:" + strings.Repeat("a", 64): "alpine v3.21",
	} {
		got, err := upstream.TargetOf(base)
		if err != nil || got.String() != want {
			t.Errorf("TargetOf(%q) = %v, %v; want %s", base, got, err, want)
		}
	}
	for _, base := range []string{"docker.io/library/ubuntu:24.04", "alpine:latest", "ghcr.io/acme/alpine:3.21", "debian:99", "busybox:1.37"} {
		if got, err := upstream.TargetOf(base); err == nil {
			t.Errorf("TargetOf(%q) = %v, want an error", base, got)
		}
	}
}

func TestUpstreamCompareBranches(t *testing.T) {
	for _, tc := range []struct {
		d    upstream.Distro
		a, b string
		want int
	}{
		{upstream.Alpine, "v3.9", "v3.21", -1}, {upstream.Alpine, "v3.23", "edge", -1}, {upstream.Alpine, "v4.0", "v3.23", 1},
		{upstream.Debian, "bookworm", "trixie", -1}, {upstream.Debian, "sid", "forky", 1}, {upstream.Debian, "trixie", "trixie", 0},
	} {
		if got := upstream.CompareBranches(tc.d, tc.a, tc.b); got != tc.want {
			t.Errorf("CompareBranches(%s, %s, %s) = %d, want %d", tc.d, tc.a, tc.b, got, tc.want)
		}
	}
}

// fixtures writes the fixture indexes and page into dir.
type fixtures struct {
	alpine, debian []upstream.Source
	page           string
}

func writeFixtures(t *testing.T) fixtures {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var f fixtures
	for branch, v := range map[string]string{"v3.21": "3.48.0-r4", "v3.22": "3.49.2-r1", "v3.23": "3.53.4-r0"} {
		f.alpine = append(f.alpine, upstream.Source{Branch: branch, Location: write(branch+"/APKINDEX.tar.gz", upstreamtest.APKIndexTarGz(branch, upstreamtest.AlpineBranch(v)...))})
	}
	for suite, v := range map[string]string{"bookworm": "3.40.1-2+deb12u2", "trixie": "3.46.1-7"} {
		f.debian = append(f.debian, upstream.Source{Branch: suite, Location: write(suite+"/Packages.xz", upstreamtest.XZ(upstreamtest.DebianSuite(v)))})
	}
	f.page = write("download.html", fixturePage())
	return f
}

func allImages(t *testing.T) []*imagedef.Definition {
	t.Helper()
	var defs []*imagedef.Definition
	for _, n := range imagedef.EmbeddedNames() {
		d, err := imagedef.Embedded(n)
		if err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d)
	}
	return defs
}

func branch(r *upstream.Report, name string) upstream.BranchStatus {
	for _, b := range r.Branches {
		if b.Branch == name {
			return b
		}
	}
	return upstream.BranchStatus{}
}

func image(r *upstream.Report, name string) upstream.ImageVerdict {
	for _, im := range r.Images {
		if im.Image == name {
			return im
		}
	}
	return upstream.ImageVerdict{}
}

func TestUpstreamWatch(t *testing.T) {
	f := writeFixtures(t)
	r, err := upstream.Watch(context.Background(), upstream.Options{
		Images: allImages(t), Alpine: f.alpine, Debian: f.debian, Downloads: f.page, Pins: embeddedPins(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed() {
		t.Fatalf("errors: %q", r.Errors)
	}
	// Per branch: v3.21 keeps the graft, v3.23 retires it.
	for name, want := range map[string]struct{ pkg, verdict, assessment string }{
		"v3.21":    {"3.48.0-r4", upstream.KeepGraft, "vulnerable"},
		"v3.22":    {"3.49.2-r1", upstream.KeepGraft, "vulnerable"},
		"v3.23":    {"3.53.4-r0", upstream.RetireGraft, "fixed"},
		"bookworm": {"3.40.1-2+deb12u2", upstream.KeepGraft, "vulnerable by version"},
		"trixie":   {"3.46.1-7", upstream.KeepGraft, "vulnerable by version"},
	} {
		b := branch(r, name)
		if b.PackageVersion != want.pkg || b.Verdict != want.verdict || b.Assessment != want.assessment {
			t.Errorf("branch %s = %+v, want %s: %s (%s)", name, b, want.pkg, want.verdict, want.assessment)
		}
	}
	if b := branch(r, "v3.21"); b.Package != "sqlite-libs" || b.SQLite != "3.48.0" || b.Fixed {
		t.Errorf("v3.21 = %+v", b)
	}
	// Per image: the oldest newer fixed branch.
	for name, want := range map[string]string{
		"alpine-3.21": "retire: move to v3.23", "alpine-3.22": "retire: move to v3.23",
		"python-3.13-alpine3.21": "retire: move to v3.23", "debian-13": "keep the graft",
	} {
		if im := image(r, name); im.Verdict != want || im.Error != "" {
			t.Errorf("image %s = %+v, want %q", name, im, want)
		}
	}
	if im := image(r, "alpine-3.21"); im.PackageVersion != "3.48.0-r4" || im.Fixed || im.MoveTo != "v3.23" || !im.Retire {
		t.Errorf("alpine-3.21 = %+v", im)
	}
	if im := image(r, "debian-13"); !im.ByVersion || len(im.Notes) == 0 || !strings.Contains(strings.Join(im.Notes, " "), "3.46.1-7") || !strings.Contains(strings.Join(im.Notes, " "), "backported") {
		t.Errorf("debian-13 = %+v, want a note naming 3.46.1-7 and backports", im)
	}
	if !r.Retire() || !r.NewerSQLite() || len(r.NewReleases) != 1 || r.NewReleases[0].Version.String() != "3.55.0" || r.NewestPin != "3.54.0" {
		t.Errorf("report: retire %v, new %+v, newest pin %s", r.Retire(), r.NewReleases, r.NewestPin)
	}
}

func TestUpstreamWatchSameBranchFixedAndKeep(t *testing.T) {
	f := writeFixtures(t)
	def, err := imagedef.Embedded("alpine-3.21")
	if err != nil {
		t.Fatal(err)
	}
	// Only v3.21 read: nothing newer is fixed.
	var only []upstream.Source
	for _, s := range f.alpine {
		if s.Branch == "v3.21" {
			only = append(only, s)
		}
	}
	r, err := upstream.Watch(context.Background(), upstream.Options{Images: []*imagedef.Definition{def}, Alpine: only, Downloads: f.page, Pins: embeddedPins(t)})
	if err != nil || r.Failed() {
		t.Fatal(err, r.Errors)
	}
	if im := r.Images[0]; im.Verdict != upstream.KeepGraft || im.Retire {
		t.Errorf("alpine-3.21 with only v3.21 read = %+v", im)
	}
	if len(r.Branches) != 1 {
		t.Errorf("read %d branches, want only v3.21 (Debian is not needed)", len(r.Branches))
	}
	// v3.21 itself fixed: retire, move to v3.21.
	fixed := filepath.Join(t.TempDir(), "APKINDEX.tar.gz")
	os.WriteFile(fixed, upstreamtest.APKIndexTarGz("v3.21", upstreamtest.AlpineBranch("3.51.3-r0")...), 0o644)
	r, err = upstream.Watch(context.Background(), upstream.Options{Images: []*imagedef.Definition{def}, Alpine: []upstream.Source{{Branch: "v3.21", Location: fixed}}, Downloads: f.page, Pins: embeddedPins(t)})
	if err != nil || r.Failed() {
		t.Fatal(err, r.Errors)
	}
	if im := r.Images[0]; im.Verdict != "retire: move to v3.21" || !im.Fixed {
		t.Errorf("alpine-3.21 on a fixed v3.21 = %+v", im)
	}
	if len(r.Images[0].Notes) == 0 || !strings.Contains(r.Images[0].Notes[0], "distro_sqlite: 3.48.0-r4") {
		t.Errorf("notes = %q, want the definition's stale distro_sqlite named", r.Images[0].Notes)
	}
}

func TestUpstreamWatchNeverJudgesFromPartialData(t *testing.T) {
	f := writeFixtures(t)
	for i, s := range f.alpine {
		if s.Branch == "v3.22" {
			data, _ := os.ReadFile(s.Location)
			broken := filepath.Join(t.TempDir(), "truncated-APKINDEX.tar.gz")
			os.WriteFile(broken, data[:len(data)-10], 0o644)
			f.alpine[i].Location = broken
		}
	}
	r, err := upstream.Watch(context.Background(), upstream.Options{
		Images: allImages(t), Alpine: f.alpine, Debian: f.debian, Downloads: f.page, Pins: embeddedPins(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Failed() || !strings.Contains(strings.Join(r.Errors, "\n"), "truncated-APKINDEX.tar.gz") {
		t.Errorf("errors = %q, want one naming the truncated index", r.Errors)
	}
	for _, name := range []string{"alpine-3.21", "alpine-3.22", "python-3.13-alpine3.21"} {
		if im := image(r, name); im.Verdict != "" || im.Retire || !strings.Contains(im.Error, "v3.22") {
			t.Errorf("%s = %+v, want no verdict and an error about v3.22", name, im)
		}
	}
	if im := image(r, "debian-13"); im.Verdict != upstream.KeepGraft {
		t.Errorf("debian-13 = %+v, want its verdict (its indexes were read)", im)
	}
	if b := branch(r, "v3.23"); b.Verdict != upstream.RetireGraft {
		t.Errorf("v3.23 = %+v", b)
	}
	if r.Retire() {
		t.Error("Retire() from partial data")
	}
}

func TestUpstreamWatchOverHTTP(t *testing.T) {
	files := map[string][]byte{
		"/alpine/v3.21/main/x86_64/APKINDEX.tar.gz": upstreamtest.APKIndexTarGz("v3.21", upstreamtest.AlpineBranch("3.48.0-r4")...),
		"/alpine/v3.23/main/x86_64/APKINDEX.tar.gz": upstreamtest.APKIndexTarGz("v3.23", upstreamtest.AlpineBranch("3.53.4-r0")...),
		"/download.html": fixturePage(),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	def, _ := imagedef.Embedded("alpine-3.21")
	opts := upstream.Options{Images: []*imagedef.Definition{def}, Downloads: srv.URL + "/download.html", Pins: embeddedPins(t),
		Alpine: []upstream.Source{{Branch: "v3.21", Location: srv.URL + "/alpine/v3.21/main/x86_64/APKINDEX.tar.gz"}, {Branch: "v3.23", Location: srv.URL + "/alpine/v3.23/main/x86_64/APKINDEX.tar.gz"}}}
	r, err := upstream.Watch(context.Background(), opts)
	if err != nil || r.Failed() {
		t.Fatal(err, r.Errors)
	}
	if r.Images[0].Verdict != "retire: move to v3.23" {
		t.Errorf("verdict = %+v", r.Images[0])
	}
	opts.Alpine = append(opts.Alpine, upstream.Source{Branch: "edge", Location: srv.URL + "/alpine/edge/main/x86_64/APKINDEX.tar.gz"})
	r, _ = upstream.Watch(context.Background(), opts)
	if !r.Failed() || !strings.Contains(strings.Join(r.Errors, "\n"), "/alpine/edge/main/x86_64/APKINDEX.tar.gz: HTTP 404") || r.Images[0].Verdict != "" {
		t.Errorf("a 404 for edge: errors %q, image %+v", r.Errors, r.Images[0])
	}
}

func TestUpstreamReaderRefusesPlainHTTP(t *testing.T) {
	_, err := (&upstream.Reader{}).Read(context.Background(), "http://example.org/APKINDEX.tar.gz")
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("Read(http://example.org) = %v, want a refusal", err)
	}
}

// A "retire: move to" verdict names stable releases only. A fix that exists
// only in a development branch (Alpine edge, Debian testing/sid, a suite not
// released yet) is shown as such, with "keep the graft".
func TestUpstreamVerdictNamesStableReleasesOnly(t *testing.T) {
	dir := t.TempDir()
	apk := func(branch, v string) upstream.Source {
		p := filepath.Join(dir, "alpine-"+branch)
		if err := os.WriteFile(p, upstreamtest.APKIndexTarGz(branch, upstreamtest.AlpineBranch(v)...), 0o644); err != nil {
			t.Fatal(err)
		}
		return upstream.Source{Branch: branch, Location: p}
	}
	deb := func(suite, v string) upstream.Source {
		p := filepath.Join(dir, "debian-"+suite)
		if err := os.WriteFile(p, upstreamtest.XZ(upstreamtest.DebianSuite(v)), 0o644); err != nil {
			t.Fatal(err)
		}
		return upstream.Source{Branch: suite, Location: p}
	}
	alpine321, _ := imagedef.Embedded("alpine-3.21")
	debian13, _ := imagedef.Embedded("debian-13")
	page := writeFixtures(t).page
	watch := func(def *imagedef.Definition, a, d []upstream.Source) *upstream.Report {
		t.Helper()
		r, err := upstream.Watch(context.Background(), upstream.Options{Images: []*imagedef.Definition{def}, Alpine: a, Debian: d, Downloads: page, Pins: embeddedPins(t)})
		if err != nil || r.Failed() {
			t.Fatal(err, r.Errors)
		}
		return r
	}

	// Only edge is fixed: keep the graft, and say where the fix is.
	r := watch(alpine321, []upstream.Source{apk("v3.21", "3.48.0-r4"), apk("v3.22", "3.49.2-r1"), apk("edge", "3.53.4-r0")}, nil)
	im := r.Images[0]
	if im.Verdict != upstream.KeepGraft || im.Retire || im.MoveTo != "" || strings.Join(im.FixedOnlyIn, ",") != "edge" ||
		!strings.Contains(strings.Join(im.Notes, " "), "only in Alpine edge") || r.Retire() {
		t.Errorf("edge fixed only = %+v, want keep the graft, fixed only in edge", im)
	}
	if b := branch(r, "edge"); b.Stable || !b.Fixed {
		t.Errorf("edge = %+v, want fixed and not stable", b)
	}
	if b := branch(r, "v3.22"); !b.Stable {
		t.Errorf("v3.22 = %+v, want stable", b)
	}
	// A stable release fixed as well: move there, never to edge.
	r = watch(alpine321, []upstream.Source{apk("v3.21", "3.48.0-r4"), apk("v3.23", "3.53.4-r0"), apk("edge", "3.53.4-r0")}, nil)
	if im := r.Images[0]; im.Verdict != "retire: move to v3.23" || len(im.FixedOnlyIn) != 0 {
		t.Errorf("v3.23 and edge fixed = %+v, want move to v3.23", im)
	}

	// Debian: forky (not released) and sid fixed, trixie not.
	r = watch(debian13, nil, []upstream.Source{deb("trixie", "3.46.1-7"), deb("forky", "3.53.4-1"), deb("sid", "3.53.4-2")})
	im = r.Images[0]
	if im.Verdict != upstream.KeepGraft || strings.Join(im.FixedOnlyIn, ",") != "forky,sid" || !strings.Contains(strings.Join(im.Notes, " "), "only in Debian forky, sid") {
		t.Errorf("debian-13 with only forky and sid fixed = %+v", im)
	}
	// testing is a development branch too.
	r = watch(debian13, nil, []upstream.Source{deb("trixie", "3.46.1-7"), deb("testing", "3.53.4-1")})
	if im := r.Images[0]; im.Verdict != upstream.KeepGraft || strings.Join(im.FixedOnlyIn, ",") != "testing" {
		t.Errorf("debian-13 with testing fixed = %+v", im)
	}

	for _, tc := range []struct {
		d      upstream.Distro
		branch string
		stable bool
	}{
		{upstream.Alpine, "v3.21", true}, {upstream.Alpine, "edge", false},
		{upstream.Debian, "bookworm", true}, {upstream.Debian, "trixie", true}, {upstream.Debian, "forky", false},
		{upstream.Debian, "testing", false}, {upstream.Debian, "sid", false}, {upstream.Debian, "unstable", false},
	} {
		if got := upstream.Stable(tc.d, tc.branch); got != tc.stable {
			t.Errorf("Stable(%s, %s) = %v, want %v", tc.d, tc.branch, got, tc.stable)
		}
	}
}
