package sqltests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/lockfile"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
	"github.com/sqlite-graft/sqlite-graft/internal/sourcetree"
)

// Builder builds testfixtures, and for musl a Tcl, into a cache keyed by
// content: the same tree, patches, recipe, toolchain and Tcl give back the
// earlier build. Concurrent builds of one key wait for each other.
type Builder struct {
	CacheDir string        // testfixtures in CacheDir/testfixture/<key>, musl Tcl in CacheDir/tcl/<key>
	Mirror   debsrc.Mirror // where Debian's tcl8.6 source comes from (musl)
	Log      logrus.FieldLogger
}

// Patch is a test-only change applied to a copy of the verified tree (the
// tree itself is never changed). A build with patches does not test what is
// shipped: its Testfixture and Result name them.
type Patch struct {
	Name string
	Data []byte
}

// BuildRequest says what to build.
type BuildRequest struct {
	Tree    *sourcetree.Tree
	Pin     pins.Pin // its sqlite3_c hash is what the tree's amalgamation must match
	Recipe  *recipe.Recipe
	Libc    local.Libc
	Patches []Patch
}

// Testfixture is a built testfixture and what went into it.
type Testfixture struct {
	Path         string     `json:"path"`
	Key          string     `json:"key"`
	Libc         local.Libc `json:"libc"`
	Toolchain    string     `json:"toolchain"`
	Tcl          string     `json:"tcl"`
	TclLibrary   string     `json:"tcl_library,omitempty"` // TCL_LIBRARY for a Tcl built here (musl)
	CheckIn      string     `json:"check_in"`
	Patches      []string   `json:"patches,omitempty"`
	Amalgamation string     `json:"amalgamation"` // what was checked about the tree's sqlite3.c
	Argv         [][]string `json:"argv"`
	BuildLog     string     `json:"build_log"`
	BuildSeconds float64    `json:"build_seconds"` // of the build that filled the cache
	Cached       bool       `json:"cached"`        // this call compiled nothing
	tree         *sourcetree.Tree
}

func (b *Builder) log() logrus.FieldLogger {
	if b.Log == nil {
		return logrus.StandardLogger()
	}
	return b.Log
}

// Testfixture returns the testfixture of req, from the cache or built now.
func (b *Builder) Testfixture(ctx context.Context, req BuildRequest) (*Testfixture, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	if req.Tree == nil || req.Recipe == nil {
		return nil, fmt.Errorf("sqltests: a verified tree and a recipe are needed")
	}
	exe := local.New(req.Libc, local.WithLogger(b.log()))
	toolchain, err := exe.Toolchain(ctx)
	if err != nil {
		return nil, err
	}
	tcl, err := b.tcl(ctx, s, req.Libc, exe.CC(), toolchain)
	if err != nil {
		return nil, err
	}
	vars := compileVars(req, exe.CC())
	var env []string
	if tcl.prefix != "" {
		env = []string{"CPPFLAGS=-I" + filepath.Join(tcl.prefix, "include"), "LDFLAGS=-L" + filepath.Join(tcl.prefix, "lib")}
	}
	mk := sha256.Sum256(TestfixtureMakefile)
	keyInput := struct {
		Toolchain, Tcl, CheckIn string
		Steps                   []step
		Vars                    map[string]string
		Makefile                string
		Patches                 []string
	}{toolchain, tcl.id, req.Tree.CheckIn, s.Testfixture, vars, hex.EncodeToString(mk[:]), nil}
	tf := &Testfixture{Libc: req.Libc, Toolchain: toolchain, Tcl: tcl.id, TclLibrary: tcl.library, CheckIn: req.Tree.CheckIn, tree: req.Tree}
	for _, p := range req.Patches {
		sum := sha256.Sum256(p.Data)
		keyInput.Patches = append(keyInput.Patches, p.Name+" "+hex.EncodeToString(sum[:]))
		tf.Patches = append(tf.Patches, p.Name)
	}
	kb, _ := json.Marshal(keyInput)
	sum := sha256.Sum256(kb)
	tf.Key = hex.EncodeToString(sum[:])
	entry := filepath.Join(b.CacheDir, "testfixture", tf.Key)
	unlock, err := lockfile.Lock(entry + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if cached, err := readEntry(entry); err == nil {
		cached.tree, cached.Cached = req.Tree, true
		b.log().WithField("key", tf.Key[:12]).Infof("testfixture: unchanged inputs, using the cached build")
		return cached, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(entry), ".tmp-"+tf.Key[:12])
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	treeDir := req.Tree.Dir
	if len(req.Patches) > 0 {
		treeDir = filepath.Join(tmp, "src")
		if err := os.CopyFS(treeDir, os.DirFS(req.Tree.Dir)); err != nil {
			return nil, err
		}
		for _, p := range req.Patches {
			if err := source.ApplyTreePatch(p.Data, treeDir); err != nil {
				return nil, fmt.Errorf("test-only patch %s: %w", p.Name, err)
			}
		}
	}
	// Not in the key: the paths of this build and how many compiles run at once.
	vars["TREE"], vars["TCL_CONFIG_DIR"], vars["JOBS"] = treeDir, tcl.configDir, jobs()
	bld, out := filepath.Join(tmp, "build"), filepath.Join(tmp, "out")
	for _, d := range []string{bld, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(bld, TestfixtureMakefileName), TestfixtureMakefile, 0o644); err != nil {
		return nil, err
	}
	start := time.Now()
	b.log().WithFields(logrus.Fields{"libc": req.Libc, "check_in": req.Tree.CheckIn[:12], "patches": tf.Patches}).Info("testfixture: building SQLite's test harness from the verified tree")
	if tf.Argv, err = runSteps(ctx, s.Testfixture, vars, bld, filepath.Join(out, "build.log"), env); err != nil {
		// Keep the whole log of a failed build beside the cache entry.
		kept := entry + ".failed.log"
		if cerr := fsutil.CopyFile(filepath.Join(out, "build.log"), kept); cerr == nil {
			return nil, fmt.Errorf("testfixture: %w (whole log: %s)", err, kept)
		}
		return nil, fmt.Errorf("testfixture: %w", err)
	}
	if tf.Amalgamation, err = checkAmalgamation(filepath.Join(bld, "sqlite3.c"), req.Pin, len(req.Patches) > 0); err != nil {
		return nil, err
	}
	tf.BuildSeconds = time.Since(start).Seconds()
	if err := os.Rename(filepath.Join(bld, "testfixture"), filepath.Join(out, "testfixture")); err != nil {
		return nil, fmt.Errorf("testfixture: not built: %w", err)
	}
	tf.Path, tf.BuildLog = filepath.Join(entry, "testfixture"), filepath.Join(entry, "build.log")
	j, _ := json.MarshalIndent(tf, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "testfixture.json"), append(j, '\n'), 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(entry)
	if err := os.Rename(out, entry); err != nil {
		return nil, err
	}
	b.log().WithFields(logrus.Fields{"seconds": int(tf.BuildSeconds), "path": tf.Path}).Info("testfixture: built")
	return tf, nil
}

// compileVars are gate.yaml's compiler placeholders for req: the compiler
// and the recipe's flags and -D options (the testfixture's cache key holds
// them, not the paths of a build).
func compileVars(req BuildRequest, cc string) map[string]string {
	return map[string]string{
		"CC":      cc,
		"CFLAGS":  strings.Join(req.Recipe.CFlags, " "),
		"DEFINES": strings.Join(req.Recipe.DefineFlags(), " "),
	}
}

func readEntry(entry string) (*Testfixture, error) {
	j, err := os.ReadFile(filepath.Join(entry, "testfixture.json"))
	if err != nil {
		return nil, err
	}
	tf := &Testfixture{}
	if err := json.Unmarshal(j, tf); err != nil {
		return nil, err
	}
	if _, err := os.Stat(tf.Path); err != nil {
		return nil, err
	}
	return tf, nil
}

// checkAmalgamation compares the sqlite3.c the tree generated with the
// published one: equal bytes mean the tests exercise exactly the code the
// library is compiled from. Patched trees differ by design.
func checkAmalgamation(path string, pin pins.Pin, patched bool) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("testfixture: the tree's amalgamation: %w", err)
	}
	s := sha3.Sum256(b)
	got := hex.EncodeToString(s[:])
	switch {
	case patched:
		return fmt.Sprintf("sqlite3.c SHA3-256 %s (patched for a test; not the published one)", got), nil
	case pin.SQLite3C == nil:
		return fmt.Sprintf("sqlite3.c SHA3-256 %s (no published hash pinned to compare)", got), nil
	case got != pin.SQLite3C.SHA3:
		return "", fmt.Errorf("testfixture: sqlite3.c generated from the tree: SHA3-256 = %s, want %s (published at %s)", got, pin.SQLite3C.SHA3, pin.SQLite3C.Published)
	}
	return fmt.Sprintf("sqlite3.c generated from the tree = the published sqlite3.c (SHA3-256 %s)", got), nil
}

// runSteps runs steps one after the other in dir, appending their output to
// logPath; the error of a failed step carries the tail of its output.
func runSteps(ctx context.Context, steps []step, vars map[string]string, dir, logPath string, env []string) ([][]string, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var argvs [][]string
	for _, st := range steps {
		argv, err := expand(st.Argv, vars)
		if err != nil {
			return nil, err
		}
		argvs = append(argvs, argv)
		fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
		var tail bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir, cmd.Stdout = dir, io.MultiWriter(logf, &tailWriter{buf: &tail})
		cmd.Stderr, cmd.Env = cmd.Stdout, append(os.Environ(), env...)
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("step %s failed (%v): %s\n%s", st.Name, err, strings.Join(argv, " "), tail.String())
		}
	}
	return argvs, nil
}

// tailWriter keeps the last 3000 bytes written.
type tailWriter struct{ buf *bytes.Buffer }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if n := t.buf.Len(); n > 3000 {
		t.buf.Next(n - 3000)
	}
	return len(p), nil
}

func jobs() string { return fmt.Sprint(min(runtime.NumCPU(), 4)) }
