// Package ldcache writes /etc/ld.so.cache for a glibc image the way ldconfig
// would write it inside that image, deterministically: the same files give
// the same bytes. A grafted image needs it because glibc's loader consults
// the cache before its default directories, and a cache generated before the
// graft lists only the distribution's libsqlite3.so.0. Generated after it,
// the cache lists /usr/local/lib first (Debian's /etc/ld.so.conf.d/libc.conf
// puts it first), so a process whose environment was cleared (env -i, sudo,
// cron: no LD_PRELOAD) still loads the graft. ldconfig run later by a
// package install keeps that order, for the same reason.
//
// What is reproduced, from glibc's elf/ldconfig.c, elf/cache.c,
// elf/stringtable.c and elf/readelflib.c (2.32 and later):
//   - the directory list: /etc/ld.so.conf with its include globs (sorted, as
//     glob(3) in the C locale), directories as written with trailing slashes
//     trimmed, a directory that does not exist skipped, one already listed
//     (the same directory after symlinks, e.g. /lib/x86_64-linux-gnu on a
//     merged-/usr base) skipped; then the built-in system directories;
//   - per directory: files and symlinks named like a DSO (lib*.so*, ld-*.so*,
//     ld.so.*, ld64.so.*), skipping dpkg/rpm/prelink temporaries; ELF shared
//     objects of the image's class with a PT_DYNAMIC; the soname from
//     DT_SONAME (else the file name); a symlink named after its target's
//     soname, or the development link libfoo.so, is an entry of its own name;
//     one entry per soname, cached under dir/soname;
//   - the order: by soname with glibc's _dl_cache_libcmp (numbers compared
//     as numbers), descending, directories in list order among equal
//     sonames — the loader takes the first match, so the first directory wins;
//   - the file: the "glibc-ld.so.cache1.1" format only (what glibc 2.32 and
//     later write and read; Debian 12 has 2.36, Debian 13 2.41), its string
//     table tail-merged as stringtable.c does, and the extension directory
//     with the generator string.
//
// Not reproduced, and refused rather than guessed: glibc-hwcaps
// subdirectories, ELF files of another class or machine than the image's,
// the old libc5 cache format. Symlinks are resolved inside the image's root
// (an absolute target is relative to the root, as in a chroot).
package ldcache

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Cache file layout (sysdeps/generic/dl-cache.h).
const (
	magicNew        = "glibc-ld.so.cache"
	versionNew      = "1.1"
	headerSize      = 48 // magic, version, nlibs, len_strings, flags, padding, extension_offset, unused[3]
	entrySize       = 24 // flags, key, value, osversion_unused, hwcap
	endianLittle    = 2  // cache_file_new_flags_endian_little
	extensionMagic  = 0xeaa42174
	extensionTagGen = 0 // cache_extension_tag_generator

	flagELFLibc6     = 0x0003
	flagX8664Lib64   = 0x0300
	flagAArch64Lib64 = 0x0a00
)

// Arch describes what ldconfig is built for on one architecture: the ELF the
// image's libraries must be, the cache flags of a library, and Debian's
// built-in directories (slibdir, libdir, then /lib and /usr/lib, in the
// order Debian's ldconfig adds them).
type Arch struct {
	Machine    elf.Machine
	Flags      int32
	SystemDirs []string
}

// Arches are the architectures the generator knows, by GOARCH name.
var Arches = map[string]Arch{
	"amd64": {elf.EM_X86_64, flagELFLibc6 | flagX8664Lib64, []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}},
	"arm64": {elf.EM_AARCH64, flagELFLibc6 | flagAArch64Lib64, []string{"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib"}},
}

// DefaultConfig is ldconfig's configuration file.
const DefaultConfig = "/etc/ld.so.conf"

// DefaultGenerator is written into the cache's extension section, where
// ldconfig writes its own version.
const DefaultGenerator = "sqlite-graft ldcache"

// Path is where the cache goes in the image.
const Path = "/etc/ld.so.cache"

// Options say what to generate for.
type Options struct {
	Arch      string // GOARCH: amd64, arm64
	Config    string // "" : DefaultConfig
	Generator string // "" : DefaultGenerator
}

// Entry is one cache entry: a soname and the path the loader opens for it.
type Entry struct {
	Soname string
	Path   string
	Flags  int32
}

// Root is an image's filesystem: paths are relative to its root, as in
// io/fs; symlinks are read, never followed by the filesystem itself
// (os.DirFS would follow an absolute link out of the root).
type Root interface {
	fs.ReadDirFS
	fs.ReadLinkFS
}

// Generate is the cache ldconfig would write in root.
func Generate(root Root, o Options) ([]byte, error) {
	entries, err := Entries(root, o)
	if err != nil {
		return nil, err
	}
	gen := o.Generator
	if gen == "" {
		gen = DefaultGenerator
	}
	return Encode(entries, gen), nil
}

// Entries are the cache's entries in cache order.
func Entries(root Root, o Options) ([]Entry, error) {
	arch, ok := Arches[o.Arch]
	if !ok {
		return nil, fmt.Errorf("ldcache: architecture %q: want one of amd64, arm64", o.Arch)
	}
	conf := o.Config
	if conf == "" {
		conf = DefaultConfig
	}
	s := &scan{root: root, arch: arch, seen: map[string]bool{}}
	if err := s.parseConf(conf, 0); err != nil {
		return nil, err
	}
	for _, d := range arch.SystemDirs {
		if err := s.addDir(d); err != nil {
			return nil, err
		}
	}
	var all []Entry
	for _, d := range s.dirs {
		es, err := s.searchDir(d)
		if err != nil {
			return nil, err
		}
		all = insertSorted(all, es)
	}
	return all, nil
}

type scan struct {
	root Root
	arch Arch
	dirs []string        // as written
	seen map[string]bool // resolved directories
}

// maxIncludeDepth bounds include recursion (ldconfig has none; a loop of
// includes would not end).
const maxIncludeDepth = 16

// parseConf reads one configuration file (parse_conf): '#' starts a comment,
// "include PATTERN..." reads the files the patterns match, "hwcap" lines are
// ignored, any other line is a directory.
func (s *scan) parseConf(file string, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("ldcache: %s: includes nested deeper than %d", file, maxIncludeDepth)
	}
	real, err := s.resolve(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // ldconfig ignores a missing configuration file
	}
	if err != nil {
		return err
	}
	data, err := fs.ReadFile(s.root, rel(real))
	if err != nil {
		return fmt.Errorf("ldcache: %s: %w", file, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		cp := strings.TrimLeft(line, " \t\n\v\f\r")
		switch {
		case cp == "":
		case strings.HasPrefix(cp, "include") && len(cp) > 7 && (cp[7] == ' ' || cp[7] == '\t'):
			for _, pat := range strings.FieldsFunc(cp[8:], func(r rune) bool { return r == ' ' || r == '\t' }) {
				if !strings.HasPrefix(pat, "/") {
					pat = path.Join(path.Dir(file), pat)
				}
				matches, err := s.glob(pat)
				if err != nil {
					return err
				}
				for _, m := range matches {
					if err := s.parseConf(m, depth+1); err != nil {
						return err
					}
				}
			}
		case len(cp) > 5 && strings.EqualFold(cp[:5], "hwcap") && (cp[5] == ' ' || cp[5] == '\t'):
		default:
			if err := s.addDir(cp); err != nil {
				return err
			}
		}
	}
	return nil
}

// glob is glob(3) on the root: the directory part is resolved, the pattern
// applies to the last element, matches sorted as in the C locale.
func (s *scan) glob(pattern string) ([]string, error) {
	dir, pat := path.Split(pattern)
	if _, err := path.Match(pat, ""); err != nil {
		return nil, fmt.Errorf("ldcache: include %q: %w", pattern, err)
	}
	if strings.ContainsAny(dir, "*?[") {
		return nil, fmt.Errorf("ldcache: include %q: wildcards in directories are not supported", pattern)
	}
	real, err := s.resolve(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	des, err := s.root.ReadDir(rel(real))
	if err != nil {
		return nil, nil // glob skips unreadable directories
	}
	var out []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") && !strings.HasPrefix(pat, ".") {
			continue
		}
		if ok, _ := path.Match(pat, de.Name()); ok {
			out = append(out, path.Join(dir, de.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// addDir is add_dir_1: trailing whitespace and slashes go; a directory that
// does not exist, or is one already listed, is skipped.
func (s *scan) addDir(line string) error {
	p := strings.TrimRight(line, " \t\n\v\f\r")
	p = strings.TrimRight(p, "/")
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("ldcache: directory %q: want an absolute path", p)
	}
	real, err := s.resolve(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fi, err := fs.Stat(s.root, rel(real))
	if err != nil || !fi.IsDir() {
		return nil // stat fails or it is no directory: ldconfig skips it when it opens it
	}
	if s.seen[real] {
		return nil
	}
	s.seen[real] = true
	s.dirs = append(s.dirs, p)
	// glibc-hwcaps subdirectories add entries of their own that this
	// generator does not write: refuse rather than leave them out.
	if hw, err := s.root.ReadDir(rel(path.Join(real, "glibc-hwcaps"))); err == nil && len(hw) > 0 {
		return fmt.Errorf("ldcache: %s/glibc-hwcaps: glibc-hwcaps subdirectories are not supported", p)
	}
	return nil
}

type dlib struct {
	name, soname string
	isLink       bool
	flags        int32
}

// searchDir is search_dir for one directory.
func (s *scan) searchDir(dir string) ([]Entry, error) {
	realDir, err := s.resolve(dir)
	if err != nil {
		return nil, err
	}
	des, err := s.root.ReadDir(rel(realDir))
	if err != nil {
		return nil, nil // ldconfig skips a directory it cannot open
	}
	var libs []*dlib // newest first, as ldconfig prepends
	for _, de := range des {
		name := de.Name()
		typ := de.Type()
		if typ&^(fs.ModeSymlink|fs.ModeDir) != 0 {
			continue // only links, regular files and directories
		}
		if !isDSO(name) || skipName(name) {
			continue
		}
		file := path.Join(realDir, name)
		isLink := typ&fs.ModeSymlink != 0
		target := file
		if isLink {
			t, err := s.resolve(path.Join(dir, name))
			if err != nil {
				continue // a dangling link is skipped
			}
			target = t
		} else if typ.IsDir() {
			continue
		}
		soname, ok, err := s.readELF(target)
		if err != nil {
			return nil, fmt.Errorf("ldcache: %s/%s: %w", dir, name, err)
		}
		if !ok {
			continue
		}
		if soname == "" {
			soname = name
		}
		if isLink {
			// A link named after its target's soname, or the development
			// link libfoo.so of libfoo.so.1, keeps its own name; any other
			// link counts as a file.
			if name != soname && !(strings.HasSuffix(name, ".so") && strings.HasPrefix(soname, name)) {
				isLink = false
			}
			if isLink {
				soname = name
			}
		}
		var have *dlib
		for _, l := range libs {
			if l.soname == soname {
				have = l
				break
			}
		}
		if have != nil {
			// Prefer a file to a link, else the newer name.
			if (!isLink && have.isLink) || (isLink == have.isLink && libcmp(have.name, name) < 0) {
				have.name, have.isLink = name, isLink
			}
			continue
		}
		libs = append([]*dlib{{name: name, soname: soname, isLink: isLink, flags: s.arch.Flags}}, libs...)
	}
	var out []Entry
	for _, l := range libs {
		out = append(out, Entry{Soname: l.soname, Path: dir + "/" + l.soname, Flags: l.flags})
	}
	return out, nil
}

// readELF reads the soname of a shared object of the image's machine; ok is
// false for what ldconfig skips (not ELF, not a shared object, no dynamic
// section, too small).
func (s *scan) readELF(file string) (soname string, ok bool, err error) {
	f, err := s.root.Open(rel(file))
	if err != nil {
		return "", false, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return "", false, nil
	}
	// Only the headers, the dynamic section and one string are read: an
	// io.ReaderAt (os.File) is used as it is, anything else is read whole.
	ra, isRA := f.(io.ReaderAt)
	if !isRA {
		data, err := io.ReadAll(io.LimitReader(f, 1<<30))
		if err != nil {
			return "", false, err
		}
		ra = bytes.NewReader(data)
	}
	size := fi.Size()
	magic := make([]byte, 4)
	if size < 64 || !readFull(ra, magic, 0) || string(magic) != elf.ELFMAG {
		return "", false, nil // linker scripts such as libc.so, and anything else
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return "", false, nil
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != s.arch.Machine {
		return "", false, fmt.Errorf("an ELF file for %s %s, not the image's %s; refusing to guess its cache flags", ef.Class, ef.Machine, s.arch.Machine)
	}
	if ef.Type != elf.ET_DYN {
		return "", false, nil
	}
	return dynamicSoname(ef, ra, size)
}

func readFull(ra io.ReaderAt, p []byte, off int64) bool {
	n, err := ra.ReadAt(p, off)
	return n == len(p) && (err == nil || err == io.EOF)
}

// dynamicSoname finds DT_SONAME through the program headers, as
// readelflib.c does (section headers may be stripped).
func dynamicSoname(ef *elf.File, ra io.ReaderAt, size int64) (string, bool, error) {
	var loadAddr uint64
	haveLoad := false
	var dyn *elf.Prog
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if !haveLoad {
				loadAddr, haveLoad = p.Vaddr-p.Off, true
			}
		case elf.PT_DYNAMIC:
			dyn = p
		}
	}
	if dyn == nil || dyn.Filesz == 0 || dyn.Filesz > 1<<24 || dyn.Off+dyn.Filesz > uint64(size) {
		return "", false, nil // none, or truncated
	}
	d := make([]byte, dyn.Filesz)
	if !readFull(ra, d, int64(dyn.Off)) {
		return "", false, nil
	}
	bo := ef.ByteOrder
	var strtab, soname uint64
	haveStr, haveSoname := false, false
	for i := 0; i+16 <= len(d); i += 16 {
		tag, val := elf.DynTag(bo.Uint64(d[i:])), bo.Uint64(d[i+8:])
		if tag == elf.DT_NULL {
			break
		}
		switch tag {
		case elf.DT_STRTAB:
			if !haveStr {
				strtab, haveStr = val, true
			}
		case elf.DT_SONAME:
			soname, haveSoname = val, true
		}
	}
	if !haveStr {
		return "", false, nil
	}
	if !haveSoname {
		return "", true, nil
	}
	off := strtab - loadAddr + soname
	if off >= uint64(size) {
		return "", false, nil
	}
	buf := make([]byte, min(4096, uint64(size)-off))
	n, _ := ra.ReadAt(buf, int64(off))
	end := bytes.IndexByte(buf[:n], 0)
	if end < 0 {
		return "", false, nil
	}
	return string(buf[:end]), true, nil
}

// isDSO is _dl_is_dso.
func isDSO(name string) bool {
	return ((strings.HasPrefix(name, "lib") || strings.HasPrefix(name, "ld-")) && strings.Contains(name, ".so")) ||
		strings.HasPrefix(name, "ld.so.") || strings.HasPrefix(name, "ld64.so.")
}

// skipName is skip_dso_based_on_name: prelink, rpm and dpkg temporaries.
func skipName(name string) bool {
	if strings.HasSuffix(name, ".#prelink#") {
		return true
	}
	if i := strings.LastIndex(name, ".#prelink#."); i >= 0 && len(name)-i == len(".#prelink#.XXXXXX") {
		return true
	}
	return strings.Contains(name, ";") || strings.HasSuffix(name, ".dpkg-new") || strings.HasSuffix(name, ".dpkg-tmp")
}

// insertSorted adds a directory's entries one by one as add_to_cache does:
// after every entry that does not sort after it.
func insertSorted(list []Entry, add []Entry) []Entry {
	for _, e := range add {
		i := 0
		for i < len(list) && compare(list[i], e) <= 0 {
			i++
		}
		list = append(list, Entry{})
		copy(list[i+1:], list[i:])
		list[i] = e
	}
	return list
}

// compare is cache.c's compare for entries without hwcaps: sonames
// descending by _dl_cache_libcmp, then higher flags first.
func compare(e1, e2 Entry) int {
	res := libcmp(e2.Soname, e1.Soname)
	if res == 0 {
		switch {
		case e1.Flags < e2.Flags:
			return 1
		case e1.Flags > e2.Flags:
			return -1
		}
	}
	return res
}

// libcmp is glibc's _dl_cache_libcmp: runs of digits compare as numbers.
// C's char is signed on the architectures this runs for and its int
// arithmetic wraps; both are kept.
func libcmp(a, b string) int {
	at := func(s string, i int) int8 {
		if i < len(s) {
			return int8(s[i])
		}
		return 0
	}
	digit := func(c int8) bool { return c >= '0' && c <= '9' }
	i, j := 0, 0
	for at(a, i) != 0 {
		c1, c2 := at(a, i), at(b, j)
		switch {
		case digit(c1) && digit(c2):
			var v1, v2 int32
			for digit(at(a, i)) {
				v1 = v1*10 + int32(at(a, i)-'0')
				i++
			}
			for digit(at(b, j)) {
				v2 = v2*10 + int32(at(b, j)-'0')
				j++
			}
			if v1 != v2 {
				return int(v1 - v2)
			}
		case digit(c1):
			return 1
		case digit(c2):
			return -1
		case c1 != c2:
			return int(c1) - int(c2)
		default:
			i++
			j++
		}
	}
	return int(at(a, i)) - int(at(b, j))
}

// Encode writes entries (in cache order) in the new format, as save_cache
// does with opt_format_new.
func Encode(entries []Entry, generator string) []byte {
	// The string table: every soname and path once, tail-merged.
	var strs []string
	for _, e := range entries {
		strs = append(strs, e.Soname, e.Path)
	}
	table, offsets := stringTable(strs)
	strOffset := uint32(headerSize + entrySize*len(entries))
	extOffset := (strOffset + uint32(len(table)) + 3) &^ 3

	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString(magicNew)
	b.WriteString(versionNew)
	binary.Write(&b, le, uint32(len(entries)))
	binary.Write(&b, le, uint32(len(table)))
	b.WriteByte(endianLittle)
	b.Write([]byte{0, 0, 0})
	binary.Write(&b, le, extOffset)
	b.Write(make([]byte, 12))
	for _, e := range entries {
		binary.Write(&b, le, e.Flags)
		binary.Write(&b, le, strOffset+offsets[e.Soname])
		binary.Write(&b, le, strOffset+offsets[e.Path])
		binary.Write(&b, le, uint32(0)) // osversion_unused
		binary.Write(&b, le, uint64(0)) // hwcap
	}
	b.Write(table)
	for uint32(b.Len()) < extOffset {
		b.WriteByte(0)
	}
	// The extension directory: one section, the generator string, which
	// follows the directory (write_extensions without hwcaps).
	binary.Write(&b, le, uint32(extensionMagic))
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint32(extensionTagGen))
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, extOffset+8+16)
	binary.Write(&b, le, uint32(len(generator)))
	b.WriteString(generator)
	return b.Bytes()
}

// stringTable is stringtable_finalize: distinct strings ordered by their
// reversed bytes, descending, longer first on a shared suffix, and a string
// that is the tail of the one before it stored inside it.
func stringTable(strs []string) ([]byte, map[string]uint32) {
	uniq := map[string]bool{}
	var list []string
	for _, s := range strs {
		if !uniq[s] {
			uniq[s] = true
			list = append(list, s)
		}
	}
	sort.Slice(list, func(i, j int) bool { return finalizeCompare(list[i], list[j]) < 0 })
	offsets := map[string]uint32{}
	var size uint32
	for k, s := range list {
		if k > 0 {
			prev := list[k-1]
			if len(prev) >= len(s) && strings.HasSuffix(prev, s) {
				offsets[s] = offsets[prev] + uint32(len(prev)-len(s))
				continue
			}
			// After the predecessor's NUL; a tail-merged predecessor ends
			// where the string holding it ends, so this is the next free byte.
			size = offsets[prev] + uint32(len(prev)) + 1
		}
		offsets[s] = size
	}
	// The table's size is the last entry's offset plus its length and NUL.
	last := list[len(list)-1]
	total := offsets[last] + uint32(len(last)) + 1
	table := make([]byte, total)
	for _, s := range list {
		o := offsets[s]
		if table[o] == 0 {
			copy(table[o:], s)
		}
	}
	return table, offsets
}

// finalizeCompare is stringtable.c's finalize_compare.
func finalizeCompare(l, r string) int {
	n := min(len(l), len(r))
	for i := 1; i <= n; i++ {
		lc, rc := l[len(l)-i], r[len(r)-i]
		if lc != rc {
			return int(rc) - int(lc)
		}
	}
	switch {
	case len(l) == len(r):
		return 0
	case len(l) < len(r):
		return 1
	}
	return -1
}

// Parse reads a cache in the new format: its entries in order and the
// generator string.
func Parse(data []byte) ([]Entry, string, error) {
	if len(data) < headerSize || string(data[:17]) != magicNew || string(data[17:20]) != versionNew {
		return nil, "", errors.New("ldcache: not a glibc-ld.so.cache1.1 file")
	}
	le := binary.LittleEndian
	n := le.Uint32(data[20:])
	if data[28] != endianLittle {
		return nil, "", fmt.Errorf("ldcache: endianness flag %d, want little-endian (%d)", data[28], endianLittle)
	}
	if uint64(headerSize)+uint64(n)*entrySize > uint64(len(data)) {
		return nil, "", fmt.Errorf("ldcache: %d entries do not fit in %d bytes", n, len(data))
	}
	str := func(off uint32) (string, error) {
		if uint64(off) >= uint64(len(data)) {
			return "", fmt.Errorf("ldcache: string offset %d outside the file", off)
		}
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			return "", fmt.Errorf("ldcache: string at %d not terminated", off)
		}
		return string(data[off : int(off)+end]), nil
	}
	var out []Entry
	for i := uint32(0); i < n; i++ {
		e := data[headerSize+i*entrySize:]
		k, err := str(le.Uint32(e[4:]))
		if err != nil {
			return nil, "", err
		}
		v, err := str(le.Uint32(e[8:]))
		if err != nil {
			return nil, "", err
		}
		out = append(out, Entry{Soname: k, Path: v, Flags: int32(le.Uint32(e[0:]))})
	}
	gen := ""
	if ext := le.Uint32(data[32:]); ext != 0 && uint64(ext)+8 <= uint64(len(data)) && le.Uint32(data[ext:]) == extensionMagic {
		count := le.Uint32(data[ext+4:])
		for i := uint32(0); i < count && uint64(ext)+8+uint64(i+1)*16 <= uint64(len(data)); i++ {
			sec := data[ext+8+i*16:]
			if le.Uint32(sec) == extensionTagGen {
				off, size := le.Uint32(sec[8:]), le.Uint32(sec[12:])
				if uint64(off)+uint64(size) <= uint64(len(data)) {
					gen = string(data[off : off+size])
				}
			}
		}
	}
	return out, gen, nil
}

// maxLinks bounds symlink resolution, as the kernel does (40).
const maxLinks = 40

// resolve turns an absolute path in the image into the path of the file it
// names with every symlink resolved inside the root.
func (s *scan) resolve(p string) (string, error) {
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	var done []string
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cand := path.Join(append(append([]string{}, done...), c)...)
		fi, err := fs.Lstat(s.root, cand)
		if err != nil {
			return "", fmt.Errorf("ldcache: %s: %w", p, fs.ErrNotExist)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("ldcache: %s: too many levels of symbolic links", p)
		}
		target, err := s.root.ReadLink(cand)
		if err != nil {
			return "", fmt.Errorf("ldcache: %s: %w", p, err)
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return "/" + path.Join(done...), nil
}

// rel is an absolute image path as an io/fs name.
func rel(p string) string {
	r := strings.TrimPrefix(path.Clean(p), "/")
	if r == "" {
		return "."
	}
	return r
}
