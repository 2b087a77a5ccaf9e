package source_test

import (
	"bytes"
	"context"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

const (
	sqlite3C3513 = "32d5424f97e0a7fc5ed2f6335afbb58be4e0298bd7117a34e39d345ff13d859e"
	sourceID3513 = "2026-03-13 10:38:09 737ae4a34738ffa0c3ff7f9bb18df914dd1cad163f28fd6b6e114a344fe6d618"
	goSQLite3    = "github.com/mattn/go-sqlite3"
)

func embedded(t testing.TB) *pins.File {
	t.Helper()
	f, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
	if err != nil {
		t.Fatalf("pins.Parse(embedded) = %v", err)
	}
	return f
}

func pin(t testing.TB, v string) pins.Pin {
	t.Helper()
	p, err := embedded(t).Lookup(pins.MustParseVersion(v))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logger sends the fetcher's log to the test log and records it.
func logger(t testing.TB) (*logrus.Logger, *test.Hook) {
	l := logrus.New()
	l.SetOutput(t.Output())
	l.SetLevel(logrus.DebugLevel)
	return l, test.NewLocal(l)
}

// newFetcher is offline by default: a private cache, no Go proxy, fast retries.
func newFetcher(t testing.TB, opts ...source.Option) *source.Fetcher {
	l, _ := logger(t)
	base := []source.Option{
		source.WithLogger(l),
		source.WithCacheDir(t.TempDir()),
		source.WithGoProxy(),
		source.WithRetry(3, time.Millisecond),
		source.WithStallTimeout(200 * time.Millisecond),
	}
	return source.New(append(base, opts...)...)
}

func sha3File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha3.Sum256(b)
	return hex.EncodeToString(s[:])
}

func goModuleZip(t testing.TB, version string) string {
	t.Helper()
	p, err := fixtures.GoModuleZip(goSQLite3, version)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return p
}

// noOutput checks that a failed Fetch left neither outDir nor a temp dir.
func noOutput(t testing.TB, outDir string) {
	t.Helper()
	if _, err := os.Lstat(outDir); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed Fetch (%v)", outDir, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(outDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp %s left next to %s", e.Name(), outDir)
		}
	}
}

func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Fetch succeeded, want an error containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Fetch error = %v\nwant it to contain %q", err, p)
		}
	}
}

// checkSource checks what every good 3.51.3 fetch yields.
func checkSource(t testing.TB, src *source.Source, outDir string) {
	t.Helper()
	if src.Version.String() != "3.51.3" || src.SourceID != sourceID3513 || src.SQLite3CSHA3 != sqlite3C3513 || !src.HasFixMarker {
		t.Errorf("Source = %+v, want 3.51.3, its source id and sqlite3.c hash, with the fix marker", src)
	}
	if src.Dir != outDir {
		t.Errorf("Source.Dir = %s, want %s", src.Dir, outDir)
	}
	for _, f := range []string{"sqlite3.c", "sqlite3.h", "sqlite3ext.h", source.SourceJSON} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
	if ext, err := os.ReadFile(filepath.Join(outDir, "sqlite3ext.h")); err == nil && bytes.Contains(ext, []byte("USE_LIBSQLITE3")) {
		t.Errorf("sqlite3ext.h still has go-sqlite3's wrapper")
	}
	var onDisk source.Source
	b, err := os.ReadFile(filepath.Join(outDir, source.SourceJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatalf("source.json: %v", err)
	}
	if onDisk.SourceID != src.SourceID || onDisk.Origin != src.Origin || onDisk.SQLite3CSHA3 != src.SQLite3CSHA3 || len(onDisk.Patches) != len(src.Patches) {
		t.Errorf("source.json = %+v, want %+v", onDisk, src)
	}
}

func TestFetchDirectory(t *testing.T) {
	dir := fixtures.Amalgamation(t, "3.51.3")
	out := filepath.Join(t.TempDir(), "src")
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: embedded(t), Pin: pin(t, "3.51.3"), From: dir}, out)
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", dir, err)
	}
	checkSource(t, src, out)
	if src.ArchiveKind != source.KindDirectory || src.ArchiveSHA3 != "" || src.Origin != dir || src.HasShell {
		t.Errorf("Source = %+v, want a directory without archive hash or shell", src)
	}
	if len(src.Verified) != 2 {
		t.Errorf("Verified = %q, want the sqlite3.c hash and the source id", src.Verified)
	}
}

func TestFetchGoModuleZip(t *testing.T) {
	zp := goModuleZip(t, "v1.14.43")
	out := filepath.Join(t.TempDir(), "src")
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: embedded(t), Pin: pin(t, "3.51.3"), From: zp}, out)
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", zp, err)
	}
	checkSource(t, src, out)
	if src.ArchiveKind != source.KindGoModule || src.ArchiveSHA3 != sha3File(t, zp) {
		t.Errorf("Source = %+v, want a go-module archive", src)
	}
}

func TestFetchGoModuleDir(t *testing.T) {
	dir, err := fixtures.GoModuleDir(goSQLite3, "v1.14.43")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "src")
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: embedded(t), Pin: pin(t, "3.51.3"), From: dir}, out)
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", dir, err)
	}
	checkSource(t, src, out)
}

func TestTamperedSQLite3C(t *testing.T) {
	dir := t.TempDir()
	fx := fixtures.Amalgamation(t, "3.51.3")
	for _, f := range []string{"sqlite3.c", "sqlite3.h", "sqlite3ext.h"} {
		b, err := os.ReadFile(filepath.Join(fx, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "sqlite3.c" {
			b[len(b)/2] ^= 1
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := sha3File(t, filepath.Join(dir, "sqlite3.c"))
	out := filepath.Join(t.TempDir(), "src")
	_, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: embedded(t), Pin: pin(t, "3.51.3"), From: dir}, out)
	wantErr(t, err, "sqlite3.c: SHA3-256 = "+got, "want "+sqlite3C3513, "published at https://sqlite.org/changes.html#version_3_51_3")
	noOutput(t, out)
}

func TestWrongVersionDirectory(t *testing.T) {
	dir := fixtures.Amalgamation(t, "3.53.4")
	out := filepath.Join(t.TempDir(), "src")
	_, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: embedded(t), Pin: pin(t, "3.51.3"), From: dir}, out)
	wantErr(t, err, "SQLite 3.51.3", "sqlite3.c: SHA3-256 = 67f423e9", "want "+sqlite3C3513)
	noOutput(t, out)
}

// An archive the user vouches for (--sha3) still has to declare the version asked for.
func TestWrongVersionArchive(t *testing.T) {
	zp := writeZip(t, amalgamationZip(t, "3.53.4"))
	p := pins.Pin{Version: pins.MustParseVersion("3.51.3"), Amalgamation: &pins.Hash{SHA3: sha3File(t, zp), Published: source.OverridePublished}}
	out := filepath.Join(t.TempDir(), "src")
	_, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: zp}, out)
	wantErr(t, err, `sqlite3.c: SQLITE_VERSION = "3.53.4", want "3.51.3"`)
	noOutput(t, out)
}

func TestWrongSourceID(t *testing.T) {
	p := pin(t, "3.51.3")
	p.SourceID = "2026-03-13 10:38:09 " + strings.Repeat("0", 64)
	out := filepath.Join(t.TempDir(), "src")
	_, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: fixtures.Amalgamation(t, "3.51.3")}, out)
	wantErr(t, err, "sqlite3.c: SQLITE_SOURCE_ID = \""+sourceID3513+"\"", strings.Repeat("0", 64))
	noOutput(t, out)
}

func TestAutoconfTarball(t *testing.T) {
	tgz := fixtures.AutoconfTarball(t, "3.44.2")
	sum := sha3File(t, tgz)
	p, err := embedded(t).Resolve(pins.MustParseVersion("3.44.2"), sum)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "src")
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pins: embedded(t), Pin: p, From: tgz}, out)
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", tgz, err)
	}
	if src.ArchiveKind != source.KindAutoconf || src.ArchiveSHA3 != sum || !src.HasShell || src.HasFixMarker || src.Version.String() != "3.44.2" {
		t.Errorf("Source = %+v, want autoconf 3.44.2 with shell.c and without the fix marker", src)
	}
	if !strings.HasPrefix(src.SourceID, "2023-11-24 ") {
		t.Errorf("SourceID = %q, want 3.44.2's", src.SourceID)
	}
	if len(src.Verified) != 1 || !strings.Contains(src.Verified[0], source.OverridePublished) {
		t.Errorf("Verified = %q, want the archive hash from --sha3", src.Verified)
	}
	if _, err := os.Stat(filepath.Join(out, "shell.c")); err != nil {
		t.Error(err)
	}

	// A wrong --sha3 stops before anything is extracted.
	bad := strings.Repeat("ab", 32)
	p, _ = embedded(t).Resolve(pins.MustParseVersion("3.44.2"), bad)
	out2 := filepath.Join(t.TempDir(), "src")
	_, err = newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: tgz}, out2)
	wantErr(t, err, tgz+": SHA3-256 = "+sum, "want "+bad, source.OverridePublished)
	noOutput(t, out2)
}

func TestNothingToVerify(t *testing.T) {
	// --sha3 vouches for an archive; a directory has none.
	p, err := embedded(t).Resolve(pins.MustParseVersion("3.51.4"), strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "src")
	_, err = newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: fixtures.Amalgamation(t, "3.51.3")}, out)
	wantErr(t, err, "nothing published to verify against")
	noOutput(t, out)

	// A Go module zip has no published archive hash either.
	p = pin(t, "3.51.3")
	p.SQLite3C = nil
	_, err = newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: goModuleZip(t, "v1.14.43")}, out)
	wantErr(t, err, "nothing published to verify against")
	noOutput(t, out)
}

func TestReplacesExistingOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: pin(t, "3.51.3"), From: fixtures.Amalgamation(t, "3.51.3")}, out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); !os.IsNotExist(err) {
		t.Errorf("stale file survived: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Errorf("next to the output: %v, want only src", ents)
	}
}

func TestRefusesOutputOverInput(t *testing.T) {
	dir := t.TempDir()
	_, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: pin(t, "3.51.3"), From: filepath.Join(dir, "in")}, dir)
	wantErr(t, err, "would replace the input")
}

func TestStripGoSQLite3(t *testing.T) {
	dir, err := fixtures.GoModuleDir(goSQLite3, "v1.14.43")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sqlite3-binding.c"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := source.StripGoSQLite3(b)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha3.Sum256(got); hex.EncodeToString(s[:]) != sqlite3C3513 {
		t.Errorf("StripGoSQLite3(sqlite3-binding.c) SHA3-256 = %x, want %s", s, sqlite3C3513)
	}
	for _, in := range []string{"", "/* no wrapper */\n", "#ifndef USE_LIBSQLITE3\nno else\n"} {
		if _, err := source.StripGoSQLite3([]byte(in)); err == nil {
			t.Errorf("StripGoSQLite3(%q) succeeded, want an error", in)
		}
	}
}

// An archive of a kind without a published hash is not checked as a whole
// but must then match the published hash of sqlite3.c.
func TestArchiveKindWithoutHash(t *testing.T) {
	p := pin(t, "3.51.3")
	p.Amalgamation = nil // as for 3.53.0: only the autoconf tarball's hash is published
	zp := writeZip(t, amalgamationZip(t, "3.51.3"))
	out := filepath.Join(t.TempDir(), "src")
	src, err := newFetcher(t).Fetch(context.Background(), source.Request{Pin: p, From: zp}, out)
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", zp, err)
	}
	checkSource(t, src, out)
	if src.ArchiveKind != source.KindAmalgamation || len(src.Verified) != 2 || !strings.HasPrefix(src.Verified[0], "sqlite3.c SHA3-256") {
		t.Errorf("Source = %+v, want an amalgamation verified by sqlite3.c's hash and the source id", src)
	}
}
