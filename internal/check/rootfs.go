package check

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/imagefs"
)

// rootfs is an image's file system as the check sees it. Facts about its
// files (set-id bits, file capabilities, the libraries' ELF, /etc/passwd,
// the libc) are read from the image's layers through imagefs — verified,
// confined, never by opening a path on the host that the image shaped (a
// FIFO or a device there is refused, not opened) — the same on every
// Sandbox. Paths "in" it are absolute paths as the container sees them;
// symlinks are followed the way the container would (an absolute target
// starts again at the image's root, ".." stops at it).
type rootfs struct {
	files *imagefs.FS
}

// openFiles reads img's files through imagefs: each layer verified, the
// unpacked size capped at maxUnpacked (0 meaning imagefs' default), before
// any sandbox unpacks or runs anything of it.
func openFiles(img v1.Image, maxUnpacked int64) (rootfs, error) {
	files, err := imagefs.Open(img, imagefs.Limits{MaxUnpackedSize: maxUnpacked})
	if err != nil {
		return rootfs{}, fmt.Errorf("the image's files: %w", err)
	}
	return rootfs{files: files}, nil
}

func (r rootfs) close() error { return r.files.Close() }

// resolve follows every symlink in the in-image path p, the last component's
// too, and returns the real in-image path. A missing component is an error
// that wraps fs.ErrNotExist.
func (r rootfs) resolve(p string) (string, error) {
	real, err := r.files.Resolve(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s in the image: %w", p, syscall.ENOENT) // "no such file or directory", as the kernel says
	}
	if err != nil {
		return "", fmt.Errorf("in the image: %w", err)
	}
	return real, nil
}

// isFile reports whether the in-image path p resolves to a regular file.
func (r rootfs) isFile(p string) bool {
	e, err := r.files.Stat(p)
	return err == nil && e.Mode.IsRegular()
}

// readELF reads the shared library at the in-image path p from the image's
// layers; anything but a regular file is refused unopened.
func (r rootfs) readELF(p string) (*elfInfo, error) {
	e, err := r.files.Stat(p)
	if err != nil {
		return nil, err
	}
	content, err := e.Open()
	if err != nil {
		return nil, err
	}
	return parseELF(p, content)
}

// copyOut copies the regular file at the in-image path p to the host file
// dst (mode 0755).
func (r rootfs) copyOut(p, dst string) error {
	e, err := r.files.Stat(p)
	if err != nil {
		return err
	}
	content, err := e.Open()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, content); err != nil {
		f.Close()
		return fmt.Errorf("copy %s out of the image: %w", p, err)
	}
	return f.Close()
}

// libc tells musl from glibc by the dynamic loader the image ships:
// /lib/ld-musl-$ARCH.so.1, or glibc's ld-linux*.so.* in /lib64 or /lib.
func (r rootfs) libc() (libc, loader string, err error) {
	glob := func(dir, pattern string) []string {
		entries, err := r.files.ReadDir(dir)
		if err != nil {
			return nil
		}
		var out []string
		for _, e := range entries {
			if ok, _ := path.Match(pattern, path.Base(e.Path)); ok {
				out = append(out, path.Join(dir, path.Base(e.Path)))
			}
		}
		return out // sorted: ReadDir is
	}
	if m := glob("/lib", "ld-musl-*.so.1"); len(m) > 0 {
		return Musl, m[0], nil
	}
	for _, dir := range []string{"/lib64", "/lib", "/lib/" + multiarch()} {
		if m := glob(dir, "ld-linux*.so.*"); len(m) > 0 {
			return Glibc, m[0], nil
		}
	}
	return "", "", fmt.Errorf("the image has neither musl's loader (/lib/ld-musl-*.so.1) nor glibc's (/lib64/ld-linux*.so.*): a static or distroless-static image has no libsqlite3.so.0 to graft over")
}

// setID lists the regular files (and other non-directories) with a set-user-
// or set-group-ID bit, as in-image paths with their mode, and separately the
// directories with the set-group-ID bit (group inheritance, not privilege).
func (r rootfs) setID() (files, dirs []string, err error) {
	err = r.files.Walk(func(e *imagefs.Entry) error {
		m := e.Mode
		if m&fs.ModeSymlink != 0 || m&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
			return nil
		}
		if m.IsDir() {
			dirs = append(dirs, e.Path)
			return nil
		}
		files = append(files, fmt.Sprintf("%s (%s)", e.Path, setIDKind(m)))
		return nil
	})
	return files, dirs, err
}

// capabilities lists the files that carry file capabilities: like a set-id
// bit, they make a program privileged (and the loader ignores LD_PRELOAD
// for it).
func (r rootfs) capabilities() ([]string, error) {
	var out []string
	err := r.files.Walk(func(e *imagefs.Entry) error {
		if _, ok := e.Xattrs[imagefs.CapabilityXattr]; ok {
			out = append(out, fmt.Sprintf("%s (%s)", e.Path, imagefs.CapabilityXattr))
		}
		return nil
	})
	return out, err
}

func setIDKind(m fs.FileMode) string {
	var kinds []string
	if m&fs.ModeSetuid != 0 {
		kinds = append(kinds, "setuid")
	}
	if m&fs.ModeSetgid != 0 {
		kinds = append(kinds, "setgid")
	}
	return strings.Join(kinds, "+") + " " + fmt.Sprintf("%04o", fsutil.UnixMode(m))
}

// maxPasswdSize bounds what is read of the image's /etc/passwd.
const maxPasswdSize = 16 << 20

// configUID is the uid an image config's User ("name", "uid", "name:group",
// "uid:gid"; "" is root) stands for, looked up in the image's /etc/passwd
// when it is a name. ok is false when a name cannot be found.
func (r rootfs) configUID(user string) (uid int, ok bool) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return 0, true
	}
	if n, err := strconv.Atoi(u); err == nil {
		return n, true
	}
	passwd, err := r.files.ReadFile("/etc/passwd", maxPasswdSize)
	if err != nil {
		return 0, false
	}
	// Split by hand: a line of any length is seen, none hides the next.
	for _, line := range strings.Split(string(passwd), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) >= 3 && fields[0] == u {
			if n, err := strconv.Atoi(fields[2]); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}
