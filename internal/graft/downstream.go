package graft

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/distropkg"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/provenance"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// Downstream says how the downstream check gets the distribution's SQLite
// package. The check runs where the base carries no SQLite of its own (the
// case a graft of a bare base exists for: an application image that adds
// the package), and whenever Package is given.
type Downstream struct {
	// Package is a package file given by hand (--distro-package); its own
	// metadata must name the definition's distro_package at distro_sqlite.
	Package string
	// Repository replaces the definition's distro_repository (a mirror).
	Repository string
	// Client downloads the index and the package; nil: a default one.
	Client *http.Client
	// Skip opts out (--skip-downstream-check): recorded in the result and
	// the provenance, and logged as a warning.
	Skip bool
}

// Flags named in errors, so that a user knows what to pass.
const (
	FlagDistroPackage    = "--distro-package"
	FlagDistroRepository = "--distro-repository"
	FlagSkipDownstream   = "--skip-downstream-check"
)

// downstreamPlan is how one platform's image is checked.
type downstreamPlan struct {
	baseline check.BaselineKind
	pkg      *distropkg.Package // nil: no downstream run
	record   publish.Check
}

// planChecks is planDownstream for a platform whose image is checked here
// (runnable, and not skipped); skipped checks record nothing (the caller
// checks elsewhere), a platform this machine cannot run says so.
func planChecks(ctx context.Context, def *imagedef.Definition, pl v1.Platform, runnable, skip, baseHasSQLite bool, d Downstream, log logrus.FieldLogger) (*downstreamPlan, error) {
	p := &downstreamPlan{record: publish.Check{Platform: pl.String(), Baseline: "not run"}}
	switch {
	case skip:
		return p, nil
	case !runnable:
		p.record.Downstream = fmt.Sprintf("not run: this machine does not run %s images", pl)
		return p, nil
	}
	return planDownstream(ctx, def, pl, baseHasSQLite, d, log)
}

// planDownstream decides, for one platform whose image is checked here,
// what the check compares the graft with, and gets the package of the
// downstream run: fetched at the definition's pinned version and verified,
// or read from the file given.
func planDownstream(ctx context.Context, def *imagedef.Definition, pl v1.Platform, baseHasSQLite bool, d Downstream, log logrus.FieldLogger) (*downstreamPlan, error) {
	own := check.DistroLibrary(def.Libc)
	p := &downstreamPlan{baseline: check.BaselineBase, record: publish.Check{Platform: pl.String(), Baseline: string(check.BaselineBase)}}
	if !baseHasSQLite {
		p.baseline, p.record.Baseline = check.BaselineNone, string(check.BaselineNone)
	}
	switch {
	case baseHasSQLite && d.Package == "":
		p.record.Downstream = fmt.Sprintf("not needed: the base carries its own SQLite (%s), which the image check compares the graft with", own)
		return p, nil
	case d.Skip && d.Package == "":
		p.record.Downstream = "skipped: " + FlagSkipDownstream + " (the base carries no SQLite; a program an application image links against the distribution's package was not checked)"
		log.Warnf("downstream check %s", p.record.Downstream)
		return p, nil
	case (def.DistroPackage == "" || def.DistroSQLite == "") && d.Package != "":
		return nil, fmt.Errorf("%s %s: %s names no distro_package and distro_sqlite to check the file against", FlagDistroPackage, d.Package, def.File)
	case def.DistroPackage == "" || def.DistroSQLite == "":
		return nil, fmt.Errorf("%s: the base carries no SQLite of its own (no %s), so the image is checked downstream too, with the distribution's SQLite package added; "+
			"the definition names none: add distro_sqlite, distro_package and distro_repository, give the package with %s FILE, or skip the check with %s (recorded in the result and the provenance)",
			def.File, own, FlagDistroPackage, FlagSkipDownstream)
	}
	format := distropkg.APK
	if def.Libc == imagedef.Glibc {
		format = distropkg.Deb
	}
	arch, err := distropkg.Arch(format, pl)
	if err != nil {
		return nil, err
	}
	want := distropkg.Want{Format: format, Name: def.DistroPackage, Version: def.DistroSQLite, Arch: arch}
	start := time.Now()
	var pkg *distropkg.Package
	if d.Package != "" {
		if pkg, err = distropkg.Open(d.Package, want); err != nil {
			return nil, fmt.Errorf("%s %s: %w", FlagDistroPackage, d.Package, err)
		}
	} else {
		repo := def.DistroRepository
		if d.Repository != "" {
			repo = d.Repository
		}
		if pkg, err = distropkg.Fetch(ctx, repo, want, d.Client); err != nil {
			return nil, fmt.Errorf("the base carries no SQLite of its own (no %s), so the image is checked downstream too, with %s added; it could not be fetched and verified: %w; "+
				"give the package with %s FILE (air-gapped builds) or a mirror with %s URL, or skip the check with %s (recorded in the result and the provenance)",
				own, want, err, FlagDistroPackage, FlagDistroRepository, FlagSkipDownstream)
		}
	}
	log.WithFields(logrus.Fields{"package": pkg.Name + " " + pkg.Version, "from": pkg.Origin, "sha256": pkg.SHA256,
		"seconds": fmt.Sprintf("%.2f", time.Since(start).Seconds())}).Info("distribution package for the downstream check")
	p.pkg = pkg
	p.record.Downstream = pkg.Name + " " + pkg.Version
	p.record.Package = &publish.CheckPackage{Name: pkg.Name, Version: pkg.Version, Origin: pkg.Origin, SHA256: pkg.SHA256, Verified: pkg.Verified}
	return p, nil
}

// checkRecords are the plans as the result file records them.
func checkRecords(plans []*downstreamPlan) []publish.Check {
	var out []publish.Check
	for _, p := range plans {
		out = append(out, p.record)
	}
	return out
}

// downstreamProvenance is how every platform's image was checked
// downstream (each named by its platform when there are several), and the
// packages used, as the provenance statement records them.
func downstreamProvenance(plans []*downstreamPlan) (string, []provenance.CheckPackage) {
	var how []string
	var pkgs []provenance.CheckPackage
	for _, p := range plans {
		d, ps := p.provenance()
		if d != "" && len(plans) > 1 {
			d = p.record.Platform + ": " + d
		}
		if d != "" {
			how = append(how, d)
		}
		pkgs = append(pkgs, ps...)
	}
	return strings.Join(how, "; "), pkgs
}

// provenance is the plan as the provenance statement records it.
func (p *downstreamPlan) provenance() (string, []provenance.CheckPackage) {
	if p.pkg == nil { // "" when the checks were skipped: nothing to record
		return p.record.Downstream, nil
	}
	uri := p.pkg.Origin
	if !upstream.IsURL(uri) {
		uri = "file:" + filepath.Base(uri) // where it lay on the build machine is no identity
	}
	return "with " + p.record.Downstream + " added to a throwaway copy of the image", []provenance.CheckPackage{{Name: p.pkg.Name, Version: p.pkg.Version, URI: uri, SHA256: p.pkg.SHA256}}
}

// CheckDownstream checks img as an application image built FROM it sees it:
// a throwaway copy with pkg's files added (never written anywhere), the probe
// linked against the package's library. A program linked against it must
// still get the graft — the pinned version, one SQLite mapped — and the graft
// must be a superset of it (compile options, exported symbols). opts gives
// Want, Wrapper, Client and Logger; the baseline is set here, and the stress
// test is left to the check of the image itself.
func CheckDownstream(ctx context.Context, img v1.Image, pkg *distropkg.Package, opts check.ImageOptions) (*check.ImageReport, error) {
	withPkg, err := pkg.AddTo(img)
	if err != nil {
		return nil, fmt.Errorf("downstream check: add %s %s to a copy of the image: %w", pkg.Name, pkg.Version, err)
	}
	opts.Image = withPkg
	opts.BaselineKind, opts.Baseline, opts.BaselinePackage = check.BaselinePackage, pkg.Library, pkg.Name+" "+pkg.Version
	opts.Stress = nil
	r, err := check.Image(ctx, opts)
	if err != nil {
		return r, fmt.Errorf("downstream check, with %s %s added (from %s): %w", pkg.Name, pkg.Version, pkg.Origin, err)
	}
	// The package must be what it says: its library's version is the
	// package version's upstream part.
	up, err := upstream.AlpineUpstream(pkg.Version)
	if pkg.Format == distropkg.Deb {
		up, err = upstream.DebianUpstream(pkg.Version)
	}
	if err == nil && r.Report.BaselineVersion != up.String() {
		return r, fmt.Errorf("downstream check: %s %s (from %s): its library %s reports SQLite %s, want %s", pkg.Name, pkg.Version, pkg.Origin, pkg.Library, r.Report.BaselineVersion, up)
	}
	return r, nil
}
