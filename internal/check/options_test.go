package check

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// debianOptions is PRAGMA compile_options of Debian 12's libsqlite3-0 3.40.1,
// captured from the real library with the probe.
func debianOptions(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/debian12-3.40.1.options")
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			opts = append(opts, l)
		}
	}
	return opts
}

// edit returns opts with the options named in drop removed and add appended.
func edit(opts []string, drop []string, add ...string) []string {
	var out []string
	for _, o := range opts {
		if n, _ := splitOption(o); !slices.Contains(drop, n) {
			out = append(out, o)
		}
	}
	return append(out, add...)
}

func TestCompareOptions(t *testing.T) {
	deb := debianOptions(t)
	for _, tc := range []struct {
		name        string
		lib         []string
		missing     []string // want exactly these baseline options reported missing
		problem     string   // want a problem containing this ("" = no problems)
		noteContain string   // want a note containing this
	}{
		{name: "identical", lib: deb},
		{name: "more features", lib: edit(deb, nil, "ENABLE_GEOPOLY", "ENABLE_DBPAGE_VTAB"), noteContain: "only the library has: ENABLE_DBPAGE_VTAB ENABLE_GEOPOLY"},
		{name: "lacks a feature", lib: edit(deb, []string{"ENABLE_FTS5"}), missing: []string{"ENABLE_FTS5"}, problem: "ENABLE_FTS5: the baseline has it"},
		{name: "lacks soundex", lib: edit(deb, []string{"SOUNDEX"}), missing: []string{"SOUNDEX"}, problem: "SOUNDEX"},
		{name: "lacks uri", lib: edit(deb, []string{"USE_URI"}), missing: []string{"USE_URI"}, problem: "USE_URI"},
		{name: "lacks secure delete", lib: edit(deb, []string{"SECURE_DELETE"}), missing: []string{"SECURE_DELETE"}, problem: "SECURE_DELETE"},
		{name: "lower limit", lib: edit(deb, []string{"MAX_VARIABLE_NUMBER"}, "MAX_VARIABLE_NUMBER=32766"),
			missing: []string{"MAX_VARIABLE_NUMBER=250000"}, problem: "MAX_VARIABLE_NUMBER=32766, lower"},
		{name: "higher limit", lib: edit(deb, []string{"MAX_SCHEMA_RETRY", "MAX_PAGE_COUNT"}, "MAX_SCHEMA_RETRY=50", "MAX_PAGE_COUNT=0xfffffffe")},
		{name: "hex limit equal in decimal", lib: edit(deb, []string{"MAX_MMAP_SIZE"}, "MAX_MMAP_SIZE=2147418112")},
		{name: "hex limit lower", lib: edit(deb, []string{"MAX_MMAP_SIZE"}, "MAX_MMAP_SIZE=0x7ffe0000"),
			missing: []string{"MAX_MMAP_SIZE=0x7fff0000"}, problem: "MAX_MMAP_SIZE=0x7ffe0000, lower"},
		{name: "limit not listed", lib: edit(deb, []string{"MAX_SCHEMA_RETRY"}),
			missing: []string{"MAX_SCHEMA_RETRY=25"}, problem: "define it explicitly"},
		{name: "other threading mode", lib: edit(deb, []string{"THREADSAFE"}, "THREADSAFE=2"),
			missing: []string{"THREADSAFE=1"}, problem: "library has THREADSAFE=2"},
		{name: "baseline omits, we keep", lib: edit(deb, []string{"OMIT_LOOKASIDE"})},
		{name: "we omit", lib: edit(deb, nil, "OMIT_LOAD_EXTENSION"), problem: "OMIT_LOAD_EXTENSION: the library omits"},
		{name: "other compiler", lib: edit(deb, []string{"COMPILER"}, "COMPILER=gcc-14.2.0"), noteContain: "COMPILER=gcc-12.2.0: library has COMPILER=gcc-14.2.0"},
		{name: "other default", lib: edit(deb, []string{"DEFAULT_RECURSIVE_TRIGGERS", "DEFAULT_WAL_SYNCHRONOUS"}), noteContain: "DEFAULT_RECURSIVE_TRIGGERS: library has no DEFAULT_RECURSIVE_TRIGGERS"},
		{name: "build environment", lib: edit(deb, []string{"HAVE_ISNAN", "MALLOC_SOFT_LIMIT", "ATOMIC_INTRINSICS"}), noteContain: "HAVE_ISNAN"},
		{name: "behaviour switch", lib: edit(deb, []string{"LIKE_DOESNT_MATCH_BLOBS"}), noteContain: "LIKE_DOESNT_MATCH_BLOBS: library has no LIKE_DOESNT_MATCH_BLOBS"},
		// The amalgamation cannot have it (see optionRules): reported, not failed.
		{name: "update delete limit", lib: edit(deb, []string{"ENABLE_UPDATE_DELETE_LIMIT"}), noteContain: "ENABLE_UPDATE_DELETE_LIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := compareOptions(deb, tc.lib)
			if !slices.Equal(d.Missing, tc.missing) {
				t.Errorf("compareOptions(debian, lib).Missing = %q, want %q", d.Missing, tc.missing)
			}
			switch {
			case tc.problem == "" && len(d.Problems) > 0:
				t.Errorf("compareOptions(debian, lib).Problems = %q, want none", d.Problems)
			case tc.problem != "" && (len(d.Problems) != 1 || !strings.Contains(d.Problems[0], tc.problem)):
				t.Errorf("compareOptions(debian, lib).Problems = %q, want one containing %q", d.Problems, tc.problem)
			}
			if tc.noteContain != "" && !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.Contains(n, tc.noteContain) }) {
				t.Errorf("compareOptions(debian, lib).Notes = %q, want one containing %q", d.Notes, tc.noteContain)
			}
		})
	}
}

// Every rule pattern is reachable: an earlier, broader pattern must not shadow it.
func TestOptionRulesOrder(t *testing.T) {
	for i, r := range optionRules {
		name := strings.TrimSuffix(r.pattern, "*") + "X"
		if !strings.HasSuffix(r.pattern, "*") {
			name = r.pattern
		}
		if got, why := ruleFor(name); got != r.rule || why != r.why {
			t.Errorf("ruleFor(%q) = %v %q, want rule %d (%v %q)", name, got, why, i, r.rule, r.why)
		}
	}
}
