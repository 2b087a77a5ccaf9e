package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// Exit codes of `sqlite-graft upstream`, besides ExitOK (nothing to do),
// ExitFailed (an index or the download page could not be read, or an image
// could not be judged) and ExitUsage. When both apply, ExitRetire wins.
const (
	ExitNewerSQLite = 3 // the download page has a SQLite newer than every pin
	ExitRetire      = 4 // a graft can be retired: the distribution ships a fixed SQLite
)

// exitStatusKey is the root command's annotation through which a command
// that succeeded asks Main for an exit code other than ExitOK.
const exitStatusKey = "sqlite-graft/exit-status"

func setExitStatus(cmd *cobra.Command, code int) {
	root := cmd.Root()
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[exitStatusKey] = strconv.Itoa(code)
}

// exitStatus is the exit code of a run that returned no error.
func exitStatus(root *cobra.Command) int {
	if n, err := strconv.Atoi(root.Annotations[exitStatusKey]); err == nil {
		return n
	}
	return ExitOK
}

func (a *app) upstreamCmd() *cobra.Command {
	var apk, deb, images []string
	var downloads string
	var asJSON bool
	timeout := upstream.DefaultTimeout
	cmd := &cobra.Command{
		Use:   "upstream",
		Short: "Say whether a newer SQLite is out and whether a graft can be retired",
		Long: `upstream reads sqlite.org's download page (its machine-readable block of
releases, sizes and SHA3-256 hashes) and the distributions' package indexes —
Alpine's APKINDEX.tar.gz per branch, Debian's Packages.xz per suite — and says:

  - which SQLite releases are newer than every pin (with size and SHA3-256);
  - per branch: the distribution's SQLite package, whether it carries the
    WAL-reset fix (3.51.3 and later, or the 3.50.7 / 3.44.6 backports), and
    "keep the graft" (vulnerable) or "retire the graft" (fixed);
  - the advisories (sqlite-advisories.yaml) that affect each pin as the
    recipe compiles it;
  - per image definition: "keep the graft", or "retire: move to <branch>" —
    its own branch when that got a fixed package, else the oldest newer stable
    branch read whose package is fixed. Development branches (Alpine edge,
    Debian testing and sid, a suite not released yet) are never named: a fix
    that exists only there is shown as "keep the graft (fixed only in edge)".

Debian may backport a fix without changing the upstream version: its verdicts
say "by version" and name the package version judged; check its changelog.
Only the indexes of the distributions the images need are read. Without
--apkindex, Alpine v3.21, v3.22, v3.23 and edge (main/x86_64 on
dl-cdn.alpinelinux.org) are read; without --debian, bookworm and trixie
(main/binary-amd64) from the Debian archive named by $SQLITE_GRAFT_DEBIAN_MIRROR
(e.g. https://<mirror>/debian), if set. A given --apkindex or --debian replaces
that distribution's defaults. An image whose branch, or a newer branch of its
distribution, could not be read gets no verdict.

Exit codes:
  0  nothing to do
  1  an index or the download page could not be read, or an image not judged
  2  usage error
  3  a SQLite newer than every pin is available (sqlite-graft pins update)
  4  a graft can be retired (wins over 3)`,
		Example: `  sqlite-graft upstream
  sqlite-graft upstream --image alpine-3.21 --json | jq '.images[].verdict'
  sqlite-graft upstream --apkindex v3.21=./APKINDEX-3.21.tar.gz --apkindex v3.23=./APKINDEX-3.23.tar.gz \
      --sqlite-downloads ./download.html --image alpine-3.21`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alpine, err := parseSources("--apkindex", upstream.Alpine, apk)
			if err != nil {
				return err
			}
			debian, err := parseSources("--debian", upstream.Debian, deb)
			if err != nil {
				return err
			}
			pf, err := a.global.Pins()
			if err != nil {
				return err
			}
			defs, err := loadImages(images, func(file string) (*imagedef.Definition, error) {
				return imagedef.LoadWithPins(file, pf)
			})
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return usageErrorf("--timeout %s: want a positive duration", timeout)
			}
			adv, err := advisoriesOfPins(pf)
			if err != nil {
				return err
			}
			rep, err := upstream.Watch(cmd.Context(), upstream.Options{
				Images: defs, Alpine: alpine, Debian: debian, Downloads: downloads, Pins: pf,
				Reader: &upstream.Reader{Client: &http.Client{Timeout: timeout}},
			})
			if err != nil {
				return err
			}
			code := ExitOK
			switch {
			case rep.Failed():
				code = ExitFailed
			case rep.Retire():
				code = ExitRetire
			case rep.NewerSQLite():
				code = ExitNewerSQLite
			}
			for _, w := range rep.Warnings {
				a.log.Warn(w)
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					*upstream.Report
					PinAdvisories []pinAdvisories `json:"pin_advisories"`
					ExitCode      int             `json:"exit_code"`
				}{rep, adv, code}); err != nil {
					return err
				}
			} else if err := printUpstream(a.stdout, rep, adv, code); err != nil {
				return err
			}
			if rep.Failed() {
				return fmt.Errorf("%d problem(s), no verdict from partial data:\n  %s", len(rep.Errors), strings.Join(rep.Errors, "\n  "))
			}
			setExitStatus(cmd, code)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&apk, "apkindex", nil, "an Alpine branch's index as BRANCH=URL|FILE (e.g. v3.21=./APKINDEX.tar.gz); repeat for more branches")
	f.StringArrayVar(&deb, "debian", nil, "a Debian suite's Packages.xz as SUITE=URL|FILE (e.g. trixie=./Packages.xz); repeat for more suites")
	f.StringVar(&downloads, "sqlite-downloads", upstream.DefaultDownloadPage, "sqlite.org's download page, URL or saved FILE")
	f.StringArrayVar(&images, "image", nil, "image definition to judge, a built-in NAME or a FILE; repeat for more (default: all built-in)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.DurationVar(&timeout, "timeout", timeout, "time limit for each download")
	return cmd
}

// parseSources reads BRANCH=URL|FILE flags.
func parseSources(flag string, d upstream.Distro, vals []string) ([]upstream.Source, error) {
	var out []upstream.Source
	seen := map[string]bool{}
	for _, v := range vals {
		branch, loc, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(branch) == "" || strings.TrimSpace(loc) == "" {
			return nil, usageErrorf("%s %q: want BRANCH=URL|FILE", flag, v)
		}
		if err := upstream.CheckBranch(d, branch); err != nil {
			return nil, usageErrorf("%s %q: %v", flag, v, err)
		}
		if seen[branch] {
			return nil, usageErrorf("%s: %s given twice", flag, branch)
		}
		seen[branch] = true
		out = append(out, upstream.Source{Branch: branch, Location: loc})
	}
	return out, nil
}

// loadImages resolves --image values: a path (it has a separator or a
// .yaml/.yml suffix) is loaded with load, anything else is a built-in name.
func loadImages(vals []string, load func(string) (*imagedef.Definition, error)) ([]*imagedef.Definition, error) {
	if len(vals) == 0 {
		vals = imagedef.EmbeddedNames()
	}
	var defs []*imagedef.Definition
	for _, v := range vals {
		if strings.ContainsRune(v, filepath.Separator) || strings.ContainsRune(v, '/') ||
			strings.HasSuffix(v, ".yaml") || strings.HasSuffix(v, ".yml") {
			d, err := load(v)
			if err != nil {
				return nil, err
			}
			defs = append(defs, d)
			continue
		}
		d, err := imagedef.Embedded(v)
		if err != nil {
			return nil, usageErrorf("--image: %v", err)
		}
		defs = append(defs, d)
	}
	return defs, nil
}

func printUpstream(out io.Writer, r *upstream.Report, adv []pinAdvisories, code int) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "SQLite releases on %s (newest pin: %s):\n", r.Downloads, r.NewestPin)
	switch {
	case len(r.NewReleases) > 0:
		for _, rel := range r.NewReleases {
			fmt.Fprintf(w, "  %s\tnewer than every pin\n", rel.Version)
			for _, ar := range rel.Archives {
				fmt.Fprintf(w, "    %s\t%s\t%d bytes\tSHA3-256 %s\n", ar.Kind, ar.Path, ar.Size, ar.SHA3)
			}
		}
		fmt.Fprintln(w, "  (add them to the pins with: sqlite-graft pins update)")
	case r.DownloadsError != "":
		fmt.Fprintln(w, "  could not be read (see the error below)")
	default:
		fmt.Fprintln(w, "  none newer than the pins")
	}
	if len(adv) > 0 {
		fmt.Fprintln(w, "\nAdvisories of the pins (sqlite-advisories.yaml, as the recipe compiles them):")
		for _, p := range adv {
			mark := " "
			if p.Default {
				mark = "*"
			}
			fmt.Fprintf(w, " %s%s\t%s\n", mark, p.Version, advisoryIDs(p.Advisories))
		}
	}
	if len(r.Branches) > 0 {
		fmt.Fprintln(w, "\nDistribution branches:")
		fmt.Fprintln(w, "BRANCH\tPACKAGE\tSQLITE\tWAL-RESET FIX\tVERDICT")
		for _, b := range r.Branches {
			if b.Error != "" {
				fmt.Fprintf(w, "%s\t-\t-\t-\tERROR (see below)\n", b.Target)
				continue
			}
			target := b.Target.String()
			if !b.Stable {
				target += " (development)"
			}
			fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%s\n", target, b.Package, b.PackageVersion, b.SQLite, fixedText(b.Fixed, b.ByVersion), b.Verdict)
		}
	}
	if len(r.Images) > 0 {
		fmt.Fprintln(w, "\nImages:")
		fmt.Fprintln(w, "IMAGE\tBRANCH\tDISTRO SQLITE\tWAL-RESET FIX\tVERDICT")
		for _, im := range r.Images {
			t := "-"
			if im.Target != nil {
				t = im.Target.String()
			}
			if im.Error != "" {
				fmt.Fprintf(w, "%s\t%s\t-\t-\tNO VERDICT (see below)\n", im.Image, t)
				continue
			}
			verdict := im.Verdict
			if len(im.FixedOnlyIn) > 0 {
				verdict += " (fixed only in " + strings.Join(im.FixedOnlyIn, ", ") + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s %s\t%s\t%s\n", im.Image, t, im.Package, im.PackageVersion, fixedText(im.Fixed, im.ByVersion), verdict)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, im := range r.Images {
		for _, n := range im.Notes {
			fmt.Fprintf(out, "note: %s: %s\n", im.Image, n)
		}
	}
	var result []string
	if r.Retire() {
		result = append(result, "a graft can be retired")
	}
	if r.NewerSQLite() {
		result = append(result, "a newer SQLite is available")
	}
	if r.Failed() {
		result = append(result, fmt.Sprintf("%d problem(s)", len(r.Errors)))
	}
	if len(result) == 0 {
		result = append(result, "nothing to do")
	}
	_, err := fmt.Fprintf(out, "\nresult: %s (exit %d)\n", strings.Join(result, "; "), code)
	return err
}

func fixedText(fixed, byVersion bool) string {
	s := yes(fixed)
	if byVersion {
		s += " (by version)"
	}
	return s
}
