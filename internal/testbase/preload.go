package testbase

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// WithPreload is base (built for libc, "musl" or "glibc") with one more
// layer holding source compiled as a shared library at lib, and a config
// whose environment preloads it (LD_PRELOAD=lib) plus env ("KEY=value"):
// a hostile base whose code runs in every process started in the image.
func WithPreload(t testing.TB, base v1.Image, libc, lib string, source []byte, env ...string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(base, MustLayer(t, Regular(lib, 0o755, SharedLibrary(t, libc, source))))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Env = append(append(cf.Config.Env, "LD_PRELOAD="+lib), env...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// SharedLibrary is source compiled as a stripped shared library for libc
// ("musl": with musl-gcc, else cc).
func SharedLibrary(t testing.TB, libc string, source []byte) []byte {
	t.Helper()
	cc := "cc"
	if libc == "musl" {
		cc = "musl-gcc"
	}
	so, err := compileShared(cc, source)
	if err != nil {
		t.Fatal(err)
	}
	return so
}

func compileShared(cc string, source []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "testbase-preload-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "preload.c"), source, 0o644); err != nil {
		return nil, err
	}
	args := []string{"-O2", "-s", "-shared", "-fPIC", "-o", "preload.so", "preload.c"}
	cmd := exec.CommandContext(context.Background(), cc, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testbase: compile a preload: %s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
	return os.ReadFile(filepath.Join(dir, "preload.so"))
}

// Hostile preloads for WithPreload.
var (
	// PauseSource waits for ever in its constructor: every process hangs.
	//go:embed pause.c
	PauseSource []byte
	// PlantSource plants links named "stop" and "planted" to $PLANT_TARGET
	// wherever it can write.
	//go:embed plant.c
	PlantSource []byte
)
