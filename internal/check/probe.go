package check

import (
	"context"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sqlite-graft/sqlite-graft/internal/childenv"
)

//go:embed probe.c
var probeSource []byte

// SystemLibrary is the distro's glibc libsqlite3 that the glibc probe links
// against when no baseline is given.
const SystemLibrary = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0"

// probe is the compiled client, built for one libc in a temporary directory.
type probe struct {
	bin        string
	libc       string
	dir        string        // scratch space for link directories and databases
	runTimeout time.Duration // of one run; 0: DefaultRunTimeout
}

// compilerFor is the C compiler that builds a client for libc: the host's cc,
// or musl-gcc, whose binaries name the musl loader as their interpreter.
func compilerFor(libc string) string {
	if libc == Musl {
		return "musl-gcc"
	}
	return "cc"
}

// buildProbe compiles probe.c in dir for libc, linked against the library
// file linkLib. Giving the linker the file (not -lsqlite3) needs no -dev
// package; DT_NEEDED still records the soname, libsqlite3.so.0.
func buildProbe(ctx context.Context, dir, libc, linkLib string) (*probe, error) {
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, probeSource, 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "probe")
	args := []string{"-O2", "-pthread", "-o", bin, src, linkLib}
	if libc == Glibc {
		args = append(args, "-ldl") // dlsym lives in libdl before glibc 2.34
	}
	cc := compilerFor(libc)
	label := "compile the probe: " + cc + " " + strings.Join(args, " ")
	if _, err := runBounded(ctx, compileTimeout, label, func(ctx context.Context) *exec.Cmd {
		cmd := childenv.Command(ctx, cc, args...)
		cmd.Dir = dir
		return cmd
	}); err != nil {
		return nil, err
	}
	return &probe{bin: bin, libc: libc, dir: dir}, nil
}

// env is the environment under which the loader binds libsqlite3.so.0 to
// lib the way it does in production:
//   - glibc: LD_PRELOAD=/abs/lib. glibc matches DT_NEEDED against the sonames
//     already loaded, so the preload replaces the copy the probe links.
//   - musl: lib's directory first in LD_LIBRARY_PATH. musl never compares
//     sonames, so an absolute-path preload would map a second copy; a bare
//     name resolved through the search path maps one.
//
// On musl the directory holds only a link named libsqlite3.so.0 to lib, so
// lib may have any file name and nothing else beside it is picked up.
func (p *probe) env(lib string) ([]string, error) {
	abs, err := filepath.Abs(lib)
	if err != nil {
		return nil, err
	}
	if p.libc == Glibc {
		return cleanEnv("LD_PRELOAD=" + abs), nil
	}
	dir, err := os.MkdirTemp(p.dir, "ld-")
	if err != nil {
		return nil, err
	}
	if err := os.Symlink(abs, filepath.Join(dir, "libsqlite3.so.0")); err != nil {
		return nil, err
	}
	return cleanEnv("LD_LIBRARY_PATH=" + dir), nil
}

// cleanEnv is the child environment (no inherited loader settings, no
// secrets), plus extra.
func cleanEnv(extra ...string) []string {
	return childenv.Env(extra...)
}

// command prepares the probe with the given environment.
func (p *probe) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = env
	return cmd
}

// run runs the probe to completion and returns its standard output.
func (p *probe) run(ctx context.Context, env []string, args ...string) ([]byte, error) {
	return runProbe(ctx, p, env, args...)
}

// runJSON runs the probe and decodes its output into v.
func (p *probe) runJSON(ctx context.Context, env []string, v any, args ...string) error {
	return runProbeJSON(ctx, p, env, v, args...)
}

// info is what `probe info` reports.
type info struct {
	Version        string   `json:"version"`
	SourceID       string   `json:"source_id"`
	VersionNumber  int      `json:"version_number"`
	Threadsafe     int      `json:"threadsafe"`
	CompileOptions []string `json:"compile_options"`
	Features       map[string]struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"features"`
	Mapped []mappedFile `json:"mapped"`
}

type mappedFile struct {
	Path  string `json:"path"`
	Inode uint64 `json:"inode"`
}

func (p *probe) info(ctx context.Context, env []string) (*info, error) {
	var in info
	return &in, p.runJSON(ctx, env, &in, "info")
}

// sqliteFiles picks the SQLite libraries among the mapped files: those whose
// name says libsqlite3, and any that is one of the given files whatever its
// name.
func sqliteFiles(mapped []mappedFile, known ...string) []string {
	var out []string
	for _, m := range mapped {
		if strings.Contains(filepath.Base(m.Path), "libsqlite3") || isAnyOf(m.Path, known...) {
			out = append(out, m.Path)
		}
	}
	return out
}

// isAnyOf reports whether path is the same file as one of files.
func isAnyOf(path string, files ...string) bool {
	a, err := os.Stat(path)
	if err != nil {
		return false
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if b, err := os.Stat(f); err == nil && os.SameFile(a, b) {
			return true
		}
	}
	return false
}
