package daggerexec_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"dagger.io/dagger"
	"github.com/Khan/genqlient/graphql"
	"github.com/dagger/querybuilder"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

var (
	amd64Digest = "sha256:" + strings.Repeat("a", 64)
	arm64Digest = "sha256:" + strings.Repeat("b", 64)
)

// goldenLibraryArgv is the library step as the Dagger executor must run it
// for SQLite 3.51.3. It is a copy on purpose: the tests below also compare
// the GraphQL sent with recipe.Default().Plan, which would follow any change
// of recipe.yaml silently; this copy makes a change of flags, defines or
// order fail here until it is acknowledged.
var goldenLibraryArgv = []string{
	"cc", "-O2", "-fPIC",
	"-DSQLITE_ENABLE_FTS3_PARENTHESIS", "-DSQLITE_ENABLE_COLUMN_METADATA", "-DSQLITE_SECURE_DELETE",
	"-DSQLITE_ENABLE_UNLOCK_NOTIFY", "-DSQLITE_ENABLE_RTREE", "-DSQLITE_ENABLE_GEOPOLY", "-DSQLITE_USE_URI",
	"-DSQLITE_ENABLE_DBSTAT_VTAB", "-DSQLITE_SOUNDEX", "-DSQLITE_MAX_VARIABLE_NUMBER=250000",
	"-DSQLITE_ENABLE_FTS3", "-DSQLITE_ENABLE_FTS4", "-DSQLITE_ENABLE_FTS5", "-DSQLITE_ENABLE_SESSION",
	"-DSQLITE_ENABLE_PREUPDATE_HOOK", "-DSQLITE_THREADSAFE=1", "-DSQLITE_ENABLE_LOAD_EXTENSION",
	"-DSQLITE_ENABLE_MATH_FUNCTIONS", "-DSQLITE_ENABLE_FTS3_TOKENIZER", "-DSQLITE_ENABLE_STMTVTAB",
	"-DSQLITE_LIKE_DOESNT_MATCH_BLOBS", "-DSQLITE_MAX_DEFAULT_PAGE_SIZE=32768", "-DSQLITE_MAX_SCHEMA_RETRY=50",
	"-DSQLITE_ENABLE_DBPAGE_VTAB", "-DHAVE_USLEEP=1", "-DHAVE_FDATASYNC=1", "-DHAVE_LOCALTIME_R=1",
	"-DHAVE_GMTIME_R=1", "-DHAVE_STRERROR_R=1", "-DHAVE_POSIX_FALLOCATE=1",
	"-shared", "-Wl,-soname,libsqlite3.so.0", "-s",
	"-Xlinker", `--package-metadata={"type":"generic","name":"sqlite","version":"3.51.3","purl":"pkg:generic/sqlite@3.51.3"}`,
	"-o", "libsqlite3.so.0", "sqlite3.c", "-lpthread", "-lm", "-ldl",
}

func definition(t *testing.T, name string) *imagedef.Definition {
	t.Helper()
	def, err := imagedef.Embedded(name)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func target(t *testing.T, def *imagedef.Definition, platform, digest string) daggerexec.Target {
	t.Helper()
	tg, err := daggerexec.NewTarget(def, "", platform, digest)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func plan(t *testing.T, cc string) recipe.Plan {
	t.Helper()
	p, err := recipe.Default().Plan(recipe.Params{CC: cc, HasShell: true, Version: "3.51.3"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// source is a source directory made in the engine, not read from a host.
func source(c *dagger.Client) *dagger.Directory {
	return c.Directory().
		WithNewFile("sqlite3.c", "/* sqlite3.c */").
		WithNewFile("sqlite3.h", "/* sqlite3.h */").
		WithNewFile("shell.c", "/* shell.c */")
}

// productChains follows the products directories that were synced back to
// the container pipelines that made each product: product name → chain of
// the container, per platform.
func productChains(t *testing.T, rec *recorder) map[string]map[string][]call {
	t.Helper()
	out := map[string]map[string][]call{}
	for _, chain := range rec.leafChains("sync") {
		if chain[0].Name != "directory" {
			continue
		}
		for _, c := range chain[1 : len(chain)-1] {
			if c.Name != "withFile" {
				t.Fatalf("products directory: unexpected %s in\n  %s", c, show(chain))
			}
			file := rec.resolve(t, c.str("source"))
			last := file[len(file)-1]
			if last.Name != "file" || last.str("path") != daggerexec.WorkDir+"/"+c.str("path") {
				t.Fatalf("product %s comes from %s, want file(%s/%s)", c.str("path"), last, daggerexec.WorkDir, c.str("path"))
			}
			ctr := file[:len(file)-1]
			platform := ctr[0].str("platform")
			if out[platform] == nil {
				out[platform] = map[string][]call{}
			}
			out[platform][c.str("path")] = ctr
		}
	}
	return out
}

// checkPipeline asserts the whole build container pipeline, call by call.
func checkPipeline(t *testing.T, rec *recorder, ctr []call, wantPlatform, wantFrom string, wantCaches [][2]string, wantToolchain string, p recipe.Plan) {
	t.Helper()
	i := 0
	next := func(name string) call {
		t.Helper()
		if i >= len(ctr) || ctr[i].Name != name {
			t.Fatalf("call %d: want %s, pipeline is\n  %s", i, name, show(ctr))
		}
		i++
		return ctr[i-1]
	}
	if c := next("container"); c.str("platform") != wantPlatform {
		t.Errorf("container(platform: %q), want %q", c.str("platform"), wantPlatform)
	}
	if c := next("from"); c.str("address") != wantFrom {
		t.Errorf("from(address: %q), want %q (the base pinned by digest)", c.str("address"), wantFrom)
	}
	for _, wc := range wantCaches {
		c := next("withMountedCache")
		vol := rec.resolve(t, c.str("cache"))
		if c.str("path") != wc[0] || len(vol) != 1 || vol[0].Name != "cacheVolume" || vol[0].str("key") != wc[1] {
			t.Errorf("withMountedCache(path: %q, cache: %s), want %s on cacheVolume(key: %q)", c.str("path"), show(vol), wc[0], wc[1])
		}
		if c.Args["sharing"] != "LOCKED" {
			t.Errorf("withMountedCache(%s) sharing = %v, want LOCKED", wc[0], c.Args["sharing"])
		}
	}
	if c := next("withExec"); !slices.Equal(c.list("args"), []string{"sh", "-c", wantToolchain}) {
		t.Errorf("toolchain step = %q, want sh -c %q", c.list("args"), wantToolchain)
	}
	c := next("withDirectory")
	src := rec.resolve(t, c.str("source"))
	if c.str("path") != daggerexec.WorkDir || src[0].Name != "directory" || slices.Contains(names(src), "host") {
		t.Errorf("withDirectory(path: %q, source: %s), want the source directory at %s", c.str("path"), show(src), daggerexec.WorkDir)
	}
	wantPlan, _ := json.MarshalIndent(p, "", "  ")
	if c := next("withNewFile"); c.str("path") != daggerexec.PlanPath || c.str("contents") != string(wantPlan)+"\n" {
		t.Errorf("withNewFile(path: %q) = %q, want the plan at %s", c.str("path"), c.str("contents"), daggerexec.PlanPath)
	}
	if c := next("withWorkdir"); c.str("path") != daggerexec.WorkDir {
		t.Errorf("withWorkdir(%q), want %s", c.str("path"), daggerexec.WorkDir)
	}
	for _, s := range p.Steps {
		c := next("withExec")
		if got := c.list("args"); !slices.Equal(got, s.Argv) {
			t.Errorf("step %s: withExec(args: %q)\nwant the plan's argv %q", s.Name, got, s.Argv)
		}
		if len(c.Args) != 1 {
			t.Errorf("step %s: withExec has arguments besides args (expand, entrypoint, ...): %s", s.Name, c)
		}
	}
	if i != len(ctr) {
		t.Errorf("calls after the last step: %s", show(ctr[i:]))
	}
}

func TestDaggerBuildAllRunsTheRecipeInThePinnedBase(t *testing.T) {
	rec, c := newClient(t)
	def := definition(t, "alpine-3.21")
	targets := []daggerexec.Target{
		target(t, def, "linux/amd64", amd64Digest),
		target(t, def, "linux/arm64", arm64Digest),
	}
	p := plan(t, daggerexec.CC)

	// The plan is the recipe's, and the golden copy pins it.
	if got := []string{p.Steps[0].Name, p.Steps[1].Name, p.Steps[2].Name}; len(p.Steps) != 3 || !slices.Equal(got, []string{"library", "shell-object", "shell"}) {
		t.Fatalf("plan steps = %v, want library, shell-object, shell: acknowledge a change of steps here", got)
	}
	if !slices.Equal(p.Steps[0].Argv, goldenLibraryArgv) {
		t.Fatalf("library argv changed:\n got %q\nwant %q\nacknowledge a change of flags by updating goldenLibraryArgv", p.Steps[0].Argv, goldenLibraryArgv)
	}
	// The same argv as the local executor's, but for the compiler command.
	localPlan := plan(t, "musl-gcc")
	for i, s := range p.Steps {
		if s.Argv[0] != "cc" || !slices.Equal(s.Argv[1:], localPlan.Steps[i].Argv[1:]) {
			t.Errorf("step %s: argv %q differs from the local executor's %q beyond argv[0]", s.Name, s.Argv, localPlan.Steps[i].Argv)
		}
	}

	dirs, err := daggerexec.BuildAll(context.Background(), c.Query, targets, p, source(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("BuildAll returned %d directories, want 2", len(dirs))
	}
	for i, d := range dirs {
		out := filepath.Join("/out", strings.ReplaceAll(targets[i].Platform, "/", "-"))
		if got, err := d.Export(context.Background(), out); err != nil || got != out {
			t.Fatalf("export = %q, %v", got, err)
		}
	}

	chains := productChains(t, rec)
	var platforms []string
	for pl := range chains {
		platforms = append(platforms, pl)
	}
	sort.Strings(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms built = %v, want linux/amd64 and linux/arm64", platforms)
	}
	for _, tc := range []struct{ platform, from, cache string }{
		{"linux/amd64", "docker.io/library/alpine:3.21@" + amd64Digest, "sqlite-graft-apk-alpine-3.21-amd64"},
		{"linux/arm64", "docker.io/library/alpine:3.21@" + arm64Digest, "sqlite-graft-apk-alpine-3.21-arm64"},
	} {
		products := chains[tc.platform]
		if len(products) != 2 || products["libsqlite3.so.0"] == nil || products["sqlite3"] == nil {
			t.Fatalf("%s: products = %v, want libsqlite3.so.0 and sqlite3", tc.platform, products)
		}
		for name, ctr := range products {
			t.Run(tc.platform+"/"+name, func(t *testing.T) {
				checkPipeline(t, rec, ctr, tc.platform, tc.from,
					[][2]string{{"/var/cache/apk", tc.cache}}, "apk add --no-cache build-base", p)
			})
		}
		// $ORIGIN reaches the linker as written: no shell, no expansion.
		shell := products["sqlite3"]
		last := shell[len(shell)-1]
		if !slices.Contains(last.list("args"), "-Wl,-rpath,$ORIGIN:$ORIGIN/../lib") {
			t.Errorf("%s: the shell step lost its rpath: %s", tc.platform, last)
		}
	}
	if f := rec.allFields(); slices.Contains(f, "host") || slices.Contains(f, "currentModule") {
		t.Errorf("the pipeline touched the host or the module's files: %v", f)
	}
}

func TestDaggerGlibcTargetCachesApt(t *testing.T) {
	rec, c := newClient(t)
	def := definition(t, "debian-13")
	tg := target(t, def, "linux/arm64", arm64Digest)
	p := plan(t, daggerexec.CC)
	d, err := daggerexec.Build(c.Query, tg, p, source(c))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctr := productChains(t, rec)["linux/arm64"]["libsqlite3.so.0"]
	if ctr == nil {
		t.Fatal("no pipeline for linux/arm64")
	}
	checkPipeline(t, rec, ctr, "linux/arm64", "docker.io/library/debian:13@"+arm64Digest,
		[][2]string{
			{"/var/cache/apt", "sqlite-graft-apt-debian-13-arm64"},
			{"/var/lib/apt/lists", "sqlite-graft-apt-lists-debian-13-arm64"},
		},
		"apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev", p)
}

func TestDaggerRefusesABaseWithoutDigest(t *testing.T) {
	rec, c := newClient(t)
	def := definition(t, "alpine-3.21")
	for _, digest := range []string{"", "latest", "sha256:abc", "sha512:" + strings.Repeat("a", 128)} {
		if _, err := daggerexec.NewTarget(def, "", "linux/amd64", digest); err == nil {
			t.Errorf("NewTarget(digest %q) succeeded", digest)
		}
	}
	if _, err := daggerexec.NewTarget(def, "docker.io/library/alpine@"+amd64Digest, "linux/amd64", amd64Digest); err == nil {
		t.Errorf("NewTarget accepted a base that is already a digest reference as the tag")
	}
	unpinned := daggerexec.Target{Base: "docker.io/library/alpine:3.21", Platform: "linux/amd64", Libc: "musl", Toolchain: "true", CacheKey: "alpine-3.21"}
	if _, err := daggerexec.Build(c.Query, unpinned, plan(t, daggerexec.CC), source(c)); err == nil || !strings.Contains(err.Error(), "not pinned by digest") {
		t.Errorf("Build with a tag-only base = %v, want a refusal", err)
	}
	if len(rec.queries) != 0 {
		t.Errorf("queries were sent for a refused target: %v", rec.queries)
	}
}

func TestDaggerToolchain(t *testing.T) {
	rec, c := newClient(t)
	rec.stdout = func(chain []call) string {
		last := chain[len(chain)-2]
		if last.Name == "withExec" && slices.Equal(last.list("args"), []string{"sh", "-c", daggerexec.ToolchainScript}) {
			return "cc (Alpine 14.2.0) 14.2.0\nx86_64-alpine-linux-musl\n"
		}
		return ""
	}
	tg := target(t, definition(t, "alpine-3.21"), "linux/amd64", amd64Digest)
	got, err := daggerexec.Toolchain(context.Background(), c.Query, tg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cc (Alpine 14.2.0) 14.2.0", "target x86_64-alpine-linux-musl", "libc musl", "alpine:3.21@" + amd64Digest, "linux/amd64"} {
		if !strings.Contains(got, want) {
			t.Errorf("Toolchain = %q, want it to contain %q", got, want)
		}
	}
}

// fakeFiles moves files without a host: uploads become directories made
// in the engine, exports are recorded and leave placeholder products.
type fakeFiles struct {
	q        *dagger.Query
	products []string
	mu       sync.Mutex
	exports  []string
}

func (f *fakeFiles) Directory(_ context.Context, p string) (*dagger.Directory, error) {
	d := f.q.Directory()
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(p, e.Name()))
		if err != nil {
			return nil, err
		}
		d = d.WithNewFile(e.Name(), string(b))
	}
	return d, nil
}

func (f *fakeFiles) File(_ context.Context, p string) (*dagger.File, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return f.q.Directory().WithNewFile(filepath.Base(p), string(b)).File(filepath.Base(p)), nil
}

func (f *fakeFiles) Export(ctx context.Context, d *dagger.Directory, p string) error {
	if _, err := d.Export(ctx, p); err != nil {
		return err
	}
	f.mu.Lock()
	f.exports = append(f.exports, p)
	f.mu.Unlock()
	for _, prod := range f.products {
		if err := os.WriteFile(filepath.Join(p, prod), []byte("placeholder"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func TestDaggerExecutorsBuildEveryPlatformAtOnce(t *testing.T) {
	rec, c := newClient(t)
	def := definition(t, "alpine-3.21")
	amd, arm := v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}
	var resolved []string
	files := &fakeFiles{q: c.Query, products: []string{"libsqlite3.so.0", "sqlite3"}}
	ex := &daggerexec.Executors{
		Query: c.Query, Def: def, Platforms: []v1.Platform{amd, arm}, Files: files,
		Resolve: func(_ context.Context, ref string, p v1.Platform) (string, error) {
			resolved = append(resolved, ref+" "+p.String())
			if p.Architecture == "arm64" {
				return arm64Digest, nil
			}
			return amd64Digest, nil
		},
	}
	src := t.TempDir()
	for _, f := range []string{"sqlite3.c", "sqlite3.h", "shell.c"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte("/* "+f+" */"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// source.json names the fetch's directory, fresh on every call: it must
	// not reach the engine, which keys the upload (and the compile) by content.
	os.WriteFile(filepath.Join(src, "source.json"), []byte(`{"dir": "`+src+`"}`), 0o644)
	compiler := ex.Compiler(context.Background())
	p := plan(t, daggerexec.CC)

	x, cc, err := compiler(amd)
	if err != nil || cc != "cc" {
		t.Fatalf("compiler(amd64) = %v, %q", err, cc)
	}
	if err := x.Build(context.Background(), p, src, filepath.Join(t.TempDir(), "amd64")); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.leafChains("sync")); n != 2 {
		t.Fatalf("after the first platform's Build: %d builds evaluated, want both platforms (2)", n)
	}
	var uploaded []string
	var walk func(chain []call)
	walk = func(chain []call) {
		for _, c := range chain {
			if c.Name == "withNewFile" {
				uploaded = append(uploaded, c.str("path"))
			}
			for _, arg := range []string{"source", "directory"} {
				if id := c.str(arg); strings.HasPrefix(id, "id-") {
					walk(rec.resolve(t, id))
				}
			}
		}
	}
	for _, ch := range rec.leafChains("sync") {
		walk(ch)
	}
	if slices.Contains(uploaded, "source.json") || !slices.Contains(uploaded, "sqlite3.c") {
		t.Errorf("uploaded source files = %v, want the sources without source.json", uploaded)
	}
	x, _, err = compiler(arm)
	if err != nil {
		t.Fatal(err)
	}
	// Compile fetches into a fresh directory per platform: same contents,
	// other path.
	src2 := t.TempDir()
	for _, f := range []string{"sqlite3.c", "sqlite3.h", "shell.c"} {
		b, _ := os.ReadFile(filepath.Join(src, f))
		os.WriteFile(filepath.Join(src2, f), b, 0o644)
	}
	if err := x.Build(context.Background(), p, src2, filepath.Join(t.TempDir(), "arm64")); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.leafChains("sync")); n != 2 {
		t.Errorf("after the second platform's Build: %d builds evaluated, want still 2", n)
	}
	if len(files.exports) != 2 {
		t.Errorf("exports = %v, want one per platform", files.exports)
	}
	if !slices.Equal(resolved, []string{"docker.io/library/alpine:3.21 linux/amd64", "docker.io/library/alpine:3.21 linux/arm64"}) {
		t.Errorf("bases resolved = %v, want each platform once", resolved)
	}
	chains := productChains(t, rec)
	if from := chains["linux/arm64"]["sqlite3"][1].str("address"); from != "docker.io/library/alpine:3.21@"+arm64Digest {
		t.Errorf("arm64 built from %q", from)
	}
	// A changed plan builds again.
	p.Steps[0].Argv = append(slices.Clone(p.Steps[0].Argv), "-DEXTRA")
	if err := x.Build(context.Background(), p, src2, filepath.Join(t.TempDir(), "arm64-2")); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.leafChains("sync")); n != 4 {
		t.Errorf("after a changed plan: %d builds evaluated, want 4", n)
	}
	if slices.Contains(rec.allFields(), "host") {
		t.Errorf("the executor touched the host")
	}
}

// The ci module runs pipelines over its own connection through
// Query.WithGraphQLQuery; the same pipeline must work when the Query is made
// that way rather than by Connect.
func TestDaggerBuildOverABridgedQuery(t *testing.T) {
	rec := &recorder{ids: map[string][]call{}}
	gql := graphql.NewClient("http://recorder.invalid/query", rec)
	q := new(dagger.Query).WithGraphQLQuery(querybuilder.Query().Client(gql))
	tg := target(t, definition(t, "alpine-3.21"), "linux/arm64", arm64Digest)
	src := q.Directory().WithNewFile("sqlite3.c", "x").WithNewFile("sqlite3.h", "y")
	p, err := recipe.Default().Plan(recipe.Params{CC: daggerexec.CC, Version: "3.51.3"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := daggerexec.Build(q, tg, p, src)
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.ID(context.Background())
	if err != nil || id == "" {
		t.Fatalf("ID over the bridged query = %q, %v", id, err)
	}
	chain := rec.resolve(t, string(id))
	if names(chain)[0] != "directory" || len(chain) != 2 || chain[1].str("path") != "libsqlite3.so.0" {
		t.Errorf("products without shell.c = %s, want the library only", show(chain))
	}
}

// A failed step reports the platform, the command and the end of its output.
func TestDaggerBuildFailureNamesPlatformCommandAndOutput(t *testing.T) {
	rec, c := newClient(t)
	def := definition(t, "alpine-3.21")
	p := plan(t, daggerexec.CC)
	rec.fail = func(chain []call) map[string]any {
		if chain[len(chain)-1].Name != "sync" {
			return nil
		}
		for _, c := range chain {
			if c.Name == "withFile" {
				src := rec.resolve(t, c.str("source"))
				if src[0].str("platform") == "linux/arm64" {
					return map[string]any{
						"message": "process \"cc ...\" did not complete successfully: exit code: 1",
						"extensions": map[string]any{
							"_type": "EXEC_ERROR", "exitCode": 1, "cmd": p.Steps[0].Argv,
							"stderr": "sqlite3.c:1:1: error: expected identifier",
						},
					}
				}
			}
		}
		return nil
	}
	_, err := daggerexec.BuildAll(context.Background(), c.Query, []daggerexec.Target{
		target(t, def, "linux/amd64", amd64Digest),
		target(t, def, "linux/arm64", arm64Digest),
	}, p, source(c))
	if err == nil {
		t.Fatal("BuildAll succeeded with a failing arm64 build")
	}
	for _, want := range []string{"linux/arm64", "alpine:3.21@" + arm64Digest, "sqlite3.c:1:1: error", "(exit 1)", "-Wl,-soname,libsqlite3.so.0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Objects cross between the module's generated types and dagger.io/dagger's
// by ID through node(id:) — what dagger.Ref sends, in dagger.io/dagger as in
// the module's generated package (the same template) — never through
// load<Type>FromID, which engines serve only to modules whose engineVersion
// is below v0.22.0.
func TestDaggerIDBridgeUsesNode(t *testing.T) {
	rec := &recorder{ids: map[string][]call{}}
	gql := graphql.NewClient("http://recorder.invalid/query", rec)
	q := new(dagger.Query).WithGraphQLQuery(querybuilder.Query().Client(gql))
	id, err := q.Directory().WithNewFile("probe.c", "int main(void) { return 0; }").ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := dagger.Ref[*dagger.Directory](&dagger.Client{Query: q}, id)
	if _, err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	chains := rec.leafChains("sync")
	if len(chains) != 1 {
		t.Fatalf("%d syncs, want 1", len(chains))
	}
	rec.mu.Lock()
	raw := rec.chains[len(rec.chains)-1]
	query := rec.queries[len(rec.queries)-1]
	rec.mu.Unlock()
	if raw[0].Name != "node" || raw[0].str("id") != string(id) || !strings.Contains(query, "... on Directory") {
		t.Errorf("bridged object = %s (%s), want node(id: %q) ... on Directory", show(raw), query, id)
	}
	if got := names(chains[0]); !slices.Equal(got, []string{"directory", "withNewFile", "sync"}) {
		t.Errorf("the ID resolves to %v, want the directory it was made from", got)
	}
	for _, f := range rec.allFields() {
		if strings.HasPrefix(f, "load") && strings.HasSuffix(f, "FromID") {
			t.Errorf("legacy loader %s sent", f)
		}
	}
}
