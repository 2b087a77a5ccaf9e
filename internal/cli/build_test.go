package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
	"github.com/sqlite-graft/sqlite-graft/internal/referrers"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/sbom"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
	"github.com/sqlite-graft/sqlite-graft/internal/vex"
)

type result struct {
	Reference, Digest string
	Tags, Pushed      []string
	Unchanged         bool
	Stats             struct{ BlobsUploaded, BytesUploaded int64 }
	Checks            []publish.Check
}

func buildArgs(t testing.TB, def, base, push string, extra ...string) ([]string, string) {
	res := filepath.Join(t.TempDir(), "result.json")
	args := append([]string{"build", "--local", "--image", def, "--base", base, "--from", moduleZip(t, definitionVersion(t, def)),
		"--push", push, "--result", res}, cacheArgs(t)...)
	return append(args, extra...), res
}

// definitionVersion is the SQLite version the definition (a shipped name or
// a file) pins: the source the build is given must be of that version.
func definitionVersion(t testing.TB, def string) string {
	t.Helper()
	load := imagedef.Load
	if !strings.HasSuffix(def, ".yaml") {
		load = imagedef.Embedded
	}
	d, err := load(def)
	if err != nil {
		t.Fatal(err)
	}
	return d.SQLite.String()
}

// legacyDefinition is a copy of the shipped definition name pinned to
// 3.51.3, the earlier default, accepting the advisories that release has:
// a build to move from.
func legacyDefinition(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "images", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^sqlite: .*$`).ReplaceAllString(string(b), "sqlite: 3.51.3")
	for _, id := range []string{"CVE-2026-11822", "CVE-2026-11824"} {
		text += "  - id: " + id + "\n    reason: the earlier default pin, for a test that moves from it\n"
	}
	out := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func readResult(t testing.TB, path string) result {
	t.Helper()
	var r result
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// pulledBack runs the image checks on the image as the registry serves it;
// kind says whether its base carries a SQLite of its own.
func pulledBack(t *testing.T, reg *registrytest.Registry, ref string, kind check.BaselineKind) *check.ImageReport {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(d, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := embeddedPin(t, "3.53.4")
	r, err := check.Image(t.Context(), check.ImageOptions{Image: img, Want: &want, BaselineKind: kind})
	if err != nil {
		t.Fatalf("check.Image(%s) = %v", ref, err)
	}
	return r
}

func embeddedPin(t testing.TB, v string) (pins.Pin, error) {
	r := sqliteGraft(t, "versions", "--json")
	var f pins.File
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatal(err)
	}
	return f.Lookup(pins.MustParseVersion(v))
}

func tagAbsent(t *testing.T, reg *registrytest.Registry, ref string) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(tag, reg.RemoteOptions()...)
	var te *transport.Error
	if err == nil || !strings.Contains(err.Error(), "404") && !(asTransport(err, &te) && te.StatusCode == 404) {
		t.Errorf("%s: HEAD = %v, want 404 (no tag after a failed build)", ref, err)
	}
}

func asTransport(err error, te **transport.Error) bool {
	e, ok := err.(*transport.Error)
	if ok {
		*te = e
	}
	return ok
}

// The Alpine-like musl base from Debian pieces, in a real registry: build
// grafts 3.53.4, pushes, and the image pulled back reports 3.53.4 as its
// non-root user. The same inputs again: same digest, nothing uploaded.
func TestBuildMuslPushAndRebuild(t *testing.T) {
	reg := registrytest.Start(t)
	base := testbase.Push(t, testbase.Musl(t), reg.Host+"/library/alpine-like:3.21")
	repo := reg.Host + "/sqlite-graft/alpine"
	args, resPath := buildArgs(t, "alpine-3.21", base.String(), repo)
	r := sqliteGraft(t, args...)
	if r.code != 0 {
		t.Fatalf("build = %d:\n%s", r.code, r.stderr)
	}
	first := readResult(t, resPath)
	if !strings.HasPrefix(first.Reference, repo+"@sha256:") || strings.TrimSpace(r.stdout) != first.Reference {
		t.Errorf("build printed %q, result %+v: want %s@sha256:...", r.stdout, first, repo)
	}
	if len(first.Checks) != 1 || first.Checks[0].Baseline != "base" || !strings.HasPrefix(first.Checks[0].Downstream, "not needed: the base carries its own SQLite (/usr/lib/libsqlite3.so.0)") {
		t.Errorf("result checks = %+v, want the base's own SQLite as the baseline, no downstream package", first.Checks)
	}
	wantTags := []string{repo + ":3.21-sqlite3.53.4", repo + ":3.21-sqlite3.53.4-20260724"}
	if strings.Join(first.Pushed, " ") != strings.Join(wantTags, " ") {
		t.Errorf("pushed tags = %v, want %v", first.Pushed, wantTags)
	}
	rep := pulledBack(t, reg, first.Reference, check.BaselineBase)
	if rep.Report.Version != "3.53.4" || rep.UID == 0 || len(rep.Report.Mapped) != 1 {
		t.Errorf("pulled-back image: version %s, uid %d, mapped %v; want 3.53.4, non-root, one copy", rep.Report.Version, rep.UID, rep.Report.Mapped)
	}
	// SBOM and provenance where standard tools look: referrers of the image
	// (the registry has no referrers API: the sha256-<hex> tag fallback),
	// the SBOM also inside the image, the provenance beside the result file.
	subject, _ := name.NewDigest(first.Reference)
	found, err := referrers.Find(t.Context(), subject, sbom.ArtifactType, reg.RemoteOptions()...)
	if err != nil || len(found) != 1 {
		t.Errorf("referrers of %s with type %s = %v, %v; want one", subject, sbom.ArtifactType, found, err)
	}
	statements := map[string]v1.Descriptor{} // predicate type -> referrer
	found, err = referrers.Find(t.Context(), subject, referrers.InToto, reg.RemoteOptions()...)
	for _, d := range found {
		statements[d.Annotations[referrers.PredicateTypeAnnotation]] = d
	}
	if err != nil || len(found) != 2 || statements[provenance.PredicateType].Digest.Hex == "" || statements[vex.PredicateType].Digest.Hex == "" {
		t.Errorf("in-toto referrers of %s = %v, %v; want the provenance and the VEX statement, each with its predicate type", subject, found, err)
	} else {
		vexMatches(t, reg, subject, statements[vex.PredicateType])
	}
	img, _ := remote.Image(subject, reg.RemoteOptions()...)
	doc := testbase.ReadFile(t, img, graft.SBOMPath)
	if err := sbom.Validate(mustParseSPDX(t, doc)); err != nil || !strings.Contains(string(doc), "pkg:generic/sqlite@3.53.4") {
		t.Errorf("SBOM in the image: %v\n%.300s", err, doc)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(resPath), provenance.FileName)); err != nil {
		t.Errorf("provenance beside the result file: %v", err)
	}

	// Golden digest: the same inputs give the same digest, and nothing is uploaded.
	args, resPath = buildArgs(t, "alpine-3.21", base.String(), repo)
	r = sqliteGraft(t, args...)
	second := readResult(t, resPath)
	if r.code != 0 || !second.Unchanged || second.Digest != first.Digest || second.Stats.BlobsUploaded != 0 {
		t.Errorf("rebuild = %d %q, result %+v; want unchanged %s with 0 blobs uploaded", r.code, r.stdout, second, first.Digest)
	}
	if !strings.HasPrefix(r.stdout, "unchanged ") {
		t.Errorf("rebuild printed %q, want \"unchanged ...\"", r.stdout)
	}
	// Where it is pushed is not an input: another repository, same digest.
	args, resPath = buildArgs(t, "alpine-3.21", base.String(), reg.Host+"/elsewhere/alpine")
	if r := sqliteGraft(t, args...); r.code != 0 || readResult(t, resPath).Digest != first.Digest {
		t.Errorf("build to another repository = %d, digest %s; want %s", r.code, readResult(t, resPath).Digest, first.Digest)
	}
}

// A tampered source and a failing image check both stop the build before
// anything is written: the tag stays absent.
func TestBuildFailuresLeaveNoTag(t *testing.T) {
	reg := registrytest.Start(t)
	base := testbase.Push(t, testbase.Musl(t), reg.Host+"/library/alpine-like:3.21")
	repo := reg.Host + "/sqlite-graft/alpine"

	tampered := t.TempDir()
	for _, f := range []string{"sqlite3.c", "sqlite3.h"} {
		b, _ := os.ReadFile(filepath.Join(fixtures.Amalgamation(t, "3.53.4"), f))
		if f == "sqlite3.c" {
			b[1000] ^= 1
		}
		os.WriteFile(filepath.Join(tampered, f), b, 0o644)
	}
	args, _ := buildArgs(t, "alpine-3.21", base.String(), repo+":tampered", "--from", tampered)
	if r := sqliteGraft(t, args...); r.code != 1 || !strings.Contains(r.stderr, "sqlite3.c: SHA3-256") {
		t.Errorf("build from a tampered source = %d %q, want exit 1 naming sqlite3.c's hash", r.code, r.stderr)
	}
	tagAbsent(t, reg, repo+":tampered")

	// A definition that keeps set-id programs: the check inside the image fails.
	def, err := os.ReadFile("../../images/alpine-3.21.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keepSetuid := filepath.Join(t.TempDir(), "alpine-3.21.yaml")
	os.WriteFile(keepSetuid, []byte(strings.Replace(string(def), "strip_setuid: true", "strip_setuid: false", 1)), 0o644)
	args, _ = buildArgs(t, keepSetuid, base.String(), repo+":setuid")
	r := sqliteGraft(t, args...)
	if r.code != 1 || !strings.Contains(r.stderr, testbase.MuslSetuid) || !strings.Contains(r.stderr, "nothing pushed") {
		t.Errorf("build keeping %s = %d %q, want exit 1 naming it, nothing pushed", testbase.MuslSetuid, r.code, r.stderr)
	}
	tagAbsent(t, reg, repo+":setuid")
}

// The same for a glibc (Debian-like) base.
func TestBuildGlibcPush(t *testing.T) {
	reg := registrytest.Start(t)
	base := testbase.Push(t, testbase.Glibc(t), reg.Host+"/library/debian-like:13")
	args, resPath := buildArgs(t, "debian-13", base.String(), reg.Host+"/sqlite-graft/debian")
	if r := sqliteGraft(t, args...); r.code != 0 {
		t.Fatalf("build = %d:\n%s", r.code, r.stderr)
	}
	rep := pulledBack(t, reg, readResult(t, resPath).Reference, check.BaselineBase)
	if rep.Report.Version != "3.53.4" || rep.UID == 0 {
		t.Errorf("pulled-back glibc image: version %s uid %d", rep.Report.Version, rep.UID)
	}
}

// No --push: an OCI layout and a docker-loadable tarball under --output.
func TestBuildLocalOutput(t *testing.T) {
	reg := registrytest.Start(t)
	base := testbase.Push(t, testbase.Musl(t), reg.Host+"/library/alpine-like:3.21")
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"build", "--local", "--base", base.String(), "--from", moduleZip(t, "3.53.4"), "--output", out}, cacheArgs(t)...)
	r := sqliteGraft(t, args...)
	if r.code != 0 {
		t.Fatalf("build = %d:\n%s", r.code, r.stderr)
	}
	for _, p := range []string{"oci/index.json", "image.tar"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// The explained no-op: unchanged inputs do nothing and say so; a changed pin
// or a moved base is named before anything is built (--dry-run builds nothing).
func TestBuildExplainsWhatChanged(t *testing.T) {
	reg := registrytest.Start(t)
	baseTag := reg.Host + "/library/alpine-like:3.21"
	testbase.Push(t, testbase.Musl(t), baseTag)
	target := reg.Host + "/sqlite-graft/alpine:nightly"
	// From the earlier default pin, 3.51.3, to 3.53.4.
	def := legacyDefinition(t, "alpine-3.21")
	args, _ := buildArgs(t, def, baseTag, target)
	if r := sqliteGraft(t, args...); r.code != 0 {
		t.Fatalf("build = %d: %s", r.code, r.stderr)
	}
	dry := func(extra ...string) run {
		args, _ := buildArgs(t, def, baseTag, target, append([]string{"--dry-run"}, extra...)...)
		return sqliteGraft(t, args...)
	}
	if r := dry(); r.code != 0 || !strings.Contains(r.stdout, "nothing to do") || !strings.Contains(r.stdout, "unchanged") {
		t.Errorf("dry run, same inputs = %d %q, want nothing to do", r.code, r.stdout)
	}
	if r := dry("--sqlite", "3.53.4"); r.code != 0 || !strings.Contains(r.stdout, "sqlite 3.51.3 -> 3.53.4") || !strings.Contains(r.stdout, "build, check, write") {
		t.Errorf("dry run, new pin = %d %q, want the change named", r.code, r.stdout)
	}
	// A changed pin rebuilds, naming the change, and moves the tag.
	args, resPath := buildArgs(t, def, baseTag, target, "--sqlite", "3.53.4", "--from", moduleZip(t, "3.53.4"), "--log-level", "info")
	r := sqliteGraft(t, args...)
	if rebuilt := readResult(t, resPath); r.code != 0 || rebuilt.Unchanged || !strings.Contains(r.stderr, "sqlite 3.51.3 -> 3.53.4") {
		t.Errorf("build with a new pin = %d, %+v, want a rebuild naming the change:\n%s", r.code, rebuilt, r.stderr)
	}
	if r := dry("--sqlite", "3.53.4", "--from", moduleZip(t, "3.53.4")); !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("dry run after the rebuild = %q, want nothing to do", r.stdout)
	}
	// The base tag moves to a new image: named with both digests.
	moved, err := mutateAppendFile(testbase.Musl(t), "/etc/motd", "moved\n")
	if err != nil {
		t.Fatal(err)
	}
	testbase.Push(t, moved, baseTag)
	r = dry("--sqlite", "3.53.4", "--from", moduleZip(t, "3.53.4"))
	if r.code != 0 || !strings.Contains(r.stdout, "base "+baseTag+" (linux/amd64) moved sha256:") {
		t.Errorf("dry run, moved base = %d %q, want the move named", r.code, r.stdout)
	}
	// Nothing was pushed by the dry runs: the tag still holds the first build.
	if r := sqliteGraft(t, append(append([]string{}, args...), "--dry-run")...); !strings.Contains(r.stdout, "moved") {
		t.Errorf("tag changed by a dry run? %q", r.stdout)
	}
}

// vexMatches reads the VEX referrer d of subject back and matches it with
// go-vex as a scanner would: not_affected for the distribution package's
// advisory that the graft does not have, nothing for the graft's own, for
// another package or for another image.
func vexMatches(t *testing.T, reg *registrytest.Registry, subject name.Digest, d v1.Descriptor) {
	t.Helper()
	a, err := referrers.Fetch(t.Context(), subject.Context().Digest(d.Digest.String()), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var stmt struct {
		Predicate json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(a.Data, &stmt); err != nil {
		t.Fatal(err)
	}
	doc, err := vex.Parse(stmt.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	image := vex.ImagePURL(subject.Context(), subject.DigestStr())
	distro := "pkg:apk/alpine/sqlite-libs@3.48.0-r4"
	for _, tc := range []struct {
		vuln, product, sub string
		want               int
	}{
		{"CVE-2025-3277", image, distro, 1},                                                               // the distribution's, not the graft's
		{"CVE-2026-11822", image, distro, 1},                                                              // FTS5: the distribution's 3.48.0 has it, the graft's 3.53.4 not
		{"CVE-2026-119374", image, distro, 0},                                                             // the graft's own (every release before 3.54.0)
		{"CVE-2025-3277", image, "pkg:apk/alpine/busybox@1.37.0-r0", 0},                                   // another package
		{"CVE-2025-3277", vex.ImagePURL(subject.Context(), "sha256:"+strings.Repeat("0", 64)), distro, 0}, // another image
	} {
		st := doc.Matches(tc.vuln, tc.product, []string{tc.sub})
		if len(st) != tc.want || tc.want == 1 && (st[0].Status != "not_affected" || st[0].Justification != "vulnerable_code_not_in_execute_path") {
			t.Errorf("VEX Matches(%s, %s, %s) = %+v, want %d not_affected", tc.vuln, tc.product, tc.sub, st, tc.want)
		}
	}
}
