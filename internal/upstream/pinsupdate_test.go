package upstream_test

import (
	"strings"
	"testing"
	"time"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

var today = time.Date(2026, 11, 20, 3, 4, 5, 0, time.UTC)

func updatePage(t *testing.T) *upstream.DownloadPage {
	t.Helper()
	rows := append(release3513(), upstreamtest.SQLiteRelease("3.55.0", 2026, 0x55)...)
	rows = append(rows, upstreamtest.SQLiteRelease("3.52.0", 2026, 0x52)...) // withdrawn
	rows = append(rows, upstreamtest.Row{Version: "3.56.0", Path: "snapshot/sqlite-autoconf-3560000.tar.gz", Size: 1, SHA3: strings.Repeat("56", 32)})
	p, err := upstream.ParseDownloadPage("https://sqlite.org/download.html", upstreamtest.DownloadPage(rows...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUpdatePins(t *testing.T) {
	page := updatePage(t)
	pub := upstream.PublishedBy(page.Name)
	up, err := upstream.UpdatePins("sqlite-pins.yaml", sqlitegraft.PinsYAML, page, pub, today)
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Added) != 1 || up.Added[0].Version.String() != "3.55.0" || up.Added[0].Date != "2026-11-20" || up.Added[0].SQLite3C != nil {
		t.Fatalf("added %+v, want 3.55.0 only", up.Added)
	}
	warn := strings.Join(up.Warnings, "\n")
	if !strings.Contains(warn, "3.52.0: withdrawn") || !strings.Contains(warn, "3.56.0: no YYYY/ directory") || len(up.Conflicts) != 0 {
		t.Errorf("warnings %q, conflicts %q", up.Warnings, up.Conflicts)
	}
	text := string(up.Data)
	if !strings.HasPrefix(text, string(sqlitegraft.PinsYAML)) {
		t.Errorf("the old text is not kept verbatim before the new entry")
	}
	for _, want := range []string{
		"# sqlite-pins.yaml — the SQLite releases", "  - version: 3.55.0\n    year: 2026\n    date: 2026-11-20\n",
		"    amalgamation:\n      sha3: " + strings.Repeat("54", 32) + "\n      published: https://sqlite.org/download.html (machine-readable block)\n",
		"# Added by `sqlite-graft pins update` on 2026-11-20",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("updated file lacks %q:\n%s", want, text[len(sqlitegraft.PinsYAML)-200:])
		}
	}
	f, err := pins.Parse("updated.yaml", up.Data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Lookup(pins.MustParseVersion("3.55.0"))
	if err != nil || p.AutoconfArchive == nil || p.AutoconfArchive.SHA3 != strings.Repeat("57", 32) || p.AutoconfArchive.Published != pub {
		t.Errorf("3.55.0 = %+v, %v", p, err)
	}
	// A second run adds nothing and changes nothing.
	again, err := upstream.UpdatePins("sqlite-pins.yaml", up.Data, page, pub, today.AddDate(0, 0, 1))
	if err != nil || len(again.Added) != 0 || string(again.Data) != string(up.Data) {
		t.Errorf("second run: %+v, %v", again, err)
	}
}

func TestUpdatePinsLayouts(t *testing.T) {
	page := updatePage(t)
	base := string(sqlitegraft.PinsYAML)
	// releases: before another top-level key, with comments at its end.
	i := strings.Index(base, "withdrawn:")
	j := strings.Index(base, "releases:")
	moved := base[:i] + base[j:] + "\n# the withdrawn ones\n" + base[i:j]
	moved = strings.Replace(moved, "\n# the withdrawn ones", "    # (end of releases)\n\n# the withdrawn ones", 1)
	// Unindented list items, CRLF line ends.
	flat := strings.ReplaceAll(strings.ReplaceAll(base, "\n  ", "\n"), "\n", "\r\n")
	for name, data := range map[string]string{"releases first": moved, "unindented CRLF": flat} {
		up, err := upstream.UpdatePins("pins.yaml", []byte(data), page, "a saved page: /tmp/x #1", today.AddDate(1, 0, 0))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		f, err := pins.Parse("pins.yaml", up.Data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		p, err := f.Lookup(pins.MustParseVersion("3.55.0"))
		if err != nil || p.Date != "2026-12-31" || p.Amalgamation.Published != "a saved page: /tmp/x #1" || len(f.Withdrawn) != 1 {
			t.Errorf("%s: 3.55.0 = %+v, %v; withdrawn %v", name, p, err, f.Withdrawn)
		}
		if name == "releases first" {
			text := string(up.Data)
			if a, b := strings.Index(text, "version: 3.55.0"), strings.Index(text, "# the withdrawn ones"); a < 0 || a > b {
				t.Errorf("%s: 3.55.0 not appended inside the releases list:\n%s", name, text)
			}
		}
	}
}

func TestUpdatePinsRefuses(t *testing.T) {
	page := updatePage(t)
	flow := "default: 3.51.3\nmirrors: [https://sqlite.org]\nreleases: [{version: 3.51.3, year: 2026, date: 2026-03-13, amalgamation: {sha3: " +
		"ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea, published: x}}]\n"
	if _, err := upstream.UpdatePins("flow.yaml", []byte(flow), page, "x", today); err == nil || !strings.Contains(err.Error(), "flow.yaml") {
		t.Errorf("flow list: %v, want a refusal naming the file", err)
	}
	if _, err := upstream.UpdatePins("bad.yaml", []byte("releases: 1\n"), page, "x", today); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("invalid pins: %v", err)
	}
	// The page disagrees with a pin: reported, the pin untouched.
	rows := release3513()
	rows[0].SHA3 = strings.Repeat("ee", 32)
	bad, err := upstream.ParseDownloadPage("dl.html", upstreamtest.DownloadPage(rows...))
	if err != nil {
		t.Fatal(err)
	}
	up, err := upstream.UpdatePins("sqlite-pins.yaml", sqlitegraft.PinsYAML, bad, "x", today)
	if err != nil || len(up.Conflicts) != 1 || !strings.Contains(up.Conflicts[0], "ced02ff9738970f3") || len(up.Added) != 0 {
		t.Errorf("conflict: %+v, %v", up, err)
	}
}
