// Package recipe is the one compile recipe: compile options and steps as data
// (recipe.yaml), planned into exact argv lists that every executor runs
// unchanged. Executors differ only in where the steps run.
package recipe

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
)

//go:embed recipe.yaml
var defaultYAML []byte

// Recipe is a parsed recipe.yaml.
type Recipe struct {
	CFlags   []string       `yaml:"cflags"`
	Defines  []string       `yaml:"defines"`
	Steps    []StepTemplate `yaml:"steps"`
	Products []string       `yaml:"products"`
}

// StepTemplate is a step before its placeholders are expanded.
type StepTemplate struct {
	Name    string   `yaml:"name"`
	Inputs  []string `yaml:"inputs"`
	Outputs []string `yaml:"outputs"`
	After   []string `yaml:"after"`
	Argv    []string `yaml:"argv"`
}

// Step is one command of a plan, run in a directory holding the source files
// and the outputs of the steps it comes after.
type Step struct {
	Name    string   `json:"name"`
	Argv    []string `json:"argv"`
	After   []string `json:"after,omitempty"`
	Outputs []string `json:"outputs"`
}

// Plan is what an executor runs: steps (a DAG through After) and the files it
// hands back.
type Plan struct {
	Steps    []Step   `json:"steps"`
	Products []string `json:"products"`
}

// Params are what differs between targets.
type Params struct {
	CC       string // "cc", or "musl-gcc" for musl on a glibc host
	HasShell bool   // the source has shell.c
	Version  string // the SQLite version, for the package note; "" leaves the note out
}

// PackageNote are the linker flags that write the ELF .note.package of the
// systemd package-notes spec (https://systemd.io/ELF_PACKAGE_METADATA/).
// -Xlinker, not -Wl: -Wl splits its argument at the JSON's commas.
func PackageNote(version string) []string {
	meta, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Name    string `json:"name"`
		Version string `json:"version"`
		PURL    string `json:"purl"`
	}{"generic", "sqlite", version, "pkg:generic/sqlite@" + version})
	return []string{"-Xlinker", "--package-metadata=" + string(meta)}
}

// Default returns the recipe shipped with the tool.
func Default() *Recipe {
	r, err := Parse("recipe.yaml", defaultYAML)
	if err != nil {
		panic(err) // the embedded recipe is tested
	}
	return r
}

// Load reads a recipe file.
func Load(path string) (*Recipe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse validates a recipe.
func Parse(name string, data []byte) (*Recipe, error) {
	r := &Recipe{}
	if err := yaml.UnmarshalWithOptions(data, r, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s: %s", name, yaml.FormatError(err, false, false))
	}
	for _, d := range r.Defines {
		if strings.HasPrefix(d, "SQLITE_OMIT_") || strings.HasPrefix(d, "SQLITE_DQS") {
			return nil, fmt.Errorf("%s: define %s removes or changes behaviour; the library must be a drop-in superset", name, d)
		}
	}
	names := map[string]bool{}
	for _, s := range r.Steps {
		if s.Name == "" || len(s.Argv) == 0 || len(s.Outputs) == 0 {
			return nil, fmt.Errorf("%s: step %q needs a name, argv and outputs", name, s.Name)
		}
		for _, a := range s.After {
			if !names[a] {
				return nil, fmt.Errorf("%s: step %s comes after %q, which is not an earlier step", name, s.Name, a)
			}
		}
		names[s.Name] = true
	}
	return r, nil
}

// DefineFlags are the -D flags, in recipe order.
func (r *Recipe) DefineFlags() []string {
	var out []string
	for _, d := range r.Defines {
		out = append(out, "-D"+d)
	}
	return out
}

// Plan expands the recipe for one target. Without shell.c, steps that need
// it, and steps after those, are dropped.
func (r *Recipe) Plan(p Params) (Plan, error) {
	if p.CC == "" {
		return Plan{}, fmt.Errorf("recipe.Plan: no C compiler given")
	}
	dropped := map[string]bool{}
	var plan Plan
	for _, t := range r.Steps {
		skip := !p.HasShell && slices.Contains(t.Inputs, "shell.c")
		for _, a := range t.After {
			skip = skip || dropped[a]
		}
		if skip {
			dropped[t.Name] = true
			continue
		}
		var argv []string
		for _, a := range t.Argv {
			switch a {
			case "{{CC}}":
				argv = append(argv, p.CC)
			case "{{CFLAGS}}":
				argv = append(argv, r.CFlags...)
			case "{{DEFINES}}":
				argv = append(argv, r.DefineFlags()...)
			case "{{PACKAGE_NOTE}}":
				if p.Version != "" {
					argv = append(argv, PackageNote(p.Version)...)
				}
			default:
				if strings.Contains(a, "{{") {
					return Plan{}, fmt.Errorf("recipe step %s: unknown placeholder in %q", t.Name, a)
				}
				argv = append(argv, a)
			}
		}
		plan.Steps = append(plan.Steps, Step{Name: t.Name, Argv: argv, After: t.After, Outputs: t.Outputs})
	}
	produced := map[string]bool{}
	for _, s := range plan.Steps {
		for _, o := range s.Outputs {
			produced[o] = true
		}
	}
	for _, prod := range r.Products {
		if produced[prod] {
			plan.Products = append(plan.Products, prod)
		}
	}
	return plan, nil
}

// Executor runs a plan. src holds sqlite3.c, sqlite3.h and maybe shell.c;
// the plan's products are written to out.
type Executor interface {
	// Toolchain identifies the compiler (version, target, libc) for cache
	// keys and provenance.
	Toolchain(ctx context.Context) (string, error)
	Build(ctx context.Context, plan Plan, src, out string) error
}
