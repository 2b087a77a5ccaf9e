// Package fsutil holds the few file operations several stages share.
package fsutil

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CopyFile copies src to dst with src's permission bits.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

// Install copies the named files from dir into out, each through a
// temporary name, and renames them into place only once all are copied: a
// failure leaves no new file (and no temporary one) in out.
func Install(dir, out string, names []string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var tmps []string
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	for _, n := range names {
		tmp := filepath.Join(out, ".tmp-"+n)
		tmps = append(tmps, tmp)
		if err := CopyFile(filepath.Join(dir, n), tmp); err != nil {
			return err
		}
	}
	for i, n := range names {
		if err := os.Rename(tmps[i], filepath.Join(out, n)); err != nil {
			return err
		}
	}
	return nil
}

// UnixMode is m's permission, set-id and sticky bits in their Unix octal
// positions (as in a tar header or stat), which fs.FileMode keeps elsewhere.
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// WriteFileAtomic replaces path with data and mode perm: it writes a
// temporary file in the same directory, syncs it and renames it over path,
// so readers see the old file or the new one, never a partial one.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
