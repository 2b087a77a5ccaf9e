package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

func (a *app) pinsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pins",
		Short: "Maintain the pins file (sqlite-pins.yaml)",
		Long: `pins maintains the pins file: the SQLite releases sqlite-graft builds, each
with the hashes sqlite.org published for it. See 'sqlite-graft versions' to
list them.`,
		Example: `  sqlite-graft pins update`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("%s needs a subcommand: update", cmd.CommandPath())
		},
	}
	cmd.AddCommand(a.pinsUpdateCmd())
	return cmd
}

func (a *app) pinsUpdateCmd() *cobra.Command {
	downloads := upstream.DefaultDownloadPage
	timeout := upstream.DefaultTimeout
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Add new SQLite releases from sqlite.org's download page to the pins file",
		Long: `update reads the download page's machine-readable block and adds every release
that the pins file does not list yet, with the archive hashes (SHA3-256) the
page publishes and "published:" naming the page. The sqlite3.c hash is not on
the download page and is left out.

Existing entries are never changed: the new ones are appended as text at the
end of the releases list, so comments and layout stay, and the result must
parse to the old entries plus the new ones before it is written. Withdrawn
versions (withdrawn: in the file), versions without the WAL-reset fix and
releases whose URL has no YYYY/ directory are left out with a warning. A
pinned release whose hash on the page differs from the pin is an error and
nothing is written.

The download page gives no release date, which a pin needs (it is the default
SOURCE_DATE_EPOCH): a new entry's date is the day it was first seen (within
the year of its URL), and a comment above the entry says so.

The file is --pins, or ./sqlite-pins.yaml in the working directory; the copy
built into this binary is never updated. Exit 0 also when nothing was added.`,
		Example: `  sqlite-graft pins update
  sqlite-graft pins update --pins ./sqlite-pins.yaml --sqlite-downloads ./download.html`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageErrorf("--timeout %s: want a positive duration", timeout)
			}
			path := a.global.PinsFile
			if path == "" {
				path = sqlitegraft.PinsFileName
				if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
					wd, _ := os.Getwd()
					return fmt.Errorf("no %s in %s: give --pins FILE (the copy built into this binary cannot be updated)", sqlitegraft.PinsFileName, wd)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rd := &upstream.Reader{Client: &http.Client{Timeout: timeout}}
			raw, err := rd.Read(cmd.Context(), downloads)
			if err != nil {
				return err
			}
			page, err := upstream.ParseDownloadPage(downloads, raw)
			if err != nil {
				return err
			}
			for _, w := range page.Warnings {
				a.log.Warn(w)
			}
			up, err := upstream.UpdatePins(path, data, page, upstream.PublishedBy(downloads), time.Now())
			if err != nil {
				return err
			}
			for _, w := range up.Warnings {
				a.log.Warn(w)
			}
			if len(up.Conflicts) > 0 {
				return fmt.Errorf("the download page disagrees with pinned hashes; %s is left unchanged, check both:\n  %s", path, strings.Join(up.Conflicts, "\n  "))
			}
			if len(up.Added) == 0 {
				fmt.Fprintf(a.stdout, "nothing to add: %s pins every usable release on %s\n", path, downloads)
				return nil
			}
			if err := writeFileAtomic(path, up.Data); err != nil {
				return err
			}
			for _, p := range up.Added {
				fmt.Fprintf(a.stdout, "added SQLite %s (%s) to %s\n", p.Version, p.Date, path)
				for _, k := range []pins.Kind{pins.Amalgamation, pins.Autoconf} {
					if h := p.ArchiveHash(k); h != nil {
						fmt.Fprintf(a.stdout, "  %-12s  %-34s  SHA3-256 %s\n", k, pins.ArchiveName(p.Version, k), h.SHA3)
					}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&downloads, "sqlite-downloads", downloads, "sqlite.org's download page, URL or saved FILE")
	f.DurationVar(&timeout, "timeout", timeout, "time limit for the download")
	return cmd
}

// writeFileAtomic replaces path with data, keeping its mode.
func writeFileAtomic(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, st.Mode().Perm())
}
