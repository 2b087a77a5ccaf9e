// Package sqltests is the release gate: it builds SQLite's testfixture from a
// verified canonical source tree (internal/sourcetree) with the compile
// recipe's options, for the target libc, and runs a level of SQLite's own Tcl
// tests with it — test/walrestart.test, the regression test of the WAL-reset
// fix, first of all. Build steps and levels are data (gate.yaml).
package sqltests

import (
	_ "embed"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

//go:embed gate.yaml
var gateYAML []byte

// TestfixtureMakefile is read after SQLite's Makefile by gate.yaml's
// testfixture step; it is written into the build directory as
// TestfixtureMakefileName.
//
//go:embed testfixture.mk
var TestfixtureMakefile []byte

const TestfixtureMakefileName = "testfixture.mk"

// Level names a set of SQLite's test files.
type Level string

const (
	Quick     Level = "quick"
	WAL       Level = "wal"
	VeryQuick Level = "veryquick"
)

// Levels lists the levels, cheapest first.
func Levels() []Level { return []Level{Quick, WAL, VeryQuick} }

// ParseLevel accepts quick, wal or veryquick.
func ParseLevel(s string) (Level, error) {
	if l := Level(s); slices.Contains(Levels(), l) {
		return l, nil
	}
	return "", fmt.Errorf("SQLite test level %q: want quick, wal or veryquick", s)
}

type levelSpec struct {
	About   string   `yaml:"about"`
	Files   []string `yaml:"files"`
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
}

// step is one command; its argv may hold {{...}} placeholders.
type step struct {
	Name string   `yaml:"name"`
	Argv []string `yaml:"argv"`
}

type spec struct {
	Levels        map[Level]levelSpec `yaml:"levels"`
	Testfixture   []step              `yaml:"testfixture"`
	HostTclConfig []string            `yaml:"host_tcl_config"`
	MuslLibs      []muslLib           `yaml:"musl_libs"`
}

// muslLib is a library built from a Debian source package with musl-gcc.
type muslLib struct {
	Source pins.DebianFile `yaml:"source"`
	Steps  []step          `yaml:"steps"`
}

func loadSpec() (*spec, error) {
	s := &spec{}
	if err := yaml.UnmarshalWithOptions(gateYAML, s, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("gate.yaml: %s", yaml.FormatError(err, false, false))
	}
	for _, l := range Levels() {
		ls, ok := s.Levels[l]
		if !ok || ls.About == "" || (len(ls.Files) == 0 && len(ls.Include) == 0) {
			return nil, fmt.Errorf("gate.yaml: level %s needs about and files or include", l)
		}
	}
	for i, l := range s.MuslLibs {
		if err := l.Source.Validate(); err != nil {
			return nil, fmt.Errorf("gate.yaml: musl_libs[%d].source: %w", i, err)
		}
	}
	return s, nil
}

// About says what a level runs.
func About(l Level) string {
	s, err := loadSpec()
	if err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(s.Levels[l].About), " ")
}

// files lists the test files (names in test/) of a level, given the names
// the tree's test/ holds.
func (s *spec) files(l Level, inTree []string) ([]string, error) {
	ls, ok := s.Levels[l]
	if !ok {
		return nil, fmt.Errorf("no SQLite test level %q", l)
	}
	var out []string
	for _, f := range ls.Files {
		if !slices.Contains(inTree, f) {
			return nil, fmt.Errorf("level %s: test/%s is not in the source tree", l, f)
		}
		out = append(out, f)
	}
	for _, pat := range ls.Include {
		for _, f := range inTree {
			if ok, _ := path.Match(pat, f); ok && !slices.Contains(ls.Exclude, f) && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("level %s: no test file in the source tree matches", l)
	}
	return out, nil
}

// expand replaces the {{NAME}} placeholders of argv.
func expand(argv []string, vars map[string]string) ([]string, error) {
	out := make([]string, 0, len(argv))
	for _, a := range argv {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "{{"+k+"}}", v)
		}
		if strings.Contains(a, "{{") {
			return nil, fmt.Errorf("gate.yaml: unknown placeholder in %q", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// MuslSources are the Debian source files a musl testfixture's zlib and Tcl
// are built from (fetch-fixtures downloads them ahead of the tests).
func MuslSources() ([]pins.DebianFile, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	var out []pins.DebianFile
	for _, l := range s.MuslLibs {
		out = append(out, l.Source)
	}
	return out, nil
}
