package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// Without --local and outside a `dagger run` session, build says how to get
// a session or to use --local — before touching the network, and without
// trying to download a dagger CLI.
func TestDaggerBuildWithoutASessionSaysHow(t *testing.T) {
	t.Setenv("DAGGER_SESSION_PORT", "")
	t.Setenv("DAGGER_SESSION_TOKEN", "")
	t.Setenv("_EXPERIMENTAL_DAGGER_CLI_BIN", "")
	dir := t.TempDir()
	r := sqliteGraft(t, "build", "--cache-dir", filepath.Join(dir, "cache"), "--output", filepath.Join(dir, "out"), "--log-level", "warn")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{"no Dagger session", "dagger run sqlite-graft build", "--local"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(strings.ToLower(r.stderr), "download") {
		t.Errorf("stderr mentions a download:\n%s", r.stderr)
	}
}
