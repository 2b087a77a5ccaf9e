package upstream_test

import (
	"fmt"
	"strings"
	"testing"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

func embeddedPins(t testing.TB) *pins.File {
	t.Helper()
	f, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The 3.51.3 rows carry the real published hashes.
func release3513() []upstreamtest.Row {
	return []upstreamtest.Row{
		{Version: "3.51.3", Path: "2026/sqlite-amalgamation-3510300.zip", Size: 2_913_122, SHA3: "ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea"},
		{Version: "3.51.3", Path: "2026/sqlite-autoconf-3510300.tar.gz", Size: 3_254_907, SHA3: "581215771b32ea4c4062e6fb9842c4aa43d0a7fb2b6670ff6fa4ebb807781204"},
		{Version: "3.51.3", Path: "2026/sqlite-doc-3510300.zip", Size: 11_018_264, SHA3: strings.Repeat("ab", 32)},
	}
}

func fixturePage() []byte {
	return upstreamtest.DownloadPage(append(release3513(), upstreamtest.SQLiteRelease("3.55.0", 2026, 0x55)...)...)
}

func TestUpstreamParseDownloadPage(t *testing.T) {
	p, err := upstream.ParseDownloadPage("download.html", fixturePage())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Archives) != 4 || len(p.Warnings) != 0 {
		t.Fatalf("archives = %+v, warnings %v; want the 4 amalgamation/autoconf archives", p.Archives, p.Warnings)
	}
	a := p.Archives[2]
	if a.Version.String() != "3.55.0" || a.Kind != pins.Amalgamation || a.Year != 2026 || a.Size != 2_912_345 ||
		a.Path != "2026/sqlite-amalgamation-3550000.zip" || !pins.IsSHA3(a.SHA3) || a.Line == 0 {
		t.Errorf("archive 2 = %+v", a)
	}
	rels := p.Releases()
	if len(rels) != 2 || rels[0].Version.String() != "3.51.3" || rels[1].Archive(pins.Autoconf) == nil {
		t.Errorf("releases = %+v", rels)
	}
	newer := p.NewerThanPins(embeddedPins(t))
	if len(newer) != 1 || newer[0].Version.String() != "3.55.0" || len(newer[0].Archives) != 2 {
		t.Errorf("NewerThanPins = %+v, want 3.55.0 with both archives", newer)
	}
}

func TestUpstreamParseDownloadPageTolerates(t *testing.T) {
	// New columns appended on the right, CRLF, a bare CSV block, a branch
	// release and a snapshot without a year directory.
	csv := "PRODUCT,VERSION,RELATIVE-URL,SIZE-IN-BYTES,SHA3-HASH,RELEASE-DATE\r\n" +
		"PRODUCT,3.55.0,2026/sqlite-amalgamation-3550000.zip,2912345," + strings.Repeat("0a", 32) + ",2026-11-02\r\n" +
		"PRODUCT,3.8.11.1,2015/sqlite-amalgamation-3081101.zip,1700000," + strings.Repeat("0b", 32) + ",2015-07-29\r\n" +
		"PRODUCT,3.56.0,snapshot/sqlite-autoconf-3560000.tar.gz,3000000," + strings.Repeat("0C", 32) + ",2026-12-01\r\n"
	p, err := upstream.ParseDownloadPage("block.csv", []byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Archives) != 2 || p.Archives[1].Year != 0 || p.Archives[1].SHA3 != strings.Repeat("0c", 32) {
		t.Errorf("archives = %+v", p.Archives)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "block.csv:3") || !strings.Contains(p.Warnings[0], "3.8.11.1") {
		t.Errorf("warnings = %q, want the branch release on line 3", p.Warnings)
	}
}

func TestUpstreamParseDownloadPageRejects(t *testing.T) {
	good := string(fixturePage())
	row := "PRODUCT,3.55.0,2026/sqlite-amalgamation-3550000.zip,2912345," + strings.Repeat("0a", 32)
	withRow := func(r string) string {
		return strings.Replace(good, "-->", r+"\n-->", 1)
	}
	lineOf := func(s, sub string) string {
		return fmt.Sprintf(":%d:", strings.Count(s[:strings.Index(s, sub)], "\n")+1)
	}
	for name, tc := range map[string]struct{ page, want string }{
		"no block":        {"<html><body>SQLite Download Page</body></html>", "no machine-readable download block"},
		"garbage line":    {withRow("hello, world"), "columns"},
		"garbage csv":     {withRow(`PRODUCT,"3.55.0,x`), "not a CSV row"},
		"not PRODUCT":     {withRow(strings.Replace(row, "PRODUCT", "PRODUKT", 1)), "constant PRODUCT"},
		"short hash":      {withRow(row[:len(row)-2]), "SHA3-HASH"},
		"size":            {withRow(strings.Replace(row, "2912345", "2.9MB", 1)), "SIZE-IN-BYTES"},
		"wrong number":    {withRow(strings.Replace(row, "3.55.0", "3.55.1", 1)), "names 3550000"},
		"bad version":     {withRow(strings.Replace(row, "3.55.0", "three", 1)), "VERSION"},
		"absolute url":    {withRow(strings.Replace(row, "2026/", "https://evil.example/2026/", 1)), "not a relative path"},
		"conflicting dup": {withRow(row + "\n" + strings.Replace(row, "0a0a", "0b0b", 1)), "listed again"},
		"truncated":       {good[:strings.Index(good, "-->")], "never closed"},
		"no archives":     {string(upstreamtest.DownloadPage(upstreamtest.SQLiteRelease("3.55.0", 2026, 1)[2:]...)), "no sqlite-amalgamation or sqlite-autoconf"},
	} {
		_, err := upstream.ParseDownloadPage("dl.html", []byte(tc.page))
		if err == nil || !strings.HasPrefix(err.Error(), "dl.html") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseDownloadPage = %v, want an error naming dl.html and saying %q", name, err, tc.want)
			continue
		}
		if name == "garbage line" && !strings.Contains(err.Error(), lineOf(tc.page, "hello, world")) {
			t.Errorf("%s: %v does not name the line %s", name, err, lineOf(tc.page, "hello, world"))
		}
	}
}

func FuzzUpstreamParseDownloadPage(f *testing.F) {
	f.Add(fixturePage())
	f.Add([]byte("PRODUCT,VERSION,RELATIVE-URL,SIZE-IN-BYTES,SHA3-HASH\nPRODUCT,3.51.3,2026/sqlite-amalgamation-3510300.zip,1," + strings.Repeat("a", 64) + "\n"))
	f.Add([]byte("<!--\nPRODUCT,VERSION,RELATIVE-URL,SIZE-IN-BYTES,SHA3-HASH\n-->"))
	f.Add([]byte("PRODUCT,VERSION,RELATIVE-URL,SIZE-IN-BYTES,SHA3-HASH\n\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := upstream.ParseDownloadPage("fuzz.html", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.html") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if len(p.Archives) == 0 {
			t.Fatal("parsed without archives")
		}
		for _, a := range p.Archives {
			if !pins.IsSHA3(a.SHA3) || a.Size <= 0 || !strings.Contains(a.Path, fmt.Sprint(a.Version.Number())) {
				t.Fatalf("accepted a bad archive %+v", a)
			}
		}
	})
}
