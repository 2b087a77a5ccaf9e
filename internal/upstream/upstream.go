// Package upstream is the watch that says when a graft is still needed and
// when a newer SQLite is out. It reads sqlite.org's download page (its
// machine-readable block of releases, sizes and SHA3-256 hashes) and the
// distributions' package indexes — Alpine's APKINDEX.tar.gz per branch,
// Debian's Packages.xz per suite — and judges, per image definition, whether
// the distribution's own SQLite carries the WAL-reset fix (pins.HasWALResetFix
// on the upstream part of the package version):
//
//   - per branch: "keep the graft" (its package is vulnerable) or "retire the
//     graft" (its package is fixed);
//   - per image definition: "keep the graft", or "retire: move to <branch>"
//     naming the definition's own branch when its package got fixed there,
//     else the oldest newer stable branch read whose package is fixed. A
//     verdict never names a development branch (Alpine edge, Debian testing
//     or sid): a fix that exists only there is reported as such (FixedOnlyIn)
//     with "keep the graft".
//
// Debian can backport a fix in a security update without changing the
// upstream version, so its verdicts say "by version" and name the package
// version judged. A definition whose branch, or a newer branch of its
// distribution, could not be read gets an error and no verdict.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Verdicts.
const (
	KeepGraft   = "keep the graft"
	RetireGraft = "retire the graft"
	// RetireMoveTo is the per-image verdict when a fixed branch exists:
	// "retire: move to v3.23".
	RetireMoveTo = "retire: move to "
)

// BranchStatus is what one branch's index says.
type BranchStatus struct {
	Target
	Source         string `json:"source"`
	Package        string `json:"package,omitempty"`         // sqlite-libs, libsqlite3-0
	PackageVersion string `json:"package_version,omitempty"` // 3.48.0-r4, 3.46.1-7
	SQLite         string `json:"sqlite,omitempty"`          // the upstream part: 3.48.0
	Fixed          bool   `json:"fixed"`                     // carries the WAL-reset fix
	// ByVersion: the judgement rests on the upstream version alone, and the
	// distribution may have backported the fix (Debian).
	ByVersion  bool   `json:"by_version,omitempty"`
	Assessment string `json:"assessment,omitempty"` // fixed, vulnerable, fixed by version, vulnerable by version
	Verdict    string `json:"verdict,omitempty"`    // KeepGraft or RetireGraft
	// Stable: a stable release, not a development branch (see Stable).
	Stable bool   `json:"stable"`
	Error  string `json:"error,omitempty"`
}

// ImageVerdict is the judgement for one image definition.
type ImageVerdict struct {
	Image          string  `json:"image"`
	File           string  `json:"file,omitempty"`
	Base           string  `json:"base"`
	Target         *Target `json:"target,omitempty"`
	Package        string  `json:"package,omitempty"`
	PackageVersion string  `json:"package_version,omitempty"`
	SQLite         string  `json:"sqlite,omitempty"`
	Fixed          bool    `json:"fixed"`
	ByVersion      bool    `json:"by_version,omitempty"`
	Assessment     string  `json:"assessment,omitempty"`
	Verdict        string  `json:"verdict,omitempty"` // KeepGraft or "retire: move to <branch>"
	Retire         bool    `json:"retire"`
	MoveTo         string  `json:"move_to,omitempty"` // the branch to rebuild on without the graft
	// FixedOnlyIn are newer development branches whose package is fixed
	// while no stable release's is: the verdict stays KeepGraft.
	FixedOnlyIn []string `json:"fixed_only_in,omitempty"`
	Notes       []string `json:"notes,omitempty"`
	Error       string   `json:"error,omitempty"` // no verdict: why
}

// Report is the watch's result.
type Report struct {
	Downloads string `json:"downloads"`
	// DownloadsError says why the download page could not be used.
	DownloadsError string         `json:"downloads_error,omitempty"`
	NewestPin      string         `json:"newest_pin"`
	NewReleases    []Release      `json:"new_releases"` // on the download page, newer than every pin
	Branches       []BranchStatus `json:"branches"`
	Images         []ImageVerdict `json:"images"`
	Warnings       []string       `json:"warnings,omitempty"`
	Errors         []string       `json:"errors,omitempty"`
}

// Retire says whether a graft can be retired: some image's distribution
// ships a fixed SQLite.
func (r *Report) Retire() bool {
	for _, im := range r.Images {
		if im.Retire {
			return true
		}
	}
	return false
}

// NewerSQLite says whether the download page has a release newer than the pins.
func (r *Report) NewerSQLite() bool { return len(r.NewReleases) > 0 }

// Failed says whether something could not be read or judged.
func (r *Report) Failed() bool { return len(r.Errors) > 0 }

// Options say what to read and judge.
type Options struct {
	// Images to judge. Indexes are read for their distributions (and for
	// every distribution given below).
	Images []*imagedef.Definition
	// Alpine branches and Debian suites to read. Empty: the defaults
	// (DefaultSources) of each distribution an image needs.
	Alpine, Debian []Source
	// Downloads is the download page, URL or file; "" means DefaultDownloadPage.
	Downloads string
	// Pins decide which releases are new.
	Pins *pins.File
	// Reader reads URLs and files; nil is a default Reader.
	Reader *Reader
}

// Watch reads the download page and the indexes and judges every image.
// Read and parse failures are in the report (Errors, per branch and per
// image), never a verdict from partial data; the returned error is for
// unusable options only.
func Watch(ctx context.Context, o Options) (*Report, error) {
	if o.Pins == nil {
		return nil, errors.New("upstream: no pins file")
	}
	for d, srcs := range map[Distro][]Source{Alpine: o.Alpine, Debian: o.Debian} {
		seen := map[string]bool{}
		for _, s := range srcs {
			if err := CheckBranch(d, s.Branch); err != nil {
				return nil, err
			}
			if seen[s.Branch] {
				return nil, fmt.Errorf("%s %s given twice", d, s.Branch)
			}
			seen[s.Branch] = true
		}
	}
	rd := o.Reader
	if rd == nil {
		rd = &Reader{}
	}
	rep := &Report{Downloads: o.Downloads, Images: []ImageVerdict{}, Branches: []BranchStatus{}, NewReleases: []Release{}}
	if rep.Downloads == "" {
		rep.Downloads = DefaultDownloadPage
	}
	if vs := o.Pins.Versions(); len(vs) > 0 {
		rep.NewestPin = vs[len(vs)-1].String()
	}

	// Which indexes to read.
	targets := make([]*Target, len(o.Images))
	imgErr := make([]error, len(o.Images))
	need := map[Distro]bool{Alpine: len(o.Alpine) > 0, Debian: len(o.Debian) > 0}
	for i, d := range o.Images {
		t, err := TargetOf(d.Base)
		if err != nil {
			imgErr[i] = err
			continue
		}
		targets[i] = &t
		need[t.Distro] = true
	}
	var jobs []job
	for _, d := range []Distro{Alpine, Debian} {
		if !need[d] {
			continue
		}
		srcs := o.Alpine
		if d == Debian {
			srcs = o.Debian
		}
		if len(srcs) == 0 {
			srcs = DefaultSources(d)
		}
		for _, s := range srcs {
			jobs = append(jobs, job{Target{d, s.Branch}, s.Location})
		}
	}

	// Read everything at once.
	var wg sync.WaitGroup
	rep.Branches = make([]BranchStatus, len(jobs))
	for i, j := range jobs {
		wg.Go(func() { rep.Branches[i] = readBranch(ctx, rd, j) })
	}
	var page *DownloadPage
	var pageErr error
	wg.Go(func() {
		data, err := rd.Read(ctx, rep.Downloads)
		if err != nil {
			pageErr = err
			return
		}
		page, pageErr = ParseDownloadPage(rep.Downloads, data)
	})
	wg.Wait()

	if pageErr != nil {
		rep.DownloadsError = pageErr.Error()
		rep.Errors = append(rep.Errors, pageErr.Error())
	} else {
		rep.NewReleases = page.NewerThanPins(o.Pins)
		rep.Warnings = append(rep.Warnings, page.Warnings...)
	}
	sort.SliceStable(rep.Branches, func(i, j int) bool {
		a, b := rep.Branches[i], rep.Branches[j]
		if a.Distro != b.Distro {
			return a.Distro < b.Distro
		}
		return CompareBranches(a.Distro, a.Branch, b.Branch) < 0
	})
	for _, b := range rep.Branches {
		if b.Error != "" {
			rep.Errors = append(rep.Errors, b.Error)
		}
	}
	for i, d := range o.Images {
		v := ImageVerdict{Image: d.Name, File: d.File, Base: d.Base, Target: targets[i]}
		if imgErr[i] == nil {
			imgErr[i] = judge(&v, d, rep.Branches)
		}
		if imgErr[i] != nil {
			v.Error = imgErr[i].Error()
			rep.Errors = append(rep.Errors, fmt.Sprintf("image %s: %s", d.Name, v.Error))
		}
		rep.Images = append(rep.Images, v)
	}
	return rep, nil
}

type job struct {
	t   Target
	loc string
}

// readBranch reads and judges one index; errors name the location.
func readBranch(ctx context.Context, rd *Reader, j job) BranchStatus {
	st := BranchStatus{Target: j.t, Source: j.loc, Stable: Stable(j.t.Distro, j.t.Branch)}
	fail := func(err error) BranchStatus {
		st.Error = fmt.Sprintf("%s: %v", j.t, err)
		return st
	}
	data, err := rd.Read(ctx, j.loc)
	if err != nil {
		return fail(err)
	}
	var v pins.Version
	switch j.t.Distro {
	case Alpine:
		ix, err := ParseAPKIndexArchive(j.loc, data)
		if err != nil {
			return fail(err)
		}
		p, err := ix.SQLite()
		if err != nil {
			return fail(err)
		}
		if v, err = AlpineUpstream(p.Version); err != nil {
			return fail(fmt.Errorf("%s: APKINDEX:%d: %s: %v", j.loc, p.Line, p.Name, err))
		}
		st.Package, st.PackageVersion = p.Name, p.Version
	case Debian:
		pkgs, err := ParsePackagesXZ(j.loc, data)
		if err != nil {
			return fail(err)
		}
		p, err := DebianSQLite(j.loc, pkgs)
		if err != nil {
			return fail(err)
		}
		if v, err = DebianUpstream(p.Version); err != nil {
			return fail(fmt.Errorf("%s:%d: %s: %v", j.loc, p.Line, p.Package, err))
		}
		st.Package, st.PackageVersion = p.Package, p.Version
		st.ByVersion = true
	}
	st.SQLite = v.String()
	st.Fixed = pins.HasWALResetFix(v)
	st.Assessment = map[bool]string{true: "fixed", false: "vulnerable"}[st.Fixed]
	if st.ByVersion {
		st.Assessment += " by version"
	}
	st.Verdict = map[bool]string{true: RetireGraft, false: KeepGraft}[st.Fixed]
	return st
}

// judge fills in v from the branch statuses, or says why it cannot.
func judge(v *ImageVerdict, d *imagedef.Definition, branches []BranchStatus) error {
	t := *v.Target
	var own *BranchStatus
	var newerFixed []BranchStatus // stable releases only
	var unstableFixed []string    // development branches
	var unread []string
	for i := range branches {
		b := &branches[i]
		if b.Distro != t.Distro {
			continue
		}
		c := CompareBranches(t.Distro, b.Branch, t.Branch)
		if c < 0 {
			continue
		}
		if b.Error != "" {
			unread = append(unread, b.Branch)
			continue
		}
		switch {
		case c == 0:
			own = b
		case b.Fixed && b.Stable:
			newerFixed = append(newerFixed, *b)
		case b.Fixed:
			unstableFixed = append(unstableFixed, b.Branch)
		}
	}
	if len(unread) > 0 {
		return fmt.Errorf("no verdict for %s: the index of %s %s could not be read", t, t.Distro, strings.Join(unread, ", "))
	}
	if own == nil {
		flag := "--apkindex"
		if t.Distro == Debian {
			flag = "--debian"
		}
		return fmt.Errorf("no verdict: the index of %s was not read (give %s %s=URL|FILE)", t, flag, t.Branch)
	}
	v.Package, v.PackageVersion, v.SQLite = own.Package, own.PackageVersion, own.SQLite
	v.Fixed, v.ByVersion, v.Assessment = own.Fixed, own.ByVersion, own.Assessment
	if d.DistroSQLite != "" && d.DistroSQLite != own.PackageVersion && !strings.HasPrefix(own.PackageVersion, d.DistroSQLite+"-") {
		v.Notes = append(v.Notes, fmt.Sprintf("%s says distro_sqlite: %s; the %s index has %s %s", d.File, d.DistroSQLite, t, own.Package, own.PackageVersion))
	}
	switch {
	case own.Fixed && !own.Stable:
		// An image already on a development branch whose package is fixed
		// needs no graft, but that is no branch to recommend moving to.
		v.Retire, v.Verdict = true, RetireGraft
		v.Notes = append(v.Notes, fmt.Sprintf("%s is a development branch, not a stable release", t))
	case own.Fixed:
		v.Retire, v.MoveTo = true, own.Branch
	case len(newerFixed) > 0:
		sort.Slice(newerFixed, func(i, j int) bool {
			return CompareBranches(t.Distro, newerFixed[i].Branch, newerFixed[j].Branch) < 0
		})
		v.Retire, v.MoveTo = true, newerFixed[0].Branch
	}
	switch {
	case v.MoveTo != "":
		v.Verdict = RetireMoveTo + v.MoveTo
		if v.MoveTo != t.Branch {
			mv := moveStatus(branches, t.Distro, v.MoveTo)
			v.Notes = append(v.Notes, fmt.Sprintf("%s %s ships %s %s (%s)", t.Distro, v.MoveTo, mv.Package, mv.PackageVersion, mv.Assessment))
		}
	case !v.Retire:
		v.Verdict = KeepGraft
		if len(unstableFixed) > 0 {
			v.FixedOnlyIn = unstableFixed
			v.Notes = append(v.Notes, fmt.Sprintf("a fixed SQLite exists only in %s %s, not in a stable release: keep the graft until one ships it",
				t.Distro.Title(), strings.Join(unstableFixed, ", ")))
		}
	}
	if own.ByVersion && !own.Fixed {
		v.Notes = append(v.Notes, fmt.Sprintf("%s %s is vulnerable by version: %s may have backported the fix without changing the upstream version; check the package changelog (the graft may no longer be needed)", own.Package, own.PackageVersion, t.Distro.Title()))
	}
	return nil
}

func moveStatus(branches []BranchStatus, d Distro, branch string) BranchStatus {
	for _, b := range branches {
		if b.Distro == d && b.Branch == branch {
			return b
		}
	}
	return BranchStatus{}
}
