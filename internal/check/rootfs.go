package check

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
)

// rootfs is an unpacked image filesystem on the host. Paths "in" it are
// absolute paths as the container sees them; symlinks are followed the way
// the container would (an absolute target starts again at the rootfs, ".."
// stops at it), never out onto the host.
type rootfs string

// host is where the in-image path p (already resolved) lies on the host.
func (r rootfs) host(p string) string {
	return filepath.Join(string(r), filepath.FromSlash(path.Clean("/"+p)))
}

// resolve follows every symlink in the in-image path p, the last component's
// too, and returns the real in-image path. A missing component is an error
// that wraps fs.ErrNotExist.
func (r rootfs) resolve(p string) (string, error) {
	const maxLinks = 40
	todo := strings.Split(path.Clean("/"+p), "/")
	cur, links := "/", 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(r.host(next))
		if err != nil {
			return "", fmt.Errorf("%s in the image: %w", p, unwrapPathError(err))
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s in the image: more than %d symbolic links", p, maxLinks)
		}
		target, err := os.Readlink(r.host(next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

// unwrapPathError drops the host path from an *fs.PathError.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// isFile reports whether the in-image path p resolves to a regular file.
func (r rootfs) isFile(p string) bool {
	real, err := r.resolve(p)
	if err != nil {
		return false
	}
	fi, err := os.Stat(r.host(real))
	return err == nil && fi.Mode().IsRegular()
}

// libc tells musl from glibc by the dynamic loader the image ships:
// /lib/ld-musl-$ARCH.so.1, or glibc's ld-linux*.so.* in /lib64 or /lib.
func (r rootfs) libc() (libc, loader string, err error) {
	glob := func(dir, pattern string) []string {
		real, err := r.resolve(dir)
		if err != nil {
			return nil
		}
		m, _ := filepath.Glob(filepath.Join(r.host(real), pattern))
		var out []string
		for _, f := range m {
			out = append(out, path.Join(dir, filepath.Base(f)))
		}
		sort.Strings(out)
		return out
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
	err = filepath.WalkDir(string(r), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m := fi.Mode()
		if m&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
			return nil
		}
		rel, err := filepath.Rel(string(r), p)
		if err != nil {
			return err
		}
		in := "/" + filepath.ToSlash(rel)
		if d.IsDir() {
			dirs = append(dirs, in)
			return nil
		}
		files = append(files, fmt.Sprintf("%s (%s)", in, setIDKind(m)))
		return nil
	})
	return files, dirs, err
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
	real, err := r.resolve("/etc/passwd")
	if err != nil {
		return 0, false
	}
	f, err := os.Open(r.host(real))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == u {
			if n, err := strconv.Atoi(fields[2]); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}
