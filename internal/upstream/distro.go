package upstream

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Distro is a distribution whose package index the watch reads.
type Distro string

const (
	Alpine Distro = "alpine"
	Debian Distro = "debian"
)

// Target is a distribution branch: an Alpine branch ("v3.21", "edge") or a
// Debian suite ("trixie").
type Target struct {
	Distro Distro `json:"distro"`
	Branch string `json:"branch"`
}

// Title is the distribution's name as written in prose: Alpine, Debian.
func (d Distro) Title() string {
	if d == "" {
		return ""
	}
	return strings.ToUpper(string(d[:1])) + string(d[1:])
}

func (t Target) String() string { return string(t.Distro) + " " + t.Branch }

// debianSuites are the Debian suites the watch knows, oldest first, with
// the release numbers Docker Hub's debian tags use. The order is what "a
// newer suite" means. released marks the stable releases a "retire: move to"
// verdict may name: a suite is released on Debian's release day, so when
// forky is released, mark it here.
var debianSuites = []struct {
	name, number string
	released     bool
}{
	{"buster", "10", true}, {"bullseye", "11", true}, {"bookworm", "12", true}, {"trixie", "13", true},
	{"forky", "14", false}, {"duke", "15", false},
	{"testing", "", false}, {"sid", "", false}, {"unstable", "", false},
}

// baseRules map an image definition's base to the branch whose package
// index says which SQLite it ships. Only Docker Hub's official images are
// known (after docker.io/ and library/ are taken off); the first rule that
// matches wins:
//
//	alpine:3.21, alpine:3.21.3          -> alpine v3.21
//	alpine:edge                         -> alpine edge
//	python:3.13-alpine3.21 (any image)  -> alpine v3.21  (the official images' -alpineX.Y tags)
//	debian:13, debian:13.1-slim         -> debian trixie (release number -> codename, debianSuites)
//	debian:trixie, debian:trixie-slim   -> debian trixie
//	python:3.13-slim-trixie (any image) -> debian trixie (the official images' -<codename> tags)
var baseRules = []struct {
	re     *regexp.Regexp
	distro Distro
	branch func(m []string) (string, bool)
}{
	{regexp.MustCompile(`^alpine:(\d+\.\d+)(?:\.\d+)?$`), Alpine, func(m []string) (string, bool) { return "v" + m[1], true }},
	{regexp.MustCompile(`^alpine:edge$`), Alpine, func([]string) (string, bool) { return "edge", true }},
	{regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9_.-]*-alpine(\d+\.\d+)(?:\.\d+)?$`), Alpine, func(m []string) (string, bool) { return "v" + m[1], true }},
	{regexp.MustCompile(`^debian:(\d+)(?:\.\d+)*(?:-slim)?$`), Debian, func(m []string) (string, bool) { return suiteOfNumber(m[1]) }},
	{regexp.MustCompile(`^debian:([a-z]+)(?:-\d{8})?(?:-slim)?$`), Debian, func(m []string) (string, bool) { return m[1], suiteIndex(m[1]) >= 0 }},
	{regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*:(?:[A-Za-z0-9_.-]*-)?([a-z]+)$`), Debian, func(m []string) (string, bool) { return m[1], suiteIndex(m[1]) >= 0 }},
}

func suiteOfNumber(n string) (string, bool) {
	for _, s := range debianSuites {
		if s.number != "" && s.number == n {
			return s.name, true
		}
	}
	return "", false
}

func suiteIndex(name string) int {
	for i, s := range debianSuites {
		if s.name == name {
			return i
		}
	}
	return -1
}

// TargetOf maps an image base reference such as docker.io/library/alpine:3.21
// to its distribution branch.
func TargetOf(base string) (Target, error) {
	ref := base
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "index.docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	for _, r := range baseRules {
		if m := r.re.FindStringSubmatch(ref); m != nil {
			if b, ok := r.branch(m); ok {
				return Target{Distro: r.distro, Branch: b}, nil
			}
		}
	}
	return Target{}, fmt.Errorf("base %q: no known distribution branch (known: Docker Hub's alpine:X.Y, *:*-alpineX.Y, debian:N or debian:<codename>, *:*-<codename>)", base)
}

var alpineBranchRE = regexp.MustCompile(`^v(\d+)\.(\d+)$`)

// CheckBranch says whether branch names a branch of d the watch can order.
func CheckBranch(d Distro, branch string) error {
	switch d {
	case Alpine:
		if branch == "edge" || alpineBranchRE.MatchString(branch) {
			return nil
		}
		return fmt.Errorf("alpine branch %q: want vX.Y (e.g. v3.21) or edge", branch)
	case Debian:
		if suiteIndex(branch) >= 0 {
			return nil
		}
		var names []string
		for _, s := range debianSuites {
			names = append(names, s.name)
		}
		return fmt.Errorf("debian suite %q: want one of %s", branch, strings.Join(names, ", "))
	}
	return fmt.Errorf("unknown distribution %q", d)
}

// Stable says whether branch is a stable release of d — an Alpine vX.Y or a
// released Debian suite — rather than a development branch (Alpine edge,
// Debian testing or sid, a suite not released yet). Only stable releases are
// somewhere to move a production image to.
func Stable(d Distro, branch string) bool {
	switch d {
	case Alpine:
		return alpineBranchRE.MatchString(branch)
	case Debian:
		if i := suiteIndex(branch); i >= 0 {
			return debianSuites[i].released
		}
	}
	return false
}

// CompareBranches orders two branches of d: -1 when a is older than b.
// Alpine: vX.Y by number, edge newest. Debian: by release (debianSuites).
// Both must pass CheckBranch.
func CompareBranches(d Distro, a, b string) int {
	rank := func(s string) [2]int {
		if d == Debian {
			return [2]int{suiteIndex(s), 0}
		}
		if s == "edge" {
			return [2]int{1 << 30, 0}
		}
		m := alpineBranchRE.FindStringSubmatch(s)
		if m == nil {
			return [2]int{-1, 0}
		}
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		return [2]int{x, y}
	}
	ra, rb := rank(a), rank(b)
	switch {
	case ra[0] != rb[0]:
		return cmpInt(ra[0], rb[0])
	default:
		return cmpInt(ra[1], rb[1])
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Default index locations.
const (
	DefaultDownloadPage = "https://sqlite.org/download.html"
	DefaultAlpineArch   = "x86_64"
	DefaultDebianArch   = "amd64"
)

// DefaultAlpineBranches and DefaultDebianSuites are read when no index of
// that distribution is given.
var (
	DefaultAlpineBranches = []string{"v3.21", "v3.22", "v3.23", "edge"}
	DefaultDebianSuites   = []string{"bookworm", "trixie"}
)

// AlpineIndexURL is the APKINDEX.tar.gz of a branch's main repository.
func AlpineIndexURL(branch, arch string) string {
	return fmt.Sprintf("https://dl-cdn.alpinelinux.org/alpine/%s/main/%s/APKINDEX.tar.gz", branch, arch)
}

// DebianMirrorEnv names the Debian archive to read by default, e.g.
// "https://<mirror>/debian": Debian has many mirrors and none is assumed.
const DebianMirrorEnv = "SQLITE_GRAFT_DEBIAN_MIRROR"

// DebianIndexURL is the Packages.xz of a suite's main component on mirror.
func DebianIndexURL(mirror, suite, arch string) string {
	return fmt.Sprintf("%s/dists/%s/main/binary-%s/Packages.xz", strings.TrimRight(mirror, "/"), suite, arch)
}

// Source is where to read one branch's index: a URL or a local file.
type Source struct {
	Branch   string `json:"branch"`
	Location string `json:"location"`
}

// DefaultSources lists the default indexes of d.
func DefaultSources(d Distro) []Source {
	var s []Source
	switch d {
	case Alpine:
		for _, b := range DefaultAlpineBranches {
			s = append(s, Source{b, AlpineIndexURL(b, DefaultAlpineArch)})
		}
	case Debian:
		mirror := os.Getenv(DebianMirrorEnv)
		if mirror == "" {
			break // no default: --debian SUITE=URL|FILE names the index
		}
		for _, b := range DefaultDebianSuites {
			s = append(s, Source{b, DebianIndexURL(mirror, b, DefaultDebianArch)})
		}
	}
	return s
}
