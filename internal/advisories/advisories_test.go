package advisories_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/advisories"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

func embedded(t *testing.T) *advisories.File {
	t.Helper()
	f, err := advisories.Embedded()
	if err != nil {
		t.Fatalf("Embedded() = %v", err)
	}
	return f
}

func v(s string) pins.Version { return pins.MustParseVersion(s) }

// The embedded data judged with the recipe's real options: what the issue
// measured about the pins and the distributions' packages.
func TestEmbeddedWithRecipe(t *testing.T) {
	f := embedded(t)
	defines := recipe.Default().Defines
	for version, want := range map[string][]string{
		// the default pin: the FTS5 pair (the recipe enables FTS5) and the two fixed in 3.54.0
		"3.51.3": {"CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"},
		"3.53.4": {"CVE-2026-119374", "CVE-2026-119379"},
		"3.54.0": nil,
		// zipfile needs zlib, which the recipe does not compile in
		"3.51.1": {"CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"},
	} {
		got := advisories.IDs(f.Affecting(v(version), defines))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("Affecting(%s, recipe) = %v, want %v", version, got, want)
		}
	}
	// The distributions' packages, judged by version alone.
	for version, want := range map[string][]string{
		"3.40.1": {"CVE-2025-6965", "CVE-2025-70873", "CVE-2025-7458", "CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"}, // Debian 12
		"3.46.1": {"CVE-2025-3277", "CVE-2025-6965", "CVE-2025-70873", "CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"}, // Debian 13
		"3.48.0": {"CVE-2025-3277", "CVE-2025-6965", "CVE-2025-70873", "CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"}, // Alpine 3.21
		"3.49.2": {"CVE-2025-6965", "CVE-2025-70873", "CVE-2025-7709", "CVE-2026-11822", "CVE-2026-11824", "CVE-2026-119374", "CVE-2026-119379"}, // Alpine 3.22
	} {
		got := advisories.IDs(f.AffectingVersion(v(version)))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("AffectingVersion(%s) = %v, want %v", version, got, want)
		}
	}
}

func TestRangeBounds(t *testing.T) {
	a, _ := embedded(t).Lookup("CVE-2025-7458") // 3.39.2 to <3.41.2
	for version, want := range map[string]bool{"3.39.1": false, "3.39.2": true, "3.41.1": true, "3.41.2": false} {
		if got := a.AffectsVersion(v(version)); got != want {
			t.Errorf("CVE-2025-7458 affects %s = %v, want %v", version, got, want)
		}
	}
	if a.Range() != "3.39.2 to <3.41.2" {
		t.Errorf("Range() = %q", a.Range())
	}
	fts, _ := embedded(t).Lookup("CVE-2026-11822")
	for _, tc := range []struct {
		defines []string
		want    bool
	}{
		{nil, false},
		{[]string{"SQLITE_ENABLE_FTS5"}, true},
		{[]string{"-DSQLITE_ENABLE_FTS5"}, true},
		{[]string{"SQLITE_ENABLE_FTS5=1"}, true},
		{[]string{"SQLITE_ENABLE_FTS5=0"}, false},
		{[]string{"SQLITE_ENABLE_FTS4"}, false},
		{[]string{"SQLITE_ENABLE_FTS5X"}, false},
	} {
		if got := fts.Affects(v("3.51.3"), tc.defines); got != tc.want {
			t.Errorf("CVE-2026-11822 affects 3.51.3 with %q = %v, want %v", tc.defines, got, tc.want)
		}
	}
}

func TestRefuse(t *testing.T) {
	f := embedded(t)
	defines := recipe.Default().Defines
	err := f.Refuse("images/alpine-3.21.yaml", v("3.51.3"), defines, nil)
	var re *advisories.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, advisories.ErrRefused) || len(re.Advisories) != 4 {
		t.Fatalf("Refuse(3.51.3, nothing accepted) = %v, want a RefusedError listing 4 advisories", err)
	}
	for _, want := range []string{"images/alpine-3.21.yaml", "CVE-2026-11822", "SQLITE_ENABLE_FTS5", "CVE-2026-119379",
		"accept_advisories:", "- id: CVE-2026-11824", "reason:", "SQLite 3.54.0 or later fixes them all", "https://nvd.nist.gov/vuln/detail/CVE-2026-11822"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Refuse error does not say %q:\n%v", want, err)
		}
	}
	all := []advisories.Acceptance{
		{ID: "CVE-2026-11822", Reason: "r"}, {ID: "CVE-2026-11824", Reason: "r"},
		{ID: "CVE-2026-119374", Reason: "r"}, {ID: "CVE-2026-119379", Reason: "r"},
	}
	if err := f.Refuse("d.yaml", v("3.51.3"), defines, all); err != nil {
		t.Errorf("Refuse(all accepted) = %v", err)
	}
	// An acceptance without a reason accepts nothing.
	noReason := append([]advisories.Acceptance{}, all[:3]...)
	noReason = append(noReason, advisories.Acceptance{ID: "CVE-2026-119379", Reason: "  "})
	if err := f.Refuse("d.yaml", v("3.51.3"), defines, noReason); !errors.As(err, &re) || len(re.Advisories) != 1 || re.Advisories[0].ID != "CVE-2026-119379" {
		t.Errorf("Refuse(one without reason) = %v", err)
	}
	// A fixed pin needs no acceptance; one accepted for an older pin is harmless.
	if err := f.Refuse("d.yaml", v("3.54.0"), defines, all); err != nil {
		t.Errorf("Refuse(3.54.0) = %v", err)
	}
	// Without FTS5 the FTS5 pair does not apply.
	if err := f.Refuse("d.yaml", v("3.51.3"), []string{"SQLITE_THREADSAFE=1"}, all[2:]); err != nil {
		t.Errorf("Refuse(no FTS5, only the 3.54.0 pair accepted) = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	const good = `advisories:
  - id: CVE-2026-11822
    summary: s
    fixed: 3.53.2
    sources:
      - https://example.org/a
`
	if _, err := advisories.Parse("a.yaml", []byte(good)); err != nil {
		t.Fatalf("Parse(good) = %v", err)
	}
	for name, tc := range map[string]struct{ data, want string }{
		"empty":          {"", "a.yaml: empty advisories file"},
		"no entries":     {"advisories: []\n", "a.yaml: advisories: the list is empty"},
		"unknown key":    {strings.Replace(good, "summary: s", "summary: s\n    severity: high", 1), "a.yaml:"},
		"bad id":         {strings.Replace(good, "CVE-2026-11822", "CVE-26-1", 1), "a.yaml:2: advisories[0] (CVE-26-1): id \"CVE-26-1\""},
		"bad version":    {strings.Replace(good, "3.53.2", "3.53.x", 1), "a.yaml:4: advisories[0] (CVE-2026-11822): fixed:"},
		"no range":       {strings.Replace(good, "    fixed: 3.53.2\n", "", 1), "neither introduced nor fixed"},
		"inverted range": {strings.Replace(good, "fixed: 3.53.2", "introduced: 3.54.0\n    fixed: 3.53.2", 1), "a.yaml:5: advisories[0] (CVE-2026-11822): fixed 3.53.2 is not after introduced 3.54.0"},
		"http source":    {strings.Replace(good, "https://example.org/a", "http://example.org/a", 1), "a.yaml:6: advisories[0] (CVE-2026-11822): sources[0]"},
		"no source":      {strings.Replace(good, "    sources:\n      - https://example.org/a\n", "", 1), "no sources and no measured"},
		"bad requires":   {strings.Replace(good, "summary: s", "summary: s\n    requires: fts5", 1), "a.yaml:4: advisories[0] (CVE-2026-11822): requires \"fts5\""},
		"no summary":     {strings.Replace(good, "    summary: s\n", "", 1), "summary: want one line"},
		"twice":          {good + strings.Replace(good, "advisories:\n", "", 1), "a.yaml:7: advisories[1] (CVE-2026-11822): CVE-2026-11822 is listed twice (also at line 2)"},
		"not yaml":       {"advisories: [", "a.yaml:"},
	} {
		_, err := advisories.Parse("a.yaml", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("advisories:\n  - id: CVE-2026-11822\n    summary: s\n    fixed: 3.53.2\n    measured: m\n"))
	f.Add([]byte("advisories: [{id: CVE-2025-1, summary: s}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := advisories.Parse("f.yaml", data)
		if err != nil {
			return
		}
		for _, a := range file.Advisories {
			if !advisories.IDRE.MatchString(a.ID) || (a.Introduced == nil && a.Fixed == nil) {
				t.Fatalf("Parse accepted %+v", a)
			}
		}
	})
}
