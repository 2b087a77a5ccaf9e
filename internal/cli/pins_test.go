package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/cli"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

// pinsCopy is a temporary copy of the repository's sqlite-pins.yaml.
func pinsCopy(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "sqlite-pins.yaml")
	if err := os.WriteFile(p, sqlitegraft.PinsYAML, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func updatePage(t *testing.T, dir string) string {
	rows := downloadRows(true)
	rows = append(rows, upstreamtest.SQLiteRelease("3.52.0", 2026, 0x52)...) // withdrawn
	rows = append(rows, upstreamtest.Row{Version: "3.56.0", Path: "snapshot/sqlite-amalgamation-3560000.zip", Size: 1, SHA3: strings.Repeat("56", 32)})
	return writeFixture(t, dir, "download.html", upstreamtest.DownloadPage(rows...))
}

func TestPinsUpdate(t *testing.T) {
	dir := t.TempDir()
	file, page := pinsCopy(t, dir), updatePage(t, dir)
	r := sqliteGraft(t, "pins", "update", "--pins", file, "--sqlite-downloads", page)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "added SQLite 3.55.0") || strings.Count(r.stdout, "added SQLite") != 1 {
		t.Fatalf("pins update = %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"3.52.0: withdrawn", "3.56.0: no YYYY/ directory"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not warn %q:\n%s", w, r.stderr)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), string(sqlitegraft.PinsYAML)) {
		t.Error("the existing text (comments, entries) was not kept verbatim")
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the old 0640", st.Mode().Perm())
	}
	f, err := pins.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Lookup(pins.MustParseVersion("3.55.0"))
	if err != nil || p.Year != 2026 || p.Amalgamation == nil || p.Amalgamation.SHA3 != strings.Repeat("54", 32) ||
		!strings.Contains(p.Amalgamation.Published, page) || p.SQLite3C != nil {
		t.Errorf("3.55.0 = %+v, %v", p, err)
	}
	old, _ := pins.Parse("old", sqlitegraft.PinsYAML)
	if len(f.Releases) != len(old.Releases)+1 {
		t.Errorf("%d releases, want %d", len(f.Releases), len(old.Releases)+1)
	}
	if _, err := f.Lookup(pins.MustParseVersion("3.52.0")); err == nil || !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("3.52.0 after update: %v", err)
	}
	// The updated file drives the other commands.
	if r := sqliteGraft(t, "versions", "--pins", file); r.code != 0 || !strings.Contains(r.stdout, "3.55.0") {
		t.Errorf("versions --pins updated = %d %s %s", r.code, r.stdout, r.stderr)
	}
	// A second run adds nothing.
	r = sqliteGraft(t, "pins", "update", "--pins", file, "--sqlite-downloads", page)
	again, _ := os.ReadFile(file)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "nothing to add") || string(again) != string(data) {
		t.Errorf("second run = %d %q, file changed: %v", r.code, r.stdout, string(again) != string(data))
	}
}

func TestPinsUpdateWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	page := updatePage(t, dir)
	work := t.TempDir()
	t.Chdir(work)
	r := sqliteGraft(t, "pins", "update", "--sqlite-downloads", page)
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "built into this binary cannot be updated") {
		t.Errorf("without ./sqlite-pins.yaml = %d %q", r.code, r.stderr)
	}
	pinsCopy(t, work)
	r = sqliteGraft(t, "pins", "update", "--sqlite-downloads", page)
	data, _ := os.ReadFile(filepath.Join(work, "sqlite-pins.yaml"))
	if r.code != cli.ExitOK || !strings.Contains(string(data), "version: 3.55.0") {
		t.Errorf("./sqlite-pins.yaml = %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestPinsUpdateRefuses(t *testing.T) {
	dir := t.TempDir()
	file := pinsCopy(t, dir)
	rows := downloadRows(true)
	rows[0].SHA3 = strings.Repeat("ee", 32) // the page disagrees with the 3.51.3 pin
	conflict := writeFixture(t, dir, "conflict.html", upstreamtest.DownloadPage(rows...))
	garbage := writeFixture(t, dir, "garbage.html", []byte(strings.Replace(string(upstreamtest.DownloadPage(downloadRows(true)...)), "-->", "PRODUCT,3.55.0\n-->", 1)))
	for name, tc := range map[string]struct {
		page string
		want []string
	}{
		"hash conflict": {conflict, []string{"disagrees", "ced02ff9738970f3", "left unchanged"}},
		"garbage":       {garbage, []string{garbage + ":", "columns"}},
		"missing page":  {filepath.Join(dir, "nope.html"), []string{"nope.html"}},
	} {
		r := sqliteGraft(t, "pins", "update", "--pins", file, "--sqlite-downloads", tc.page)
		if r.code != cli.ExitFailed {
			t.Errorf("%s: exit %d, want %d", name, r.code, cli.ExitFailed)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr does not say %q:\n%s", name, w, r.stderr)
			}
		}
		if data, _ := os.ReadFile(file); string(data) != string(sqlitegraft.PinsYAML) {
			t.Errorf("%s: the pins file changed", name)
		}
	}
}
