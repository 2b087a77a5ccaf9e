// Package check checks a built SQLite library in a real process, with the
// dynamic loader doing what it does in production: a small C client (probe.c)
// linked against the distro's libsqlite3.so.0 runs with the library under
// test preloaded (glibc) or found first on the search path (musl), and reports
// what SQLite it got, which compile options and features it has, and which
// libsqlite3 files the process has mapped. Optionally it runs the WAL-reset
// trigger pattern — several processes writing one WAL database while others
// checkpoint — and verifies that every committed row survived.
package check

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Options say what to check.
type Options struct {
	// Lib is the built libsqlite3.so.0.
	Lib string
	// Baseline is the distro library the build must be a drop-in superset of
	// (compile options, exported symbols); the client is linked against it.
	// Empty: no comparison, and the client links SystemLibrary (glibc, when
	// present) or Lib itself.
	Baseline string
	// Want is the pin whose identity Lib must have: the version, and the source
	// id when the pin has one. Nil: the pin of the version Lib reports, from the
	// embedded pins file.
	Want *pins.Pin
	// Stress runs the WAL stress test; nil skips it.
	Stress *StressOptions
	// Timeout bounds each run of the probe (the stress test gets more for
	// its rows); 0: DefaultRunTimeout.
	Timeout time.Duration
	Logger  logrus.FieldLogger
}

// Report is what the checks found. Problems lists every failed check.
type Report struct {
	Lib             string          `json:"lib"`
	Libc            string          `json:"libc"`
	Version         string          `json:"version"`
	SourceID        string          `json:"source_id"`
	Mapped          []string        `json:"mapped"`
	CompileOptions  []string        `json:"compile_options"`
	Features        map[string]bool `json:"features"`
	Baseline        string          `json:"baseline,omitempty"`
	BaselineVersion string          `json:"baseline_version,omitempty"`
	MissingOptions  []string        `json:"missing_options,omitempty"`
	MissingSymbols  []string        `json:"missing_symbols,omitempty"`
	Stress          *StressReport   `json:"stress,omitempty"`
	Notes           []string        `json:"notes,omitempty"`
	Problems        []string        `json:"problems,omitempty"`
}

// featureProbes are the probes the library must pass, each a real SQL
// statement (column_metadata: a call of sqlite3_table_column_metadata).
var featureProbes = []string{"fts3", "fts4", "fts5", "rtree", "geopoly", "dbstat", "json", "math", "soundex", "column_metadata"}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// err is nil when no check failed, else an error naming every failure.
func (r *Report) err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d check(s) failed:\n  - %s", r.Lib, len(r.Problems), strings.Join(r.Problems, "\n  - "))
}

// Library runs the checks on opts.Lib. The report is returned even when a
// check fails; the error then names each failure.
func Library(ctx context.Context, opts Options) (*Report, error) {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	if opts.Lib == "" {
		return nil, fmt.Errorf("check: no library given")
	}
	lib, err := filepath.Abs(opts.Lib)
	if err != nil {
		return nil, err
	}
	r := &Report{Lib: lib, Features: map[string]bool{}}
	log = log.WithField("lib", lib)
	// A check that cannot run is a failed check too: the report says so.
	fail := func(err error) (*Report, error) {
		r.problem("%v", err)
		return r, r.err()
	}

	libELF, err := readELF(lib)
	if err != nil {
		r.problem("not a usable shared library: %v", err)
		return r, r.err()
	}
	r.Libc = libELF.Libc
	if libELF.Soname != "libsqlite3.so.0" {
		r.problem("soname = %q, want libsqlite3.so.0 (programs find SQLite by that name)", libELF.Soname)
	}

	var baseELF *elfInfo
	linkLib := lib
	if opts.Baseline != "" {
		if r.Baseline, err = filepath.Abs(opts.Baseline); err != nil {
			return fail(err)
		}
		if baseELF, err = readELF(r.Baseline); err != nil {
			return fail(fmt.Errorf("baseline: %w", err))
		}
		if baseELF.Libc != r.Libc {
			return fail(fmt.Errorf("baseline %s is a %s library, the library is %s", r.Baseline, baseELF.Libc, r.Libc))
		}
		linkLib = r.Baseline
	} else if r.Libc == Glibc {
		if _, err := os.Stat(SystemLibrary); err == nil {
			linkLib = SystemLibrary
		}
	}

	dir, err := os.MkdirTemp("", "sqlite-graft-check-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	p, err := buildProbe(ctx, dir, r.Libc, linkLib)
	if err != nil {
		return fail(err)
	}
	p.runTimeout = opts.Timeout
	log.WithFields(logrus.Fields{"libc": r.Libc, "linked": linkLib}).Debug("probe compiled")

	env, err := p.env(lib)
	if err != nil {
		return fail(err)
	}
	in, err := p.info(ctx, env)
	if err != nil {
		r.problem("the library does not work in a real process: %v", err)
		return r, r.err()
	}
	r.Version, r.SourceID, r.CompileOptions = in.Version, in.SourceID, in.CompileOptions
	r.Mapped = sqliteFiles(in.Mapped, lib, r.Baseline)
	log.WithFields(logrus.Fields{"version": r.Version, "mapped": r.Mapped}).Info("library loaded")

	r.checkMapped(lib)
	r.checkIdentity(opts.Want)
	r.checkFeatures(in)

	if baseELF != nil {
		r.checkExports(baseELF, libELF, "the library")
		benv, err := p.env(r.Baseline)
		if err != nil {
			return fail(err)
		}
		bin, err := p.info(ctx, benv)
		if err != nil {
			return fail(fmt.Errorf("baseline: %w", err))
		}
		r.BaselineVersion = bin.Version
		d := compareOptions(bin.CompileOptions, in.CompileOptions)
		r.MissingOptions = d.Missing
		r.Problems = append(r.Problems, d.Problems...)
		r.Notes = append(r.Notes, d.Notes...)
	}

	if opts.Stress != nil {
		log.WithField("stress", *opts.Stress).Info("stress test")
		sr, err := stress(ctx, p, env, *opts.Stress, log)
		r.Stress = sr
		if err != nil {
			r.problem("stress: %v", err)
		} else {
			r.checkStress()
		}
	}
	if len(r.Problems) > 0 {
		log.WithField("problems", len(r.Problems)).Warn("library check failed")
	} else {
		log.Info("library check passed")
	}
	return r, r.err()
}

// checkMapped fails unless lib is mapped, and when more than one distinct
// SQLite library is: two copies in use in one process can corrupt databases.
func (r *Report) checkMapped(lib string) {
	found := false
	for _, m := range r.Mapped {
		found = found || isAnyOf(m, lib)
	}
	if !found {
		r.problem("mapped libsqlite3 files = %v: the library under test is not among them; the loader bound another copy", r.Mapped)
	}
	if len(r.Mapped) > 1 {
		r.problem("mapped libsqlite3 files = %v: %d copies of SQLite in one process (sqlite.org howtocorrupt §2.3)", r.Mapped, len(r.Mapped))
	}
}

// checkIdentity compares the reported version and source id with the pin,
// and refuses versions with the WAL-reset bug.
func (r *Report) checkIdentity(want *pins.Pin) {
	v, err := pins.ParseVersion(r.Version)
	if err != nil {
		r.problem("identity: sqlite_version() = %q: %v", r.Version, err)
		return
	}
	if err := pins.WALResetError(v); err != nil {
		r.problem("refused: %v", err)
	}
	if want == nil {
		f, err := pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
		if err != nil {
			r.problem("identity: %v", err)
			return
		}
		p, err := f.Lookup(v)
		if err != nil {
			if strings.Contains(err.Error(), "withdrawn") {
				r.problem("identity: %v", err)
			} else {
				r.Notes = append(r.Notes, fmt.Sprintf("identity: %v; the source id was not checked", err))
			}
			return
		}
		want = &p
	}
	if v != want.Version {
		r.problem("identity: sqlite_version() = %s, want %s", r.Version, want.Version)
	}
	switch {
	case want.SourceID == "":
		r.Notes = append(r.Notes, fmt.Sprintf("identity: no source id is pinned for %s; only the version was checked", want.Version))
	case r.SourceID != want.SourceID:
		r.problem("identity: sqlite_source_id() = %q, want %q (%s)", r.SourceID, want.SourceID, want.SourceIDPublished)
	}
}

func (r *Report) checkFeatures(in *info) {
	for _, name := range featureProbes {
		f, ok := in.Features[name]
		r.Features[name] = ok && f.OK
		switch {
		case !ok:
			r.problem("feature %s: the probe did not report it", name)
		case !f.OK:
			r.problem("feature %s: %s", name, f.Error)
		}
	}
	var extra []string
	for name := range in.Features {
		if _, ok := r.Features[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		r.Notes = append(r.Notes, "unchecked feature probes: "+strings.Join(extra, " "))
	}
}

// FeatureNames lists the feature probes in report order.
func FeatureNames() []string { return slices.Clone(featureProbes) }
