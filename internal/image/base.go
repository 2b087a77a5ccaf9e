// Package image assembles the hardened image: the base pulled by digest, one
// graft layer appended without touching the base's layers, and a config that
// records what went in (user, environment, labels, annotations, history).
package image

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
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

// Scan is what the graft needs from the base's flattened file system, read
// through imagefs: every layer verified against its digest before anything
// in it is used, names confined to the image, the unpacked size capped.
// Close releases it (set-id contents are read from it until then).
type Scan struct {
	Passwd, Group Account
	// SetID are the regular files with a set-user- or set-group-ID bit or a
	// file capability (security.capability), at their real paths, every name
	// of a hard-linked one, sorted by path.
	SetID []SetIDFile
	files *imagefs.FS
}

// Account is /etc/passwd or /etc/group of the base.
type Account struct {
	// Path is the real path: /etc/passwd, or where its symlink leads inside
	// the image (resolved as the container resolves it, never on the host).
	Path string
	Data []byte
	Err  error // why it cannot be extended: missing, a dangling symlink, not a regular file, too large
}

// SetIDFile is a privileged program of the base.
type SetIDFile struct {
	Path       string
	Mode       fs.FileMode // the raw Unix mode bits (04755 for a set-uid program)
	Capability bool        // it carries file capabilities
	Size       int64
	Open       func() (io.ReadCloser, error)
}

// maxAccountSize bounds what is read of /etc/passwd and /etc/group.
const maxAccountSize = 16 << 20

// ScanBase reads the flattened file system of img once.
func ScanBase(img v1.Image, lim imagefs.Limits) (*Scan, error) {
	files, err := imagefs.Open(img, lim)
	if err != nil {
		return nil, err
	}
	s := &Scan{files: files, Passwd: readAccount(files, "/etc/passwd"), Group: readAccount(files, "/etc/group")}
	err = files.Walk(func(e *imagefs.Entry) error {
		_, capability := e.Xattrs[imagefs.CapabilityXattr]
		if !e.Mode.IsRegular() || (e.Mode&(fs.ModeSetuid|fs.ModeSetgid) == 0 && !capability) {
			return nil
		}
		r, err := e.Open()
		if err != nil {
			return err
		}
		s.SetID = append(s.SetID, SetIDFile{Path: e.Path, Mode: fs.FileMode(fsutil.UnixMode(e.Mode)), Capability: capability, Size: e.Size,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(r, 0, e.Size)), nil }})
		return nil
	})
	if err != nil {
		files.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the base's files.
func (s *Scan) Close() error { return s.files.Close() }

// readAccount reads an account file, following a symlink inside the image:
// the user is added where the base's programs read it, and the base's users
// stay. What cannot be read is recorded, not guessed around.
func readAccount(files *imagefs.FS, p string) Account {
	a := Account{Path: p}
	l, err := files.Lstat(p)
	if err != nil {
		a.Err = fmt.Errorf("the base has no %s", p)
		return a
	}
	e, err := files.Stat(p)
	if err != nil {
		a.Err = fmt.Errorf("the base's %s is a symlink to %q, which does not lead to a file in the image: %v", p, l.Link, err)
		return a
	}
	a.Path = e.Path
	switch {
	case !e.Mode.IsRegular():
		a.Err = fmt.Errorf("the base's %s (%s) is not a regular file (%v)", p, e.Path, e.Mode.Type())
	case e.Size > maxAccountSize:
		a.Err = fmt.Errorf("the base's %s (%s) has %d bytes, more than %d", p, e.Path, e.Size, maxAccountSize)
	default:
		if a.Data, err = files.ReadFile(e.Path, maxAccountSize); err != nil {
			a.Err = fmt.Errorf("the base's %s: %w", p, err)
		}
	}
	return a
}

// Exists reports whether p is in the base (a symlink counts; its parents
// are followed).
func (s *Scan) Exists(p string) bool {
	_, err := s.files.Lstat(p)
	return err == nil
}

// real is the real path of p in the base (symlinked parents followed, the
// last component not), if p exists.
func (s *Scan) real(p string) (string, bool) {
	e, err := s.files.Lstat(p)
	if err != nil {
		return "", false
	}
	return e.Path, true
}

// CheckParents refuses a base in which a parent directory of a path the
// graft layer writes is a symlink: the layer's directory entry would replace
// the symlink with a directory, hiding whatever the base keeps behind it.
func (s *Scan) CheckParents(paths ...string) error {
	for _, p := range paths {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			e, err := s.files.Lstat(d)
			if err == nil && e.Mode&fs.ModeSymlink != 0 {
				return fmt.Errorf("%s is a symlink to %q in the base: the graft layer would replace it with a directory to write %s", d, e.Link, p)
			}
		}
	}
	return nil
}

// packageManagers are the paths removed by hardening.remove_package_manager,
// per libc (Alpine's apk; Debian's apt and dpkg). Only those present are hidden.
var packageManagers = map[string][]string{
	imagedef.Musl:  {"/sbin/apk", "/etc/apk", "/lib/apk", "/usr/share/apk", "/var/cache/apk"},
	imagedef.Glibc: {"/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/apt-cache", "/usr/bin/apt-config", "/usr/bin/apt-key", "/usr/bin/apt-mark", "/usr/bin/dpkg", "/usr/bin/dpkg-deb", "/usr/bin/dpkg-query", "/etc/apt", "/var/lib/apt", "/var/lib/dpkg", "/var/cache/apt"},
}

// Hardening turns the definition's switches into layer content: set-id bits
// and file capabilities cleared by rewriting those files without them (the
// program stays, the privilege goes: LD_PRELOAD is ignored for privileged
// programs; every name of a hard-linked file is rewritten, since a name left
// alone keeps the privileged file), the package manager hidden by whiteouts,
// and the image's user added to /etc/passwd and /etc/group when the base
// lacks it. A base whose account files cannot be read is refused rather
// than given a one-line file that would drop every user.
func Hardening(def *imagedef.Definition, s *Scan) (extra []layer.File, whiteouts []string, err error) {
	if def.Hardening.StripSetuid {
		for _, f := range s.SetID {
			extra = append(extra, layer.File{Path: f.Path, Mode: fs.FileMode(f.Mode & 0o755), Open: f.Open, Size: f.Size})
		}
	}
	if def.Hardening.RemovePackageManager {
		seen := map[string]bool{}
		for _, p := range packageManagers[def.Libc] {
			if real, ok := s.real(p); ok && !seen[real] {
				seen[real] = true
				whiteouts = append(whiteouts, real)
			}
		}
	}
	if def.User.UID != 0 {
		for _, a := range []Account{s.Passwd, s.Group} {
			if a.Err != nil {
				return nil, nil, fmt.Errorf("%w: cannot add the image's user %s (%d)", a.Err, def.User.Name, def.User.UID)
			}
		}
		passwd, group, err := withUser(s.Passwd.Data, s.Group.Data, def.User)
		if err != nil {
			return nil, nil, err
		}
		if passwd != nil {
			extra = append(extra, layer.File{Path: s.Passwd.Path, Mode: 0o644, Data: passwd})
		}
		if group != nil {
			extra = append(extra, layer.File{Path: s.Group.Path, Mode: 0o644, Data: group})
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

// addEntry returns file with line added, or nil when the entry is there.
// Lines are split by hand: no line is too long to be seen, so no entry after
// a long one can hide.
func addEntry(file []byte, what, name string, id int, line string, idField int) ([]byte, error) {
	for _, l := range strings.Split(string(file), "\n") {
		f := strings.Split(strings.TrimSuffix(l, "\r"), ":")
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
