package daggerexec

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"dagger.io/dagger"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
	"github.com/sqlite-graft/sqlite-graft/internal/sqltests"
)

// SourceURL is recorded in org.opencontainers.image.source.
const SourceURL = "https://github.com/sqlite-graft/sqlite-graft"

// Module is the whole pipeline behind the functions of the Dagger module
// (ci/main.go), over one engine connection: the source fetched and verified
// in Go, compiled in the engine (Executors), the image assembled in Go
// (graft.BuildImage, go-containerregistry), checked in the engine
// (CheckImage) and pushed with go-containerregistry (publish.Push).
type Module struct {
	Query *dagger.Query
	Files Files
	Log   logrus.FieldLogger
	// Resolve pins bases; nil means ResolveRemote().
	Resolve ResolveFunc
}

func (m *Module) log() logrus.FieldLogger {
	if m.Log == nil {
		return logrus.StandardLogger()
	}
	return m.Log
}

func (m *Module) env() (*graft.Env, error) {
	p, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
	if err != nil {
		return nil, err
	}
	return &graft.Env{
		Pins:    p,
		Patches: sqlitegraft.Patches(),
		Recipe:  recipe.Default(),
		Fetcher: source.New(source.WithLogger(m.log())),
		Log:     m.log(),
	}, nil
}

// Spec says what to build: a shipped image definition by name, or the
// contents of a definition file, with an optional base that overrides the
// definition's and the SQLite version (default: the definition's).
type Spec struct {
	// Image is a shipped definition ("alpine-3.21"; "images/alpine-3.21.yaml"
	// names the same); empty means imagedef.DefaultName.
	Image string
	// DefinitionFile and DefinitionYAML are a definition file's name and
	// contents; when DefinitionYAML is set it is used instead of Image.
	DefinitionFile string
	DefinitionYAML []byte
	// Base overrides the definition's base (a mirror, a test registry); it
	// is pinned by digest like the definition's.
	Base   string
	SQLite string
	// SQLiteTests is the release gate's level ("" : not asked, which the
	// result says); RequireSQLiteTests makes "not run" an error.
	SQLiteTests        string
	RequireSQLiteTests bool
}

// Definition is the definition the spec names and the SQLite version asked
// for (default: the definition's).
func (s Spec) Definition() (*imagedef.Definition, pins.Version, error) {
	def, err := s.load()
	if err != nil {
		return nil, pins.Version{}, err
	}
	v, err := def.Version(s.SQLite)
	return def, v, err
}

func (s Spec) load() (*imagedef.Definition, error) {
	if s.DefinitionYAML != nil {
		if s.DefinitionFile == "" {
			return nil, fmt.Errorf("a definition file without a name")
		}
		return imagedef.Parse(s.DefinitionFile, s.DefinitionYAML)
	}
	image := s.Image
	if image == "" {
		image = imagedef.DefaultName
	}
	return imagedef.Embedded(strings.TrimSuffix(path.Base(image), ".yaml"))
}

func (m *Module) platform(ctx context.Context, s string) (v1.Platform, error) {
	if s == "" {
		dp, err := m.Query.DefaultPlatform(ctx)
		if err != nil {
			return v1.Platform{}, fmt.Errorf("the engine's platform: %w", err)
		}
		s = string(dp)
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	return *p, nil
}

func (m *Module) executors(def *imagedef.Definition, base string, platforms []v1.Platform) *Executors {
	return &Executors{Query: m.Query, Def: def, Base: base, Platforms: platforms, Files: m.Files, Resolve: m.Resolve, Log: m.log()}
}

// Library compiles SQLite for one platform (default: the engine's) in the
// definition's base and returns the products with build.json.
func (m *Module) Library(ctx context.Context, spec Spec, platform string) (*dagger.Directory, error) {
	def, v, err := spec.Definition()
	if err != nil {
		return nil, err
	}
	p, err := m.platform(ctx, platform)
	if err != nil {
		return nil, err
	}
	env, err := m.env()
	if err != nil {
		return nil, err
	}
	x, err := m.executors(def, spec.Base, []v1.Platform{p}).Executor(ctx, p)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "sqlite-graft-library-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "out")
	if _, err := env.Compile(ctx, graft.SourceRequest{Version: v}, x, CC, out); err != nil {
		return nil, err
	}
	d, err := m.Files.Directory(ctx, out)
	if err != nil {
		return nil, err
	}
	// The local file is removed on return: hand back the engine's copy.
	return d.Sync(ctx)
}

// request is the build of spec for platforms (default: the definition's)
// with the engine as the compiler and the sandbox of the checks.
func (m *Module) request(ctx context.Context, spec Spec, platforms []v1.Platform) (*graft.Env, graft.ImageRequest, error) {
	def, v, err := spec.Definition()
	if err != nil {
		return nil, graft.ImageRequest{}, err
	}
	env, err := m.env()
	if err != nil {
		return nil, graft.ImageRequest{}, err
	}
	if len(platforms) == 0 {
		for _, s := range def.Platforms {
			p, err := v1.ParsePlatform(s)
			if err != nil {
				return nil, graft.ImageRequest{}, err
			}
			platforms = append(platforms, *p)
		}
	}
	ex := m.executors(def, spec.Base, platforms)
	tests, err := spec.sqliteTests(ex.Gate)
	if err != nil {
		return nil, graft.ImageRequest{}, err
	}
	stress := check.DefaultStress()
	return env, graft.ImageRequest{
		Def:         def,
		Source:      graft.SourceRequest{Version: v},
		Base:        spec.Base,
		Platforms:   platforms,
		Compiler:    ex.Compiler(ctx),
		Checker:     ex.Checker(ctx),
		SQLiteTests: tests,
		SourceURL:   SourceURL,
		Stress:      &stress,
	}, nil
}

// sqliteTests is the release gate as the spec asks for it, run by gate in
// the engine; the tree is fetched from Debian's mirror and verified in Go
// (internal/graft), cached in this process's temporary directory.
func (s Spec) sqliteTests(gate func(context.Context, sqltests.BuildRequest, sqltests.Level, sqltests.RunOptions) (*sqltests.Result, error)) (graft.SQLiteTests, error) {
	t := graft.SQLiteTests{Require: s.RequireSQLiteTests, CacheDir: filepath.Join(os.TempDir(), "sqlite-graft"), Gate: gate}
	if s.SQLiteTests != "" {
		level, err := sqltests.ParseLevel(s.SQLiteTests)
		if err != nil {
			return t, fmt.Errorf("sqlite-tests: %w", err)
		}
		t.Level = level
	}
	return t, nil
}

// Image builds the image for one platform (default: the engine's), checks
// it in the engine, and returns it as a container: imported from the OCI
// layout graft wrote, exactly the checked image. A container is one
// platform: the multi-platform image is what Release pushes.
func (m *Module) Image(ctx context.Context, spec Spec, platforms []string) (*dagger.Container, error) {
	if len(platforms) > 1 {
		return nil, fmt.Errorf("build returns one container, which holds one platform; got %v: call build once per platform, or release for the multi-platform image", platforms)
	}
	s := ""
	if len(platforms) == 1 {
		s = platforms[0]
	}
	p, err := m.platform(ctx, s)
	if err != nil {
		return nil, err
	}
	env, req, err := m.request(ctx, spec, []v1.Platform{p})
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "sqlite-graft-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	req.Output = filepath.Join(work, "out")
	res, err := env.BuildImage(ctx, req)
	if err != nil {
		return nil, err
	}
	ii, err := layout.ImageIndexFromPath(res.Layout)
	if err != nil {
		return nil, err
	}
	d, err := v1.NewHash(res.Digest)
	if err != nil {
		return nil, err
	}
	img, err := ii.Image(d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", res.Layout, err)
	}
	tarball := filepath.Join(work, "image.tar")
	if err := WriteOCITarball(img, tarball); err != nil {
		return nil, err
	}
	tar, err := m.Files.File(ctx, tarball)
	if err != nil {
		return nil, err
	}
	// The local tarball is removed on return: evaluate the import now.
	return m.Query.Container(dagger.ContainerOpts{Platform: dagger.Platform(p.String())}).Import(tar).Sync(ctx)
}

// Check builds the image for every platform of the definition and checks
// each in the engine, writing nothing; it returns one line per platform.
// A failed check is an error that carries the whole report.
func (m *Module) Check(ctx context.Context, spec Spec) (string, error) {
	env, req, err := m.request(ctx, spec, nil)
	if err != nil {
		return "", err
	}
	req.CheckOnly = true
	res, err := env.BuildImage(ctx, req)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, c := range res.Checks {
		lines = append(lines, fmt.Sprintf("%s: %s; downstream: %s", c.Platform, c.Summary, c.Downstream))
	}
	if len(res.SQLiteTests) > 0 {
		var r sqltests.Result
		if err := json.Unmarshal(res.SQLiteTests, &r); err != nil {
			return "", fmt.Errorf("the release gate's result: %w", err)
		}
		if r.Level != "" {
			lines = append(lines, r.Summary())
		}
	}
	return fmt.Sprintf("%s (SQLite %s), digest %s\n%s\n", req.Def.Name, req.Source.Version, res.Digest, strings.Join(lines, "\n")), nil
}

// Release builds every platform of the definition and pushes the
// multi-platform image to repository (default: the definition's; a
// REPOSITORY:TAG pushes that one tag instead of the definition's tags) as
// username with password, through the same steps as the CLI's build: the
// recorded inputs first (nothing is built or pushed when every tag holds a
// build of them), the checks in the engine as the gate, the image by
// digest, its referrers (SBOM, provenance), then its tags. It returns
// ref@digest.
func (m *Module) Release(ctx context.Context, spec Spec, repository, username, password string) (string, error) {
	if username == "" || password == "" {
		return "", fmt.Errorf("release needs a registry username and password (a token)")
	}
	if spec.Image == "" && spec.DefinitionYAML == nil {
		return "", fmt.Errorf("release needs an image definition: a shipped one by name, or a definition file")
	}
	env, req, err := m.request(ctx, spec, nil)
	if err != nil {
		return "", err
	}
	if repository == "" {
		repository = req.Def.Repository
	}
	target, err := name.ParseReference(repository)
	if err != nil {
		return "", fmt.Errorf("repository %q: want REPOSITORY or REPOSITORY:TAG: %w", repository, err)
	}
	// The credentials are for the registry pushed to; the base is pulled
	// with them only when it lives there too.
	auth := publish.Describe(authn.FromConfig(authn.AuthConfig{Username: username, Password: password}), "--registry-username "+username+" (--registry-password)")
	keychain := publish.FlagKeychain(target.Context().RegistryStr(), auth)
	tr := publish.WithDeadlines(remote.DefaultTransport, publish.DefaultRegistryTimeout)
	req.Push = repository
	req.BaseOptions = []remote.Option{remote.WithAuthFromKeychain(keychain), remote.WithTransport(tr)}
	req.RegistryOptions = req.BaseOptions
	req.PushOptions = []publish.Option{publish.WithKeychain(keychain), publish.WithTransport(tr), publish.WithLogger(m.log())}
	res, err := env.BuildImage(ctx, req)
	if err != nil {
		return "", err
	}
	if res.Unchanged {
		m.log().WithField("reference", res.Reference).Info("unchanged: every tag holds a build of these inputs; nothing built or pushed")
	}
	return res.Reference, nil
}

// WriteOCITarball writes img as a tar of an OCI image layout holding that
// one image and no tag: what Container.Import reads. Entries are sorted with
// fixed owners, modes and times.
func WriteOCITarball(img v1.Image, file string) error {
	dir, err := os.MkdirTemp(filepath.Dir(file), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img); err != nil {
		return err
	}
	return tarDir(dir, file)
}

func tarDir(dir, file string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			f.Close()
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Format: tar.FormatPAX}
		switch {
		case st.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		case st.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, st.Size()
		default:
			f.Close()
			return fmt.Errorf("%s: not a file or directory", p)
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Close()
			return err
		}
		if h.Typeflag == tar.TypeReg {
			in, err := os.Open(p)
			if err != nil {
				f.Close()
				return err
			}
			_, err = io.Copy(tw, in)
			in.Close()
			if err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ModuleFiles is Files inside a Dagger module, which has no Host(): files
// cross through the module container's working directory, staged under a
// fresh directory there — CurrentModule().Workdir and WorkdirFile read it
// with paths relative to it, Export writes into it by absolute path.
type ModuleFiles struct {
	Query *dagger.Query
	cwd   string
	root  string // relative to cwd
	mu    sync.Mutex
	n     int
}

// NewModuleFiles stages files under a fresh directory in the working
// directory.
func NewModuleFiles(q *dagger.Query) (*ModuleFiles, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(cwd, ".sqlite-graft-files-")
	if err != nil {
		return nil, fmt.Errorf("module working directory %s: %w", cwd, err)
	}
	rel, err := filepath.Rel(cwd, root)
	if err != nil {
		return nil, err
	}
	return &ModuleFiles{Query: q, cwd: cwd, root: rel}, nil
}

// stage returns a fresh path relative to the working directory.
func (f *ModuleFiles) stage(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return filepath.Join(f.root, fmt.Sprintf("%s-%d", prefix, f.n))
}

// Directory copies the directory at p into the stage and loads it.
func (f *ModuleFiles) Directory(ctx context.Context, p string) (*dagger.Directory, error) {
	rel := f.stage("dir")
	if err := copyTree(p, filepath.Join(f.cwd, rel)); err != nil {
		return nil, err
	}
	return f.Query.CurrentModule().Workdir(filepath.ToSlash(rel)).Sync(ctx)
}

// File copies the file at p into the stage and loads it.
func (f *ModuleFiles) File(ctx context.Context, p string) (*dagger.File, error) {
	rel := f.stage("file")
	if err := os.MkdirAll(filepath.Join(f.cwd, rel), 0o755); err != nil {
		return nil, err
	}
	rel = filepath.Join(rel, filepath.Base(p))
	if err := os.Link(p, filepath.Join(f.cwd, rel)); err != nil {
		if err := fsutil.CopyFile(p, filepath.Join(f.cwd, rel)); err != nil {
			return nil, err
		}
	}
	return f.Query.CurrentModule().WorkdirFile(filepath.ToSlash(rel)).Sync(ctx)
}

// Export exports d into the stage, then copies it to p. Directory.export
// writes to a path of the calling client — here the module's container,
// served by its session process, which resolves a relative path against its
// own working directory, not necessarily this process's: the path is
// absolute.
func (f *ModuleFiles) Export(ctx context.Context, d *dagger.Directory, p string) error {
	abs := filepath.Join(f.cwd, f.stage("export"))
	if _, err := d.Export(ctx, filepath.ToSlash(abs)); err != nil {
		return err
	}
	return copyTree(abs, p)
}

// copyTree copies the regular files and directories under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return fsutil.CopyFile(p, target)
		}
		return nil // sources and products are regular files
	})
}
