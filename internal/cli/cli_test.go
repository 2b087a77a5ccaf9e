package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/cli"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

type run struct {
	code           int
	stdout, stderr string
	// maxRSS is the peak resident memory of a sandboxed run of the program
	// (its own, not its children's), in bytes; 0 for a run in this process.
	maxRSS int64
}

func sqliteGraft(t testing.TB, args ...string) run {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, &out, &errb)
	return run{code: code, stdout: out.String(), stderr: errb.String()}
}

// cacheArgs shares the build cache with testbuild, so a variant that another
// package compiled is not compiled again.
func cacheArgs(t testing.TB) []string {
	dir, err := fixtures.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--cache-dir", dir, "--log-level", "warn"}
}

func moduleZip(t testing.TB, version string) string {
	t.Helper()
	zip, err := fixtures.GoModuleZip("github.com/mattn/go-sqlite3", fixtures.GoSQLite3Module[version])
	if err != nil {
		t.Fatal(err)
	}
	return zip
}

func TestVersions(t *testing.T) {
	r := sqliteGraft(t, "versions")
	if r.code != 0 || !strings.Contains(r.stdout, "*3.53.4") {
		t.Fatalf("versions = %d %q, want the default 3.53.4 marked", r.code, r.stdout)
	}
	// The advisories of each pin, as the recipe compiles it.
	if l := lineWith(r.stdout, "*3.53.4"); !strings.HasSuffix(l, "  CVE-2026-119374, CVE-2026-119379") {
		t.Errorf("versions: the default pin's line = %q, want its two advisories", l)
	}
	if l := lineWith(r.stdout, " 3.51.3"); !strings.Contains(l, "CVE-2026-11822, CVE-2026-11824, CVE-2026-119374, CVE-2026-119379") {
		t.Errorf("versions: 3.51.3 = %q, want its four advisories", l)
	}
	if l := lineWith(r.stdout, " 3.54.0"); !strings.HasSuffix(l, "none") {
		t.Errorf("versions: 3.54.0 = %q, want no advisories", l)
	}
	r = sqliteGraft(t, "versions", "--json")
	var doc struct {
		Default       string
		Releases      []struct{ Version string }
		PinAdvisories []struct {
			Version    string
			Default    bool
			Advisories []struct {
				ID, Requires string
				Fixed        string
				Sources      []string
			}
		} `json:"pin_advisories"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Default != "3.53.4" || len(doc.Releases) < 5 {
		t.Fatalf("versions --json = %v, %+v", err, doc)
	}
	if len(doc.PinAdvisories) != len(doc.Releases) || doc.PinAdvisories[0].Version != "3.51.3" || doc.PinAdvisories[0].Default || len(doc.PinAdvisories[0].Advisories) != 4 {
		t.Fatalf("versions --json pin_advisories = %+v", doc.PinAdvisories)
	}
	if a := doc.PinAdvisories[0].Advisories[0]; a.ID != "CVE-2026-11822" || a.Requires != "SQLITE_ENABLE_FTS5" || a.Fixed != "3.53.2" || len(a.Sources) == 0 {
		t.Errorf("versions --json: first advisory of 3.51.3 = %+v", a)
	}
	var defaults []string
	for _, p := range doc.PinAdvisories {
		if p.Default {
			defaults = append(defaults, p.Version)
			if len(p.Advisories) != 2 || p.Advisories[0].ID != "CVE-2026-119374" || p.Advisories[0].Fixed != "3.54.0" {
				t.Errorf("versions --json: advisories of the default %s = %+v, want CVE-2026-119374 and CVE-2026-119379", p.Version, p.Advisories)
			}
		}
	}
	if len(defaults) != 1 || defaults[0] != "3.53.4" {
		t.Errorf("versions --json: default pins %v, want [3.53.4]", defaults)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"fetch"}, // no --out
		{"compile", "--out", t.TempDir(), "--libc", "bionic"},
		{"fetch", "--sqlite", "three", "--out", t.TempDir()},
		{"versions", "extra"},
		{"check", "--no-such-flag"},
		{"--log-format", "xml", "versions"},
		{"check"}, // no --lib
	} {
		r := sqliteGraft(t, args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "sqlite-graft") {
			t.Errorf("sqlite-graft %q = %d %q, want exit %d with a message", args, r.code, r.stderr, cli.ExitUsage)
		}
	}
}

func TestHelpExplainsEveryCommand(t *testing.T) {
	for _, c := range []string{"versions", "fetch", "compile", "check"} {
		r := sqliteGraft(t, c, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--log-format") {
			t.Errorf("%s --help = %d, want usage with examples and global flags:\n%s", c, r.code, r.stdout)
		}
	}
}

func TestFetchRefusesBadInputAndLeavesNothing(t *testing.T) {
	good := fixtures.Amalgamation(t, "3.51.3")
	tampered := t.TempDir()
	for _, f := range []string{"sqlite3.c", "sqlite3.h"} {
		b, err := os.ReadFile(filepath.Join(good, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "sqlite3.c" {
			b[len(b)/2] ^= 1
		}
		os.WriteFile(filepath.Join(tampered, f), b, 0o644)
	}
	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"one byte changed": {[]string{"--from", tampered}, []string{"sqlite3.c", "SHA3-256", "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e"}},
		"3.53.4 as 3.51.3": {[]string{"--from", fixtures.Amalgamation(t, "3.53.4")}, []string{"sqlite3.c", "32d5424f97e0"}},
		"not pinned":       {[]string{"--sqlite", "3.50.2", "--from", good}, []string{"not pinned", "--sha3"}},
		"withdrawn":        {[]string{"--sqlite", "3.52.0", "--sha3", strings.Repeat("0", 64)}, []string{"withdrawn"}},
	} {
		out := filepath.Join(t.TempDir(), "src")
		// 3.51.3 named: the default pin is another release.
		args := append([]string{"fetch", "--out", out, "--sqlite", "3.51.3"}, cacheArgs(t)...)
		r := sqliteGraft(t, append(args, tc.args...)...)
		if r.code != cli.ExitFailed {
			t.Errorf("%s: fetch = %d, want %d\n%s", name, r.code, cli.ExitFailed, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: error %q does not mention %q", name, r.stderr, w)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: %s exists after a failed fetch", name, out)
		}
	}
	out := filepath.Join(t.TempDir(), "src")
	r := sqliteGraft(t, append([]string{"fetch", "--out", out, "--sqlite", "3.51.3", "--from", moduleZip(t, "3.51.3")}, cacheArgs(t)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "3.51.3") {
		t.Fatalf("fetch of the go-sqlite3 module zip = %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// compile --libc glibc on the real 3.51.3 source, then: check against the
// system library, and python3's sqlite3 module under LD_PRELOAD.
func TestCompileGlibcDropsIn(t *testing.T) {
	out := t.TempDir()
	r := sqliteGraft(t, append([]string{"compile", "--libc", "glibc", "--out", out, "--sqlite", "3.51.3", "--from", moduleZip(t, "3.51.3")}, cacheArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("compile = %d: %s", r.code, r.stderr)
	}
	lib := filepath.Join(out, "libsqlite3.so.0")
	var build struct {
		Source struct {
			SQLite3CSHA3 string `json:"sqlite3_c_sha3"`
		}
		Plan struct{ Steps []struct{ Argv []string } }
	}
	b, _ := os.ReadFile(filepath.Join(out, "build.json"))
	if err := json.Unmarshal(b, &build); err != nil || build.Source.SQLite3CSHA3 != "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e" || len(build.Plan.Steps) == 0 {
		t.Errorf("build.json = %s (%v), want the verified sqlite3.c hash and the argv", b, err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", "import sqlite3; print(sqlite3.sqlite_version)")
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+lib)
	got, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(got)) != "3.51.3" {
		t.Errorf("python3 under LD_PRELOAD: sqlite3.sqlite_version = %q (%v), want 3.51.3", got, err)
	}
	r = sqliteGraft(t, "check", "--lib", lib, "--baseline", "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0", "--json")
	if r.code != 0 {
		t.Fatalf("check = %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	var rep struct {
		Version string
		Mapped  []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Version != "3.51.3" || len(rep.Mapped) != 1 {
		t.Errorf("check --json = %+v (%v), want 3.51.3 with one libsqlite3 mapped", rep, err)
	}
}

// compile --libc musl, then check: a musl client through the musl loader.
func TestCompileMuslDropsIn(t *testing.T) {
	out := t.TempDir()
	r := sqliteGraft(t, append([]string{"compile", "--libc", "musl", "--out", out, "--sqlite", "3.51.3", "--from", moduleZip(t, "3.51.3")}, cacheArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("compile = %d: %s", r.code, r.stderr)
	}
	r = sqliteGraft(t, "check", "--lib", filepath.Join(out, "libsqlite3.so.0"), "--baseline", testbuild.MuslBaseline(t), "--stress")
	if r.code != 0 || !strings.Contains(r.stdout, "sqlite:    3.51.3") || !strings.Contains(r.stdout, "lost 0, integrity ok") {
		t.Fatalf("check (musl) = %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestCheckRefusesVulnerable(t *testing.T) {
	r := sqliteGraft(t, "check", "--lib", testbuild.Library(t, "3.51.2", "glibc"))
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "WAL-reset") {
		t.Fatalf("check of 3.51.2 = %d %q, want exit 1 naming the WAL-reset bug", r.code, r.stderr)
	}
}

// The distro's shell refuses a preloaded library of another version; the
// shell the recipe builds against the grafted library works.
func TestShellAgainstGraftedLibrary(t *testing.T) {
	tgz := fixtures.AutoconfTarball(t, testbuild.ShellVersion)
	data, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	r := sqliteGraft(t, append([]string{"compile", "--libc", "glibc", "--out", out, "--sqlite", testbuild.ShellVersion,
		"--sha3", sha3Hex(data), "--from", tgz}, cacheArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("compile from the autoconf tarball = %d: %s", r.code, r.stderr)
	}
	lib, shell := filepath.Join(out, "libsqlite3.so.0"), filepath.Join(out, "sqlite3")

	distro := exec.Command("/usr/bin/sqlite3", ":memory:", "select sqlite_version()")
	distro.Env = append(os.Environ(), "LD_PRELOAD="+lib)
	got, err := distro.CombinedOutput()
	if err == nil || !strings.Contains(string(got), "SQLite header and source version mismatch") {
		t.Errorf("distro sqlite3 under LD_PRELOAD = %q (%v), want the header/source mismatch refusal", got, err)
	}
	for _, env := range [][]string{nil, {"LD_PRELOAD=" + lib}} {
		cmd := exec.Command(shell, ":memory:", "select sqlite_version(); create virtual table f using fts5(x); select 'ok';")
		cmd.Env = append(os.Environ(), env...)
		got, err := cmd.CombinedOutput()
		if err != nil || string(got) != testbuild.ShellVersion+"\nok\n" {
			t.Errorf("grafted sqlite3 (env %v) = %q (%v), want %s and ok", env, got, err, testbuild.ShellVersion)
		}
	}
}
