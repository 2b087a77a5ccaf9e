// Package imagedef reads the image definitions, images/<name>.yaml: one file
// per published image, naming its base, libc, toolchain, SQLite version,
// platforms, repository, tags, hardening knobs and the advisories it ships
// anyway (accept_advisories). Files are validated on
// load, strictly: an unknown key or a bad value is an error that names the
// file and the line.
package imagedef

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/google/go-containerregistry/pkg/name"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/advisories"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// DefaultName is the image built when none is named.
const DefaultName = "alpine-3.21"

// Values of Libc and Preload.
const (
	Musl  = "musl"
	Glibc = "glibc"

	PreloadEnv     = "env"     // image-wide LD_PRELOAD in the config
	PreloadWrapper = "wrapper" // only commands run through sqlite-preload
)

// Definition is a validated image definition.
type Definition struct {
	File       string `json:"-"`    // where it was read from, for errors
	Name       string `json:"name"` // the file's base name
	Base       string `json:"base"` // tag reference, resolved to a digest at build time
	BaseDigest string `json:"base_digest,omitempty"`
	Libc       string `json:"libc"`
	// Toolchain is the base's own command that installs a C toolchain,
	// run in the base by the Dagger executor.
	Toolchain string `json:"toolchain"`
	// TestToolchain is the base's own command that installs what SQLite's
	// testfixture needs beyond Toolchain (Tcl's and zlib's headers, make):
	// the Dagger executor runs the release gate in the base with it.
	// Optional: without it the engine cannot run the gate and says so.
	TestToolchain string `json:"test_toolchain,omitempty"`
	// DistroSQLite is the version of the distribution's SQLite package
	// (what `apk add sqlite-libs` / `apt-get install libsqlite3-0`
	// installs), DistroPackage its name and DistroRepository where its
	// index lives: the downstream image check fetches that package, at that
	// version, when the base carries no SQLite of its own.
	DistroSQLite     string       `json:"distro_sqlite,omitempty"`
	DistroPackage    string       `json:"distro_package,omitempty"`
	DistroRepository string       `json:"distro_repository,omitempty"`
	SQLite           pins.Version `json:"sqlite"`    // pinned and fixed
	Platforms        []string     `json:"platforms"` // os/arch[/variant]
	Repository       string       `json:"repository"`
	TagTemplates     []string     `json:"tags"` // text/template over TagData
	Preload          string       `json:"preload"`
	AllowRoot        bool         `json:"allow_root,omitempty"`
	User             User         `json:"user"`
	Hardening        Hardening    `json:"hardening"`
	// AcceptAdvisories are the advisories affecting the pin that this image
	// ships anyway, each with its reason. They decide whether a build may
	// run, not what it contains, so they are left out of the JSON that the
	// build's recorded inputs hash: accepting an advisory rebuilds nothing.
	AcceptAdvisories []advisories.Acceptance `json:"-"`

	tags []*template.Template
}

// User is the image's default user.
type User struct {
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Name string `json:"name"`
}

// Hardening says what is taken out of the base.
type Hardening struct {
	// StripSetuid removes set-id bits and file capabilities
	// (security.capability xattrs): LD_PRELOAD is ignored for privileged
	// programs, so they would keep the distro's SQLite. Each such file is
	// rewritten in the graft layer, same content, without the bits and
	// without any xattr (every name of a hard-linked one).
	StripSetuid          bool `json:"strip_setuid"`
	RemovePackageManager bool `json:"remove_package_manager"`
}

// TagData is what tag templates see.
type TagData struct {
	SQLite  string // 3.51.3
	Date    string // YYYYMMDD of the build's SOURCE_DATE_EPOCH, UTC
	BaseTag string // the tag of Base, e.g. 3.21
}

// Defaults for fields left out.
var (
	DefaultUser      = User{UID: 65532, GID: 65532, Name: "nonroot"}
	DefaultHardening = Hardening{StripSetuid: true}
)

// raw is the file as written; pointers tell "left out" from "zero".
type raw struct {
	Name         string        `yaml:"name"`
	Base         string        `yaml:"base"`
	BaseDigest   string        `yaml:"base_digest"`
	Libc         string        `yaml:"libc"`
	Toolchain    string        `yaml:"toolchain"`
	TestToolch   string        `yaml:"test_toolchain"`
	DistroSQLite string        `yaml:"distro_sqlite"`
	DistroPkg    string        `yaml:"distro_package"`
	DistroRepo   string        `yaml:"distro_repository"`
	SQLite       string        `yaml:"sqlite"`
	Platforms    []string      `yaml:"platforms"`
	Repository   string        `yaml:"repository"`
	Tags         []string      `yaml:"tags"`
	Preload      string        `yaml:"preload"`
	AllowRoot    bool          `yaml:"allow_root"`
	User         *rawUser      `yaml:"user"`
	Hardening    *rawHardening `yaml:"hardening"`
	Accept       []rawAccept   `yaml:"accept_advisories"`
}

type rawAccept struct {
	ID     string `yaml:"id"`
	Reason string `yaml:"reason"`
}

type rawUser struct {
	UID  *int64  `yaml:"uid"`
	GID  *int64  `yaml:"gid"`
	Name *string `yaml:"name"`
}

type rawHardening struct {
	StripSetuid          *bool `yaml:"strip_setuid"`
	RemovePackageManager *bool `yaml:"remove_package_manager"`
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	tagRE      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// Architectures container images are published for, with the variants
	// each may carry (OCI image-index platform values).
	archVariants = map[string][]string{
		"amd64": {"v1", "v2", "v3", "v4"}, "arm64": {"v8", "v9"}, "arm": {"v5", "v6", "v7"},
		"386": nil, "ppc64le": nil, "s390x": nil, "riscv64": nil, "loong64": nil, "mips64le": nil,
	}
)

var embeddedPins = sync.OnceValues(func() (*pins.File, error) {
	return pins.Parse(sqlitegraft.PinsFileName, sqlitegraft.PinsYAML)
})

// Load reads and validates a definition against the embedded pins.
func Load(file string) (*Definition, error) {
	pf, err := embeddedPins()
	if err != nil {
		return nil, err
	}
	return LoadWithPins(file, pf)
}

// LoadWithPins is Load against another pins file (--pins).
func LoadWithPins(file string, pf *pins.File) (*Definition, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseWithPins(file, b, pf)
}

// Parse validates definition contents against the embedded pins. name is the
// file name used in errors; when it ends in .yaml or .yml, the definition's
// name must be its base name.
func Parse(name string, data []byte) (*Definition, error) {
	pf, err := embeddedPins()
	if err != nil {
		return nil, err
	}
	return ParseWithPins(name, data, pf)
}

// ParseWithPins is Parse against another pins file.
func ParseWithPins(name string, data []byte, pf *pins.File) (*Definition, error) {
	if pf == nil {
		return nil, fmt.Errorf("%s: no pins file to check the SQLite version against", name)
	}
	p := &parsed{file: name, fields: map[string]field{}}
	if err := p.decode(data); err != nil {
		return nil, err
	}
	return p.validate(pf)
}

// field is where a key (or list item) sits in the file.
type field struct {
	line int
	node ast.Node
}

type parsed struct {
	file   string
	raw    raw
	fields map[string]field // "libc", "user.uid", "tags[1]"
}

// errorf names the file, and the line of key when the file has it.
func (p *parsed) errorf(key, format string, args ...any) error {
	if f, ok := p.fields[key]; ok && f.line > 0 {
		return fmt.Errorf("%s:%d: %s", p.file, f.line, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s: %s", p.file, fmt.Sprintf(format, args...))
}

func (p *parsed) yamlError(err error) error {
	// Say which key wants what, not which Go struct field.
	var te *yaml.TypeError
	if errors.As(err, &te) && te.Token != nil && te.Token.Position != nil {
		ln := te.Token.Position.Line
		if key := p.keyAt(te.Token); key != "" {
			got := fmt.Sprintf("%q", te.Token.Value)
			switch unwrap(p.fields[key].node).(type) {
			case *ast.SequenceNode:
				got = "a list"
			case *ast.MappingNode, *ast.MappingValueNode:
				got = "a mapping"
			}
			return fmt.Errorf("%s:%d: %s: %s is not %s", p.file, ln, key, got, kind(te.DstType))
		}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return fmt.Errorf("%s:%d: %s", p.file, tk.Position.Line, ye.GetMessage())
		}
		return fmt.Errorf("%s: %s", p.file, ye.GetMessage())
	}
	return fmt.Errorf("%s: %v", p.file, err)
}

func (p *parsed) decode(data []byte) (err error) {
	// The YAML library is not ours: should it panic on odd input, this
	// file is still only an invalid definition.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: unreadable YAML (%v)", p.file, r)
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s: empty image definition", p.file)
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return p.yamlError(err)
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0:
		return fmt.Errorf("%s: empty image definition", p.file)
	case len(docs) > 1:
		return fmt.Errorf("%s:%d: a second YAML document; one definition per file", p.file, line(docs[1].Body))
	}
	body := docs[0].Body
	if _, ok := body.(*ast.MappingNode); !ok {
		if _, ok := body.(*ast.MappingValueNode); !ok {
			return fmt.Errorf("%s:%d: want a mapping of keys such as name, base and libc", p.file, line(body))
		}
	}
	// Anchors and aliases would let one line stand for another; definitions
	// are short enough to say everything once.
	var bad ast.Node
	ast.Walk(visitor(func(n ast.Node) bool {
		switch n.(type) {
		case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
			if bad == nil {
				bad = n
			}
			return false
		}
		return true
	}), body)
	if bad != nil {
		return fmt.Errorf("%s:%d: YAML anchors, aliases and merge keys are not supported in image definitions", p.file, line(bad))
	}
	p.index(body, "")
	if err := yaml.NodeToValue(body, &p.raw, yaml.Strict()); err != nil {
		return p.yamlError(err)
	}
	return nil
}

// keyAt is the key whose value starts at tk, else the innermost key on
// tk's line.
func (p *parsed) keyAt(tk *token.Token) string {
	best := ""
	for k, f := range p.fields {
		if n := unwrap(f.node); f.node != nil && (f.node.GetToken() == tk || n != nil && n.GetToken() == tk) {
			return k
		}
		if f.line == tk.Position.Line && (len(k) > len(best) || len(k) == len(best) && k < best) {
			best = k
		}
	}
	return best
}

func unwrap(n ast.Node) ast.Node {
	if t, ok := n.(*ast.TagNode); ok {
		return t.Value
	}
	return n
}

func kind(t reflect.Type) string {
	if t == nil {
		return "of the right type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return "a " + t.String()
}

type visitor func(ast.Node) bool

func (v visitor) Visit(n ast.Node) ast.Visitor {
	if v(n) {
		return v
	}
	return nil
}

func line(n ast.Node) int {
	if n == nil || n.GetToken() == nil || n.GetToken().Position == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// index records the line of every key and list item.
func (p *parsed) index(n ast.Node, prefix string) {
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			p.index(mv, prefix)
		}
	case *ast.MappingValueNode:
		if n.Key == nil || n.Key.GetToken() == nil {
			return
		}
		key := n.Key.GetToken().Value
		if prefix != "" {
			key = prefix + "." + key
		}
		if _, seen := p.fields[key]; !seen {
			p.fields[key] = field{line: line(n.Key), node: n.Value}
		}
		p.index(n.Value, key)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			p.fields[key] = field{line: line(v), node: v}
			p.index(v, key)
		}
	case *ast.TagNode:
		p.index(n.Value, prefix)
	}
}

// scalarText is a scalar as written: `sqlite: 3.50` must mean 3.50.0, not
// the float 3.5 that decoding into a string would give.
func (p *parsed) scalarText(key, decoded string) string {
	switch n := unwrap(p.fields[key].node).(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		return n.GetToken().Value
	}
	return decoded
}

func (p *parsed) validate(pf *pins.File) (*Definition, error) {
	r := &p.raw
	d := &Definition{
		File: p.file, Name: r.Name, Base: r.Base, BaseDigest: r.BaseDigest, Libc: r.Libc,
		Toolchain: r.Toolchain, TestToolchain: r.TestToolch, DistroSQLite: p.scalarText("distro_sqlite", r.DistroSQLite),
		DistroPackage: r.DistroPkg, DistroRepository: r.DistroRepo,
		Platforms: r.Platforms, Repository: r.Repository, TagTemplates: r.Tags,
		Preload: r.Preload, AllowRoot: r.AllowRoot, User: DefaultUser, Hardening: DefaultHardening,
	}
	for _, check := range []func(*Definition) error{
		p.checkName, p.checkBase, p.checkLibc, p.checkToolchain, p.checkSQLite(pf), p.checkDistroPackage,
		p.checkPlatforms, p.checkRepository, p.checkPreload, p.checkUser, p.checkHardening, p.checkAccept,
		p.checkTags, // last: renders with the validated SQLite and base
	} {
		if err := check(d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func required(p *parsed, key, value, example string) error {
	if strings.TrimSpace(value) == "" {
		return p.errorf(key, "%s is missing, e.g. %s: %s", key, key, example)
	}
	if strings.ContainsAny(value, "\n\r") {
		return p.errorf(key, "%s %q: want a single line", key, value)
	}
	return nil
}

func (p *parsed) checkName(d *Definition) error {
	if err := required(p, "name", d.Name, "alpine-3.21"); err != nil {
		return err
	}
	if !nameRE.MatchString(d.Name) {
		return p.errorf("name", "name %q: want lower-case letters, digits, '.' and '-', at most 63", d.Name)
	}
	base := path.Base(filepath.ToSlash(p.file))
	if ext := path.Ext(base); ext == ".yaml" || ext == ".yml" {
		if want := strings.TrimSuffix(base, ext); want != d.Name {
			return p.errorf("name", "name %q: want %q, the file's name", d.Name, want)
		}
	}
	return nil
}

func (p *parsed) checkBase(d *Definition) error {
	if err := required(p, "base", d.Base, "docker.io/library/alpine:3.21"); err != nil {
		return err
	}
	if strings.Contains(d.Base, "@") {
		return p.errorf("base", "base %q: want a tag reference; a digest goes in base_digest", d.Base)
	}
	if _, err := name.NewTag(d.Base, name.StrictValidation); err != nil {
		return p.errorf("base", "base %q: want a full tag reference like docker.io/library/alpine:3.21 (%v)", d.Base, err)
	}
	if d.BaseDigest != "" && !digestRE.MatchString(d.BaseDigest) {
		return p.errorf("base_digest", "base_digest %q: want sha256: and 64 lower-case hex digits", d.BaseDigest)
	}
	return nil
}

func (p *parsed) checkLibc(d *Definition) error {
	if d.Libc == "" {
		return p.errorf("libc", "libc is missing: want %s or %s", Musl, Glibc)
	}
	if d.Libc != Musl && d.Libc != Glibc {
		return p.errorf("libc", "libc %q: want %s or %s", d.Libc, Musl, Glibc)
	}
	return nil
}

func (p *parsed) checkToolchain(d *Definition) error {
	example := "apk add --no-cache build-base"
	if d.Libc == Glibc {
		example = "apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev"
	}
	if err := required(p, "toolchain", d.Toolchain, example); err != nil {
		return err
	}
	if strings.ContainsAny(d.TestToolchain, "\n\r") {
		return p.errorf("test_toolchain", "test_toolchain %q: want a single line", d.TestToolchain)
	}
	return nil
}

func (p *parsed) checkSQLite(pf *pins.File) func(*Definition) error {
	return func(d *Definition) error {
		text := p.scalarText("sqlite", p.raw.SQLite)
		if strings.TrimSpace(text) == "" {
			return p.errorf("sqlite", "sqlite is missing, e.g. sqlite: %s", pf.Default)
		}
		v, err := pins.ParseVersion(text)
		if err != nil {
			return p.errorf("sqlite", "sqlite: %v", err)
		}
		if err := pins.WALResetError(v); err != nil {
			return p.errorf("sqlite", "sqlite %s: %v", v, err)
		}
		if _, err := pf.Lookup(v); err != nil {
			return p.errorf("sqlite", "sqlite %s: %v", v, err)
		}
		d.SQLite = v
		if d.DistroSQLite != "" {
			// Informative, but a typo would mislead: the upstream part
			// (before -r4, -7, +deb...) must be a SQLite version.
			upstream, _, _ := strings.Cut(d.DistroSQLite, "-")
			upstream, _, _ = strings.Cut(upstream, "+")
			if _, err := pins.ParseVersion(upstream); err != nil || strings.ContainsAny(d.DistroSQLite, " \n") {
				return p.errorf("distro_sqlite", "distro_sqlite %q: want the distro's package version, e.g. 3.48.0-r4", d.DistroSQLite)
			}
		}
		return nil
	}
}

func (p *parsed) checkPlatforms(d *Definition) error {
	if len(d.Platforms) == 0 {
		return p.errorf("platforms", "platforms: list at least one, e.g. linux/amd64")
	}
	seen := map[string]bool{}
	for i, pl := range d.Platforms {
		key := fmt.Sprintf("platforms[%d]", i)
		parts := strings.Split(pl, "/")
		if len(parts) < 2 || len(parts) > 3 {
			return p.errorf(key, "platform %q: want os/arch[/variant], e.g. linux/arm64", pl)
		}
		if parts[0] != "linux" {
			return p.errorf(key, "platform %q: want os linux (LD_PRELOAD and sonames are Linux's)", pl)
		}
		variants, ok := archVariants[parts[1]]
		if !ok {
			return p.errorf(key, "platform %q: unknown architecture %q (want one of %s)", pl, parts[1], strings.Join(archNames(), ", "))
		}
		if len(parts) == 3 && !contains(variants, parts[2]) {
			return p.errorf(key, "platform %q: %s has no variant %q (want one of %v)", pl, parts[1], parts[2], variants)
		}
		if seen[pl] {
			return p.errorf(key, "platform %s listed twice", pl)
		}
		seen[pl] = true
	}
	return nil
}

func archNames() []string {
	var s []string
	for a := range archVariants {
		s = append(s, a)
	}
	sort.Strings(s)
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parsed) checkRepository(d *Definition) error {
	if err := required(p, "repository", d.Repository, "ghcr.io/sqlite-graft/alpine"); err != nil {
		return err
	}
	if _, err := name.NewRepository(d.Repository, name.StrictValidation); err != nil {
		return p.errorf("repository", "repository %q: want registry/path without a tag, e.g. ghcr.io/sqlite-graft/alpine (%v)", d.Repository, err)
	}
	return nil
}

func (p *parsed) checkPreload(d *Definition) error {
	switch d.Preload {
	case "":
		d.Preload = PreloadEnv
	case PreloadEnv, PreloadWrapper:
	default:
		return p.errorf("preload", "preload %q: want %s or %s", d.Preload, PreloadEnv, PreloadWrapper)
	}
	return nil
}

func (p *parsed) checkUser(d *Definition) error {
	if u := p.raw.User; u != nil {
		if u.UID == nil || u.GID == nil || u.Name == nil {
			return p.errorf("user", "user: give uid, gid and name together (default %d, %d, %s)", DefaultUser.UID, DefaultUser.GID, DefaultUser.Name)
		}
		for _, f := range []struct {
			key string
			id  int64
		}{{"user.uid", *u.UID}, {"user.gid", *u.GID}} {
			key, id := f.key, f.id
			// Decoding would truncate 1.5 to 1: only integers count.
			if _, ok := unwrap(p.fields[key].node).(*ast.IntegerNode); !ok || id < 0 || id > 1<<31-1 {
				return p.errorf(key, "%s %v: want a whole number from 0 to 2147483647", key, p.fields[key].node)
			}
		}
		if !userNameRE.MatchString(*u.Name) {
			return p.errorf("user.name", "user.name %q: want a portable user name ([a-z_][a-z0-9_-]*, at most 32)", *u.Name)
		}
		d.User = User{UID: int(*u.UID), GID: int(*u.GID), Name: *u.Name}
	}
	switch {
	case d.User.UID == 0 && !d.AllowRoot:
		return p.errorf("user.uid", "user.uid 0: the image would run as root; set allow_root: true if that is meant")
	case d.User.UID != 0 && d.AllowRoot:
		return p.errorf("allow_root", "allow_root: true, but user.uid is %d; drop allow_root", d.User.UID)
	}
	return nil
}

func (p *parsed) checkHardening(d *Definition) error {
	if h := p.raw.Hardening; h != nil {
		if h.StripSetuid != nil {
			d.Hardening.StripSetuid = *h.StripSetuid
		}
		if h.RemovePackageManager != nil {
			d.Hardening.RemovePackageManager = *h.RemovePackageManager
		}
	}
	return nil
}

// checkAccept validates accept_advisories: each entry names an advisory of
// the embedded sqlite-advisories.yaml (a typo would accept nothing) once,
// with a reason a reader can judge.
func (p *parsed) checkAccept(d *Definition) error {
	known, err := advisories.Embedded()
	if err != nil {
		return err
	}
	seen := map[string]int{}
	for i, a := range p.raw.Accept {
		key := fmt.Sprintf("accept_advisories[%d]", i)
		switch {
		case !advisories.IDRE.MatchString(a.ID):
			return p.errorf(key, "%s: id %q: want an advisory id such as CVE-2026-11822", key, a.ID)
		case strings.TrimSpace(a.Reason) == "":
			return p.errorf(key, "%s (%s): reason is missing: say why the image ships this advisory", key, a.ID)
		}
		if _, ok := known.Lookup(a.ID); !ok {
			return p.errorf(key, "%s: %s is not in %s (known: %s)", key, a.ID, known.Name, strings.Join(advisories.IDs(known.Advisories), ", "))
		}
		if j, dup := seen[a.ID]; dup {
			return p.errorf(key, "%s: %s is accepted twice (also accept_advisories[%d])", key, a.ID, j)
		}
		seen[a.ID] = i
		d.AcceptAdvisories = append(d.AcceptAdvisories, advisories.Acceptance{ID: a.ID, Reason: strings.TrimSpace(a.Reason)})
	}
	return nil
}

// sampleDate renders tags at validation time.
var sampleDate = time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)

func (p *parsed) checkTags(d *Definition) error {
	if len(d.TagTemplates) == 0 {
		return p.errorf("tags", "tags: list at least one, e.g. \"{{.BaseTag}}-sqlite{{.SQLite}}\"")
	}
	for i, s := range d.TagTemplates {
		key := fmt.Sprintf("tags[%d]", i)
		t, err := parseTag(key, s)
		if err != nil {
			return p.errorf(key, "tag %q: %v", s, err)
		}
		d.tags = append(d.tags, t)
	}
	if _, err := d.render(d.SQLite, sampleDate, func(i int) string { return fmt.Sprintf("tags[%d]", i) }, p.errorf); err != nil {
		return err
	}
	return nil
}

// parseTag parses a tag template. Tags are text and fields only: no
// range, if, template or functions, so rendering is always quick and a tag
// reads the same in the file as in the registry.
func parseTag(key, s string) (*template.Template, error) {
	t, err := template.New(key).Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, errors.New(trimTemplateErr(err))
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return t, nil
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("define and block are not supported; use text and {{.SQLite}}, {{.Date}}, {{.BaseTag}}")
	}
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			continue
		case *parse.ActionNode:
			if p := n.Pipe; len(p.Decl) == 0 && len(p.Cmds) == 1 && len(p.Cmds[0].Args) == 1 {
				if f, ok := p.Cmds[0].Args[0].(*parse.FieldNode); ok && len(f.Ident) == 1 && tagFields[f.Ident[0]] {
					continue
				}
			}
		}
		return nil, fmt.Errorf("%s: only text and {{.SQLite}}, {{.Date}}, {{.BaseTag}} are allowed", n)
	}
	return t, nil
}

var tagFields = map[string]bool{"SQLite": true, "Date": true, "BaseTag": true}

// trimTemplateErr drops text/template's "template: tags[0]:1:" prefix: the
// error already names the file, line and template.
func trimTemplateErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "template: ") && i >= 0 {
		s = s[len("template: "):]
		if j := strings.Index(s, ": "); j >= 0 {
			s = s[j+2:]
		}
	}
	return s
}

// Tags renders the tag templates for one build: sqlite is the SQLite built,
// date the build's SOURCE_DATE_EPOCH. A version without the WAL-reset fix
// gets no tags.
func (d *Definition) Tags(sqlite pins.Version, date time.Time) ([]string, error) {
	if err := pins.WALResetError(sqlite); err != nil {
		return nil, fmt.Errorf("%s: no tags for SQLite %s: %w", d.File, sqlite, err)
	}
	if date.IsZero() {
		return nil, fmt.Errorf("%s: no tags without a build date (SOURCE_DATE_EPOCH)", d.File)
	}
	if d.tags == nil { // a Definition built in code rather than parsed
		for i, s := range d.TagTemplates {
			t, err := parseTag(fmt.Sprintf("tags[%d]", i), s)
			if err != nil {
				return nil, fmt.Errorf("%s: tags[%d] %q: %v", d.File, i, s, err)
			}
			d.tags = append(d.tags, t)
		}
	}
	if len(d.tags) == 0 {
		return nil, fmt.Errorf("%s: no tag templates", d.File)
	}
	return d.render(sqlite, date, func(i int) string { return fmt.Sprintf("tags[%d]", i) }, func(key, format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s", d.File, key, fmt.Sprintf(format, args...))
	})
}

// BaseTag is the tag part of Base ("3.21" of docker.io/library/alpine:3.21).
func (d *Definition) BaseTag() string {
	t, err := name.NewTag(d.Base, name.StrictValidation)
	if err != nil {
		return ""
	}
	return t.TagStr()
}

// maxTag bounds rendering: a template such as {{range 1000000000}} must
// fail fast rather than fill memory.
const maxTag = 128

type limitedWriter struct{ bytes.Buffer }

var errTooLong = errors.New("renders longer than 128 characters")

func (w *limitedWriter) Write(b []byte) (int, error) {
	if w.Len()+len(b) > maxTag {
		return 0, errTooLong
	}
	return w.Buffer.Write(b)
}

func (d *Definition) render(sqlite pins.Version, date time.Time, keyOf func(int) string, errorf func(key, format string, args ...any) error) ([]string, error) {
	data := TagData{SQLite: sqlite.String(), Date: date.UTC().Format("20060102"), BaseTag: d.BaseTag()}
	var out []string
	seen := map[string]int{}
	for i, t := range d.tags {
		var w limitedWriter
		if err := t.Execute(&w, data); err != nil {
			if errors.Is(err, errTooLong) {
				return nil, errorf(keyOf(i), "tag %q %v", d.TagTemplates[i], errTooLong)
			}
			return nil, errorf(keyOf(i), "tag %q: %v (fields: .SQLite, .Date, .BaseTag)", d.TagTemplates[i], trimTemplateErr(err))
		}
		tag := w.String()
		if !tagRE.MatchString(tag) {
			return nil, errorf(keyOf(i), "tag %q renders to %q: want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", d.TagTemplates[i], tag)
		}
		if j, dup := seen[tag]; dup {
			return nil, errorf(keyOf(i), "tag %q renders to %q, as tags[%d] does", d.TagTemplates[i], tag, j)
		}
		seen[tag] = i
		out = append(out, tag)
	}
	return out, nil
}

// Embedded returns the named definition shipped with the tool.
func Embedded(name string) (*Definition, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("image %q: not a definition name (shipped: %s)", name, strings.Join(EmbeddedNames(), ", "))
	}
	b, err := fs.ReadFile(sqlitegraft.Images(), name+".yaml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %q: no such definition (shipped: %s)", name, strings.Join(EmbeddedNames(), ", "))
	}
	if err != nil {
		return nil, err
	}
	return Parse("images/"+name+".yaml", b)
}

// EmbeddedNames lists the shipped definitions, sorted.
func EmbeddedNames() []string {
	files, err := fs.Glob(sqlitegraft.Images(), "*.yaml")
	if err != nil {
		panic(err) // the pattern is constant
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(f, ".yaml"))
	}
	sort.Strings(names)
	return names
}
