package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A definition that does not accept the advisories of its pin is refused in
// planning: before the base is pulled, the source fetched or anything
// compiled or written. The error names the file, each advisory and how to
// accept it. The base and source given here do not exist, so reaching any
// later step would fail differently.
func TestBuildRefusesUnacceptedAdvisory(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "..", "images", "alpine-3.21.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(shipped)
	cut := strings.Index(text, "accept_advisories:")
	if cut < 0 {
		t.Fatal("the shipped alpine-3.21.yaml accepts no advisories")
	}
	dir := t.TempDir()
	def := filepath.Join(dir, "alpine-3.21.yaml")
	// Without its acceptances: the default pin's two advisories (fixed in
	// 3.54.0) are refused.
	keep := text[:cut]
	if err := os.WriteFile(def, []byte(keep), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	args := append([]string{"build", "--local", "--image", def, "--base", "127.0.0.1:1/nowhere:1",
		"--from", filepath.Join(dir, "no-such-source.zip"), "--output", out}, cacheArgs(t)...)
	r := sqliteGraft(t, args...)
	if r.code != 1 {
		t.Fatalf("build = %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{def + ": refused", "CVE-2026-119374", "CVE-2026-119379", "accept_advisories:", "- id: CVE-2026-119379", "SQLite 3.54.0 or later fixes them all"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("build refusal does not say %q:\n%s", want, r.stderr)
		}
	}
	// 3.53.4 has the FTS5 fixes: those advisories are not named.
	for _, fixed := range []string{"CVE-2026-11822", "CVE-2026-11824"} {
		if strings.Contains(r.stderr, fixed) {
			t.Errorf("build refusal names %s, which 3.53.4 fixes:\n%s", fixed, r.stderr)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("--output %s exists after a refused build (%v)", out, err)
	}
	// The same definition with a pin that fixes them passes the gate (and
	// then fails at the base, which does not exist).
	r = sqliteGraft(t, append(args, "--sqlite", "3.54.0")...)
	if r.code == 0 || strings.Contains(r.stderr, "CVE-") || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("build --sqlite 3.54.0 = %d, want past the advisories gate to the base:\n%s", r.code, r.stderr)
	}
}
