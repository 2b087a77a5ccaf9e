// Package distropkg gets the distribution's own SQLite package — Alpine's
// sqlite-libs (.apk), Debian's libsqlite3-0 (.deb) — at the version an image
// definition pins, verified against the distribution's index, for one use
// only: a throwaway copy of a built image gets the package's files as one more
// layer, so the image check can prove that a program an application image
// installs with `apk add` / `apt-get install` still gets the graft. The
// package never reaches a pushed image.
//
// Fetch reads the repository's index (APKINDEX.tar.gz, Packages.xz), finds
// the pinned name and version, downloads the package and verifies it:
//   - Alpine: the index's C: checksum (Q1 + base64 SHA-1 of the package's
//     gzip'd control segment), then .PKGINFO's datahash against the SHA-256
//     of the data segment;
//   - Debian: the index's SHA256 of the .deb.
//
// Open takes a package file given by hand (air-gapped builds): its own
// metadata must name the pinned package and version, and its SHA-256 is
// recorded. The index itself is trusted as far as the https download it came
// from (its signature is not verified).
package distropkg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// Format is a package format.
type Format string

const (
	APK Format = "apk" // Alpine
	Deb Format = "deb" // Debian
)

// Want is the package a definition pins.
type Want struct {
	Format  Format
	Name    string // sqlite-libs, libsqlite3-0
	Version string // 3.48.0-r4, 3.46.1-7+deb13u2
	Arch    string // the distribution's name: x86_64 (Alpine), amd64 (Debian)
}

func (w Want) String() string { return fmt.Sprintf("%s %s (%s)", w.Name, w.Version, w.Arch) }

// Package is a verified package and its files.
type Package struct {
	Want
	// Origin is the URL or file the package was read from; Index the index
	// it was verified against ("" for a file given by hand).
	Origin string `json:"origin"`
	Index  string `json:"index,omitempty"`
	SHA256 string `json:"sha256"` // of the package file
	// Verified says, in words, what the package was checked against.
	Verified []string `json:"verified"`
	// Library is where the package puts libsqlite3.so.0, as an absolute path
	// in the image (a link or the file), e.g. /usr/lib/libsqlite3.so.0.
	Library string `json:"library"`

	data []byte // the data tar, uncompressed
}

// Limits on what is read.
const (
	maxPackage = upstream.MaxInputBytes // a package file
	maxData    = 256 << 20              // its data, unpacked
)

// Arch is the distribution's architecture name of an image platform.
func Arch(f Format, p v1.Platform) (string, error) {
	key := p.Architecture
	if p.Architecture == "arm" {
		key += "/" + p.Variant
	}
	names := map[Format]map[string]string{
		APK: {"amd64": "x86_64", "arm64": "aarch64", "386": "x86", "arm/v7": "armv7", "arm/v6": "armhf",
			"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "loong64": "loongarch64"},
		Deb: {"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm/v7": "armhf", "arm/v5": "armel",
			"ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64", "loong64": "loong64"},
	}[f]
	if a, ok := names[key]; ok {
		return a, nil
	}
	return "", fmt.Errorf("no %s architecture for platform %s", f, p)
}

// IndexURL is where the index of repository lives: Alpine
// <repository>/<arch>/APKINDEX.tar.gz for a repository such as
// https://dl-cdn.alpinelinux.org/alpine/v3.21/main; Debian
// <repository>/binary-<arch>/Packages.xz for a repository such as
// https://deb.debian.org/debian/dists/trixie/main.
func IndexURL(f Format, repository, arch string) (string, error) {
	repository = strings.TrimRight(repository, "/")
	switch f {
	case APK:
		return repository + "/" + arch + "/APKINDEX.tar.gz", nil
	case Deb:
		if _, _, ok := debianRoot(repository); !ok {
			return "", fmt.Errorf("Debian repository %q: want <archive>/dists/<suite>/<component>, e.g. https://deb.debian.org/debian/dists/trixie/main", repository)
		}
		return repository + "/binary-" + arch + "/Packages.xz", nil
	}
	return "", fmt.Errorf("unknown package format %q", f)
}

// debianRoot splits <archive>/dists/<suite>/<component> at /dists/.
func debianRoot(repository string) (root, rest string, ok bool) {
	i := strings.LastIndex(repository, "/dists/")
	if i <= 0 || strings.Count(repository[i+len("/dists/"):], "/") != 1 {
		return "", "", false
	}
	return repository[:i], repository[i+1:], true
}

// Fetch downloads want from repository (see IndexURL) and verifies it
// against the index. client nil: one with upstream.DefaultTimeout. http:// is
// accepted for loopback hosts only (test mirrors).
func Fetch(ctx context.Context, repository string, want Want, client *http.Client) (*Package, error) {
	if err := want.check(); err != nil {
		return nil, err
	}
	index, err := IndexURL(want.Format, repository, want.Arch)
	if err != nil {
		return nil, err
	}
	rd := &upstream.Reader{Client: client}
	ixData, err := rd.Read(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("the index of %s: %w", want.Name, err)
	}
	var p *Package
	switch want.Format {
	case APK:
		p, err = fetchAPK(ctx, rd, strings.TrimRight(repository, "/"), index, ixData, want)
	case Deb:
		p, err = fetchDeb(ctx, rd, strings.TrimRight(repository, "/"), index, ixData, want)
	}
	if err != nil {
		return nil, err
	}
	p.Index = index
	return p, nil
}

// Open reads a package file given by hand. Its own metadata (.PKGINFO, the
// .deb's control file) must name want's package, version and architecture.
func Open(file string, want Want) (*Package, error) {
	if err := want.check(); err != nil {
		return nil, err
	}
	data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	var p *Package
	switch {
	case want.Format == APK && bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		p, err = readAPK(file, data, want, "")
	case want.Format == Deb && bytes.HasPrefix(data, []byte(arMagic)):
		p, err = readDeb(file, data, want)
	default:
		return nil, fmt.Errorf("%s: not an .%s package (the image is %s's)", file, want.Format, want.Format.distro())
	}
	if err != nil {
		return nil, err
	}
	p.Verified = append([]string{"given by hand (--distro-package): its own metadata names " + want.Name + " " + want.Version}, p.Verified...)
	return p, nil
}

func (f Format) distro() string {
	if f == APK {
		return "Alpine"
	}
	return "Debian"
}

func (w Want) check() error {
	if w.Format != APK && w.Format != Deb {
		return fmt.Errorf("unknown package format %q", w.Format)
	}
	if w.Name == "" || w.Version == "" || w.Arch == "" {
		return fmt.Errorf("package %q version %q arch %q: name, version and architecture are all needed", w.Name, w.Version, w.Arch)
	}
	return nil
}

func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	if st.Size() > maxPackage {
		return nil, fmt.Errorf("%s: %d bytes, larger than %d MiB; not a SQLite package", file, st.Size(), maxPackage>>20)
	}
	return os.ReadFile(file)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// metadataMismatch names the file and every field that differs.
func metadataMismatch(file string, want Want, name, version, arch string, archOK ...string) error {
	var diffs []string
	if name != want.Name {
		diffs = append(diffs, fmt.Sprintf("package %q, want %q", name, want.Name))
	}
	if version != want.Version {
		diffs = append(diffs, fmt.Sprintf("version %q, want %q", version, want.Version))
	}
	if arch != want.Arch && !contains(archOK, arch) {
		diffs = append(diffs, fmt.Sprintf("architecture %q, want %q", arch, want.Arch))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", file, strings.Join(diffs, "; "))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var errNoLibrary = errors.New("no libsqlite3.so.0 among its files")
