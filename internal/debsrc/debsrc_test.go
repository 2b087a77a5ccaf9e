package debsrc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pinned lists the Debian files the project pins: SQLite 3.53.4's canonical
// tree (sid) and the zlib and tcl8.6 sources of the musl Tcl (trixie).
func pinned(t *testing.T) []pins.DebianFile {
	t.Helper()
	p, err := fixtures.Pin("3.53.4")
	if err != nil {
		t.Fatal(err)
	}
	musl, err := sqltests.MuslSources()
	if err != nil {
		t.Fatal(err)
	}
	return append([]pins.DebianFile{*p.CanonicalTree.Debian}, musl...)
}

// The pinned SHA-256 values are the ones Debian signed: InRelease verifies
// with the Debian archive keyring, lists Sources.xz's SHA-256, and the
// package's stanza there lists the pinned file, hash and size.
func TestPinsMatchTheSignedIndex(t *testing.T) {
	for _, f := range pinned(t) {
		inRelease, sources := fixtures.DebianIndex(t, f.Suite)
		ev, err := debsrc.VerifyIndexFiles(f, debsrc.DefaultKeyring, inRelease, read(t, inRelease), read(t, sources))
		if err != nil {
			t.Fatalf("VerifyIndexFiles(%s) = %v", f.File, err)
		}
		if !strings.Contains(ev.Signer, "Debian Archive") || ev.Date == "" {
			t.Errorf("VerifyIndexFiles(%s) evidence = %+v, want a Debian archive key and a date", f.File, ev)
		}
	}
}

// Every link of the chain is checked: a changed Release text, another
// Sources.xz, a pin that differs from what Debian published.
func TestSignedIndexRefusesChanges(t *testing.T) {
	f := pinned(t)[0]
	inReleasePath, sourcesPath := fixtures.DebianIndex(t, f.Suite)
	inRelease, sources := read(t, inReleasePath), read(t, sourcesPath)

	forged := []byte(strings.Replace(string(inRelease), "Suite: unstable", "Suite: stable", 1))
	if _, err := debsrc.VerifyIndexFiles(f, debsrc.DefaultKeyring, "forged", forged, sources); err == nil || !strings.Contains(err.Error(), "signature not good") {
		t.Errorf("VerifyIndexFiles(changed InRelease) = %v, want a bad signature", err)
	}
	_, otherSources := fixtures.DebianIndex(t, "trixie")
	if _, err := debsrc.VerifyIndexFiles(f, debsrc.DefaultKeyring, "sid", inRelease, read(t, otherSources)); err == nil || !strings.Contains(err.Error(), "main/source/Sources.xz: SHA-256 and size = ") {
		t.Errorf("VerifyIndexFiles(another Sources.xz) = %v, want a SHA-256 mismatch", err)
	}
	wrong := f
	wrong.SHA256 = strings.Repeat("0", 64)
	if _, err := debsrc.VerifyIndexFiles(wrong, debsrc.DefaultKeyring, "sid", inRelease, sources); err == nil || !strings.Contains(err.Error(), "Debian lists SHA-256 and size 05366adc") {
		t.Errorf("VerifyIndexFiles(wrong pin) = %v, want Debian's value named", err)
	}
}

// A cached file that no longer matches its pin is fetched again; Check names
// file, expected and actual.
func TestCheck(t *testing.T) {
	f := pinned(t)[2]
	p, err := fixtures.DebianFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := debsrc.Check(p, f); err != nil {
		t.Fatalf("Check(%s) = %v", p, err)
	}
	short := filepath.Join(t.TempDir(), f.File)
	if err := os.WriteFile(short, read(t, p)[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := debsrc.Check(short, f); err == nil || !strings.Contains(err.Error(), "SHA-256 = ") || !strings.Contains(err.Error(), "want "+f.SHA256) {
		t.Errorf("Check(truncated) = %v, want a SHA-256 mismatch naming both values", err)
	}
}
