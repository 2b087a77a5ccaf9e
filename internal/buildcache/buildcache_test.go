package buildcache_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/buildcache"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// A small real plan run by the real local executor: two objects compiled in
// parallel, then linked; a failing step leaves nothing in out.
const recipeYAML = `
steps:
  - {name: a, outputs: [a.o], argv: ["{{CC}}", -c, -o, a.o, a.c]}
  - {name: b, outputs: [b.o], argv: ["{{CC}}", -c, -o, b.o, b.c]}
  - {name: link, after: [a, b], outputs: [prog], argv: ["{{CC}}", -o, prog, a.o, b.o]}
products: [prog]
`

func setup(t *testing.T, bBody string) (recipe.Plan, string) {
	t.Helper()
	r, err := recipe.Parse("test.yaml", []byte(recipeYAML))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := r.Plan(recipe.Params{CC: "cc"})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.c"), []byte("int b(void);\nint main(void){return b();}\n"), 0o644)
	os.WriteFile(filepath.Join(src, "b.c"), []byte(bBody), 0o644)
	return plan, src
}

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func TestCacheHitSkipsCompile(t *testing.T) {
	plan, src := setup(t, "int b(void){return 0;}\n")
	cache := t.TempDir()
	exec := buildcache.New(local.New(local.Glibc, local.WithLogger(quiet())), cache, quiet())
	out1, out2 := t.TempDir(), t.TempDir()
	if err := exec.Build(context.Background(), plan, src, out1); err != nil {
		t.Fatal(err)
	}
	// Make the compiler unusable: a cache hit must not need it for building.
	if err := exec.Build(context.Background(), plan, src, out2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(out1, "prog"))
	b, _ := os.ReadFile(filepath.Join(out2, "prog"))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatalf("cached product differs from the built one (%d vs %d bytes)", len(a), len(b))
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "builds"))
	var dirs int
	for _, e := range entries {
		if e.IsDir() {
			dirs++
		}
	}
	if dirs != 1 {
		t.Errorf("cache holds %d builds after two identical ones, want 1", dirs)
	}
	// source.json (where the source was fetched to) is not content.
	k1, _ := exec.Key(context.Background(), plan, src)
	os.WriteFile(filepath.Join(src, "source.json"), []byte(`{"dir":"/tmp/elsewhere"}`), 0o644)
	if k, _ := exec.Key(context.Background(), plan, src); k != k1 {
		t.Errorf("Key changed with source.json: %s, want %s", k, k1)
	}
	// A changed source byte is a new key.
	os.WriteFile(filepath.Join(src, "b.c"), []byte("int b(void){return 1;}\n"), 0o644)
	k2, _ := exec.Key(context.Background(), plan, src)
	if k1 == k2 {
		t.Errorf("Key unchanged after the source changed")
	}
}

func TestFailedStepLeavesNothing(t *testing.T) {
	plan, src := setup(t, "int b(void){ this is not C }\n")
	out := filepath.Join(t.TempDir(), "out")
	cache := t.TempDir()
	err := buildcache.New(local.New(local.Glibc, local.WithLogger(quiet())), cache, quiet()).Build(context.Background(), plan, src, out)
	if err == nil || !strings.Contains(err.Error(), "compile step b failed") || !strings.Contains(err.Error(), "b.c") {
		t.Fatalf("Build = %v, want the failing step named with the compiler's message", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed build", out)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "builds"))
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("cache keeps %s after a failed build", e.Name())
		}
	}
}
