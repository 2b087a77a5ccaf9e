package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/testbase"
)

// A base whose preload plants links named "stop" (the old stress test's
// stop file) and "planted", pointing at a file on this machine, in every
// directory its processes can write — the stress test's included. The
// check follows none of them: the file is untouched, nothing is left in
// TMPDIR, and the check passes (the links are the base's own business).
// A client run in the image shows the links were planted.
func TestImageHostilePreloadTouchesNoHostFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // not parallel: the check's temporary directories land here
	canary := t.TempDir()
	secret := filepath.Join(canary, "secret")
	const content = "must stay as it is\n"
	if err := os.WriteFile(secret, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	b := testBases[0]
	const plant = "/usr/lib/plant.so"
	st := smallStress
	img := b.image(t, graft{
		extra: []testbase.File{testbase.Regular(plant, 0o755, testbase.SharedLibrary(t, b.libc, testbase.PlantSource))},
		config: func(c *v1.Config) {
			for i, kv := range c.Env {
				if strings.HasPrefix(kv, "LD_PRELOAD=") {
					c.Env[i] = kv + " " + plant
				}
			}
			c.Env = append(c.Env, "PLANT_TARGET="+secret)
		},
	})
	want := pin(t, "3.51.3")
	// The old stress test waited for ever on a planted stop file.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := Image(ctx, ImageOptions{
		Image: img, Want: &want, Stress: &st, Logger: testLogger(t),
		// busybox is static (no preload): the dynamically linked client plants.
		Client: []string{"/bin/sh", "-c", testbase.Client + " >/dev/null && test -L " + workMount + "/stop && test -L /tmp/planted && echo 3.51.3"},
	})
	if err != nil {
		t.Errorf("Image(base with a planting preload) = %v, want it to pass", err)
	}
	if r != nil && (r.ClientVersion != "3.51.3" || r.Report.Stress == nil || r.Report.Stress.Lost != 0) {
		t.Errorf("client printed %q, stress %+v; want the links planted (3.51.3) and no row lost", r.ClientVersion, r.Report.Stress)
	}
	if got, err := os.ReadFile(secret); err != nil || string(got) != content {
		t.Errorf("%s = %q, %v after the check; want %q untouched", secret, got, err, content)
	}
	for dir, want := range map[string]int{canary: 1, tmp: 0} {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != want {
			t.Errorf("%s holds %v after the check (%v), want %d entries", dir, names(ents), err, want)
		}
	}
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
