package layer_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/testbuild"
)

// Golden values of fixedInput. The diffID depends only on the tar writer;
// the digest also on compress/flate, so a Go release that changes gzip
// output fails here — on purpose: it would change every published digest.
const (
	goldenDiffID = "sha256:eaa01784bcf17ed06e49b7d262be2eb44d99ecc811a043e4cbe3008469ebe277"
	goldenDigest = "sha256:d3897e1f8d01e5ae1508fb41a6b0153f3716d839f5a41674ff01650bf569bb6f"
)

var created = time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)

type meta struct {
	Version string `json:"version"`
	Base    string `json:"base_digest"`
	Flags   []string
	Size    int64 `json:"a_size"`
}

// fixedInput is a small, fully fixed Input. The library and shell are fake
// bytes: this tests the layer format, not SQLite.
func fixedInput(t testing.TB) layer.Input {
	t.Helper()
	dir := t.TempDir()
	lib := filepath.Join(dir, "libsqlite3.so.0")
	shell := filepath.Join(dir, "sqlite3")
	write(t, lib, "\x7fELF fake libsqlite3.so.0 for the layer format test\n")
	write(t, shell, "\x7fELF fake sqlite3 shell\n")
	return layer.Input{
		Library:  lib,
		Shell:    shell,
		Version:  pins.MustParseVersion("3.51.3"),
		Libc:     layer.Musl,
		Preload:  layer.PreloadEnv,
		Metadata: meta{Version: "3.51.3", Base: "sha256:" + strings.Repeat("ab", 32), Flags: []string{"-O2", "<&>"}, Size: 1 << 53},
		Created:  created,
		Extra:    []layer.File{{Path: "/usr/local/share/sqlite-graft/sbom.spdx.json", Data: []byte("{}\n")}},
		Whiteouts: []string{
			"/usr/bin/passwd",
		},
	}
}

func write(t testing.TB, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func digests(t testing.TB, in layer.Input) (digest, diffID v1.Hash) {
	t.Helper()
	l, err := layer.Build(in)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if digest, err = l.Digest(); err != nil {
		t.Fatal(err)
	}
	if diffID, err = l.DiffID(); err != nil {
		t.Fatal(err)
	}
	return digest, diffID
}

func TestGolden(t *testing.T) {
	digest, diffID := digests(t, fixedInput(t))
	if diffID.String() != goldenDiffID {
		t.Errorf("diffID = %s, want %s", diffID, goldenDiffID)
	}
	if digest.String() != goldenDigest {
		t.Errorf("digest = %s, want %s", digest, goldenDigest)
	}
}

func TestDeterministic(t *testing.T) {
	in := fixedInput(t)
	d1, id1 := digests(t, in)
	d2, id2 := digests(t, in)
	if d1 != d2 || id1 != id2 {
		t.Fatalf("two builds of one Input: %s/%s, then %s/%s", d1, id1, d2, id2)
	}

	// Only the bytes of the inputs count, not their mode or mtime on disk,
	// nor the sub-second part of Created (USTAR stores seconds).
	if err := os.Chtimes(in.Library, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(in.Library, 0o700); err != nil {
		t.Fatal(err)
	}
	same := in
	same.Created = created.Add(999 * time.Millisecond).In(time.FixedZone("X", 3600))
	if d, id := digests(t, same); d != d1 || id != id1 {
		t.Errorf("digest changed with the library's mtime/mode or Created's sub-seconds: %s, want %s", d, d1)
	}

	for name, change := range map[string]func(in *layer.Input){
		"created": func(in *layer.Input) { in.Created = created.Add(time.Second) },
		"library byte": func(in *layer.Input) {
			b, _ := os.ReadFile(in.Library)
			b[len(b)-2] ^= 1
			p := filepath.Join(t.TempDir(), "lib")
			write(t, p, string(b))
			in.Library = p
		},
		"version":  func(in *layer.Input) { in.Version = pins.MustParseVersion("3.53.4") },
		"libc":     func(in *layer.Input) { in.Libc = layer.Glibc },
		"metadata": func(in *layer.Input) { in.Metadata = map[string]string{"version": "3.51.3"} },
		"no shell": func(in *layer.Input) { in.Shell = "" },
		"whiteout": func(in *layer.Input) { in.Whiteouts = nil },
	} {
		changed := fixedInput(t)
		change(&changed)
		if d, id := digests(t, changed); d == d1 || id == id1 {
			t.Errorf("%s changed, but the layer did not: %s", name, d)
		}
	}
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readLayer(t testing.TB, l v1.Layer) []tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []tarEntry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, b})
	}
}

func TestTarEntries(t *testing.T) {
	in := fixedInput(t)
	l, err := layer.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if mt, err := l.MediaType(); err != nil || mt != types.OCILayer {
		t.Errorf("media type = %s, %v; want %s", mt, err, types.OCILayer)
	}
	entries := readLayer(t, l)

	type want struct {
		typ  byte
		mode int64
		link string
	}
	wants := map[string]want{
		"usr/":                                        {tar.TypeDir, 0o755, ""},
		"usr/bin/.wh.passwd":                          {tar.TypeReg, 0o644, ""},
		"usr/local/":                                  {tar.TypeDir, 0o755, ""},
		"usr/local/bin/":                              {tar.TypeDir, 0o755, ""},
		"usr/local/bin/sqlite-preload":                {tar.TypeReg, 0o755, ""},
		"usr/local/bin/sqlite3":                       {tar.TypeReg, 0o755, ""},
		"usr/local/lib/":                              {tar.TypeDir, 0o755, ""},
		"usr/local/lib/libsqlite3.so.0":               {tar.TypeSymlink, 0o777, "libsqlite3.so.3.51.3"},
		"usr/local/lib/libsqlite3.so.3.51.3":          {tar.TypeReg, 0o755, ""},
		"usr/local/share/":                            {tar.TypeDir, 0o755, ""},
		"usr/local/share/licenses/":                   {tar.TypeDir, 0o755, ""},
		"usr/local/share/licenses/sqlite/":            {tar.TypeDir, 0o755, ""},
		"usr/local/share/licenses/sqlite/LICENSE":     {tar.TypeReg, 0o644, ""},
		"usr/local/share/sqlite-graft/":               {tar.TypeDir, 0o755, ""},
		"usr/local/share/sqlite-graft/build.json":     {tar.TypeReg, 0o644, ""},
		"usr/local/share/sqlite-graft/sbom.spdx.json": {tar.TypeReg, 0o644, ""},
	}
	var names []string
	byName := map[string]tarEntry{}
	for _, e := range entries {
		h := e.hdr
		names = append(names, strings.TrimSuffix(h.Name, "/"))
		byName[h.Name] = e
		w, ok := wants[h.Name]
		if !ok {
			t.Errorf("unexpected entry %q", h.Name)
			continue
		}
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Linkname != w.link {
			t.Errorf("%s: type %q mode %o link %q; want %q %o %q", h.Name, h.Typeflag, h.Mode, h.Linkname, w.typ, w.mode, w.link)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d (%q:%q), want 0:0 with no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(created) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v/%v/%v, want mtime %v only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, created)
		}
		if h.Format != tar.FormatUSTAR || len(h.PAXRecords) != 0 {
			t.Errorf("%s: format %v with PAX records %v, want plain USTAR", h.Name, h.Format, h.PAXRecords)
		}
		if h.Typeflag != tar.TypeSymlink && h.Mode&0o022 != 0 {
			t.Errorf("%s: mode %o is group- or other-writable", h.Name, h.Mode)
		}
	}
	if len(entries) != len(wants) {
		t.Errorf("%d entries, want %d: %v", len(entries), len(wants), names)
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("entries not sorted by path: %v", names)
	}

	lib, _ := os.ReadFile(in.Library)
	if got := byName["usr/local/lib/libsqlite3.so.3.51.3"].data; !bytes.Equal(got, lib) {
		t.Errorf("library in the layer differs from %s", in.Library)
	}
	if got := byName["usr/bin/.wh.passwd"]; got.hdr.Size != 0 {
		t.Errorf("whiteout has %d bytes", got.hdr.Size)
	}
	if got := string(byName["usr/local/share/licenses/sqlite/LICENSE"].data); !strings.Contains(got, "May you do good and not evil.") {
		t.Errorf("LICENSE lacks the blessing:\n%s", got)
	}
	// Keys sorted (struct fields too), numbers exact, HTML not escaped.
	wantJSON := `{
  "Flags": [
    "-O2",
    "<&>"
  ],
  "a_size": 9007199254740992,
  "base_digest": "sha256:` + strings.Repeat("ab", 32) + `",
  "version": "3.51.3"
}
`
	if got := string(byName["usr/local/share/sqlite-graft/build.json"].data); got != wantJSON {
		t.Errorf("build.json =\n%s\nwant\n%s", got, wantJSON)
	}

	// Files plans exactly what Build writes.
	plan, err := layer.Files(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(entries) {
		t.Fatalf("Files: %d entries, the layer has %d", len(plan), len(entries))
	}
	for i, p := range plan {
		e := entries[i]
		if "/"+strings.TrimSuffix(e.hdr.Name, "/") != p.Path || int64(p.Mode) != e.hdr.Mode || p.Linkname != e.hdr.Linkname || p.Size != e.hdr.Size {
			t.Errorf("Files[%d] = %+v, layer has %s mode %o link %q size %d", i, p, e.hdr.Name, e.hdr.Mode, e.hdr.Linkname, e.hdr.Size)
		}
		if p.Type == layer.TypeFile {
			sum := sha256.Sum256(e.data)
			if hex.EncodeToString(sum[:]) != p.SHA256 {
				t.Errorf("Files[%d] %s: sha256 %s, layer data has %x", i, p.Path, p.SHA256, sum)
			}
		}
	}
}

func TestGzipStream(t *testing.T) {
	l, err := layer.Build(fixedInput(t))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	// ID1 ID2 CM FLG MTIME(4) XFL OS: no name, no mtime, level 9 (XFL 2).
	if want := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff}; !bytes.Equal(b[:10], want) {
		t.Errorf("gzip header % x, want % x", b[:10], want)
	}
	if size, _ := l.Size(); size != int64(len(b)) {
		t.Errorf("Size() = %d, blob has %d bytes", size, len(b))
	}
}

func TestRejects(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	write(t, empty, "")
	for name, tc := range map[string]struct {
		change func(in *layer.Input)
		want   string
	}{
		"libc":                {func(in *layer.Input) { in.Libc = "muscl" }, `libc "muscl": want musl or glibc`},
		"preload":             {func(in *layer.Input) { in.Preload = "ld.so.preload" }, `preload "ld.so.preload": want env or wrapper`},
		"no library":          {func(in *layer.Input) { in.Library = "" }, "no library given"},
		"missing library":     {func(in *layer.Input) { in.Library = filepath.Join(dir, "nope") }, "no such file"},
		"empty library":       {func(in *layer.Input) { in.Library = empty }, "empty file"},
		"library is a dir":    {func(in *layer.Input) { in.Library = dir }, "not a regular file"},
		"missing shell":       {func(in *layer.Input) { in.Shell = filepath.Join(dir, "nope") }, "shell"},
		"no version":          {func(in *layer.Input) { in.Version = pins.Version{} }, "no SQLite version"},
		"zero created":        {func(in *layer.Input) { in.Created = time.Time{} }, "SOURCE_DATE_EPOCH"},
		"created before 1970": {func(in *layer.Input) { in.Created = time.Unix(-1, 0) }, "1970"},
		"relative whiteout":   {func(in *layer.Input) { in.Whiteouts = []string{"usr/bin/su"} }, `whiteout "usr/bin/su": want an absolute, clean path`},
		"unclean whiteout":    {func(in *layer.Input) { in.Whiteouts = []string{"/usr/bin/../bin/su"} }, "clean path"},
		"root whiteout":       {func(in *layer.Input) { in.Whiteouts = []string{"/"} }, "cannot hide the root"},
		"wh whiteout":         {func(in *layer.Input) { in.Whiteouts = []string{"/usr/bin/.wh.su"} }, `".wh.su" is a whiteout name`},
		"opaque whiteout":     {func(in *layer.Input) { in.Whiteouts = []string{"/etc/.wh..wh..opq"} }, "whiteout name"},
		"duplicate whiteout":  {func(in *layer.Input) { in.Whiteouts = []string{"/usr/bin/su", "/usr/bin/su"} }, "listed twice"},
		"whiteout of ours":    {func(in *layer.Input) { in.Whiteouts = []string{layer.ShellPath} }, "which this layer adds"},
		"whiteout of parent":  {func(in *layer.Input) { in.Whiteouts = []string{"/usr/local"} }, "would hide /usr/local, which this layer adds"},
		"whiteout under file": {func(in *layer.Input) { in.Whiteouts = []string{layer.ShellPath + "/x"} }, "a file in this layer"},
		"extra writable":      {func(in *layer.Input) { in.Extra = []layer.File{{Path: "/etc/x", Mode: 0o664}} }, "group- or other-writable"},
		"extra setuid":        {func(in *layer.Input) { in.Extra = []layer.File{{Path: "/etc/x", Mode: 0o755 | fs.ModeSetuid}} }, "permission bits only"},
		"extra relative":      {func(in *layer.Input) { in.Extra = []layer.File{{Path: "etc/x"}} }, `extra[0] "etc/x"`},
		"extra clash":         {func(in *layer.Input) { in.Extra = []layer.File{{Path: layer.WrapperPath}} }, "planned twice"},
		"extra under file":    {func(in *layer.Input) { in.Extra = []layer.File{{Path: layer.ShellPath + "/x"}} }, "is a file in this layer"},
		"extra wh name":       {func(in *layer.Input) { in.Extra = []layer.File{{Path: "/etc/.wh.passwd"}} }, "whiteout name"},
		"metadata array":      {func(in *layer.Input) { in.Metadata = []string{"a"} }, "want something that marshals to a JSON object"},
		"metadata chan":       {func(in *layer.Input) { in.Metadata = make(chan int) }, "metadata"},
	} {
		in := fixedInput(t)
		tc.change(&in)
		_, err := layer.Build(in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Build = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	in := fixedInput(t)
	in.Preload, in.Metadata, in.Shell, in.Extra, in.Whiteouts = "", nil, "", nil, nil
	l, err := layer.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range readLayer(t, l) {
		switch e.hdr.Name {
		case "usr/local/bin/sqlite3":
			t.Errorf("shell entry without a shell")
		case "usr/local/share/sqlite-graft/build.json":
			if string(e.data) != "{}\n" {
				t.Errorf("build.json of nil metadata = %q", e.data)
			}
		}
	}
}

func TestEnv(t *testing.T) {
	for libc, want := range map[string]string{
		layer.Glibc: "LD_PRELOAD=/usr/local/lib/libsqlite3.so.0",
		layer.Musl:  "LD_LIBRARY_PATH=/usr/local/lib LD_PRELOAD=libsqlite3.so.0",
	} {
		env, err := layer.Env(libc)
		if err != nil || strings.Join(env, " ") != want {
			t.Errorf("Env(%s) = %v, %v; want %s", libc, env, err, want)
		}
	}
	if _, err := layer.Env("uclibc"); err == nil {
		t.Errorf("Env(uclibc) succeeded")
	}
}

// wrapper extracts sqlite-preload from a real layer of libc, with the
// grafted paths moved under a temporary directory.
func wrapper(t *testing.T, libc string) (script, libDir string) {
	t.Helper()
	in := fixedInput(t)
	in.Libc = libc
	l, err := layer.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	libDir = t.TempDir()
	for _, e := range readLayer(t, l) {
		if e.hdr.Name == "usr/local/bin/sqlite-preload" {
			s := strings.ReplaceAll(string(e.data), layer.LibDir, libDir)
			script = filepath.Join(t.TempDir(), "sqlite-preload")
			write(t, script, s)
			return script, libDir
		}
	}
	t.Fatal("no sqlite-preload in the layer")
	return "", ""
}

// run runs the wrapper with the host's /bin/sh, as a user would. Lines from
// the host's loader about a preload it cannot load (the temporary library
// path is empty or fake) are dropped from stderr.
func run(t *testing.T, script string, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{script}, args...)...)
	// Run in a directory with files, so a glob that expanded would show.
	cmd.Dir = t.TempDir()
	write(t, filepath.Join(cmd.Dir, "file"), "")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/home/nobody"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var keep []string
	for _, line := range strings.SplitAfter(stderr.String(), "\n") {
		if line != "" && !strings.Contains(line, "ld.so") && !strings.Contains(line, "LD_PRELOAD") {
			keep = append(keep, line)
		}
	}
	return stdout.String(), strings.Join(keep, ""), err
}

func TestWrapperQuoting(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	args := []string{"a b", "$HOME", "*", "it's", "", `"q"`, "x\ny", `\t`, "-n", "--", "$(echo no)", "`echo no`", ";", "a\tb  c"}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("<" + a + ">\n")
	}
	for _, libc := range []string{layer.Glibc, layer.Musl} {
		t.Run(libc, func(t *testing.T) {
			script, libDir := wrapper(t, libc)
			out, stderr, err := run(t, script, nil, append([]string{"printf", `<%s>\n`}, args...)...)
			if err != nil || stderr != "" || out != want.String() {
				t.Errorf("sqlite-preload printf ... = %q, stderr %q, %v; want %q", out, stderr, err, want.String())
			}

			show := []string{"sh", "-c", `echo "$LD_PRELOAD|$LD_LIBRARY_PATH"`}
			var fresh, existing, twice string
			switch libc {
			case layer.Glibc:
				lib := libDir + "/libsqlite3.so.0"
				fresh, existing, twice = lib+"|\n", lib+":/opt/other.so|\n", lib+":/opt/other.so|\n"
			case layer.Musl:
				fresh = "libsqlite3.so.0|" + libDir + "\n"
				existing = "libsqlite3.so.0:/opt/other.so|" + libDir + ":/opt/lib\n"
				twice = existing
			}
			if out, stderr, err := run(t, script, nil, show...); err != nil || stderr != "" || out != fresh {
				t.Errorf("no preload set: %q, stderr %q, %v; want %q", out, stderr, err, fresh)
			}
			env := []string{"LD_PRELOAD=/opt/other.so", "LD_LIBRARY_PATH=/opt/lib"}
			if libc == layer.Glibc {
				env = env[:1]
			}
			if out, stderr, err := run(t, script, env, show...); err != nil || stderr != "" || out != existing {
				t.Errorf("with %v: %q, stderr %q, %v; want %q", env, out, stderr, err, existing)
			}
			// Nested wrappers add nothing twice.
			if out, stderr, err := run(t, script, env, append([]string{"sh", script}, show...)...); err != nil || stderr != "" || out != twice {
				t.Errorf("nested, with %v: %q, stderr %q, %v; want %q", env, out, stderr, err, twice)
			}
			if _, stderr, err := run(t, script, nil); err == nil || !strings.Contains(stderr, "usage") {
				t.Errorf("no command: %v, stderr %q; want a usage error", err, stderr)
			}
		})
	}
}

// TestRealLibrary builds the layer of a real 3.51.3 musl library and reports
// its compressed size.
func TestRealLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles SQLite when not cached")
	}
	lib := testbuild.Library(t, "3.51.3", "musl")
	in := fixedInput(t)
	in.Library, in.Shell = lib, ""
	l, err := layer.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := l.Size()
	fi, _ := os.Stat(lib)
	digest, _ := l.Digest()
	t.Logf("layer of %s (%d bytes): %d bytes compressed, %s", lib, fi.Size(), size, digest)
}

// An extra file streamed from an opener gives the same layer as the same
// bytes in memory.
func TestStreamedExtra(t *testing.T) {
	in := fixedInput(t)
	want, wantID := digests(t, in)
	data := in.Extra[0].Data
	in.Extra[0].Data = nil
	in.Extra[0].Size = int64(len(data))
	in.Extra[0].Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	if got, id := digests(t, in); got != want || id != wantID {
		t.Errorf("streamed extra: %s/%s, want %s/%s", got, id, want, wantID)
	}

	// A stream of another length, or content that changes between the hash
	// and the write, is refused.
	in.Extra[0].Size++
	if _, err := layer.Build(in); err == nil || !strings.Contains(err.Error(), "want 4") {
		t.Errorf("Build(short stream) = %v, want the length named", err)
	}
	in.Extra[0].Size--
	calls := 0
	in.Extra[0].Open = func() (io.ReadCloser, error) {
		calls++
		if calls > 1 {
			return io.NopCloser(strings.NewReader("[]\n\n")), nil
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	if _, err := layer.Build(in); err == nil || !strings.Contains(err.Error(), "content changed") {
		t.Errorf("Build(content changed) = %v, want refused", err)
	}
}

// A large file is streamed, never held in memory: building a layer with
// 128 MiB of content allocates a small fraction of that.
func TestLargeFileStreamed(t *testing.T) {
	const size = 128 << 20
	in := fixedInput(t)
	in.Extra = append(in.Extra, layer.File{Path: "/usr/bin/big", Mode: 0o755, Size: size,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(io.LimitReader(zeros{}, size)), nil }})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := layer.Build(in); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("Build with a %d-byte file allocated %d bytes, want under 16 MiB (streamed)", size, alloc)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Names USTAR cannot encode (longer than its 155+100 bytes, or not ASCII)
// get a PAX record for that entry only; every other entry stays USTAR.
func TestNamesUSTARCannotEncode(t *testing.T) {
	long := "/usr/lib/" + strings.Repeat("d", 120) + "/" + strings.Repeat("n", 150)
	const utf8 = "/usr/bin/sü-dëmo"
	in := fixedInput(t)
	in.Extra = append(in.Extra, layer.File{Path: long, Mode: 0o755, Data: []byte("long")},
		layer.File{Path: utf8, Mode: 0o755, Data: []byte("utf8")})
	l, err := layer.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, e := range readLayer(t, l) {
		name := "/" + strings.TrimSuffix(e.hdr.Name, "/")
		wantPAX := strings.HasPrefix(name, long[:len(long)-151]) || name == utf8 // the long directory too
		if (e.hdr.Format == tar.FormatPAX) != wantPAX {
			t.Errorf("%s: format %v, want PAX only for the names USTAR cannot hold", name, e.hdr.Format)
		}
		found[name] = true
	}
	if !found[long] || !found[utf8] {
		t.Errorf("entries %v lack %s or %s", found, long, utf8)
	}
}
