package imagefs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"time"
)

// IOFS is the image's file system as an io/fs one: names are relative to
// the image's root, as io/fs wants; symlinks are followed inside the image,
// never out of it; only regular files and directories can be opened.
type IOFS struct{ f *FS }

// IOFS views f through io/fs (fs.FS, fs.ReadDirFS, fs.StatFS and
// fs.ReadLinkFS), for code written against io/fs (internal/ldcache).
func (f *FS) IOFS() *IOFS { return &IOFS{f} }

var (
	_ fs.ReadDirFS  = (*IOFS)(nil)
	_ fs.StatFS     = (*IOFS)(nil)
	_ fs.ReadLinkFS = (*IOFS)(nil)
)

func (i *IOFS) entry(op, name string, follow bool) (*Entry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p := "/" + name
	get := i.f.Lstat
	if follow {
		get = i.f.Stat
	}
	e, err := get(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			err = errors.Join(fs.ErrInvalid, err)
		}
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

// Open opens a regular file or a directory.
func (i *IOFS) Open(name string) (fs.File, error) {
	e, err := i.entry("open", name, true)
	if err != nil {
		return nil, err
	}
	switch {
	case e.Mode.IsDir():
		return &dirFile{info: info{e, path.Base("/" + name)}, fs: i, name: name}, nil
	case e.Mode.IsRegular():
		r, err := e.Open()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &regularFile{info: info{e, path.Base("/" + name)}, SectionReader: r}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
}

// ReadDir lists the directory name leads to, sorted by name.
func (i *IOFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if _, err := i.entry("readdir", name, true); err != nil {
		return nil, err
	}
	entries, err := i.f.ReadDir("/" + name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, fs.FileInfoToDirEntry(info{e, path.Base(e.Path)}))
	}
	return out, nil
}

// Stat describes what name leads to, following every symlink.
func (i *IOFS) Stat(name string) (fs.FileInfo, error) {
	e, err := i.entry("stat", name, true)
	if err != nil {
		return nil, err
	}
	return info{e, path.Base("/" + name)}, nil
}

// Lstat describes name itself: a symlink is not followed.
func (i *IOFS) Lstat(name string) (fs.FileInfo, error) {
	e, err := i.entry("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return info{e, path.Base("/" + name)}, nil
}

// ReadLink is the target of the symlink name, as written.
func (i *IOFS) ReadLink(name string) (string, error) {
	e, err := i.entry("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e.Mode.Type() != fs.ModeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Link, nil
}

// info is an Entry as an fs.FileInfo.
type info struct {
	e    *Entry
	name string
}

func (fi info) Name() string       { return fi.name }
func (fi info) Size() int64        { return fi.e.Size }
func (fi info) Mode() fs.FileMode  { return fi.e.Mode }
func (fi info) ModTime() time.Time { return time.Time{} }
func (fi info) IsDir() bool        { return fi.e.Mode.IsDir() }
func (fi info) Sys() any           { return fi.e }

type regularFile struct {
	info
	*io.SectionReader
}

func (f *regularFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *regularFile) Close() error               { return nil }

type dirFile struct {
	info
	fs   *IOFS
	name string
	left []fs.DirEntry
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir reads the directory's entries, n at a time (n <= 0: all).
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		all, err := d.fs.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.left, d.read = all, true
	}
	if n <= 0 {
		out := d.left
		d.left = nil
		return out, nil
	}
	if len(d.left) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.left))
	out := d.left[:n]
	d.left = d.left[n:]
	return out, nil
}
