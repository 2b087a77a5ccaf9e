// Package image assembles the hardened image: the base pulled by digest, one
// graft layer appended without touching the base's layers, and a config that
// records what went in (user, environment, labels, annotations, history).
package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
)

// Base is a base image resolved to a digest once, and what the graft needs
// to know about its file system.
type Base struct {
	Ref      name.Reference // as asked for (a tag, or a digest)
	Digest   name.Digest    // what was used: repository@sha256:... of the platform's image
	Index    string         // digest of the multi-platform index the image came from, if any
	Platform v1.Platform
	Image    v1.Image
}

// Pull resolves ref for one platform and returns the image by digest.
func Pull(ctx context.Context, ref string, platform v1.Platform, opts ...remote.Option) (*Base, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("base %q: %w", ref, err)
	}
	opts = append(opts, remote.WithContext(ctx), remote.WithPlatform(platform))
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", ref, err)
	}
	b := &Base{Ref: r, Platform: platform}
	if desc.MediaType.IsIndex() {
		b.Index = desc.Digest.String()
	}
	img, err := desc.Image() // picks the platform from an index
	if err != nil {
		return nil, fmt.Errorf("base %s (%s): %w", ref, platform, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	b.Digest = r.Context().Digest(d.String())
	// Everything from here on reads the image by digest: a tag that moves
	// mid-build cannot mix two bases.
	if b.Image, err = remote.Image(b.Digest, opts...); err != nil {
		return nil, fmt.Errorf("base %s: %w", b.Digest, err)
	}
	return b, nil
}

// Scan is what the graft needs from the base's flattened file system.
type Scan struct {
	Passwd, Group []byte          // /etc/passwd and /etc/group, nil if absent
	SetID         []SetIDFile     // regular files with set-uid or set-gid bits
	Exists        map[string]bool // every path, for whiteouts of things that are there
}

// SetIDFile is a set-id program of the base.
type SetIDFile struct {
	Path string
	Mode fs.FileMode // the raw Unix mode bits (04755 for a set-uid program)
	Data []byte
}

// ScanBase reads the flattened file system of img once.
func ScanBase(img v1.Image) (*Scan, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	s := &Scan{Exists: map[string]bool{}}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the base's file system: %w", err)
		}
		p := "/" + strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		s.Exists[p] = true
		if h.Typeflag != tar.TypeReg {
			continue
		}
		switch {
		case p == "/etc/passwd" || p == "/etc/group":
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			if p == "/etc/passwd" {
				s.Passwd = data
			} else {
				s.Group = data
			}
		case h.Mode&(04000|02000) != 0:
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			s.SetID = append(s.SetID, SetIDFile{Path: p, Mode: fs.FileMode(h.Mode & 07777), Data: data})
		}
	}
	sort.Slice(s.SetID, func(i, j int) bool { return s.SetID[i].Path < s.SetID[j].Path })
	return s, nil
}

// packageManagers are the paths removed by hardening.remove_package_manager,
// per libc (Alpine's apk; Debian's apt and dpkg). Only those present are hidden.
var packageManagers = map[string][]string{
	imagedef.Musl:  {"/sbin/apk", "/etc/apk", "/lib/apk", "/usr/share/apk", "/var/cache/apk"},
	imagedef.Glibc: {"/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/apt-cache", "/usr/bin/apt-config", "/usr/bin/apt-key", "/usr/bin/apt-mark", "/usr/bin/dpkg", "/usr/bin/dpkg-deb", "/usr/bin/dpkg-query", "/etc/apt", "/var/lib/apt", "/var/lib/dpkg", "/var/cache/apt"},
}

// Hardening turns the definition's switches into layer content: set-id bits
// cleared by rewriting those files without them (the program stays, the
// privilege goes: LD_PRELOAD is ignored for set-id programs), the package
// manager hidden by whiteouts, and the image's user added to /etc/passwd and
// /etc/group when the base lacks it.
func Hardening(def *imagedef.Definition, s *Scan) (extra []layer.File, whiteouts []string, err error) {
	if def.Hardening.StripSetuid {
		for _, f := range s.SetID {
			extra = append(extra, layer.File{Path: f.Path, Mode: f.Mode & 0o755, Data: f.Data})
		}
	}
	if def.Hardening.RemovePackageManager {
		for _, p := range packageManagers[def.Libc] {
			if s.Exists[p] {
				whiteouts = append(whiteouts, p)
			}
		}
	}
	if def.User.UID != 0 {
		passwd, group, err := withUser(s.Passwd, s.Group, def.User)
		if err != nil {
			return nil, nil, err
		}
		if passwd != nil {
			extra = append(extra, layer.File{Path: "/etc/passwd", Mode: 0o644, Data: passwd})
		}
		if group != nil {
			extra = append(extra, layer.File{Path: "/etc/group", Mode: 0o644, Data: group})
		}
	}
	return extra, whiteouts, nil
}

// withUser returns passwd and group with the user added, or nil for a file
// that already has it. A name taken by another id is an error.
func withUser(passwd, group []byte, u imagedef.User) ([]byte, []byte, error) {
	home := "/home/" + u.Name
	addP, err := addEntry(passwd, "/etc/passwd", u.Name, u.UID,
		fmt.Sprintf("%s:x:%d:%d:%s:%s:/sbin/nologin", u.Name, u.UID, u.GID, u.Name, home), 2)
	if err != nil {
		return nil, nil, err
	}
	addG, err := addEntry(group, "/etc/group", u.Name, u.GID, fmt.Sprintf("%s:x:%d:", u.Name, u.GID), 2)
	if err != nil {
		return nil, nil, err
	}
	return addP, addG, nil
}

func addEntry(file []byte, what, name string, id int, line string, idField int) ([]byte, error) {
	sc := bufio.NewScanner(bytes.NewReader(file))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) <= idField {
			continue
		}
		n, _ := strconv.Atoi(f[idField])
		switch {
		case f[0] == name && n == id:
			return nil, nil // already there
		case f[0] == name:
			return nil, fmt.Errorf("base %s: %q has id %d, want %d", what, name, n, id)
		case n == id && f[idField] != "":
			// The id is taken under another name: use that entry as it is.
			return nil, nil
		}
	}
	out := append([]byte{}, file...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, line+"\n"...), nil
}
