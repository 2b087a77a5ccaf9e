package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

func (a *app) checkCmd() *cobra.Command {
	var lib, baseline, version string
	var stress, asJSON bool
	var tests SQLiteTestsOptions
	st := check.DefaultStress()
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a built libsqlite3.so.0 in a real process",
		Long: `check loads the library the way production does — glibc: a client linked
against the distro's libsqlite3.so.0 with the library LD_PRELOADed; musl: a
musl client through the musl loader, the library first on the search path —
and checks its identity against the pin, that it carries the WAL-reset fix,
that its compile options and exported symbols are a superset of --baseline,
the features programs rely on, and which libsqlite3 files the process maps.
--stress adds the bug's trigger pattern: processes and threads writing one WAL
database while others checkpoint, then every committed row must be present and
PRAGMA integrity_check must say ok.

--sqlite-tests LEVEL runs SQLite's own Tcl tests as a release gate: the
canonical source tree of the release (Debian's orig tarball, verified against
the pinned SHA-256, the release's SQLITE_SOURCE_ID and every file's hash in
the tree's manifest) is built into SQLite's testfixture with the compile
recipe's options for --libc, and runs
  quick      test/walrestart.test (the WAL-reset fix's regression test) and
             the fast core WAL tests, seconds;
  wal        every test/wal*.test but the crash, fault, thread and slow ones,
             about a minute or two on 2 cores;
  veryquick  SQLite's veryquick.test, tens of minutes.
Without a verified tree of the version (only 3.53.4 has one pinned) the result
is "not run", never a pass; --require-sqlite-tests makes that an error.
--lib is optional with --sqlite-tests.`,
		Example: `  sqlite-graft check --lib out/lib/libsqlite3.so.0
  sqlite-graft check --lib out/lib/libsqlite3.so.0 --baseline /usr/lib/x86_64-linux-gnu/libsqlite3.so.0 --stress
  sqlite-graft check --lib out/lib/libsqlite3.so.0 --json | jq .stress
  sqlite-graft check --sqlite-tests wal --sqlite 3.53.4 --libc musl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lib == "" && tests.Level == "" {
				return usageErrorf("check needs --lib FILE or --sqlite-tests LEVEL")
			}
			if lib == "" {
				return a.checkSQLiteTests(cmd.Context(), tests, version, asJSON)
			}
			opts := check.Options{Lib: lib, Baseline: baseline, Logger: a.log}
			if version != "" {
				p, err := a.global.Pins()
				if err != nil {
					return err
				}
				v, err := pins.ParseVersion(version)
				if err != nil {
					return usageErrorf("--sqlite: %v", err)
				}
				pin, err := p.Lookup(v)
				if err != nil {
					// Unpinned: still check the version, without a source id.
					pin = pins.Pin{Version: v}
				}
				opts.Want = &pin
			}
			if stress {
				opts.Stress = &st
			}
			r, err := check.Library(cmd.Context(), opts)
			if r != nil {
				if asJSON {
					enc := json.NewEncoder(a.stdout)
					enc.SetIndent("", "  ")
					if jerr := enc.Encode(r); jerr != nil {
						return jerr
					}
				} else {
					printReport(a, r)
				}
			}
			if err != nil || tests.Level == "" {
				return err
			}
			// The gate tests the release and libc of the library.
			if !cmd.Flags().Changed("libc") && r.Libc != "" {
				tests.Libc = r.Libc
			}
			return a.checkSQLiteTests(cmd.Context(), tests, r.Version, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&lib, "lib", "", "the built libsqlite3.so.0 to check")
	f.StringVar(&baseline, "baseline", "", "the distro library it must be a drop-in superset of (compile options, exported symbols)")
	f.StringVar(&version, "sqlite", "", "the version the library must report (default: the version it reports, which must be pinned)")
	f.BoolVar(&stress, "stress", false, "run the WAL-reset trigger pattern and verify every committed row")
	f.IntVar(&st.Processes, "stress-processes", st.Processes, "writer processes for --stress")
	f.IntVar(&st.Threads, "stress-threads", st.Threads, "threads (connections) per writer process")
	f.IntVar(&st.RowsPerThread, "stress-rows", st.RowsPerThread, "rows each thread commits")
	f.IntVar(&st.Checkpointers, "stress-checkpointers", st.Checkpointers, "checkpointing processes")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	tests.AddFlags(f)
	return cmd
}

// checkSQLiteTests runs the release gate for version (default: the pins'
// default) and prints its result.
func (a *app) checkSQLiteTests(ctx context.Context, o SQLiteTestsOptions, version string, asJSON bool) error {
	p, err := a.global.Pins()
	if err != nil {
		return err
	}
	v := p.Default
	if version != "" {
		if v, err = pins.ParseVersion(version); err != nil {
			return usageErrorf("--sqlite: %v", err)
		}
	}
	r, err := a.runSQLiteTests(ctx, o, v)
	if perr := a.printSQLiteTests(r, asJSON); perr != nil {
		return perr
	}
	return err
}

func printReport(a *app, r *check.Report) {
	w := a.stdout
	fmt.Fprintf(w, "library:   %s (%s)\n", r.Lib, r.Libc)
	fmt.Fprintf(w, "sqlite:    %s\nsource id: %s\n", r.Version, r.SourceID)
	fmt.Fprintf(w, "mapped:    %s\n", strings.Join(r.Mapped, ", "))
	var feats []string
	for _, f := range check.FeatureNames() {
		mark := "ok"
		if !r.Features[f] {
			mark = "MISSING"
		}
		feats = append(feats, f+" "+mark)
	}
	fmt.Fprintf(w, "features:  %s\n", strings.Join(feats, ", "))
	if r.Baseline != "" {
		fmt.Fprintf(w, "baseline:  %s (%s): missing options %v, missing symbols %v\n", r.Baseline, r.BaselineVersion, r.MissingOptions, r.MissingSymbols)
	}
	if s := r.Stress; s != nil {
		fmt.Fprintf(w, "stress:    %s\n", s)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note:      %s\n", n)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "result:    all checks passed")
	}
}
