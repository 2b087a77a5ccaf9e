package recipe_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

func TestPlanWithAndWithoutShell(t *testing.T) {
	r := recipe.Default()
	full, err := r.Plan(recipe.Params{CC: "musl-gcc", HasShell: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(full); !slices.Equal(got, []string{"library", "shell-object", "shell"}) {
		t.Errorf("Plan(shell).Steps = %v", got)
	}
	if !slices.Equal(full.Products, []string{"libsqlite3.so.0", "sqlite3"}) {
		t.Errorf("Plan(shell).Products = %v", full.Products)
	}
	lib := full.Steps[0].Argv
	for _, want := range []string{"musl-gcc", "-O2", "-fPIC", "-shared", "-Wl,-soname,libsqlite3.so.0",
		"-DSQLITE_ENABLE_FTS5", "-DSQLITE_ENABLE_GEOPOLY", "-DSQLITE_MAX_VARIABLE_NUMBER=250000", "-DHAVE_USLEEP=1"} {
		if !slices.Contains(lib, want) {
			t.Errorf("library argv lacks %s: %v", want, lib)
		}
	}
	if lib[0] != "musl-gcc" {
		t.Errorf("argv[0] = %s, want the compiler given", lib[0])
	}
	// The shell links the built library rather than embedding sqlite3.c.
	shell := full.Steps[2].Argv
	if !slices.Contains(shell, "libsqlite3.so.0") || slices.Contains(shell, "sqlite3.c") {
		t.Errorf("shell argv = %v, want it linked against libsqlite3.so.0", shell)
	}
	noShell, err := r.Plan(recipe.Params{CC: "cc"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(noShell); !slices.Equal(got, []string{"library"}) || !slices.Equal(noShell.Products, []string{"libsqlite3.so.0"}) {
		t.Errorf("Plan(no shell) = %v %v", got, noShell.Products)
	}
	for _, d := range r.Defines {
		if strings.HasPrefix(d, "SQLITE_OMIT_") {
			t.Errorf("recipe defines %s", d)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"omit":         {"defines: [SQLITE_OMIT_LOAD_EXTENSION]\nsteps: []\n", "drop-in superset"},
		"dqs":          {"defines: [SQLITE_DQS=0]\nsteps: []\n", "behaviour"},
		"unknown key":  {"cflagz: []\n", "unknown field"},
		"bad after":    {"steps:\n  - {name: a, argv: [cc], outputs: [x], after: [b]}\n", "not an earlier step"},
		"missing argv": {"steps:\n  - {name: a, outputs: [x]}\n", "needs a name, argv and outputs"},
	} {
		if _, err := recipe.Parse("r.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "r.yaml") {
			t.Errorf("%s: Parse = %v, want an error naming r.yaml with %q", name, err, tc.want)
		}
	}
	r, _ := recipe.Parse("r.yaml", []byte("steps:\n  - {name: a, argv: [\"{{NOPE}}\"], outputs: [x]}\n"))
	if _, err := r.Plan(recipe.Params{CC: "cc"}); err == nil {
		t.Errorf("Plan with an unknown placeholder succeeded")
	}
}

func names(p recipe.Plan) []string {
	var n []string
	for _, s := range p.Steps {
		n = append(n, s.Name)
	}
	return n
}

func TestPackageNote(t *testing.T) {
	plan, err := recipe.Default().Plan(recipe.Params{CC: "cc", Version: "3.51.3"})
	if err != nil {
		t.Fatal(err)
	}
	want := `--package-metadata={"type":"generic","name":"sqlite","version":"3.51.3","purl":"pkg:generic/sqlite@3.51.3"}`
	i := slices.Index(plan.Steps[0].Argv, want)
	if i < 1 || plan.Steps[0].Argv[i-1] != "-Xlinker" {
		t.Errorf("library argv = %v, want %s", plan.Steps[0].Argv, want)
	}
}
