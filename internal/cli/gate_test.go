package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/referrers"
	"github.com/sqlite-graft/sqlite-graft/internal/registrytest"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// The release gate in a build: SQLite 3.53.4 grafted onto the glibc base,
// its own tests (quick) built from the verified Debian tree with the
// recipe's options; the pushed image records the result in its build.json,
// the provenance and an in-toto test-result referrer, and the result file
// holds it whole. Where no verified tree of the pin exists (3.51.3), the
// build says "not run" — and with --require-sqlite-tests it stops, nothing
// pushed.
func TestBuildReleaseGate(t *testing.T) {
	reg := registrytest.Start(t)
	base := testbase.Push(t, testbase.Glibc(t), reg.Host+"/library/debian-like:13").String()
	repo := reg.Host + "/sqlite-graft/debian-gated"
	res := filepath.Join(t.TempDir(), "result.json")
	args := append([]string{"build", "--local", "--image", "debian-13", "--base", base, "--sqlite", "3.53.4", "--from", moduleZip(t, "3.53.4"),
		"--sqlite-tests", "quick", "--sqlite-tree", fixtures.CanonicalTreeArchive(t, "3.53.4"), "--require-sqlite-tests",
		"--push", repo, "--result", res}, cacheArgs(t)...)
	r := sqliteGraft(t, args...)
	if r.code != 0 {
		t.Fatalf("build --sqlite-tests quick = %d:\n%s", r.code, r.stderr)
	}
	var result struct {
		Reference   string
		SQLiteTests sqltests.Result `json:"sqlite_tests"`
	}
	b, err := os.ReadFile(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &result); err != nil {
		t.Fatal(err)
	}
	if g := result.SQLiteTests; g.Status != sqltests.Passed || g.Level != sqltests.Quick || g.Tests == 0 || g.Errors != 0 {
		t.Fatalf("result file's sqlite_tests = %+v, want quick passed", g)
	}
	subject, _ := name.NewDigest(result.Reference)
	img, err := remote.Image(subject, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		SQLiteTests map[string]any `json:"sqlite_tests"`
	}
	if err := json.Unmarshal(testbase.ReadFile(t, img, layer.MetadataPath), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.SQLiteTests["status"] != "passed" || meta.SQLiteTests["level"] != "quick" || meta.SQLiteTests["check_in"] == "" {
		t.Errorf("the image's build.json sqlite_tests = %v, want quick passed with the tree's check-in", meta.SQLiteTests)
	}
	prov, err := os.ReadFile(filepath.Join(filepath.Dir(res), provenance.FileName))
	if err != nil || !strings.Contains(string(prov), `"sqlite_tests"`) || !strings.Contains(string(prov), `"status": "passed"`) {
		t.Errorf("provenance: %v; want the gate's result in it", err)
	}
	found, err := referrers.Find(t.Context(), subject, referrers.InToto, reg.RemoteOptions()...)
	var results []string
	for _, d := range found {
		if d.Annotations[referrers.PredicateTypeAnnotation] == sqltests.PredicateType {
			a, err := referrers.Fetch(t.Context(), subject.Context().Digest(d.Digest.String()), reg.RemoteOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, string(a.Data))
		}
	}
	if err != nil || len(results) != 1 || !strings.Contains(results[0], `"result":"PASSED"`) || !strings.Contains(results[0], "test/walrestart.test") {
		t.Errorf("test-result referrers of %s = %v, %v; want one, PASSED, naming walrestart.test", subject, results, err)
	}

	// No verified tree of 3.51.3 (the earlier default): not run, said;
	// required: refused, no tag.
	legacy := legacyDefinition(t, "debian-13")
	args, resPath := buildArgs(t, legacy, base, repo+":ungated", "--sqlite-tests", "wal")
	if r := sqliteGraft(t, args...); r.code != 0 || !strings.Contains(r.stderr, "SQLite's tests: not run (no verified source tree for 3.51.3") {
		t.Errorf("build --sqlite-tests wal of 3.51.3 = %d, want it to pass saying the tests did not run:\n%s", r.code, r.stderr)
	} else if b, _ := os.ReadFile(resPath); !strings.Contains(string(b), `"status": "not run"`) {
		t.Errorf("result file of an ungated build: %s, want sqlite_tests not run", b)
	}
	args, _ = buildArgs(t, legacy, base, repo+":required", "--sqlite-tests", "wal", "--require-sqlite-tests")
	if r := sqliteGraft(t, args...); r.code != 1 || !strings.Contains(r.stderr, "not run (no verified source tree for 3.51.3") || !strings.Contains(r.stderr, "--require-sqlite-tests") {
		t.Errorf("build --require-sqlite-tests of 3.51.3 = %d, want exit 1 naming the missing tree and the flag:\n%s", r.code, r.stderr)
	}
	tagAbsent(t, reg, repo+":required")
}
