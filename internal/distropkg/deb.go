package distropkg

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// fetchDeb finds want in a Packages.xz and downloads <archive>/<Filename>.
func fetchDeb(ctx context.Context, rd *upstream.Reader, repository, index string, ixData []byte, want Want) (*Package, error) {
	pkgs, err := upstream.ParsePackagesXZ(index, ixData)
	if err != nil {
		return nil, err
	}
	var stanza *upstream.DebPackage
	var others []string
	for i, p := range pkgs {
		if p.Package != want.Name || p.Architecture != want.Arch && p.Architecture != "all" {
			continue
		}
		if p.Version == want.Version {
			stanza = &pkgs[i]
			break
		}
		others = append(others, p.Version)
	}
	if stanza == nil {
		return nil, notInIndex(index, want, others)
	}
	if len(stanza.SHA256) != 64 || stanza.Filename == "" || strings.Contains(stanza.Filename, "..") {
		return nil, fmt.Errorf("%s:%d: %s %s: Filename %q, SHA256 %q: want a pool path and 64 hex digits", index, stanza.Line, want.Name, want.Version, stanza.Filename, stanza.SHA256)
	}
	root, _, _ := debianRoot(repository)
	url := root + "/" + strings.TrimPrefix(stanza.Filename, "/")
	data, err := rd.Read(ctx, url)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(data); got != stanza.SHA256 {
		return nil, fmt.Errorf("%s: SHA-256 = %s, want %s (%s:%d)", url, got, stanza.SHA256, index, stanza.Line)
	}
	p, err := readDeb(url, data, want)
	if err != nil {
		return nil, err
	}
	p.Verified = append([]string{fmt.Sprintf("%s:%d: SHA256 %s", index, stanza.Line, stanza.SHA256)}, p.Verified...)
	return p, nil
}

// readDeb reads a .deb: an ar archive of debian-binary, control.tar.* and
// data.tar.* (deb(5)).
func readDeb(origin string, data []byte, want Want) (*Package, error) {
	members, err := readAr(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", origin, err)
	}
	if len(members) < 3 || members[0].name != "debian-binary" || !strings.HasPrefix(string(members[0].data), "2.") {
		return nil, fmt.Errorf("%s: not a Debian binary package (want debian-binary 2.x, control.tar.*, data.tar.*)", origin)
	}
	p := &Package{Want: want, Origin: origin, SHA256: sha256Hex(data)}
	var control []byte
	for _, m := range members[1:] {
		switch {
		case strings.HasPrefix(m.name, "control.tar"):
			t, err := decompress(m.name, m.data)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %v", origin, m.name, err)
			}
			if control, err = tarFile(t, "control"); err != nil {
				return nil, fmt.Errorf("%s: %s: %v", origin, m.name, err)
			}
		case strings.HasPrefix(m.name, "data.tar"):
			if p.data, err = decompress(m.name, m.data); err != nil {
				return nil, fmt.Errorf("%s: %s: %v", origin, m.name, err)
			}
		}
	}
	if control == nil || p.data == nil {
		return nil, fmt.Errorf("%s: no control.tar.* or data.tar.* member", origin)
	}
	f := controlFields(control)
	if err := metadataMismatch(origin+": control", want, f["Package"], f["Version"], f["Architecture"], "all"); err != nil {
		return nil, err
	}
	p.Verified = append(p.Verified, fmt.Sprintf("control: Package %s, Version %s, Architecture %s", f["Package"], f["Version"], f["Architecture"]))
	if p.Library, err = findLibrary(p.data); err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	return p, nil
}

const arMagic = "!<arch>\n"

type arMember struct {
	name string
	data []byte
}

// readAr reads the common ar format deb(5) prescribes: the magic, then
// 60-byte headers (name, mtime, uid, gid, mode, size, "`\n"), each member
// padded to an even offset. Names may end in GNU's "/".
func readAr(data []byte) ([]arMember, error) {
	if !bytes.HasPrefix(data, []byte(arMagic)) {
		return nil, fmt.Errorf("not an ar archive")
	}
	var out []arMember
	off := len(arMagic)
	for off < len(data) {
		if len(data)-off < 60 {
			return nil, fmt.Errorf("ar member %d: truncated header", len(out)+1)
		}
		h := data[off : off+60]
		if string(h[58:60]) != "`\n" {
			return nil, fmt.Errorf("ar member %d: bad header", len(out)+1)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || size < 0 || size > int64(len(data)-off-60) {
			return nil, fmt.Errorf("ar member %d: size %q does not fit the file", len(out)+1, strings.TrimSpace(string(h[48:58])))
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(h[:16])), "/")
		off += 60
		out = append(out, arMember{name: name, data: data[off : off+int(size)]})
		off += int(size) + int(size%2)
	}
	return out, nil
}

// decompress unpacks a member by its name's suffix.
func decompress(name string, b []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".xz"):
		zr, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case strings.HasSuffix(name, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case strings.HasSuffix(name, ".tar"):
		r = bytes.NewReader(b)
	default:
		return nil, fmt.Errorf("compression not supported (want .xz, .gz or none)")
	}
	return readLimited(r, maxData)
}

// tarFile returns the contents of the regular file name (./name too).
func tarFile(t []byte, name string) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(t))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s file", name)
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "./") == name && h.Typeflag == tar.TypeReg {
			return readLimited(tr, 1<<20)
		}
	}
}

// controlFields reads the single stanza of a control file (continuation
// lines are skipped).
func controlFields(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}
