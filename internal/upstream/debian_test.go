package upstream_test

import (
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream/upstreamtest"
)

func TestUpstreamParsePackagesXZ(t *testing.T) {
	data := upstreamtest.XZ(upstreamtest.DebianSuite("3.46.1-7"))
	pkgs, err := upstream.ParsePackagesXZ("trixie/Packages.xz", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 3 || pkgs[1].Package != "libsqlite3-0" || pkgs[1].Source != "sqlite3" || pkgs[1].Line != 20 {
		t.Errorf("packages = %+v", pkgs)
	}
	p, err := upstream.DebianSQLite("trixie/Packages.xz", pkgs)
	if err != nil || p.Version != "3.46.1-7" {
		t.Errorf("DebianSQLite = %+v, %v", p, err)
	}
	// Several versions (a suite with updates merged in): the highest.
	text := upstreamtest.DebianSuite("3.40.1-2+deb12u1")
	text = append(text, '\n')
	text = append(text, upstreamtest.DebStanza("libsqlite3-0", "3.40.1-2+deb12u2")...)
	text = append(text, '\n')
	text = append(text, upstreamtest.DebStanza("libsqlite3-0", "3.40.1-2")...)
	pkgs, err = upstream.ParsePackages("bookworm/Packages", text)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := upstream.DebianSQLite("bookworm/Packages", pkgs); p.Version != "3.40.1-2+deb12u2" {
		t.Errorf("DebianSQLite picked %q, want the highest 3.40.1-2+deb12u2", p.Version)
	}
}

func TestUpstreamParsePackagesRejects(t *testing.T) {
	good := upstreamtest.DebianSuite("3.46.1-7")
	noVersion := strings.Replace(string(good), "Version: 3.46.1-7\n", "", 1)
	xzGood := upstreamtest.XZ(good)
	for name, tc := range map[string]struct {
		data []byte
		xz   bool
		want []string
	}{
		"truncated xz":           {xzGood[:len(xzGood)/2], true, []string{"trixie/Packages.xz"}},
		"not xz":                 {good, true, []string{"not an xz'd Packages file"}},
		"stanza without Version": {[]byte(noVersion), false, []string{":20:", "libsqlite3-0 without a Version"}},
		"no colon":               {[]byte("Package: a\nVersion: 1\nnonsense\n"), false, []string{":3:", "not a \"Field: value\" line"}},
		"leading continuation":   {[]byte(" continued\nPackage: a\n"), false, []string{":1:", "continuation"}},
		"two versions":           {[]byte("Package: a\nVersion: 1\nVersion: 2\n"), false, []string{":3:", "second Version"}},
		"empty":                  {[]byte("\n\n"), false, []string{"no package stanzas"}},
	} {
		var err error
		if tc.xz {
			_, err = upstream.ParsePackagesXZ("trixie/Packages.xz", tc.data)
		} else {
			_, err = upstream.ParsePackages("trixie/Packages.xz", tc.data)
		}
		if err == nil || !strings.HasPrefix(err.Error(), "trixie/Packages.xz") {
			t.Errorf("%s: %v, want an error naming the input", name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", name, err, w)
			}
		}
	}
	pkgs, _ := upstream.ParsePackages("Packages", []byte(upstreamtest.DebStanza("libc6", "2.41-12")))
	if _, err := upstream.DebianSQLite("Packages", pkgs); err == nil || !strings.Contains(err.Error(), "no libsqlite3-0") {
		t.Errorf("DebianSQLite without libsqlite3-0 = %v", err)
	}
}

func TestUpstreamDebianVersions(t *testing.T) {
	for in, want := range map[string]string{
		"3.46.1-7": "3.46.1", "3.40.1-2+deb12u2": "3.40.1", "1:3.46.1-7": "3.46.1", "3.46.1+dfsg-1~bpo12+1": "3.46.1", "3.53.4": "3.53.4",
	} {
		v, err := upstream.DebianUpstream(in)
		if err != nil || v.String() != want {
			t.Errorf("DebianUpstream(%q) = %v, %v; want %s", in, v, err, want)
		}
	}
	for _, in := range []string{"", "3.46.1 -7", "x3.46.1-7", "2.8.17-15", "3.8.11.1-1"} {
		if v, err := upstream.DebianUpstream(in); err == nil {
			t.Errorf("DebianUpstream(%q) = %v, want an error", in, v)
		}
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"3.40.1-2", "3.40.1-2+deb12u2", -1},
		{"3.40.1-2+deb12u10", "3.40.1-2+deb12u9", 1},
		{"3.46.1-7", "3.46.1-7", 0},
		{"1:3.0-1", "3.99-1", 1},
		{"3.46.1~rc1-1", "3.46.1-1", -1},
		{"3.46.1-1", "3.46.1a-1", -1},
		{"3.46.1+b1", "3.46.1", 1},
		{"3.9-1", "3.10-1", -1},
	} {
		if got := upstream.CompareDebianVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareDebianVersions(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := upstream.CompareDebianVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareDebianVersions(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func FuzzUpstreamParsePackages(f *testing.F) {
	f.Add(upstreamtest.DebianSuite("3.46.1-7"))
	f.Add([]byte("Package: a\nVersion: 1\n Continued: x\n\nPackage: b\n"))
	f.Add([]byte("Package:a\r\nVersion:1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := upstream.ParsePackages("Packages", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Packages") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		for _, p := range pkgs {
			if p.Package == "" || p.Version == "" || p.Line <= 0 {
				t.Fatalf("accepted a stanza without Package/Version: %+v", p)
			}
		}
		if p, err := upstream.DebianSQLite("Packages", pkgs); err == nil {
			if _, err := upstream.DebianUpstream(p.Version); err == nil && p.Package != upstream.DebianSQLitePackage {
				t.Fatalf("DebianSQLite = %+v", p)
			}
		}
	})
}

// The xz layer on top of the stanza parser, seeds only: the xz library's
// decoder sizes its dictionary from the input, so fuzzing it here would
// mostly measure memory.
func FuzzUpstreamParsePackagesXZ(f *testing.F) {
	good := upstreamtest.XZ(upstreamtest.DebianSuite("3.46.1-7"))
	f.Add(good)
	f.Add(good[:len(good)-8])
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := upstream.ParsePackagesXZ("Packages.xz", data); err != nil && !strings.HasPrefix(err.Error(), "Packages.xz") {
			t.Fatalf("error does not name the input: %v", err)
		}
	})
}
