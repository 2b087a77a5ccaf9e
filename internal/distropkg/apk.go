package distropkg

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// fetchAPK finds want in an APKINDEX.tar.gz and downloads
// <repository>/<arch>/<name>-<version>.apk.
func fetchAPK(ctx context.Context, rd *upstream.Reader, repository, index string, ixData []byte, want Want) (*Package, error) {
	ix, err := upstream.ParseAPKIndexArchive(index, ixData)
	if err != nil {
		return nil, err
	}
	var stanza *upstream.APKPackage
	var others []string
	for i, p := range ix.Packages {
		if p.Name != want.Name {
			continue
		}
		if p.Version == want.Version {
			stanza = &ix.Packages[i]
			break
		}
		others = append(others, p.Version)
	}
	if stanza == nil {
		return nil, notInIndex(index, want, others)
	}
	if !strings.HasPrefix(stanza.Checksum, "Q1") {
		return nil, fmt.Errorf("%s:%d: %s %s has checksum C:%q, want Q1 and a base64 SHA-1", index, stanza.Line, want.Name, want.Version, stanza.Checksum)
	}
	url := repository + "/" + want.Arch + "/" + want.Name + "-" + want.Version + ".apk"
	data, err := rd.Read(ctx, url)
	if err != nil {
		return nil, err
	}
	p, err := readAPK(url, data, want, stanza.Checksum)
	if err != nil {
		return nil, err
	}
	p.Verified = append([]string{fmt.Sprintf("%s:%d: C:%s (SHA-1 of the control segment)", index, stanza.Line, stanza.Checksum)}, p.Verified...)
	return p, nil
}

func notInIndex(index string, want Want, others []string) error {
	if len(others) == 0 {
		return fmt.Errorf("%s: no package %s in the index", index, want.Name)
	}
	return fmt.Errorf("%s: no %s %s in the index (it has %s %s); the pinned version has left the index: update the definition's distro_sqlite, or give the package with --distro-package FILE",
		index, want.Name, want.Version, want.Name, strings.Join(others, ", "))
}

// readAPK verifies an .apk (v2: gzip members — signatures, the control
// segment holding .PKGINFO, then the data segment) and keeps its data.
// checksum, when not empty, is the index's C: value for it.
func readAPK(origin string, data []byte, want Want, checksum string) (*Package, error) {
	members, err := gzipMembers(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not an .apk: %v", origin, err)
	}
	ctl := -1
	var pkginfo []byte
	for i, m := range members {
		names, info, err := tarNames(data[m[0]:m[1]], ".PKGINFO")
		if err != nil {
			return nil, fmt.Errorf("%s: gzip member %d: %v", origin, i+1, err)
		}
		if info != nil {
			ctl, pkginfo = i, info
			break
		}
		if len(names) == 0 || !strings.HasPrefix(names[0], ".SIGN.") {
			return nil, fmt.Errorf("%s: gzip member %d holds %v before the control segment, want only .SIGN.* signatures", origin, i+1, names)
		}
	}
	if ctl < 0 {
		return nil, fmt.Errorf("%s: no .PKGINFO: not an .apk (v2) package", origin)
	}
	control := data[members[ctl][0]:members[ctl][1]]
	p := &Package{Want: want, Origin: origin, SHA256: sha256Hex(data)}
	if checksum != "" {
		sum := sha1.Sum(control)
		if got := "Q1" + base64.StdEncoding.EncodeToString(sum[:]); got != checksum {
			return nil, fmt.Errorf("%s: checksum of the control segment = %s, want %s (the index's C:)", origin, got, checksum)
		}
	}
	info := parsePKGINFO(pkginfo)
	if err := metadataMismatch(origin+": .PKGINFO", want, info["pkgname"], info["pkgver"], info["arch"], "noarch"); err != nil {
		return nil, err
	}
	if ctl == len(members)-1 {
		return nil, fmt.Errorf("%s: no data segment after the control segment", origin)
	}
	dataSeg := data[members[ctl][1]:]
	if info["datahash"] == "" {
		return nil, fmt.Errorf("%s: .PKGINFO has no datahash: the data segment cannot be verified", origin)
	}
	if got := sha256Hex(dataSeg); got != info["datahash"] {
		return nil, fmt.Errorf("%s: SHA-256 of the data segment = %s, want %s (.PKGINFO datahash)", origin, got, info["datahash"])
	}
	p.Verified = append(p.Verified, ".PKGINFO datahash "+info["datahash"]+" (SHA-256 of the data segment)")
	zr, err := gzip.NewReader(bytes.NewReader(dataSeg))
	if err != nil {
		return nil, fmt.Errorf("%s: data segment: %v", origin, err)
	}
	if p.data, err = readLimited(zr, maxData); err != nil {
		return nil, fmt.Errorf("%s: data segment: %v", origin, err)
	}
	if p.Library, err = findLibrary(p.data); err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	return p, nil
}

// gzipMembers returns the [start, end) byte ranges of the gzip members of
// data. A bytes.Reader is an io.ByteReader, so the decompressor reads no
// further than each member's trailer.
func gzipMembers(data []byte) ([][2]int, error) {
	br := bytes.NewReader(data)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	var out [][2]int
	start := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, io.LimitReader(zr, maxData+1)); err != nil {
			return nil, fmt.Errorf("gzip member %d: %v", len(out)+1, err)
		}
		end := len(data) - br.Len()
		out = append(out, [2]int{start, end})
		start = end
		if err := zr.Reset(br); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("after gzip member %d: %v", len(out), err)
		}
	}
}

// tarNames lists the entries of one gzip'd tar member (which may lack its
// end blocks, as Alpine's signature and control segments do) and returns
// the contents of the entry named want, if any.
func tarNames(member []byte, want string) ([]string, []byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(member))
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(zr)
	var names []string
	var body []byte
	for {
		h, err := tr.Next()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) && len(names) > 0 {
			return names, body, nil
		}
		if err != nil {
			return nil, nil, err
		}
		names = append(names, h.Name)
		if h.Name == want {
			if body, err = readLimited(tr, 1<<20); err != nil {
				return nil, nil, err
			}
		}
	}
}

// parsePKGINFO reads "key = value" lines; comments start with #.
func parsePKGINFO(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, seen := out[k]; !seen { // depend, provides repeat; the ones used here do not
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("unpacks to more than %d MiB", limit>>20)
	}
	return b, nil
}
