package sourcetree_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/fixtures"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/sourcetree"
)

const checkIn3534 = "bf7c7f30031888f4e796e429ab3978879485813aaca6f641c7b33e4e09459bcc"

func pin(t *testing.T, v string) pins.Pin {
	t.Helper()
	p, err := fixtures.Pin(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// copyTree gives a test a writable copy of the verified 3.53.4 tree.
func copyTree(t *testing.T) string {
	t.Helper()
	tree := fixtures.CanonicalTree(t, fixtures.CanonicalTreeVersion)
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.CopyFS(dir, os.DirFS(tree.Dir)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The pinned Debian orig tarball, unpacked into a fresh cache, verifies
// against the pinned source id and its own manifest.
func TestOpenDebianTarball(t *testing.T) {
	archive := fixtures.CanonicalTreeArchive(t, "3.53.4")
	cache := t.TempDir()
	tree, err := sourcetree.Open(context.Background(), sourcetree.Request{Pin: pin(t, "3.53.4"), From: archive}, cache, nil)
	if err != nil {
		t.Fatalf("Open(%s) = %v", archive, err)
	}
	if tree.CheckIn != checkIn3534 {
		t.Errorf("CheckIn = %s, want %s", tree.CheckIn, checkIn3534)
	}
	// 2205 F-cards in the 3.53.4 manifest, every one a file of the tarball.
	if tree.Files != 2205 {
		t.Errorf("Files = %d, want 2205", tree.Files)
	}
	if len(tree.Verified) != 3 || !strings.Contains(tree.Verified[0], "05366adc") {
		t.Errorf("Verified = %q, want the archive hash first, then manifest.uuid and the F-cards", tree.Verified)
	}
	if _, err := os.Stat(filepath.Join(tree.Dir, "test", "walrestart.test")); err != nil {
		t.Errorf("the tree lacks test/walrestart.test: %v", err)
	}
}

// One changed byte in one test file: refused, naming the file, the expected
// and the actual hash.
func TestTamperedTestFile(t *testing.T) {
	dir := copyTree(t)
	f := filepath.Join(dir, "test", "walrestart.test")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "{0 ok}", "{0 OK}", 1))
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	_, err = sourcetree.Open(context.Background(), sourcetree.Request{Pin: pin(t, "3.53.4"), From: dir}, cache, nil)
	if err == nil {
		t.Fatal("Open(tampered tree) = nil error, want a refusal")
	}
	for _, want := range []string{"test/walrestart.test", "SHA3-256 = ", "want ", "F-card", checkIn3534} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(tampered tree) = %v; want it to name %q", err, want)
		}
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("a refused tree left %d entries in the cache", len(entries))
	}
}

// A file the manifest does not list is not trusted.
func TestUnlistedFile(t *testing.T) {
	dir := copyTree(t)
	if err := os.WriteFile(filepath.Join(dir, "test", "extra.test"), []byte("finish_test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sourcetree.Verify(dir, pin(t, "3.53.4"))
	if err == nil || !strings.Contains(err.Error(), "test/extra.test: not a file of check-in") {
		t.Fatalf("Verify(tree with an extra file) = %v, want a refusal naming test/extra.test", err)
	}
}

// The tree of one release offered for another: manifest.uuid does not match
// the check-in of the pinned sqlite3.c's SQLITE_SOURCE_ID. Through the
// archive path too (a wrong tarball pinned): nothing stays in the cache.
func TestTreeOfAnotherRelease(t *testing.T) {
	dir := copyTree(t)
	p3513 := pin(t, "3.51.3")
	_, err := sourcetree.Verify(dir, p3513)
	if err == nil || !strings.Contains(err.Error(), "manifest.uuid = "+checkIn3534+", want 737ae4a34738") {
		t.Fatalf("Verify(3.53.4 tree, 3.51.3 pin) = %v, want a manifest.uuid mismatch", err)
	}

	archive := fixtures.CanonicalTreeArchive(t, "3.53.4")
	p3513.CanonicalTree = pin(t, "3.53.4").CanonicalTree // a wrong pin: another release's tarball
	cache := t.TempDir()
	_, err = sourcetree.Open(context.Background(), sourcetree.Request{Pin: p3513, From: archive}, cache, nil)
	if err == nil || !strings.Contains(err.Error(), "manifest.uuid = "+checkIn3534) {
		t.Fatalf("Open(3.53.4 tarball, 3.51.3 pin) = %v, want a manifest.uuid mismatch", err)
	}
	if trees, _ := os.ReadDir(filepath.Join(cache, "trees")); len(trees) != 1 || trees[0].Name() != p3513.CanonicalTree.Debian.SHA256+".lock" {
		t.Errorf("a refused tarball left %v in the cache, want only the lock file", names(trees))
	}
}

// A manifest.uuid that agrees with the pin over a manifest that does not:
// the manifest's own hash catches it.
func TestForgedManifest(t *testing.T) {
	dir := copyTree(t)
	m := filepath.Join(dir, "manifest")
	b, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	// Point the F-card of walrestart.test at another file's hash.
	b = []byte(strings.Replace(string(b), "F test/walrestart.test ", "F test/walrestart.test 0", 1))
	if err := os.WriteFile(m, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = sourcetree.Verify(dir, pin(t, "3.53.4"))
	if err == nil || !strings.Contains(err.Error(), "manifest: SHA3-256 = ") {
		t.Fatalf("Verify(forged manifest) = %v, want the manifest's hash to differ from manifest.uuid", err)
	}
}

// A tarball whose bytes differ from the pinned SHA-256 is refused before it
// is unpacked.
func TestTamperedArchive(t *testing.T) {
	archive := fixtures.CanonicalTreeArchive(t, "3.53.4")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	bad := filepath.Join(t.TempDir(), "sqlite3_3.53.4.orig.tar.xz")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	_, err = sourcetree.Open(context.Background(), sourcetree.Request{Pin: pin(t, "3.53.4"), From: bad}, cache, nil)
	if err == nil || !strings.Contains(err.Error(), "SHA-256 = ") || !strings.Contains(err.Error(), "want 05366adc") {
		t.Fatalf("Open(tampered tarball) = %v, want a SHA-256 mismatch", err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("a refused tarball left %v in the cache", names(entries))
	}
}

// A release without a pinned tree: ErrNoTree, which callers report as
// "not run", never as a pass.
func TestNoTreePinned(t *testing.T) {
	_, err := sourcetree.Open(context.Background(), sourcetree.Request{Pin: pin(t, "3.51.3")}, t.TempDir(), nil)
	if !errors.Is(err, sourcetree.ErrNoTree) {
		t.Fatalf("Open(3.51.3) = %v, want ErrNoTree", err)
	}
}

func names(es []os.DirEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}
