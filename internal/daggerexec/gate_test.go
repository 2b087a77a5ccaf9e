package daggerexec_test

import (
	"context"
	"crypto/sha3"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"dagger.io/dagger"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/sourcetree"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

// gateFiles is the gate's side of the files: the tree uploads as a
// directory, and the two read-backs (the tree's sqlite3.c, then the tests'
// outputs) write what the engine would have produced.
type gateFiles struct {
	q         *dagger.Query
	sqlite3c  string
	outputs   map[string]string // test file -> its output; its .rc is 0 unless it has failures
	mu        sync.Mutex
	exportsAt []string
}

func (f *gateFiles) Directory(_ context.Context, p string) (*dagger.Directory, error) {
	return f.q.Directory(), nil
}

func (f *gateFiles) File(context.Context, string) (*dagger.File, error) {
	return nil, fmt.Errorf("the gate uploads no single file")
}

func (f *gateFiles) Export(ctx context.Context, d *dagger.Directory, p string) error {
	if _, err := d.Export(ctx, p); err != nil {
		return err
	}
	f.mu.Lock()
	n := len(f.exportsAt)
	f.exportsAt = append(f.exportsAt, p)
	f.mu.Unlock()
	if n == 0 {
		return os.WriteFile(filepath.Join(p, "sqlite3.c"), []byte(f.sqlite3c), 0o644)
	}
	for file, out := range f.outputs {
		rc := "0"
		if strings.Contains(out, "!Failures") {
			rc = "1"
		}
		for ext, text := range map[string]string{".log": out, ".rc": rc + "\n", ".time": "100.25 103.75\n"} {
			if err := os.WriteFile(filepath.Join(p, file+ext), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// gateRequest is a build request for 3.53.4 whose tree holds the quick
// level's test files (their contents are the engine's business here) and
// whose pin publishes the hash of "sqlite3.c bytes".
func gateRequest(t *testing.T) sqltests.BuildRequest {
	t.Helper()
	dir := t.TempDir()
	files := []string{"walrestart.test", "wal.test", "walbak.test", "walckptnoop.test", "walcksum.test",
		"walhook.test", "walmode.test", "walnoshm.test", "waloverwrite.test", "walpersist.test", "select1.test"}
	if err := os.Mkdir(filepath.Join(dir, "test"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, "test", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha3.Sum256([]byte("sqlite3.c bytes"))
	v := pins.MustParseVersion("3.53.4")
	return sqltests.BuildRequest{
		Tree:   &sourcetree.Tree{Dir: dir, Version: v, CheckIn: strings.Repeat("c", 64)},
		Pin:    pins.Pin{Version: v, SQLite3C: &pins.Hash{SHA3: hex.EncodeToString(sum[:]), Published: "https://sqlite.org/changes.html"}},
		Recipe: recipe.Default(),
		Libc:   local.Musl,
	}
}

func gateExecutors(c *dagger.Client, files daggerexec.Files) *daggerexec.Executors {
	return &daggerexec.Executors{
		Query: c.Query, Def: nil, Files: files,
		Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}},
		Resolve:   func(context.Context, string, v1.Platform) (string, error) { return amd64Digest, nil },
	}
}

// The release gate in the engine: testfixture built in the definition's
// pinned base with its toolchain and test_toolchain, by gate.yaml's steps
// with the recipe's options against the base's Tcl; the level's files run
// as nobody, never from the cache, slowest first, DefaultJobs at a time; the outputs read
// back and judged by internal/sqltests.
func TestDaggerGateRunsSQLiteTestsInTheBase(t *testing.T) {
	req := gateRequest(t)
	quick := []string{"walrestart.test", "wal.test", "walbak.test", "walckptnoop.test", "walcksum.test",
		"walhook.test", "walmode.test", "walnoshm.test", "waloverwrite.test", "walpersist.test"}
	pass := map[string]string{}
	for _, f := range quick {
		pass[f] = "Running " + f + "\n0 errors out of 12 tests on x86_64 Linux 64-bit little-endian\nAll memory allocations freed - no leaks\n"
	}
	for name, tc := range map[string]struct {
		outputs  map[string]string
		sqlite3c string
		wantErr  string
	}{
		"passes": {outputs: pass, sqlite3c: "sqlite3.c bytes"},
		"a test fails": {outputs: func() map[string]string {
			m := maps(pass)
			m["walrestart.test"] = "! walrestart-1.1 expected: [ok] got: [SQLITE_CORRUPT]\n1 errors out of 5 tests\n!Failures on these tests: walrestart-1.1\n"
			return m
		}(), sqlite3c: "sqlite3.c bytes", wantErr: "walrestart.test: walrestart-1.1"},
		"no summary": {outputs: func() map[string]string {
			m := maps(pass)
			delete(m, "wal.test")
			return m
		}(), sqlite3c: "sqlite3.c bytes", wantErr: "wal.test: (no summary)"},
		"another sqlite3.c": {outputs: pass, sqlite3c: "other bytes", wantErr: "sqlite3.c generated from the tree: SHA3-256 = "},
	} {
		t.Run(name, func(t *testing.T) {
			rec, c := newClient(t)
			rec.stdout = func(chain []call) string {
				if args := chain[len(chain)-2].list("args"); len(args) > 2 && strings.Contains(args[2], "tclConfig.sh") {
					return "/usr/lib\n"
				}
				return ""
			}
			files := &gateFiles{q: c.Query, sqlite3c: tc.sqlite3c, outputs: tc.outputs}
			ex := gateExecutors(c, files)
			ex.Def = definition(t, "alpine-3.21")
			r, err := ex.Gate(context.Background(), req, sqltests.Quick, sqltests.RunOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Gate(%s) = %v, want an error naming %q", name, err, tc.wantErr)
				}
				if name == "a test fails" && (!strings.Contains(err.Error(), "SQLITE_CORRUPT") || r == nil || r.Status != sqltests.Failed) {
					t.Errorf("Gate(a test fails) = %+v, %v; want status failed and the failed file's output in the error", r, err)
				}
				if name == "another sqlite3.c" && len(outputReads(rec)) > 0 {
					t.Errorf("tests ran although the tree's sqlite3.c is not the pinned one")
				}
				return
			}
			if err != nil {
				t.Fatalf("Gate = %v", err)
			}
			if r.Status != sqltests.Passed || r.FilesRun != len(quick) || r.Tests != 12*len(quick) || r.Errors != 0 || r.Files[0].Seconds != 3.5 {
				t.Errorf("Gate = %s (%+v), want passed, %d files, %d tests", r.Summary(), r.Files[0], len(quick), 12*len(quick))
			}
			checkGateQueries(t, rec, req, quick)
		})
	}
}

// outputReads are the chains that read the tests' output directory.
func outputReads(rec *recorder) [][]call {
	var out [][]call
	for _, c := range rec.leafChains("sync") {
		if len(c) > 1 && c[len(c)-2].Name == "directory" && c[len(c)-2].str("path") == "/sqlite-tests/out" {
			out = append(out, c[:len(c)-1])
		}
	}
	return out
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func checkGateQueries(t *testing.T, rec *recorder, req sqltests.BuildRequest, quick []string) {
	t.Helper()
	runs := outputReads(rec)
	if len(runs) != 1 {
		t.Fatalf("%d reads of the outputs, want 1", len(runs))
	}
	chain := runs[0]
	if chain[0].Name != "container" || chain[0].str("platform") != "linux/amd64" || chain[1].str("address") != "docker.io/library/alpine:3.21@"+amd64Digest {
		t.Fatalf("the gate ran in %s, want the pinned base", show(chain[:2]))
	}
	var execs [][]string
	user, nonce, makefile := "", false, false
	for _, c := range chain {
		switch c.Name {
		case "withExec":
			execs = append(execs, c.list("args"))
		case "withNewFile":
			// the split testfixture rule, in the build directory before make reads it
			makefile = makefile || (len(execs) == 2 && c.str("path") == "/sqlite-tests/build/"+sqltests.TestfixtureMakefileName &&
				c.str("contents") == string(sqltests.TestfixtureMakefile))
		case "withUser":
			user = c.str("name")
		case "withEnvVariable":
			nonce = nonce || c.str("name") == "SQLITE_GRAFT_GATE_RUN"
		}
	}
	steps, err := sqltests.TestfixtureSteps(req, "cc", "/sqlite-tests/tree", "/usr/lib")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"sh", "-c", "apk add --no-cache build-base"}, {"sh", "-c", "apk add --no-cache tcl-dev zlib-dev"}}
	want = append(want, steps...)
	if len(execs) != len(want)+2 {
		t.Fatalf("execs %q, want the toolchains, %d build steps, the chown and the run", execs, len(steps))
	}
	for i, w := range want {
		if !slices.Equal(execs[i], w) {
			t.Errorf("exec %d = %q, want %q", i, execs[i], w)
		}
	}
	if !makefile {
		t.Errorf("%s was not written into the build directory before the build steps", sqltests.TestfixtureMakefileName)
	}
	if !slices.Contains(steps[len(steps)-1], "testfixture-objects") || !strings.Contains(strings.Join(steps[len(steps)-1], " "), "-DSQLITE_ENABLE_FTS5") {
		t.Errorf("testfixture step %q, want the recipe's defines", steps[len(steps)-1])
	}
	if user != "65534:65534" || !nonce {
		t.Errorf("tests run as %q (nonce %v), want nobody and never from the cache", user, nonce)
	}
	run := execs[len(execs)-1]
	order, err := sqltests.Files(sqltests.Quick, req.Tree)
	if err != nil {
		t.Fatal(err)
	}
	jobs := strconv.Itoa(min(sqltests.DefaultJobs(), len(quick)))
	if len(run) < 5 || run[4] != jobs || !slices.Equal(run[5:], order) || !slices.Equal(slices.Sorted(slices.Values(order)), slices.Sorted(slices.Values(quick))) {
		t.Errorf("run script arguments %q, want %s workers and the level's %d files, slowest first (%q)", run[4:], jobs, len(quick), order)
	}
	if slices.Contains(rec.allFields(), "host") {
		t.Errorf("the gate touched the host")
	}
}

// A definition without test_toolchain cannot run the gate in the engine:
// the error names the file and the key, and nothing runs.
func TestDaggerGateNeedsTestToolchain(t *testing.T) {
	rec, c := newClient(t)
	def := definition(t, "alpine-3.21")
	def.TestToolchain = ""
	ex := gateExecutors(c, &gateFiles{q: c.Query})
	ex.Def = def
	_, err := ex.Gate(context.Background(), gateRequest(t), sqltests.Quick, sqltests.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "images/alpine-3.21.yaml") || !strings.Contains(err.Error(), "test_toolchain") {
		t.Fatalf("Gate without test_toolchain = %v, want an error naming the file and test_toolchain", err)
	}
	if len(rec.leafChains("sync")) > 0 {
		t.Errorf("something ran in the engine")
	}
}
