package sqltests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/debsrc"
	"github.com/sqlite-graft/sqlite-graft/internal/local"
	"github.com/sqlite-graft/sqlite-graft/internal/lockfile"
)

// tclInfo is the Tcl a testfixture links against.
type tclInfo struct {
	id        string // identity for cache keys and reports
	configDir string // holds tclConfig.sh
	library   string // TCL_LIBRARY to run with; "" for the host's Tcl
	prefix    string // where libraries built here live (musl); "" for the host's
}

var patchLevel = regexp.MustCompile(`(?m)^TCL_PATCH_LEVEL='?([^'\n]*)'?$`)

// tcl finds the host's Tcl (glibc) or builds Debian's zlib and tcl8.6 with
// musl-gcc into one prefix.
func (b *Builder) tcl(ctx context.Context, s *spec, libc local.Libc, cc, toolchain string) (tclInfo, error) {
	if libc != local.Musl {
		for _, d := range s.HostTclConfig {
			cfg, err := os.ReadFile(filepath.Join(d, "tclConfig.sh"))
			if err != nil {
				continue
			}
			sum := sha256.Sum256(cfg)
			level := "?"
			if m := patchLevel.FindSubmatch(cfg); m != nil {
				level = string(m[1])
			}
			return tclInfo{id: fmt.Sprintf("host Tcl %s (%s/tclConfig.sh sha256 %x)", level, d, sum[:6]), configDir: d}, nil
		}
		return tclInfo{}, fmt.Errorf("no tclConfig.sh in %s: install Debian's tcl-dev (scripts/setup does)", strings.Join(s.HostTclConfig, ", "))
	}
	kb, _ := json.Marshal(struct {
		Libs      []muslLib
		Toolchain string
	}{s.MuslLibs, toolchain})
	sum := sha256.Sum256(kb)
	key := hex.EncodeToString(sum[:])
	prefix := filepath.Join(b.CacheDir, "tcl", key)
	var names []string
	for _, l := range s.MuslLibs {
		names = append(names, fmt.Sprintf("%s %s (%s, sha256 %s)", l.Source.Package, l.Source.Version, l.Source.Suite, l.Source.SHA256[:12]))
	}
	info := tclInfo{
		id:        fmt.Sprintf("built with %s from Debian %s", cc, strings.Join(names, ", ")),
		configDir: filepath.Join(prefix, "lib"),
		library:   filepath.Join(prefix, "lib", "tcl8.6"),
		prefix:    prefix,
	}
	unlock, err := lockfile.Lock(prefix + ".lock")
	if err != nil {
		return tclInfo{}, err
	}
	defer unlock()
	done := filepath.Join(prefix, ".complete")
	if _, err := os.Stat(done); err == nil {
		return info, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(prefix), ".tmp-"+key[:12])
	if err != nil {
		return tclInfo{}, err
	}
	defer os.RemoveAll(tmp)
	// Paths inside (tclConfig.sh, Tcl's compiled-in library path) name the
	// prefix, so the libraries are installed there directly; .complete marks
	// a whole one.
	os.RemoveAll(prefix)
	start := time.Now()
	for i, l := range s.MuslLibs {
		archive, err := b.Mirror.Fetch(ctx, l.Source, filepath.Join(b.CacheDir, "debian"))
		if err != nil {
			return tclInfo{}, fmt.Errorf("%s for musl: %w", l.Source.Package, err)
		}
		srcDir, bld := filepath.Join(tmp, fmt.Sprint(i, "-src")), filepath.Join(tmp, fmt.Sprint(i, "-build"))
		if err := debsrc.Unpack(archive, srcDir); err != nil {
			return tclInfo{}, err
		}
		if err := os.Mkdir(bld, 0o755); err != nil {
			return tclInfo{}, err
		}
		b.log().WithField("source", l.Source.File).Infof("%s for musl: building Debian's source with musl-gcc (once; cached)", l.Source.Package)
		vars := map[string]string{"SRC": srcDir, "CC": cc, "PREFIX": prefix, "JOBS": jobs()}
		if _, err := runSteps(ctx, l.Steps, vars, bld, filepath.Join(tmp, "build.log"), nil); err != nil {
			os.RemoveAll(prefix)
			return tclInfo{}, fmt.Errorf("%s for musl: %w", l.Source.Package, err)
		}
	}
	if err := os.WriteFile(done, []byte(info.id+"\n"), 0o644); err != nil {
		return tclInfo{}, err
	}
	b.log().WithFields(logrus.Fields{"seconds": int(time.Since(start).Seconds()), "prefix": prefix}).Info("zlib and Tcl for musl: built")
	return info, nil
}
