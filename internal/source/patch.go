package source

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// patchable are the files a patch may change.
var patchable = map[string]bool{"sqlite3.c": true, "sqlite3.h": true, "sqlite3ext.h": true, "shell.c": true}

// applyPatches applies <version>/*.patch of fsys, in name order, to dir.
func applyPatches(fsys fs.FS, v pins.Version, dir string) ([]Patch, error) {
	applied := []Patch{}
	if fsys == nil {
		return applied, nil
	}
	entries, err := fs.ReadDir(fsys, v.String())
	if errors.Is(err, fs.ErrNotExist) {
		return applied, nil
	}
	if err != nil {
		return nil, fmt.Errorf("patches/%s: %w", v, err)
	}
	// fs.ReadDir sorts by name, which is the order NNNN- prefixes give.
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".patch") {
			continue
		}
		name := path.Join(v.String(), e.Name())
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("patches/%s: %w", name, err)
		}
		if err := applyPatch(b, dir); err != nil {
			return nil, fmt.Errorf("patches/%s: %w", name, err)
		}
		applied = append(applied, Patch{Name: e.Name(), SHA3: sha3Hex(b)})
	}
	return applied, nil
}

// applyPatch applies a unified or git diff to the files in dir.
func applyPatch(patch []byte, dir string) error { return applyDiff(patch, dir, patchTarget) }

// ApplyTreePatch applies a unified or git diff to existing text files below
// root, a source tree: paths are relative to root, with or without git's a/
// and b/ prefixes, and may not leave it.
func ApplyTreePatch(patch []byte, root string) error { return applyDiff(patch, root, treeTarget) }

func applyDiff(patch []byte, dir string, target func(*gitdiff.File) (string, error)) error {
	files, _, err := gitdiff.Parse(bytes.NewReader(patch))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("no file changes found: not a unified or git diff")
	}
	for _, fd := range files {
		name, err := target(fd)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		old, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// The applier wants hunks in file order; gitdiff.Apply sorts the same way.
		frags := append([]*gitdiff.TextFragment(nil), fd.TextFragments...)
		sort.SliceStable(frags, func(i, j int) bool { return frags[i].OldPosition < frags[j].OldPosition })
		var out bytes.Buffer
		ap := gitdiff.NewTextApplier(&out, bytes.NewReader(old))
		for _, fr := range frags {
			if err := ap.ApplyFragment(fr); err != nil {
				hunk := fmt.Sprintf("@@ -%d,%d +%d,%d @@", fr.OldPosition, fr.OldLines, fr.NewPosition, fr.NewLines)
				var ae *gitdiff.ApplyError
				if errors.As(err, &ae) && ae.Line > 0 {
					return fmt.Errorf("%s: hunk %s: at line %d: %w", name, hunk, ae.Line, err)
				}
				return fmt.Errorf("%s: hunk %s: %w", name, hunk, err)
			}
		}
		if err := ap.Close(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// treeTarget names the file below a tree root that a diff changes.
func treeTarget(fd *gitdiff.File) (string, error) {
	n := fd.NewName
	if n == "" {
		n = fd.OldName
	}
	if fd.IsNew || fd.IsDelete || fd.IsRename || fd.IsCopy || fd.IsBinary {
		return "", fmt.Errorf("%s: only text changes to existing files are supported", n)
	}
	if fd.OldName != "" && fd.OldName != n {
		return "", fmt.Errorf("%s: old name %s differs", n, fd.OldName)
	}
	rel := path.Clean(n)
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s: outside the tree", n)
	}
	return rel, nil
}

// patchTarget names the file a diff changes; paths may carry a/ b/ or an
// sqlite-amalgamation-N/ directory, and only SQLite's own files may change.
func patchTarget(fd *gitdiff.File) (string, error) {
	n := fd.NewName
	if n == "" {
		n = fd.OldName
	}
	base := path.Base(n)
	switch {
	case fd.IsNew || fd.IsDelete || fd.IsRename || fd.IsCopy || fd.IsBinary:
		return "", fmt.Errorf("%s: only text changes to existing files are supported", n)
	case fd.OldName != "" && path.Base(fd.OldName) != base:
		return "", fmt.Errorf("%s: old name %s differs", n, fd.OldName)
	case !patchable[base]:
		return "", fmt.Errorf("%s: patches may change only sqlite3.c, sqlite3.h, sqlite3ext.h and shell.c", n)
	}
	return base, nil
}
