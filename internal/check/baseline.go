package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// BaselineKind says what the image check links its probe against, and so
// what the graft is compared with. It is the caller's explicit choice, and
// the report says which it was: a base without a SQLite of its own is a case
// of its own, never a silent fallback.
type BaselineKind string

const (
	// BaselineBase: the base carries the distribution's libsqlite3.so.0
	// (ImageOptions.Baseline, default DistroLibrary). The probe links it,
	// as distro programs do; the graft's compile options and exported
	// symbols must cover it. A missing library is a failure.
	BaselineBase BaselineKind = "base"
	// BaselineNone: the base carries no SQLite (the real alpine:3.21 and
	// alpine:3.22, Debian 12's minimal base). The probe is linked against
	// the soname libsqlite3.so.0 alone (a copy of the grafted library under
	// that name) and the image's loader must resolve it to the graft. There
	// is nothing to compare compile options and symbols with here: the
	// downstream check does that against the distribution's package
	// (BaselinePackage). An image that does carry DistroLibrary fails.
	BaselineNone BaselineKind = "none"
	// BaselinePackage: the downstream check. The image is a throwaway copy
	// of the built image with the files of the distribution's SQLite
	// package added (what `apk add sqlite-libs` or `apt-get install
	// libsqlite3-0` in an application image brings); Baseline is that
	// package's library. Checked as BaselineBase is.
	BaselinePackage BaselineKind = "package"
)

// DistroLibrary is where the distribution puts libsqlite3.so.0 for libc on
// this machine's architecture: /usr/lib (Alpine's sqlite-libs) or
// /usr/lib/<multiarch> (Debian's libsqlite3-0).
func DistroLibrary(libc string) string { return defaultBaseline(libc) }

// baselineKind is opts' kind, defaulted and checked.
func (opts ImageOptions) baselineKind() (BaselineKind, error) {
	switch opts.BaselineKind {
	case "":
		return BaselineBase, nil
	case BaselineBase, BaselineNone:
		return opts.BaselineKind, nil
	case BaselinePackage:
		if opts.Baseline == "" || opts.BaselinePackage == "" {
			return "", fmt.Errorf("baseline %s: name the package (BaselinePackage) and its library in the image (Baseline)", BaselinePackage)
		}
		return BaselinePackage, nil
	}
	return "", fmt.Errorf("baseline kind %q: want %s, %s or %s", opts.BaselineKind, BaselineBase, BaselineNone, BaselinePackage)
}

// baselineLibrary resolves the library the probe links, by kind: the
// base's or the package's own, as asked and as resolved; for BaselineNone,
// "" after making sure the image carries no distribution SQLite.
func (ir *ImageReport) baselineLibrary(root rootfs, opts ImageOptions, libc string) (asked, real string, e *elfInfo, err error) {
	if ir.BaselineKind == BaselineNone {
		if own, err := root.resolve(defaultBaseline(libc)); err == nil {
			return "", "", nil, fmt.Errorf("the image carries a SQLite of its own (%s -> %s), but the check was told its base has none (baseline %s): check it against that library (baseline %s)",
				defaultBaseline(libc), own, BaselineNone, BaselineBase)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", nil, fmt.Errorf("the base's SQLite: %w", err)
		}
		return "", "", nil, nil
	}
	what := "the base's SQLite"
	if ir.BaselineKind == BaselinePackage {
		what = "the SQLite of " + opts.BaselinePackage
	}
	asked = opts.Baseline
	if asked == "" {
		asked = defaultBaseline(libc)
	}
	if real, err = root.resolve(asked); err != nil {
		hint := ""
		if ir.BaselineKind == BaselineBase {
			hint = fmt.Sprintf("; a base without a SQLite of its own is checked with baseline %s, and downstream with its distribution's package (baseline %s)", BaselineNone, BaselinePackage)
		}
		return "", "", nil, fmt.Errorf("%s: %w%s", what, err, hint)
	}
	if e, err = readELF(root.host(real)); err != nil {
		return "", "", nil, fmt.Errorf("%s %s: %w", what, real, err)
	}
	if e.Libc != libc {
		return "", "", nil, fmt.Errorf("%s %s is a %s library in a %s image", what, real, e.Libc, libc)
	}
	return asked, real, e, nil
}

// compareWithBaseline runs the probe on the baseline library (baseline:
// its path as asked, which baselineEnv binds by name) with the graft turned
// off, and compares compile options and exported symbols. For BaselineNone
// it notes where that comparison happens instead.
func (ir *ImageReport) compareWithBaseline(ctx context.Context, c *container, env []string, libc, baseline string, in *info, baseELF, graftELF *elfInfo) error {
	r := ir.Report
	if ir.BaselineKind == BaselineNone {
		r.Notes = append(r.Notes, "the base carries no SQLite of its own: the probe was linked against the soname libsqlite3.so.0 alone; compile options and exported symbols are compared in the downstream check, against the distribution's package")
		return nil
	}
	var bin info
	if err := runProbeJSON(ctx, unwrapped{c}, baselineEnv(env, libc, baseline), &bin, "info"); err != nil {
		return fmt.Errorf("the baseline SQLite with the graft turned off: %w", err)
	}
	if got := sqliteFilesIn(bin.Mapped, r.Lib, r.Baseline); !slices.Contains(got, r.Baseline) {
		return fmt.Errorf("the graft could not be turned off to read the baseline SQLite: the process mapped %v, not %s", got, r.Baseline)
	}
	r.BaselineVersion, ir.BaseOptions = bin.Version, bin.CompileOptions
	d := compareOptions(bin.CompileOptions, in.CompileOptions)
	r.MissingOptions, ir.MissingOptions = d.Missing, d.Missing
	r.Problems = append(r.Problems, d.Problems...)
	r.Notes = append(r.Notes, d.Notes...)
	if graftELF != nil {
		r.checkExports(baseELF, graftELF, "the graft")
	}
	return nil
}

// checkExports fails lib (named what) for each public SQLite symbol the
// baseline exports and lib does not.
func (r *Report) checkExports(baseline, lib *elfInfo, what string) {
	var other []string
	r.MissingSymbols, other = compareSymbols(baseline.Exports, lib.Exports)
	if len(other) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("exported symbols: the baseline also exports %d that are not SQLite's API (such as %s); not compared",
			len(other), strings.Join(other[:min(3, len(other))], ", ")))
	}
	if len(r.MissingSymbols) > 0 {
		r.problem("exported symbols: the baseline exports %d %s does not: %s (programs fail with \"symbol not found\")",
			len(r.MissingSymbols), what, strings.Join(r.MissingSymbols, " "))
	}
}
