package childenv

import (
	"slices"
	"testing"
)

// A child gets PATH, HOME, TMPDIR, the locale and SOURCE_DATE_EPOCH, never
// anything else (a registry token), and never a withheld variable even of
// a kept name.
func TestEnv(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	t.Setenv("LC_ALL", "C.UTF-8")
	t.Setenv("SOURCE_DATE_EPOCH", "1773360000")
	t.Setenv("REGISTRY_TOKEN", "s3cret")
	t.Setenv("TZ", "UTC")
	env := Env("LD_PRELOAD=/x.so", "TZ=Europe/Berlin")
	for _, want := range []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "SOURCE_DATE_EPOCH=1773360000", "LD_PRELOAD=/x.so", "TZ=Europe/Berlin"} {
		if !slices.Contains(env, want) {
			t.Errorf("Env() = %q, want %s", env, want)
		}
	}
	for _, kv := range env {
		if kv == "REGISTRY_TOKEN=s3cret" || kv == "TZ=UTC" {
			t.Errorf("Env() = %q, has %s", env, kv)
		}
	}
	Withhold("LC_ALL")
	if env := Env(); slices.Contains(env, "LC_ALL=C.UTF-8") {
		t.Errorf("Env() after Withhold(LC_ALL) = %q", env)
	}
}
