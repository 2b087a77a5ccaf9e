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
		def, v, err := daggerexec.Definition(name, "")
		if err != nil || def.Name != "alpine-3.21" || v.String() != "3.51.3" {
			t.Errorf("Definition(%q) = %v, %v, %v", name, def, v, err)
		}
	}
	if _, v, err := daggerexec.Definition("debian-13", "3.53.4"); err != nil || v.String() != "3.53.4" {
		t.Errorf("Definition(debian-13, 3.53.4) = %v, %v", v, err)
	}
	if _, _, err := daggerexec.Definition("nope", ""); err == nil || !strings.Contains(err.Error(), "alpine-3.21") {
		t.Errorf("Definition(nope) = %v, want the shipped names", err)
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
