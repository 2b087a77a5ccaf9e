package daggerexec_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
)

func TestDaggerWriteOCITarball(t *testing.T) {
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "image.tar")
	if err := daggerexec.WriteOCITarball(img, file); err != nil {
		t.Fatal(err)
	}
	// Unpack it and read it back as an OCI layout: one image, this one.
	out := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var entries []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, h.Name)
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.IsZero() && h.ModTime.Unix() != 0 {
			t.Errorf("%s: owner %d:%d, time %v: want fixed", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		p := filepath.Join(out, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		w, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(w, tr)
		w.Close()
	}
	if !slices.IsSorted(entries) || !slices.Contains(entries, "oci-layout") || !slices.Contains(entries, "index.json") {
		t.Errorf("entries = %v, want a sorted OCI layout", entries)
	}
	ii, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want || len(im.Manifests[0].Annotations) != 0 {
		t.Errorf("index = %+v, want the one image %s, untagged", im.Manifests, want)
	}
}

func TestDaggerDefinition(t *testing.T) {
	for _, name := range []string{"alpine-3.21", "images/alpine-3.21.yaml", ""} {
		def, v, err := daggerexec.Spec{Image: name}.Definition()
		if err != nil || def.Name != "alpine-3.21" || v.String() != "3.53.4" {
			t.Errorf("Spec{Image: %q}.Definition() = %v, %v, %v", name, def, v, err)
		}
	}
	if _, v, err := (daggerexec.Spec{Image: "debian-13", SQLite: "3.51.3"}).Definition(); err != nil || v.String() != "3.51.3" {
		t.Errorf("Definition(debian-13, 3.51.3) = %v, %v", v, err)
	}
	if _, _, err := (daggerexec.Spec{Image: "nope"}).Definition(); err == nil || !strings.Contains(err.Error(), "alpine-3.21") {
		t.Errorf("Definition(nope) = %v, want the shipped names", err)
	}
}

// A definition file given to the module replaces the shipped definition.
func TestDaggerDefinitionFile(t *testing.T) {
	yaml, err := os.ReadFile("../../images/debian-13.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := daggerexec.Spec{Image: "alpine-3.21", DefinitionFile: "debian-13.yaml", DefinitionYAML: yaml}
	def, v, err := spec.Definition()
	if err != nil || def.Name != "debian-13" || def.File != "debian-13.yaml" || v != def.SQLite {
		t.Fatalf("Definition(file debian-13.yaml) = %v, %v, %v; want the file's definition", def, v, err)
	}
	spec.DefinitionFile = "other.yaml"
	if _, _, err := spec.Definition(); err == nil || !strings.Contains(err.Error(), "other.yaml") {
		t.Errorf("Definition(debian-13 contents named other.yaml) = %v, want an error naming the file", err)
	}
	bad := daggerexec.Spec{DefinitionFile: "bad.yaml", DefinitionYAML: []byte("name: bad\nbase: nope\n")}
	if _, _, err := bad.Definition(); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("Definition(bad.yaml) = %v, want an error naming the file", err)
	}
}

func TestDaggerModuleFilesUseTheModuleWorkdir(t *testing.T) {
	rec, c := newClient(t)
	t.Chdir(t.TempDir())
	files, err := daggerexec.NewModuleFiles(c.Query)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "sqlite3.c"), []byte("c"), 0o644)
	if _, err := files.Directory(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if _, err := files.File(context.Background(), filepath.Join(src, "sqlite3.c")); err != nil {
		t.Fatal(err)
	}
	chains := rec.leafChains("sync")
	if len(chains) != 2 {
		t.Fatalf("%d uploads, want 2", len(chains))
	}
	for i, want := range []string{"workdir", "workdirFile"} {
		ch := chains[i]
		p := ch[1].str("path")
		if ch[0].Name != "currentModule" || ch[1].Name != want || filepath.IsAbs(p) || strings.HasPrefix(p, "..") {
			t.Fatalf("upload %d = %s, want currentModule.%s with a path relative to the working directory", i, show(ch), want)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: not staged in the working directory: %v", p, err)
		}
	}
	if slices.Contains(rec.allFields(), "host") {
		t.Errorf("module files touched the host")
	}
}

// Export names an absolute path inside the module's working directory: the
// session process that writes it resolves a relative one against its own
// working directory.
func TestDaggerModuleFilesExportAbsolute(t *testing.T) {
	rec, c := newClient(t)
	rec.export = func(p string) { os.MkdirAll(p, 0o755) }
	wd := t.TempDir()
	t.Chdir(wd)
	files, err := daggerexec.NewModuleFiles(c.Query)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := files.Export(context.Background(), c.Query.Directory().WithNewFile("libsqlite3.so.0", "x"), out); err != nil {
		t.Fatal(err)
	}
	chains := rec.leafChains("export")
	if len(chains) != 1 {
		t.Fatalf("%d exports, want 1", len(chains))
	}
	p := chains[0][len(chains[0])-1].str("path")
	if !filepath.IsAbs(p) || !strings.HasPrefix(p, wd+string(filepath.Separator)) {
		t.Errorf("export path = %q, want an absolute path under the working directory %s", p, wd)
	}
}

// Release has no default image: it names a definition, or pushes nothing.
func TestDaggerReleaseNeedsADefinition(t *testing.T) {
	rec, c := newClient(t)
	m := &daggerexec.Module{Query: c.Query}
	_, err := m.Release(context.Background(), daggerexec.Spec{}, "", "ci", "token")
	if err == nil || !strings.Contains(err.Error(), "image definition") {
		t.Errorf("Release(no image, no definition) = %v, want a refusal", err)
	}
	if len(rec.queries) != 0 {
		t.Errorf("queries were sent for a refused release: %v", rec.queries)
	}
}
