package check

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"syscall"
)

// Libc names.
const (
	Glibc = "glibc"
	Musl  = "musl"
)

// elfInfo is what the checks need from a library's dynamic section.
type elfInfo struct {
	Libc    string
	Soname  string
	Exports map[string]bool // defined global/weak FUNC and OBJECT symbols
}

// readELF reads a shared library on the host: see parseELF. The file is
// opened without blocking and read only if it is a regular file: a FIFO or
// a device named as a library is refused, not waited on.
func readELF(path string) (*elfInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%v)", path, fi.Mode().Type())
	}
	return parseELF(path, f)
}

// parseELF reads a shared library's libc (from DT_NEEDED: musl's libc is
// "libc.so", glibc's "libc.so.6"), soname and exported symbols.
func parseELF(path string, r io.ReaderAt) (*elfInfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: ELF type %s, want a shared library", path, f.Type)
	}
	if flags, _ := f.DynValue(elf.DT_FLAGS_1); len(flags) > 0 && flags[0]&uint64(elf.DF_1_PIE) != 0 {
		return nil, fmt.Errorf("%s: a position-independent executable, not a shared library", path)
	}
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	info := &elfInfo{Exports: map[string]bool{}}
	switch {
	case slices.Contains(needed, "libc.so.6"):
		info.Libc = Glibc
	case slices.Contains(needed, "libc.so"):
		info.Libc = Musl
	default:
		return nil, fmt.Errorf("%s: DT_NEEDED %v names neither glibc (libc.so.6) nor musl (libc.so)", path, needed)
	}
	if s, _ := f.DynString(elf.DT_SONAME); len(s) > 0 {
		info.Soname = s[0]
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("%s: dynamic symbols: %w", path, err)
	}
	for _, s := range syms {
		bind, typ := elf.ST_BIND(s.Info), elf.ST_TYPE(s.Info)
		if s.Section == elf.SHN_UNDEF || (bind != elf.STB_GLOBAL && bind != elf.STB_WEAK) ||
			(typ != elf.STT_FUNC && typ != elf.STT_OBJECT) {
			continue
		}
		info.Exports[s.Name] = true
	}
	return info, nil
}

// publicAPI matches the names of SQLite's C API: sqlite3_*, and the session
// extension's sqlite3session_*, sqlite3changeset_*, sqlite3changegroup_*,
// sqlite3rebaser_*. A distro library built from the split source tree
// (Debian's) also exports SQLite's internal functions (sqlite3Malloc,
// sqlite3aEQb, ...), which the amalgamation makes static; no program may
// use them, so they are not compared.
var publicAPI = regexp.MustCompile(`^sqlite3[a-z]*_`)

// compareSymbols lists the public API symbols baseline exports and lib does
// not, sorted, and the baseline's exports that are not public API.
func compareSymbols(baseline, lib map[string]bool) (missing, other []string) {
	for s := range baseline {
		switch {
		case !publicAPI.MatchString(s):
			other = append(other, s)
		case !lib[s]:
			missing = append(missing, s)
		}
	}
	sort.Strings(missing)
	sort.Strings(other)
	return missing, other
}
