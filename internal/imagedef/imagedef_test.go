package imagedef_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

const file = "images/alpine-3.21.yaml"

// valid is a complete definition; line numbers in the error table below
// refer to it.
const valid = `name: alpine-3.21
base: docker.io/library/alpine:3.21
libc: musl
toolchain: apk add --no-cache build-base
distro_sqlite: 3.48.0-r4
sqlite: 3.51.3
platforms:
  - linux/amd64
  - linux/arm64
repository: ghcr.io/sqlite-graft/alpine
tags:
  - "{{.BaseTag}}-sqlite{{.SQLite}}"
  - "{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"
preload: env
user:
  uid: 65532
  gid: 65532
  name: nonroot
hardening:
  strip_setuid: true
  remove_package_manager: false
`

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(valid, old) != 1 {
		t.Fatalf("test bug: %q occurs %d times in the valid definition", old, strings.Count(valid, old))
	}
	return strings.Replace(valid, old, new, 1)
}

func TestParseValid(t *testing.T) {
	d, err := imagedef.Parse(file, []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := imagedef.Definition{
		File: file, Name: "alpine-3.21", Base: "docker.io/library/alpine:3.21", Libc: "musl",
		Toolchain: "apk add --no-cache build-base", DistroSQLite: "3.48.0-r4", SQLite: pins.MustParseVersion("3.51.3"),
		Platforms: []string{"linux/amd64", "linux/arm64"}, Repository: "ghcr.io/sqlite-graft/alpine",
		TagTemplates: []string{"{{.BaseTag}}-sqlite{{.SQLite}}", "{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"},
		Preload:      "env", User: imagedef.User{UID: 65532, GID: 65532, Name: "nonroot"},
		Hardening: imagedef.Hardening{StripSetuid: true},
	}
	got := *d
	if got.File != want.File || got.Name != want.Name || got.Base != want.Base || got.Libc != want.Libc ||
		got.Toolchain != want.Toolchain || got.DistroSQLite != want.DistroSQLite || got.SQLite != want.SQLite ||
		!reflect.DeepEqual(got.Platforms, want.Platforms) || got.Repository != want.Repository ||
		!reflect.DeepEqual(got.TagTemplates, want.TagTemplates) || got.Preload != want.Preload ||
		got.User != want.User || got.Hardening != want.Hardening || got.AllowRoot || got.BaseDigest != "" {
		t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
	}
	if d.BaseTag() != "3.21" {
		t.Errorf("BaseTag = %q", d.BaseTag())
	}
}

func TestDefaults(t *testing.T) {
	data := valid[:strings.Index(valid, "preload:")] // no preload, user, hardening
	d, err := imagedef.Parse(file, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if d.Preload != "env" || d.User != imagedef.DefaultUser || d.Hardening != (imagedef.Hardening{StripSetuid: true}) {
		t.Errorf("defaults: preload %q, user %+v, hardening %+v", d.Preload, d.User, d.Hardening)
	}
	if d.User != (imagedef.User{UID: 65532, GID: 65532, Name: "nonroot"}) {
		t.Errorf("DefaultUser = %+v", d.User)
	}

	// One hardening knob given: the other keeps its default.
	d, err = imagedef.Parse(file, []byte(data+"hardening:\n  remove_package_manager: true\n"))
	if err != nil || d.Hardening != (imagedef.Hardening{StripSetuid: true, RemovePackageManager: true}) {
		t.Errorf("partial hardening: %+v, %v", d, err)
	}

	// Root only when asked for, and then accepted.
	root := data + "user:\n  uid: 0\n  gid: 0\n  name: root\nallow_root: true\n"
	if d, err := imagedef.Parse(file, []byte(root)); err != nil || d.User.UID != 0 || !d.AllowRoot {
		t.Errorf("allow_root: %+v, %v", d, err)
	}

	// A digest recorded from the last build, and a version written as a
	// number, which must not turn into the float 3.6 — 3.60.0 is not pinned.
	more := strings.Replace(data, "libc: musl\n", "base_digest: sha256:"+strings.Repeat("0f", 32)+"\nlibc: musl\n", 1)
	if d, err := imagedef.Parse(file, []byte(more)); err != nil || d.BaseDigest != "sha256:"+strings.Repeat("0f", 32) {
		t.Errorf("base_digest: %+v, %v", d, err)
	}
	if _, err := imagedef.Parse(file, []byte(strings.Replace(data, "sqlite: 3.51.3", "sqlite: 3.60", 1))); err == nil || !strings.Contains(err.Error(), "3.60.0") {
		t.Errorf("sqlite: 3.60 = %v, want it read as 3.60.0", err)
	}
	// Quoted and tagged forms are accepted.
	if d, err := imagedef.Parse(file, []byte(strings.Replace(data, "sqlite: 3.51.3", `sqlite: !!str "3.53.4"`, 1))); err != nil || d.SQLite.String() != "3.53.4" {
		t.Errorf("quoted sqlite: %+v, %v", d, err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ data, want string }{
		"empty":            {"", file + ": empty image definition"},
		"comments only":    {"# nothing\n\n", file + ": empty image definition"},
		"not a mapping":    {"- a\n- b\n", file + ":1: want a mapping"},
		"syntax":           {"name: [alpine\n", file + ":1:"},
		"second document":  {valid + "---\nname: x\n", file + ":23: a second YAML document"},
		"unknown key":      {valid + "extra: 1\n", file + `:22: unknown field "extra"`},
		"unknown nested":   {edit(t, "  strip_setuid: true\n", "  strip_setuid: true\n  strip_suid: true\n"), file + `:21: unknown field "strip_suid"`},
		"duplicate key":    {valid + "libc: glibc\n", file + `:22: mapping key "libc" already defined`},
		"anchor":           {edit(t, "name: alpine-3.21", "name: &n alpine-3.21"), file + ":1: YAML anchors"},
		"bool type":        {edit(t, "strip_setuid: true", "strip_setuid: yes"), file + `:20: hardening.strip_setuid: "yes" is not true or false`},
		"list type":        {edit(t, "libc: musl", "libc: [musl]"), file + ":3: libc: a list is not a string"},
		"mapping type":     {edit(t, "user:\n  uid: 65532\n  gid: 65532\n  name: nonroot\n", "user: 3\n"), file + ":15: int was used where mapping is expected"},
		"missing name":     {edit(t, "name: alpine-3.21\n", ""), file + ": name is missing"},
		"name mismatch":    {edit(t, "name: alpine-3.21", "name: alpine-3.22"), file + `:1: name "alpine-3.22": want "alpine-3.21", the file's name`},
		"name syntax":      {edit(t, "name: alpine-3.21", "name: Alpine"), file + `:1: name "Alpine": want lower-case`},
		"base no registry": {edit(t, "base: docker.io/library/alpine:3.21", "base: alpine:3.21"), file + `:2: base "alpine:3.21": want a full tag reference`},
		"base no library":  {edit(t, "base: docker.io/library/alpine:3.21", "base: docker.io/alpine:3.21"), file + `:2: base "docker.io/alpine:3.21": want a full tag reference`},
		"base no tag":      {edit(t, "base: docker.io/library/alpine:3.21", "base: docker.io/library/alpine"), file + `:2: base "docker.io/library/alpine": want a full tag`},
		"base digest":      {edit(t, "alpine:3.21\n", "alpine:3.21@sha256:"+strings.Repeat("a", 64)+"\n"), file + ":2: base " + `"docker.io/library/alpine:3.21@sha256:` + strings.Repeat("a", 64) + `": want a tag reference; a digest goes in base_digest`},
		"base_digest":      {edit(t, "libc: musl", "base_digest: sha256:abc\nlibc: musl"), file + `:3: base_digest "sha256:abc": want sha256: and 64`},
		"libc":             {edit(t, "libc: musl", "libc: muscl"), file + `:3: libc "muscl": want musl or glibc`},
		"libc missing":     {edit(t, "libc: musl\n", ""), file + ": libc is missing: want musl or glibc"},
		"toolchain empty":  {edit(t, "toolchain: apk add --no-cache build-base", `toolchain: ""`), file + ":4: toolchain is missing, e.g. toolchain: apk add"},
		"toolchain lines":  {edit(t, "toolchain: apk add --no-cache build-base", "toolchain: |\n  apk add\n  gcc"), file + `:4: toolchain "apk add\ngcc\n": want a single line`},
		"distro_sqlite":    {edit(t, "distro_sqlite: 3.48.0-r4", "distro_sqlite: 3.4a-r4"), file + `:5: distro_sqlite "3.4a-r4": want the distro's package version`},
		"distro_package alone": {edit(t, "distro_sqlite: 3.48.0-r4\n", "distro_sqlite: 3.48.0-r4\ndistro_package: sqlite-libs\n"),
			file + ":6: distro_package without distro_repository; give both, e.g.\ndistro_package: sqlite-libs\ndistro_repository: https://dl-cdn.alpinelinux.org/alpine/v3.21/main"},
		"distro_repository alone": {edit(t, "distro_sqlite: 3.48.0-r4\n", "distro_sqlite: 3.48.0-r4\ndistro_repository: https://dl-cdn.alpinelinux.org/alpine/v3.21/main\n"),
			file + ":6: distro_repository without distro_package"},
		"distro_package no version": {edit(t, "distro_sqlite: 3.48.0-r4\n", "distro_package: sqlite-libs\ndistro_repository: https://dl-cdn.alpinelinux.org/alpine/v3.21/main\n"),
			file + ":5: distro_package sqlite-libs without distro_sqlite"},
		"distro_package name": {edit(t, "distro_sqlite: 3.48.0-r4\n", "distro_sqlite: 3.48.0-r4\ndistro_package: sqlite libs\ndistro_repository: https://dl-cdn.alpinelinux.org/alpine/v3.21/main\n"),
			file + `:6: distro_package "sqlite libs": want a package name`},
		"distro_repository http": {edit(t, "distro_sqlite: 3.48.0-r4\n", "distro_sqlite: 3.48.0-r4\ndistro_package: sqlite-libs\ndistro_repository: http://dl-cdn.alpinelinux.org/alpine/v3.21/main\n"),
			file + `:7: distro_repository "http://dl-cdn.alpinelinux.org/alpine/v3.21/main": want an https URL`},
		"distro_repository debian": {strings.Replace(edit(t, "distro_sqlite: 3.48.0-r4\n", "distro_sqlite: 3.46.1-7\ndistro_package: libsqlite3-0\ndistro_repository: https://deb.debian.org/debian\n"), "libc: musl", "libc: glibc", 1),
			file + `:7: distro_repository "https://deb.debian.org/debian": want <archive>/dists/<suite>/<component>`},
		"sqlite missing":    {edit(t, "sqlite: 3.51.3\n", ""), file + ": sqlite is missing, e.g. sqlite: 3.53.4"},
		"sqlite syntax":     {edit(t, "sqlite: 3.51.3", "sqlite: 3.x"), file + `:6: sqlite: SQLite version "3.x"`},
		"sqlite vulnerable": {edit(t, "sqlite: 3.51.3", "sqlite: 3.51.2"), file + ":6: sqlite 3.51.2: SQLite 3.51.2 is affected by the WAL-reset bug"},
		"sqlite as float":   {edit(t, "sqlite: 3.51.3", "sqlite: 3.50"), file + ":6: sqlite 3.50.0: SQLite 3.50.0 is affected"},
		"sqlite withdrawn":  {edit(t, "sqlite: 3.51.3", "sqlite: 3.52.0"), file + ":6: sqlite 3.52.0: SQLite 3.52.0 was withdrawn"},
		"sqlite unpinned":   {edit(t, "sqlite: 3.51.3", "sqlite: 3.50.7"), file + ":6: sqlite 3.50.7: SQLite 3.50.7 is not pinned"},
		"no platforms":      {edit(t, "platforms:\n  - linux/amd64\n  - linux/arm64\n", "platforms: []\n"), file + ":7: platforms: list at least one"},
		"platform syntax":   {edit(t, "  - linux/amd64\n", "  - amd64\n"), file + `:8: platform "amd64": want os/arch[/variant]`},
		"platform os":       {edit(t, "  - linux/amd64\n", "  - windows/amd64\n"), file + `:8: platform "windows/amd64": want os linux`},
		"platform arch":     {edit(t, "  - linux/amd64\n", "  - linux/amd46\n"), file + `:8: platform "linux/amd46": unknown architecture "amd46"`},
		"platform variant":  {edit(t, "  - linux/arm64\n", "  - linux/arm64/v7\n"), file + `:9: platform "linux/arm64/v7": arm64 has no variant "v7"`},
		"platform twice":    {edit(t, "  - linux/arm64\n", "  - linux/amd64\n"), file + ":9: platform linux/amd64 listed twice"},
		"repository tag":    {edit(t, "repository: ghcr.io/sqlite-graft/alpine", "repository: ghcr.io/sqlite-graft/alpine:latest"), file + `:10: repository "ghcr.io/sqlite-graft/alpine:latest": want registry/path without a tag`},
		"repository short":  {edit(t, "repository: ghcr.io/sqlite-graft/alpine", "repository: sqlite-graft/alpine"), file + `:10: repository "sqlite-graft/alpine"`},
		"repository empty":  {edit(t, "repository: ghcr.io/sqlite-graft/alpine\n", ""), file + ": repository is missing"},
		"no tags":           {edit(t, "tags:\n  - \"{{.BaseTag}}-sqlite{{.SQLite}}\"\n  - \"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}\"\n", "tags: []\n"), file + ":11: tags: list at least one"},
		"tag parse":         {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{.BaseTag}}-sqlite{{.SQLite"`), file + `:13: tag "{{.BaseTag}}-sqlite{{.SQLite": unclosed action`},
		"tag field":         {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{.Version}}"`), file + `:13: tag "{{.Version}}": {{.Version}}: only text and {{.SQLite}}, {{.Date}}, {{.BaseTag}} are allowed`},
		"tag chars":         {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{.BaseTag}}+sqlite{{.SQLite}}"`), file + `:13: tag "{{.BaseTag}}+sqlite{{.SQLite}}" renders to "3.21+sqlite3.51.3": want [A-Za-z0-9_]`},
		"tag leading dot":   {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `".{{.SQLite}}"`), file + `:13: tag ".{{.SQLite}}" renders to ".3.51.3"`},
		"tag empty":         {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `""`), file + `:13: tag "" renders to ""`},
		"tag too long":      {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{.SQLite}}`+strings.Repeat("x", 124)+`"`), file + `:13: tag "{{.SQLite}}xxx`},
		"tag loop":          {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{range 1000000000}}x{{end}}"`), file + ":13: tag \"{{range 1000000000}}x{{end}}\": {{range 1000000000}}x{{end}}: only text and"},
		"tag function":      {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{printf \"%s\" .SQLite}}"`), file + ":13: tag"},
		"tag define":        {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{define \"a\"}}x{{end}}{{.SQLite}}"`), file + ":13: tag \"{{define \\\"a\\\"}}x{{end}}{{.SQLite}}\": define and block"},
		"tag variable":      {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{$x := .SQLite}}{{$x}}"`), file + ":13: tag"},
		"tag twice":         {edit(t, `"{{.BaseTag}}-sqlite{{.SQLite}}-{{.Date}}"`, `"{{.BaseTag}}-sqlite{{.SQLite}}"`), file + `:13: tag "{{.BaseTag}}-sqlite{{.SQLite}}" renders to "3.21-sqlite3.51.3", as tags[0] does`},
		"preload":           {edit(t, "preload: env", "preload: ld.so.preload"), file + `:14: preload "ld.so.preload": want env or wrapper`},
		"user partial":      {edit(t, "  gid: 65532\n", ""), file + ":15: user: give uid, gid and name together"},
		"uid root":          {edit(t, "  uid: 65532\n  gid: 65532\n  name: nonroot", "  uid: 0\n  gid: 0\n  name: root"), file + ":16: user.uid 0: the image would run as root; set allow_root: true"},
		"uid negative":      {edit(t, "uid: 65532", "uid: -1"), file + ":16: user.uid -1: want a whole number from 0 to 2147483647"},
		"uid float":         {edit(t, "uid: 65532", "uid: 1.5"), file + ":16: user.uid 1.5: want a whole number"},
		"uid string":        {edit(t, "uid: 65532", "uid: nonroot"), file + `:16: user.uid: "nonroot" is not a whole number`},
		"uid huge":          {edit(t, "uid: 65532", "uid: 1e10"), file + ":16: user.uid 1e10: want a whole number"},
		"gid huge":          {edit(t, "gid: 65532", "gid: 4294967296"), file + ":17: user.gid 4294967296"},
		"user name":         {edit(t, "name: nonroot", `name: "non root"`), file + `:18: user.name "non root": want a portable user name`},
		"allow_root unused": {valid + "allow_root: true\n", file + ":22: allow_root: true, but user.uid is 65532; drop allow_root"},
	} {
		d, err := imagedef.Parse(file, []byte(tc.data))
		if err == nil || !strings.HasPrefix(err.Error(), file) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %+v, %v\nwant an error containing %q", name, d, err, tc.want)
		}
	}
}

func TestTags(t *testing.T) {
	d, err := imagedef.Parse(file, []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	// SOURCE_DATE_EPOCH late in the day east of UTC: the date is UTC's.
	date := time.Date(2026, 3, 14, 1, 30, 0, 0, time.FixedZone("CET", 3600)) // 2026-03-14T00:30Z
	tags, err := d.Tags(pins.MustParseVersion("3.53.4"), date)
	if want := []string{"3.21-sqlite3.53.4", "3.21-sqlite3.53.4-20260314"}; err != nil || !reflect.DeepEqual(tags, want) {
		t.Errorf("Tags = %v, %v; want %v", tags, err, want)
	}
	if _, err := d.Tags(pins.MustParseVersion("3.49.2"), date); err == nil || !strings.Contains(err.Error(), "WAL-reset") {
		t.Errorf("Tags(3.49.2) = %v, want the WAL-reset refusal", err)
	}
	if _, err := d.Tags(pins.MustParseVersion("3.51.3"), time.Time{}); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Errorf("Tags(zero date) = %v", err)
	}

	// A Definition written in code renders too.
	hand := &imagedef.Definition{File: "hand", Base: "docker.io/library/debian:13", TagTemplates: []string{"{{.BaseTag}}-{{.SQLite}}"}}
	if tags, err := hand.Tags(pins.MustParseVersion("3.51.3"), date); err != nil || !reflect.DeepEqual(tags, []string{"13-3.51.3"}) {
		t.Errorf("hand-made Tags = %v, %v", tags, err)
	}
	hand = &imagedef.Definition{File: "hand", Base: "docker.io/library/debian:13", TagTemplates: []string{"{{"}}
	if _, err := hand.Tags(pins.MustParseVersion("3.51.3"), date); err == nil || !strings.Contains(err.Error(), "hand: tags[0]") {
		t.Errorf("hand-made bad template: %v", err)
	}
}

func TestEmbedded(t *testing.T) {
	names := imagedef.EmbeddedNames()
	if want := []string{"alpine-3.21", "alpine-3.22", "debian-13", "python-3.13-alpine3.21"}; !reflect.DeepEqual(names, want) {
		t.Errorf("EmbeddedNames = %v, want %v", names, want)
	}
	date := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	published := map[string]string{}
	for _, n := range names {
		d, err := imagedef.Embedded(n)
		if err != nil {
			t.Errorf("Embedded(%s): %v", n, err)
			continue
		}
		if d.Name != n || d.File != "images/"+n+".yaml" || !pins.HasWALResetFix(d.SQLite) || len(d.Platforms) == 0 {
			t.Errorf("Embedded(%s) = %+v", n, d)
		}
		raw, _ := fs.ReadFile(sqlitegraft.Images(), n+".yaml")
		if !strings.HasPrefix(string(raw), "# ") {
			t.Errorf("%s.yaml does not start with a comment saying why it exists", n)
		}
		tags, err := d.Tags(d.SQLite, date)
		if err != nil {
			t.Errorf("%s: Tags: %v", n, err)
		}
		for _, tag := range tags {
			ref := d.Repository + ":" + tag
			if other, dup := published[ref]; dup {
				t.Errorf("%s and %s both publish %s", other, n, ref)
			}
			published[ref] = n
		}
	}

	d, err := imagedef.Embedded(imagedef.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if d.Base != "docker.io/library/alpine:3.21" || d.Libc != "musl" || d.DistroSQLite != "3.48.0-r4" ||
		d.SQLite.String() != "3.53.4" || !reflect.DeepEqual(d.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("default definition = %+v", d)
	}
	for n, want := range map[string]struct{ base, libc, distro string }{
		"alpine-3.22":            {"docker.io/library/alpine:3.22", "musl", "3.49.2-r1"},
		"python-3.13-alpine3.21": {"docker.io/library/python:3.13-alpine3.21", "musl", "3.48.0-r4"},
		"debian-13":              {"docker.io/library/debian:13", "glibc", "3.46.1-7+deb13u2"},
	} {
		d, err := imagedef.Embedded(n)
		if err != nil || d.Base != want.base || d.Libc != want.libc || d.DistroSQLite != want.distro {
			t.Errorf("Embedded(%s) = %+v, %v; want %+v", n, d, err, want)
		}
	}
	if d, _ := imagedef.Embedded("debian-13"); d != nil && !strings.HasPrefix(d.Toolchain, "apt-get") {
		t.Errorf("debian-13 toolchain %q is not apt-get", d.Toolchain)
	}

	for _, bad := range []string{"alpine-3.20", "../sqlite-pins", ""} {
		if _, err := imagedef.Embedded(bad); err == nil || !strings.Contains(err.Error(), "alpine-3.21, alpine-3.22") {
			t.Errorf("Embedded(%q) = %v, want an error listing the shipped names", bad, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "alpine-3.21.yaml")
	if err := os.WriteFile(p, []byte(valid), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := imagedef.Load(p); err != nil || d.File != p {
		t.Errorf("Load = %+v, %v", d, err)
	}
	other := filepath.Join(dir, "other.yml")
	if err := os.WriteFile(other, []byte(valid), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := imagedef.Load(other); err == nil || !strings.Contains(err.Error(), other+`:1: name "alpine-3.21": want "other"`) {
		t.Errorf("Load(other.yml) = %v", err)
	}
	if _, err := imagedef.Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Errorf("Load(missing) succeeded")
	}
	if _, err := imagedef.ParseWithPins(file, []byte(valid), nil); err == nil {
		t.Errorf("ParseWithPins(nil pins) succeeded")
	}
}

func FuzzParse(f *testing.F) {
	names := imagedef.EmbeddedNames()
	for _, n := range names {
		b, err := fs.ReadFile(sqlitegraft.Images(), n+".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		valid,
		"",
		"name: [\n",
		"- a\n",
		"name: &a x\nbase: *a\n",
		"libc: muscl\n",
		"---\n---\n",
		strings.Replace(valid, "sqlite: 3.51.3", "sqlite: 3.50", 1),
		strings.Replace(valid, "uid: 65532", "uid: 0", 1) + "allow_root: true\n",
		strings.Replace(valid, `"{{.BaseTag}}-sqlite{{.SQLite}}"`, `"{{range 99999999}}{{.}}{{end}}"`, 1),
		strings.Replace(valid, "  - linux/arm64\n", "  - linux/arm/v7\n", 1),
		valid + "hardening: {strip_setuid: false}\n",
	} {
		f.Add([]byte(s))
	}
	const name = "fuzz-input" // no .yaml: the name need not match
	date := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := imagedef.Parse(name, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name+":") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever is accepted is buildable and taggable.
		if !pins.HasWALResetFix(d.SQLite) || (d.Libc != "musl" && d.Libc != "glibc") ||
			(d.Preload != "env" && d.Preload != "wrapper") || len(d.Platforms) == 0 ||
			(d.User.UID == 0) != d.AllowRoot || d.BaseTag() == "" {
			t.Fatalf("accepted an invalid definition: %+v", d)
		}
		tags, err := d.Tags(d.SQLite, date)
		if err != nil || len(tags) == 0 {
			t.Fatalf("accepted definition has no tags: %v, %v", tags, err)
		}
		for _, tag := range tags {
			if !tagRE.MatchString(tag) {
				t.Fatalf("tag %q is not a valid tag", tag)
			}
		}
	})
}

// Every shipped definition names the distribution package its downstream
// check fetches, and the SQLite a build makes is decided by Version alone.
func TestDistroPackageAndVersion(t *testing.T) {
	for _, n := range imagedef.EmbeddedNames() {
		d, err := imagedef.Embedded(n)
		if err != nil {
			t.Fatal(err)
		}
		if d.DistroSQLite == "" || d.DistroPackage == "" || !strings.HasPrefix(d.DistroRepository, "https://") {
			t.Errorf("%s: distro_sqlite %q, distro_package %q, distro_repository %q; want all three", d.File, d.DistroSQLite, d.DistroPackage, d.DistroRepository)
		}
		if v, err := d.Version(""); err != nil || v != d.SQLite {
			t.Errorf("%s: Version(\"\") = %s, %v; want the definition's %s", d.File, v, err, d.SQLite)
		}
	}
	d, _ := imagedef.Embedded(imagedef.DefaultName)
	if v, err := d.Version("3.53.4"); err != nil || v.String() != "3.53.4" {
		t.Errorf("Version(3.53.4) = %s, %v", v, err)
	}
	if _, err := d.Version("three"); err == nil || !strings.Contains(err.Error(), `sqlite "three"`) {
		t.Errorf("Version(three) = %v, want an error naming it", err)
	}
}

// accept_advisories: each entry names a known advisory once, with a reason;
// errors name the line.
func TestAcceptAdvisories(t *testing.T) {
	accept := "accept_advisories:\n  - id: CVE-2026-11822\n    reason: FTS5 is needed for a drop-in library\n  - id: CVE-2026-119374\n    reason: |\n      fixed only in 3.54.0,\n      which is not verifiable offline\n"
	d, err := imagedef.Parse(file, []byte(valid+accept))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.AcceptAdvisories) != 2 || d.AcceptAdvisories[0].ID != "CVE-2026-11822" || d.AcceptAdvisories[0].Reason != "FTS5 is needed for a drop-in library" ||
		d.AcceptAdvisories[1].Reason != "fixed only in 3.54.0,\nwhich is not verifiable offline" {
		t.Errorf("AcceptAdvisories = %+v", d.AcceptAdvisories)
	}
	for name, tc := range map[string]struct{ data, want string }{
		"no reason":   {"accept_advisories:\n  - id: CVE-2026-11822\n", file + ":23: accept_advisories[0] (CVE-2026-11822): reason is missing"},
		"blank":       {"accept_advisories:\n  - id: CVE-2026-11822\n    reason: \"  \"\n", file + ":23: accept_advisories[0] (CVE-2026-11822): reason is missing"},
		"bad id":      {"accept_advisories:\n  - id: cve-1\n    reason: r\n", file + `:23: accept_advisories[0]: id "cve-1"`},
		"unknown id":  {"accept_advisories:\n  - id: CVE-2020-12345\n    reason: r\n", file + ":23: accept_advisories[0]: CVE-2020-12345 is not in sqlite-advisories.yaml"},
		"twice":       {"accept_advisories:\n  - id: CVE-2026-11822\n    reason: r\n  - id: CVE-2026-11822\n    reason: s\n", file + ":25: accept_advisories[1]: CVE-2026-11822 is accepted twice"},
		"unknown key": {"accept_advisories:\n  - id: CVE-2026-11822\n    reason: r\n    until: 2027\n", file + `:25: unknown field "until"`},
		"not a list":  {"accept_advisories: CVE-2026-11822\n", file + ":22:"},
	} {
		if _, err := imagedef.Parse(file, []byte(valid+tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v, want %q", name, err, tc.want)
		}
	}
}
