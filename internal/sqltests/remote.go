package sqltests

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/sourcetree"
)

// The gate where testfixture is built and run elsewhere (the Dagger engine,
// in the image definition's base): the same steps, test files and reading of
// the output as Builder.Testfixture and Run, so both places judge alike.

// TclConfigDirs are where a distribution's Tcl keeps tclConfig.sh (Debian's
// tcl-dev, Alpine's tcl-dev), in the order they are tried.
func TclConfigDirs() ([]string, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	return s.HostTclConfig, nil
}

// TestfixtureSteps are the argv that build testfixture from the tree at
// tree with compiler cc against the Tcl whose tclConfig.sh is in
// tclConfigDir, run in a build directory that holds only
// TestfixtureMakefile: gate.yaml's steps with the recipe's compile options.
// Test-only patches are not supported there.
func TestfixtureSteps(req BuildRequest, cc, tree, tclConfigDir string) ([][]string, error) {
	if req.Recipe == nil {
		return nil, fmt.Errorf("sqltests: no recipe")
	}
	if len(req.Patches) > 0 {
		return nil, fmt.Errorf("sqltests: test-only patches are applied by Builder.Testfixture only")
	}
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	vars := compileVars(req, cc)
	vars["TREE"], vars["TCL_CONFIG_DIR"], vars["JOBS"] = tree, tclConfigDir, jobs()
	var argvs [][]string
	for _, st := range s.Testfixture {
		argv, err := expand(st.Argv, vars)
		if err != nil {
			return nil, err
		}
		argvs = append(argvs, argv)
	}
	return argvs, nil
}

// Files are the test files (names in test/) level runs in tree.
func Files(level Level, tree *sourcetree.Tree) ([]string, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	return s.treeFiles(level, tree)
}

func (s *spec) treeFiles(level Level, tree *sourcetree.Tree) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(tree.Dir, "test"))
	if err != nil {
		return nil, err
	}
	var inTree []string
	for _, e := range entries {
		inTree = append(inTree, e.Name())
	}
	files, err := s.files(level, inTree)
	if err != nil {
		return nil, err
	}
	// SQLite's testrunner starts the files it tags slow first; so do both
	// paths, and a level lasts about as long as its slowest file.
	prio := make(map[string]int, len(files))
	for _, f := range files {
		prio[f] = runPriority(filepath.Join(tree.Dir, "test", f))
	}
	slices.SortStableFunc(files, func(a, b string) int { return prio[b] - prio[a] })
	return files, nil
}

// runPriority is the priority test/testrunner.tcl gives a file (the
// properties on a "TESTRUNNER:" line in its first 100 lines): 4 superslow,
// 2 slow, else 0.
func runPriority(file string) int {
	f, err := os.Open(file)
	if err != nil {
		return 0 // the run reports the file's absence
	}
	defer f.Close()
	prio := 0
	sc := bufio.NewScanner(f)
	for n := 0; n < 100 && sc.Scan(); n++ {
		line := strings.ToLower(sc.Text())
		i := strings.Index(line, "testrunner:")
		if i < 0 {
			continue
		}
		for _, p := range strings.Fields(line[i+len("testrunner:"):]) {
			switch p {
			case "superslow":
				prio = max(prio, 4)
			case "slow":
				prio = max(prio, 2)
			}
		}
	}
	return prio
}

// CheckAmalgamation compares the sqlite3.c a build of the tree generated
// (at path) with the pin's published one, and says what it found.
func CheckAmalgamation(path string, req BuildRequest) (string, error) {
	return checkAmalgamation(path, req.Pin, len(req.Patches) > 0)
}
