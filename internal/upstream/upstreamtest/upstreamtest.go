// Package upstreamtest builds upstream inputs in their real formats for
// tests: Alpine's signed APKINDEX.tar.gz, Debian's Packages.xz and
// sqlite.org's download page.
package upstreamtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
)

// APK is one package stanza of an APKINDEX.
type APK struct {
	Name, Version, Origin string
	Provides              []string
	Depends               []string
	// Checksum is the C: value; "" writes a placeholder (Q1 and digits).
	Checksum string
	Size     int // S:, the .apk's size; 0 writes a placeholder
}

// SQLiteLibs is Alpine's sqlite-libs at version (e.g. 3.48.0-r4).
func SQLiteLibs(version string) APK {
	return APK{Name: "sqlite-libs", Version: version, Origin: "sqlite",
		Provides: []string{"so:libsqlite3.so.0=0.8.6"}, Depends: []string{"so:libc.musl-x86_64.so.1"}}
}

// AlpineNeighbours are packages found around sqlite-libs in main/.
func AlpineNeighbours(sqliteVersion string) []APK {
	return []APK{
		{Name: "musl", Version: "1.2.5-r9", Origin: "musl", Provides: []string{"so:libc.musl-x86_64.so.1=1"}},
		{Name: "sqlite", Version: sqliteVersion, Origin: "sqlite", Provides: []string{"cmd:sqlite3=" + sqliteVersion},
			Depends: []string{"so:libc.musl-x86_64.so.1", "so:libreadline.so.8", "so:libsqlite3.so.0", "so:libz.so.1"}},
		{Name: "zlib", Version: "1.3.1-r2", Origin: "zlib", Provides: []string{"so:libz.so.1=1.3.1"}},
	}
}

// AlpineBranch is an index of a branch whose sqlite-libs is at version.
func AlpineBranch(version string) []APK {
	n := AlpineNeighbours(version)
	return []APK{n[0], n[1], SQLiteLibs(version), n[2]}
}

// APKIndexText is the APKINDEX file: K:value stanzas, blank-line separated.
func APKIndexText(pkgs ...APK) []byte {
	var b strings.Builder
	for i, p := range pkgs {
		if p.Checksum != "" {
			fmt.Fprintf(&b, "C:%s\n", p.Checksum)
		} else {
			fmt.Fprintf(&b, "C:Q1%027d=\n", i)
		}
		if p.Size == 0 {
			p.Size = 1000 + i
		}
		if p.Name != "" {
			fmt.Fprintf(&b, "P:%s\n", p.Name)
		}
		if p.Version != "" {
			fmt.Fprintf(&b, "V:%s\n", p.Version)
		}
		fmt.Fprintf(&b, "A:x86_64\nS:%d\nI:%d\nT:%s package\nU:https://example.org/%s\nL:MIT\n", p.Size, 4000+i, p.Name, p.Name)
		if p.Origin != "" {
			fmt.Fprintf(&b, "o:%s\n", p.Origin)
		}
		fmt.Fprintf(&b, "m:Maintainer <m@example.org>\nt:1739000000\nc:%040x\n", i)
		if len(p.Depends) > 0 {
			fmt.Fprintf(&b, "D:%s\n", strings.Join(p.Depends, " "))
		}
		if len(p.Provides) > 0 {
			fmt.Fprintf(&b, "p:%s\n", strings.Join(p.Provides, " "))
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// APKIndexTarGz is a signed APKINDEX.tar.gz as abuild-sign writes it: a
// gzip member holding a tar with the .SIGN.RSA entry and no tar end blocks
// (abuild-tar --cut), then a gzip member holding a tar with DESCRIPTION and
// APKINDEX.
func APKIndexTarGz(description string, pkgs ...APK) []byte {
	return APKIndexArchive(false, description, APKIndexText(pkgs...))
}

// APKIndexArchive builds the archive around any APKINDEX text; withEnd
// leaves the tar end blocks in the signature member (as a plain `tar c`
// would).
func APKIndexArchive(withEnd bool, description string, index []byte) []byte {
	var out bytes.Buffer
	sig := bytes.Repeat([]byte{0xA5}, 512) // an RSA signature's size; not verified
	out.Write(gzipTar(!withEnd, entry{".SIGN.RSA.alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub", sig}))
	out.Write(gzipTar(false, entry{"DESCRIPTION", []byte(description)}, entry{"APKINDEX", index}))
	return out.Bytes()
}

type entry struct {
	name string
	body []byte
}

func gzipTar(cut bool, entries ...entry) []byte {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		must(tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg,
			ModTime: time.Unix(1739000000, 0), Uname: "buildozer", Gname: "buildozer", Format: tar.FormatUSTAR}))
		_, err := tw.Write(e.body)
		must(err)
	}
	if cut {
		must(tw.Flush()) // pads the entry, writes no end blocks
	} else {
		must(tw.Close())
	}
	var gb bytes.Buffer
	zw := gzip.NewWriter(&gb)
	_, err := zw.Write(tb.Bytes())
	must(err)
	must(zw.Close())
	return gb.Bytes()
}

// DebStanza is a Packages stanza of pkg at version, with the fields a real
// one has (a multi-line Description included).
func DebStanza(pkg, version string) string {
	return fmt.Sprintf(`Package: %[1]s
Source: sqlite3
Version: %[2]s
Installed-Size: 1741
Maintainer: Laszlo Boszormenyi (GCS) <gcs@debian.org>
Architecture: amd64
Multi-Arch: same
Depends: libc6 (>= 2.38)
Description: SQLite 3 shared library
 SQLite is a C library that implements an SQL database engine.
 .
 This package contains the shared library.
Homepage: https://www.sqlite.org/
Section: libs
Priority: optional
Filename: pool/main/s/sqlite3/%[1]s_%[2]s_amd64.deb
Size: 823456
SHA256: %064x
`, pkg, version, len(pkg)+len(version))
}

// DebianSuite is a Packages file whose libsqlite3-0 is at version.
func DebianSuite(version string) []byte {
	return []byte(strings.Join([]string{
		DebStanza("libc6", "2.41-12"), DebStanza("libsqlite3-0", version), DebStanza("sqlite3", version),
	}, "\n"))
}

// XZ compresses data with the xz format Debian uses for Packages.xz.
func XZ(data []byte) []byte {
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	must(err)
	_, err = w.Write(data)
	must(err)
	must(w.Close())
	return b.Bytes()
}

// Row is a line of the download page's machine-readable block.
type Row struct {
	Version, Path string
	Size          int64
	SHA3          string
}

// SQLiteRelease is the rows of one release as sqlite.org lists them: the
// amalgamation and autoconf archives (hashes derived from seed) plus the
// products the watch ignores.
func SQLiteRelease(version string, year int, seed byte) []Row {
	num := versionNumber(version)
	h := func(k byte) string { return strings.Repeat(fmt.Sprintf("%02x", seed^k), 32) }
	return []Row{
		{version, fmt.Sprintf("%d/sqlite-amalgamation-%d.zip", year, num), 2_912_345, h(1)},
		{version, fmt.Sprintf("%d/sqlite-autoconf-%d.tar.gz", year, num), 3_245_678, h(2)},
		{version, fmt.Sprintf("%d/sqlite-doc-%d.zip", year, num), 10_998_877, h(3)},
		{version, fmt.Sprintf("%d/sqlite-dll-win-x64-%d.zip", year, num), 1_333_444, h(4)},
		{version, fmt.Sprintf("%d/sqlite-tools-linux-x64-%d.zip", year, num), 4_555_666, h(5)},
	}
}

func versionNumber(v string) int {
	var a, b, c int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &a, &b, &c); err != nil {
		panic(err)
	}
	return a*1000000 + b*10000 + c*100
}

// DownloadPage is an HTML download page carrying rows in its
// machine-readable comment block, as sqlite.org writes it.
func DownloadPage(rows ...Row) []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html><head>
<meta http-equiv="content-type" content="text/html; charset=UTF-8">
<title>SQLite Download Page</title>
</head><body>
<h1 align="center">SQLite Download Page</h1>
<table width="100%" cellpadding="5" cellspacing="0">
<tr><td>Source Code</td></tr>
</table>
<!-- Download product data for scripts to read
PRODUCT,VERSION,RELATIVE-URL,SIZE-IN-BYTES,SHA3-HASH
`)
	for _, r := range rows {
		fmt.Fprintf(&b, "PRODUCT,%s,%s,%d,%s\n", r.Version, r.Path, r.Size, r.SHA3)
	}
	b.WriteString(`-->
<h2>Build Product Names and Info</h2>
<p>The version is encoded so that filenames sort in order of increasing version number.</p>
</body></html>
`)
	return []byte(b.String())
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
