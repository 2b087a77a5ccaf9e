package imagedef

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

var (
	packageNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]{0,99}$`)
	// A Debian repository names its suite and component: the index is
	// <repository>/binary-<arch>/Packages.xz, the files lie under the part
	// before /dists/.
	debianRepoRE = regexp.MustCompile(`^/.*/dists/[a-z0-9._-]+/[a-z0-9._-]+/?$`)
)

// checkDistroPackage: distro_package and distro_repository come together,
// with distro_sqlite (the version the check fetches).
func (p *parsed) checkDistroPackage(d *Definition) error {
	if d.DistroPackage == "" && d.DistroRepository == "" {
		return nil
	}
	example := map[string]string{
		Musl:  "distro_package: sqlite-libs\ndistro_repository: https://dl-cdn.alpinelinux.org/alpine/v3.21/main",
		Glibc: "distro_package: libsqlite3-0\ndistro_repository: https://deb.debian.org/debian/dists/trixie/main",
	}[d.Libc]
	switch {
	case d.DistroPackage == "":
		return p.errorf("distro_repository", "distro_repository without distro_package; give both, e.g.\n%s", example)
	case d.DistroRepository == "":
		return p.errorf("distro_package", "distro_package without distro_repository; give both, e.g.\n%s", example)
	case d.DistroSQLite == "":
		return p.errorf("distro_package", "distro_package %s without distro_sqlite, the package version the check fetches", d.DistroPackage)
	}
	if !packageNameRE.MatchString(d.DistroPackage) {
		return p.errorf("distro_package", "distro_package %q: want a package name such as sqlite-libs or libsqlite3-0", d.DistroPackage)
	}
	u, err := url.Parse(d.DistroRepository)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") == "" {
		return p.errorf("distro_repository", "distro_repository %q: want an https URL of the repository, e.g.\n%s", d.DistroRepository, example)
	}
	if d.Libc == Glibc && !debianRepoRE.MatchString(u.Path) {
		return p.errorf("distro_repository", "distro_repository %q: want <archive>/dists/<suite>/<component>, e.g. https://deb.debian.org/debian/dists/trixie/main", d.DistroRepository)
	}
	return nil
}

// Version is the SQLite a build of d makes: asked ("3.53.4", from --sqlite
// or the Dagger module's argument) when given, else the definition's
// sqlite. The CLI and the Dagger module both decide it here.
func (d *Definition) Version(asked string) (pins.Version, error) {
	if asked == "" {
		return d.SQLite, nil
	}
	v, err := pins.ParseVersion(asked)
	if err != nil {
		return pins.Version{}, fmt.Errorf("sqlite %q: %w", asked, err)
	}
	return v, nil
}
