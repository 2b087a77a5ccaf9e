package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/cli"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

// upstreamFixtures writes the indexes and the download page in their real
// formats and returns the flags that name them.
type upstreamFixtures struct {
	dir               string
	alpine            map[string]string // branch -> file
	debian            map[string]string // suite -> file
	page, pageNoNewer string
}

func writeUpstreamFixtures(t *testing.T) upstreamFixtures {
	t.Helper()
	f := upstreamFixtures{dir: t.TempDir(), alpine: map[string]string{}, debian: map[string]string{}}
	for branch, v := range map[string]string{"v3.21": "3.48.0-r4", "v3.22": "3.49.2-r1", "v3.23": "3.53.4-r0"} {
		f.alpine[branch] = writeFixture(t, f.dir, branch+"-APKINDEX.tar.gz", upstreamtest.APKIndexTarGz(branch, upstreamtest.AlpineBranch(v)...))
	}
	for suite, v := range map[string]string{"bookworm": "3.40.1-2+deb12u2", "trixie": "3.46.1-7"} {
		f.debian[suite] = writeFixture(t, f.dir, suite+"-Packages.xz", upstreamtest.XZ(upstreamtest.DebianSuite(v)))
	}
	f.page = writeFixture(t, f.dir, "download.html", upstreamtest.DownloadPage(downloadRows(true)...))
	f.pageNoNewer = writeFixture(t, f.dir, "download-3.51.3.html", upstreamtest.DownloadPage(downloadRows(false)...))
	return f
}

// downloadRows are 3.51.3 with its real published hashes and, with newer,
// 3.55.0.
func downloadRows(newer bool) []upstreamtest.Row {
	rows := []upstreamtest.Row{
		{Version: "3.51.3", Path: "2026/sqlite-amalgamation-3510300.zip", Size: 2_913_122, SHA3: "ced02ff9738970f338c9c8e269897b554bcda73f6cf1029d49459e1324dbeaea"},
		{Version: "3.51.3", Path: "2026/sqlite-autoconf-3510300.tar.gz", Size: 3_254_907, SHA3: "581215771b32ea4c4062e6fb9842c4aa43d0a7fb2b6670ff6fa4ebb807781204"},
		{Version: "3.51.3", Path: "2026/sqlite-doc-3510300.zip", Size: 11_018_264, SHA3: strings.Repeat("ab", 32)},
	}
	if newer {
		rows = append(rows, upstreamtest.SQLiteRelease("3.55.0", 2026, 0x55)...)
	}
	return rows
}

func writeFixture(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f upstreamFixtures) args(page string, branches ...string) []string {
	args := []string{"upstream", "--sqlite-downloads", page, "--log-level", "warn"}
	for _, b := range branches {
		if loc, ok := f.alpine[b]; ok {
			args = append(args, "--apkindex", b+"="+loc)
		} else {
			args = append(args, "--debian", b+"="+f.debian[b])
		}
	}
	return args
}

// lineWith finds the output line that starts with prefix.
func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestUpstreamOnFixtureIndexes(t *testing.T) {
	f := writeUpstreamFixtures(t)
	r := sqliteGraft(t, f.args(f.page, "v3.21", "v3.22", "v3.23", "bookworm", "trixie")...)
	if r.code != cli.ExitRetire {
		t.Fatalf("upstream = %d, want %d (retire wins over a newer SQLite)\nstdout:\n%s\nstderr:\n%s", r.code, cli.ExitRetire, r.stdout, r.stderr)
	}
	for prefix, want := range map[string][]string{
		// per branch
		"alpine v3.21":    {"sqlite-libs 3.48.0-r4", "3.48.0", "no", "keep the graft"},
		"alpine v3.22":    {"sqlite-libs 3.49.2-r1", "keep the graft"},
		"alpine v3.23":    {"sqlite-libs 3.53.4-r0", "3.53.4", "yes", "retire the graft"},
		"debian trixie":   {"libsqlite3-0 3.46.1-7", "no (by version)", "keep the graft"},
		"debian bookworm": {"libsqlite3-0 3.40.1-2+deb12u2", "keep the graft"},
		// per image
		"alpine-3.21 ":           {"alpine v3.21", "sqlite-libs 3.48.0-r4", "retire: move to v3.23"},
		"alpine-3.22 ":           {"alpine v3.22", "retire: move to v3.23"},
		"python-3.13-alpine3.21": {"alpine v3.21", "retire: move to v3.23"},
		"debian-13 ":             {"debian trixie", "libsqlite3-0 3.46.1-7", "keep the graft"},
		// newer releases, with size and hash
		"  3.55.0":         {"newer than every pin"},
		"    amalgamation": {"2026/sqlite-amalgamation-3550000.zip", "2912345 bytes", strings.Repeat("54", 32)},
		"    autoconf":     {"2026/sqlite-autoconf-3550000.tar.gz", strings.Repeat("57", 32)},
		"result:":          {"a graft can be retired", "a newer SQLite is available", "exit 4"},
		// the advisories of each pin, as the recipe compiles it
		"  3.51.3": {"CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"},
		" *3.53.4": {"CVE-2026-119374, CVE-2026-119379"},
		"  3.54.0": {"none"},
	} {
		l := lineWith(r.stdout, prefix)
		for _, w := range want {
			if !strings.Contains(l, w) {
				t.Errorf("line %q: %q does not say %q\n%s", prefix, l, w, r.stdout)
			}
		}
	}
	if !strings.Contains(r.stdout, "note: debian-13: libsqlite3-0 3.46.1-7 is vulnerable by version") {
		t.Errorf("no note on Debian's backports:\n%s", r.stdout)
	}

	r = sqliteGraft(t, append(f.args(f.page, "v3.21", "v3.22", "v3.23", "bookworm", "trixie"), "--json")...)
	var doc struct {
		ExitCode int `json:"exit_code"`
		Branches []struct {
			Branch, Verdict string
			PackageVersion  string `json:"package_version"`
		}
		Images []struct {
			Image, Verdict string
			MoveTo         string `json:"move_to"`
		}
		NewReleases []struct {
			Version  string
			Archives []struct {
				Size int64
				SHA3 string
			}
		} `json:"new_releases"`
		PinAdvisories []struct {
			Version    string
			Advisories []struct{ ID string }
		} `json:"pin_advisories"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != cli.ExitRetire || doc.ExitCode != cli.ExitRetire {
		t.Fatalf("--json = %d, %v:\n%s", r.code, err, r.stdout)
	}
	verdicts := map[string]string{}
	for _, b := range doc.Branches {
		verdicts[b.Branch] = b.Verdict
	}
	for _, im := range doc.Images {
		verdicts[im.Image] = im.Verdict
	}
	for k, want := range map[string]string{"v3.21": "keep the graft", "v3.23": "retire the graft", "alpine-3.21": "retire: move to v3.23", "debian-13": "keep the graft"} {
		if verdicts[k] != want {
			t.Errorf("--json: %s = %q, want %q", k, verdicts[k], want)
		}
	}
	if len(doc.NewReleases) != 1 || doc.NewReleases[0].Version != "3.55.0" || doc.NewReleases[0].Archives[0].Size == 0 {
		t.Errorf("--json new releases = %+v", doc.NewReleases)
	}
	if len(doc.PinAdvisories) == 0 || doc.PinAdvisories[0].Version != "3.51.3" || len(doc.PinAdvisories[0].Advisories) != 4 {
		t.Errorf("--json pin advisories = %+v", doc.PinAdvisories)
	}
}

func TestUpstreamExitCodes(t *testing.T) {
	f := writeUpstreamFixtures(t)
	img := []string{"--image", "alpine-3.21"}
	for name, tc := range map[string]struct {
		args []string
		code int
		want string
	}{
		"keep, nothing newer": {append(f.args(f.pageNoNewer, "v3.21"), img...), cli.ExitOK, "nothing to do (exit 0)"},
		"keep, newer SQLite":  {append(f.args(f.page, "v3.21"), img...), cli.ExitNewerSQLite, "a newer SQLite is available (exit 3)"},
		"retire only":         {append(f.args(f.pageNoNewer, "v3.21", "v3.23"), img...), cli.ExitRetire, "a graft can be retired (exit 4)"},
		"debian keeps":        {append(f.args(f.pageNoNewer, "trixie"), "--image", "debian-13"), cli.ExitOK, "keep the graft"},
	} {
		r := sqliteGraft(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", name, r.code, tc.code, tc.want, r.stdout, r.stderr)
		}
	}
}

func TestUpstreamMalformedInputsExit1(t *testing.T) {
	f := writeUpstreamFixtures(t)
	good, err := os.ReadFile(f.alpine["v3.22"])
	if err != nil {
		t.Fatal(err)
	}
	noV := upstreamtest.AlpineBranch("3.49.2-r1")
	noV[2].Version = ""
	truncated := writeFixture(t, f.dir, "truncated-APKINDEX.tar.gz", good[:len(good)*2/3])
	stanza := writeFixture(t, f.dir, "noV-APKINDEX.tar.gz", upstreamtest.APKIndexTarGz("v3.22", noV...))
	nolibs := writeFixture(t, f.dir, "nolibs-APKINDEX.tar.gz", upstreamtest.APKIndexTarGz("v3.22", upstreamtest.AlpineNeighbours("3.49.2-r1")[0]))
	garbage := writeFixture(t, f.dir, "garbage-download.html", []byte(strings.Replace(string(upstreamtest.DownloadPage(downloadRows(true)...)), "-->", "PRODUCT,3.55.0,this is not,a row\n-->", 1)))
	debTrunc := writeFixture(t, f.dir, "truncated-Packages.xz", upstreamtest.XZ(upstreamtest.DebianSuite("3.46.1-7"))[:40])
	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"truncated gzip":        {[]string{"upstream", "--apkindex", "v3.21=" + f.alpine["v3.21"], "--apkindex", "v3.22=" + truncated, "--apkindex", "v3.23=" + f.alpine["v3.23"], "--sqlite-downloads", f.page, "--image", "alpine-3.21"}, []string{truncated, "truncated"}},
		"stanza without V:":     {[]string{"upstream", "--apkindex", "v3.21=" + f.alpine["v3.21"], "--apkindex", "v3.22=" + stanza, "--sqlite-downloads", f.page, "--image", "alpine-3.21"}, []string{stanza, "without V:"}},
		"no sqlite-libs":        {[]string{"upstream", "--apkindex", "v3.21=" + nolibs, "--sqlite-downloads", f.page, "--image", "alpine-3.21"}, []string{nolibs, "so:libsqlite3.so.0"}},
		"garbage CSV":           {[]string{"upstream", "--apkindex", "v3.21=" + f.alpine["v3.21"], "--sqlite-downloads", garbage, "--image", "alpine-3.21"}, []string{garbage + ":", "columns"}},
		"truncated Packages.xz": {[]string{"upstream", "--debian", "trixie=" + debTrunc, "--sqlite-downloads", f.page, "--image", "debian-13"}, []string{debTrunc}},
		"missing file":          {[]string{"upstream", "--apkindex", "v3.21=" + filepath.Join(f.dir, "nope.tar.gz"), "--sqlite-downloads", f.page, "--image", "alpine-3.21"}, []string{"nope.tar.gz"}},
		"branch not given":      {[]string{"upstream", "--apkindex", "v3.23=" + f.alpine["v3.23"], "--sqlite-downloads", f.page, "--image", "alpine-3.21"}, []string{"v3.21 was not read", "--apkindex v3.21="}},
	} {
		r := sqliteGraft(t, tc.args...)
		if r.code != cli.ExitFailed {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, r.code, cli.ExitFailed, r.stdout, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr does not say %q:\n%s", name, w, r.stderr)
			}
		}
		// The download page is not an input of the verdicts: those stand.
		partial := strings.Contains(r.stdout, "retire: move") || strings.Contains(lineWith(r.stdout, "alpine-3.21 "), "keep the graft")
		if partial != (name == "garbage CSV") {
			t.Errorf("%s: verdict shown = %v:\n%s", name, partial, r.stdout)
		}
	}
}

func TestUpstreamUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"upstream", "--apkindex", "v3.21"},
		{"upstream", "--apkindex", "3.21=x"},
		{"upstream", "--debian", "jessie=x"},
		{"upstream", "--apkindex", "v3.21=a", "--apkindex", "v3.21=b"},
		{"upstream", "--image", "no-such-image"},
		{"upstream", "extra"},
		{"pins"},
		{"pins", "update", "extra"},
	} {
		r := sqliteGraft(t, args...)
		if r.code != cli.ExitUsage {
			t.Errorf("sqlite-graft %q = %d %q, want %d", args, r.code, r.stderr, cli.ExitUsage)
		}
	}
	for _, c := range [][]string{{"upstream", "--help"}, {"pins", "update", "--help"}} {
		r := sqliteGraft(t, c...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--sqlite-downloads") {
			t.Errorf("%q = %d:\n%s", c, r.code, r.stdout)
		}
	}
	if r := sqliteGraft(t, "upstream", "--help"); !strings.Contains(r.stdout, "3  a SQLite newer than every pin") || !strings.Contains(r.stdout, "4  a graft can be retired") {
		t.Errorf("upstream --help does not document the exit codes:\n%s", r.stdout)
	}
}

func TestUpstreamImageFileAndHTTP(t *testing.T) {
	f := writeUpstreamFixtures(t)
	files := map[string]string{"/v3.21/APKINDEX.tar.gz": f.alpine["v3.21"], "/v3.23/APKINDEX.tar.gz": f.alpine["v3.23"], "/download.html": f.page}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, p)
	}))
	defer srv.Close()
	def, err := os.ReadFile("../../images/python-3.13-alpine3.21.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := writeFixture(t, t.TempDir(), "python-3.13-alpine3.21.yaml", def)
	r := sqliteGraft(t, "upstream", "--image", file, "--sqlite-downloads", srv.URL+"/download.html",
		"--apkindex", "v3.21="+srv.URL+"/v3.21/APKINDEX.tar.gz", "--apkindex", "v3.23="+srv.URL+"/v3.23/APKINDEX.tar.gz")
	if r.code != cli.ExitRetire || !strings.Contains(lineWith(r.stdout, "python-3.13-alpine3.21"), "retire: move to v3.23") {
		t.Errorf("upstream over http = %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = sqliteGraft(t, "upstream", "--image", file, "--sqlite-downloads", srv.URL+"/download.html",
		"--apkindex", "v3.21="+srv.URL+"/v3.21/APKINDEX.tar.gz", "--apkindex", "edge="+srv.URL+"/edge/APKINDEX.tar.gz")
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "/edge/APKINDEX.tar.gz: HTTP 404") {
		t.Errorf("a 404 = %d\n%s", r.code, r.stderr)
	}
}
