package source_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// lines reads a file as lines that keep their "\n".
func lines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")
}

// find is the index of the first line containing s.
func find(t testing.TB, ls []string, s string) int {
	t.Helper()
	for i, l := range ls {
		if strings.Contains(l, s) {
			return i
		}
	}
	t.Fatalf("no line contains %q", s)
	return -1
}

// insertion is a unified diff adding one line before ls[at], with three lines
// of context either side; header is the file header ("--- a/x\n+++ b/x\n").
func insertion(header string, ls []string, at int, add string) string {
	var b strings.Builder
	b.WriteString(header)
	fmt.Fprintf(&b, "@@ -%d,6 +%d,7 @@\n", at-2, at-2)
	for _, l := range ls[at-3 : at] {
		b.WriteString(" " + l)
	}
	b.WriteString("+" + add + "\n")
	for _, l := range ls[at : at+3] {
		b.WriteString(" " + l)
	}
	return b.String()
}

func TestPatches(t *testing.T) {
	dir := fixtures.Amalgamation(t, "3.51.3")
	c := lines(t, filepath.Join(dir, "sqlite3.c"))
	h := lines(t, filepath.Join(dir, "sqlite3.h"))
	atC := find(t, c, "#define SQLITE_SOURCE_ID")
	atH := find(t, h, "#define SQLITE_VERSION_NUMBER")
	good := map[string]string{
		// A plain unified diff with a/ b/ prefixes, and a git diff.
		"0001-comment.patch": insertion("--- a/sqlite3.c\n+++ b/sqlite3.c\n", c, atC, "/* grafted by sqlite-graft */"),
		"0002-header.patch":  "From: test\nSubject: header\n\ndiff --git a/sqlite3.h b/sqlite3.h\n" + insertion("--- a/sqlite3.h\n+++ b/sqlite3.h\n", h, atH, "/* header patched */"),
	}
	fsys := fstest.MapFS{
		"3.51.3/README.md":  {Data: []byte("not a patch")},
		"3.51.3/.gitkeep":   {},
		"3.53.4/0001.patch": {Data: []byte("for another version")},
	}
	for name, p := range good {
		fsys["3.51.3/"+name] = &fstest.MapFile{Data: []byte(p)}
	}

	out := filepath.Join(t.TempDir(), "src")
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: pin(t, "3.51.3"), From: dir, Patches: fsys}, out)
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkSource(t, src, out) // sqlite3.c's hash is recorded as verified, before patches
	want := []source.Patch{{"0001-comment.patch", sum([]byte(good["0001-comment.patch"]))}, {"0002-header.patch", sum([]byte(good["0002-header.patch"]))}}
	if fmt.Sprint(src.Patches) != fmt.Sprint(want) {
		t.Errorf("Patches = %v, want %v", src.Patches, want)
	}
	gotC := lines(t, filepath.Join(out, "sqlite3.c"))
	if gotC[atC] != "/* grafted by sqlite-graft */\n" || gotC[atC+1] != c[atC] || len(gotC) != len(c)+1 {
		t.Errorf("sqlite3.c around line %d = %q, want the added line", atC+1, gotC[atC-1:atC+2])
	}
	if gotH := lines(t, filepath.Join(out, "sqlite3.h")); gotH[atH] != "/* header patched */\n" {
		t.Errorf("sqlite3.h line %d = %q, want the added line", atH+1, gotH[atH])
	}

	// A hunk whose context is not in sqlite3.c stops the fetch, naming the
	// patch and the hunk, and leaves nothing behind.
	changed := append([]string(nil), c...)
	changed[atC-1] = "/* a line sqlite3.c does not have */\n"
	fsys["3.51.3/0003-stale.patch"] = &fstest.MapFile{Data: []byte(insertion("--- sqlite3.c\n+++ sqlite3.c\n", changed, atC, "/* x */"))}
	out2 := filepath.Join(t.TempDir(), "src")
	_, err = newFetcher(t).Fetch(context.Background(), source.Request{Pin: pin(t, "3.51.3"), From: dir, Patches: fsys}, out2)
	wantErr(t, err, "patches/3.51.3/0003-stale.patch: sqlite3.c: hunk "+fmt.Sprintf("@@ -%d,6 +%d,7 @@", atC-2, atC-2), fmt.Sprintf("at line %d", atC), "conflict")
	noOutput(t, out2)
}

func TestBadPatches(t *testing.T) {
	dir := fixtures.Amalgamation(t, "3.51.3")
	for name, tc := range map[string]struct{ patch, want string }{
		"not a diff":   {"just words\n", "no file changes found"},
		"other file":   {"--- a/Makefile\n+++ b/Makefile\n@@ -1 +1 @@\n-a\n+b\n", "b/Makefile: patches may change only"},
		"new file":     {"--- /dev/null\n+++ b/evil.c\n@@ -0,0 +1 @@\n+x\n", "only text changes to existing files"},
		"past the end": {"--- a/sqlite3ext.h\n+++ b/sqlite3ext.h\n@@ -99999,1 +99999,1 @@\n-a\n+b\n", "hunk @@ -99999,1 +99999,1 @@"},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{"3.51.3/0001-x.patch": {Data: []byte(tc.patch)}}
			out := filepath.Join(t.TempDir(), "src")
			_, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: pin(t, "3.51.3"), From: dir, Patches: fsys}, out)
			wantErr(t, err, "patches/3.51.3/0001-x.patch: ", tc.want)
			noOutput(t, out)
		})
	}
}
