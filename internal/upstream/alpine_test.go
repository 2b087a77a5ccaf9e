package upstream_test

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

func TestUpstreamParseAPKIndexArchive(t *testing.T) {
	for _, withEnd := range []bool{false, true} {
		data := upstreamtest.APKIndexArchive(withEnd, "v3.21.3-42-gdeadbeef", upstreamtest.APKIndexText(upstreamtest.AlpineBranch("3.48.0-r4")...))
		ix, err := upstream.ParseAPKIndexArchive("v3.21/APKINDEX.tar.gz", data)
		if err != nil {
			t.Fatalf("withEnd=%v: %v", withEnd, err)
		}
		if len(ix.Signatures) != 1 || !strings.HasPrefix(ix.Signatures[0], ".SIGN.RSA.") || ix.Description != "v3.21.3-42-gdeadbeef" || len(ix.Packages) != 4 {
			t.Errorf("withEnd=%v: index = %+v", withEnd, ix)
		}
		p, err := ix.SQLite()
		if err != nil || p.Name != "sqlite-libs" || p.Version != "3.48.0-r4" || p.Origin != "sqlite" || p.Line == 0 {
			t.Errorf("withEnd=%v: SQLite() = %+v, %v", withEnd, p, err)
		}
	}
	// An unsigned index is a single member: the signed one without its first.
	idx := upstreamtest.APKIndexTarGz("x", upstreamtest.AlpineBranch("3.53.4-r0")...)
	var b bytes.Buffer
	b.Write(idx[secondMember(t, idx):])
	ix, err := upstream.ParseAPKIndexArchive("unsigned.tar.gz", b.Bytes())
	if err != nil || len(ix.Signatures) != 0 {
		t.Fatalf("unsigned index: %+v, %v", ix, err)
	}
	if p, _ := ix.SQLite(); p.Version != "3.53.4-r0" {
		t.Errorf("unsigned index: sqlite-libs %q", p.Version)
	}
}

// secondMember is the offset of the index member in a signed archive.
func secondMember(t *testing.T, data []byte) int {
	t.Helper()
	br := bytes.NewReader(data)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	if _, err := bytes.NewBuffer(nil).ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return len(data) - br.Len()
}

func TestUpstreamParseAPKIndexArchiveRejects(t *testing.T) {
	good := upstreamtest.APKIndexTarGz("x", upstreamtest.AlpineBranch("3.48.0-r4")...)
	noV := upstreamtest.AlpineBranch("3.48.0-r4")
	noV[2].Version = ""
	for name, tc := range map[string]struct {
		data []byte
		want []string
	}{
		"not gzip":           {[]byte("<html>404</html>"), []string{"not a gzip'd APKINDEX"}},
		"truncated half":     {good[:len(good)/2], []string{"truncated"}},
		"truncated trailer":  {good[:len(good)-4], []string{"truncated"}},
		"signature only":     {good[:secondMember(t, good)], []string{"no APKINDEX"}},
		"trailing garbage":   {append(append([]byte{}, good...), "garbage"...), []string{"after gzip member 2"}},
		"stanza without V:":  {upstreamtest.APKIndexTarGz("x", noV...), []string{"APKINDEX:", "sqlite-libs without V:"}},
		"not K:value":        {upstreamtest.APKIndexArchive(false, "x", []byte("P:musl\nV:1.2.5-r9\nthis is not an index\n")), []string{"APKINDEX:3:", "not a K:value line"}},
		"second V:":          {upstreamtest.APKIndexArchive(false, "x", []byte("P:musl\nV:1.2.5-r9\nV:1.2.5-r10\n")), []string{"APKINDEX:3:", "second V:"}},
		"empty index":        {upstreamtest.APKIndexArchive(false, "x", []byte("\n\n")), []string{"no package stanzas"}},
		"corrupt compressed": {corrupt(good), []string{"gzip member"}},
	} {
		ix, err := upstream.ParseAPKIndexArchive("cdn/v3.21/APKINDEX.tar.gz", tc.data)
		if err == nil {
			t.Errorf("%s: parsed: %+v", name, ix)
			continue
		}
		if !strings.HasPrefix(err.Error(), "cdn/v3.21/APKINDEX.tar.gz") {
			t.Errorf("%s: %v does not name the input", name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", name, err, w)
			}
		}
	}
	// An index without sqlite-libs parses, but has no SQLite to judge.
	ix, err := upstream.ParseAPKIndexArchive("v3.21/APKINDEX.tar.gz", upstreamtest.APKIndexTarGz("x", upstreamtest.AlpineNeighbours("3.48.0-r4")[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.SQLite(); err == nil || !strings.Contains(err.Error(), "v3.21/APKINDEX.tar.gz") || !strings.Contains(err.Error(), "so:libsqlite3.so.0") {
		t.Errorf("SQLite() without sqlite-libs = %v", err)
	}
}

// corrupt flips a byte inside the index member's compressed data.
func corrupt(data []byte) []byte {
	c := append([]byte{}, data...)
	c[len(c)-40] ^= 0xff
	return c
}

func TestAlpineUpstream(t *testing.T) {
	for in, want := range map[string]string{"3.48.0-r4": "3.48.0", "3.53.4-r0": "3.53.4", "3.49.2-r1": "3.49.2", "3.50-r0": "3.50.0"} {
		v, err := upstream.AlpineUpstream(in)
		if err != nil || v.String() != want {
			t.Errorf("AlpineUpstream(%q) = %v, %v; want %s", in, v, err, want)
		}
	}
	for _, in := range []string{"3.48.0", "3.48.0_pre1-r0", "3.8.11.1-r0", "2.8.17-r1", "3.48.0-r", ""} {
		if v, err := upstream.AlpineUpstream(in); err == nil {
			t.Errorf("AlpineUpstream(%q) = %v, want an error", in, v)
		}
	}
}

func FuzzUpstreamParseAPKIndexArchive(f *testing.F) {
	good := upstreamtest.APKIndexTarGz("x", upstreamtest.AlpineBranch("3.48.0-r4")...)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(upstreamtest.APKIndexArchive(true, "x", []byte("P:a\nV:1-r0\n\nP:b\n")))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := upstream.ParseAPKIndexArchive("fuzz.tar.gz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.tar.gz") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		checkPackages(t, ix.Packages)
		if p, err := ix.SQLite(); err == nil && !p.ProvidesName(upstream.AlpineSQLiteSoname) {
			t.Fatalf("SQLite() = %+v, which does not provide the soname", p)
		}
	})
}

func FuzzUpstreamParseAPKIndex(f *testing.F) {
	f.Add(upstreamtest.APKIndexText(upstreamtest.AlpineBranch("3.48.0-r4")...))
	f.Add([]byte("P:a\nV:1-r0\n\n\nP:b\nV:2\np:so:libsqlite3.so.0=1 cmd:x\n"))
	f.Add([]byte("P:a\n"))
	f.Add([]byte("\r\nP:a\r\nV:1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := upstream.ParseAPKIndex("APKINDEX", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "APKINDEX") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		checkPackages(t, pkgs)
	})
}

func checkPackages(t *testing.T, pkgs []upstream.APKPackage) {
	t.Helper()
	if len(pkgs) == 0 {
		t.Fatal("parsed without packages")
	}
	for _, p := range pkgs {
		if p.Name == "" || p.Version == "" || p.Line <= 0 || strings.ContainsAny(p.Name+p.Version, " \t\n") {
			t.Fatalf("accepted a stanza without a usable P:/V: %+v", p)
		}
	}
}
