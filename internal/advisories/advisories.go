// Package advisories reads sqlite-advisories.yaml — the published
// vulnerabilities of SQLite — and answers which of them affect a build: a
// SQLite version compiled with a set of options. An advisory that needs a
// component (SQLITE_ENABLE_FTS5, SQLITE_HAVE_ZLIB, ...) affects only builds
// that enable it; the options come from the compile recipe (internal/recipe),
// the one place they are decided.
//
// The build refuses a pin with an advisory that its image definition does not
// accept by id with a reason (Refuse); the VEX document (internal/vex) states
// "not affected" only for advisories that do not affect the graft.
package advisories

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Advisory is one published vulnerability.
type Advisory struct {
	ID         string        `json:"id"`
	Summary    string        `json:"summary"`
	Introduced *pins.Version `json:"introduced,omitempty"` // first affected release; nil: all earlier
	Fixed      *pins.Version `json:"fixed,omitempty"`      // first fixed release; nil: not fixed
	Requires   string        `json:"requires,omitempty"`   // compile option the code needs; "": every build
	Sources    []string      `json:"sources,omitempty"`
	Measured   string        `json:"measured,omitempty"` // who measured the facts when no source was found
	Note       string        `json:"note,omitempty"`
	Line       int           `json:"-"` // where the entry starts in its file
}

// File is a parsed advisories file.
type File struct {
	Name       string     `json:"-"`
	Advisories []Advisory `json:"advisories"`
}

// Acceptance is an image definition's decision to ship a pin despite an
// advisory: the id and why.
type Acceptance struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

var (
	// IDRE is what an advisory id looks like: a CVE or a GitHub advisory.
	IDRE       = regexp.MustCompile(`^(CVE-\d{4}-\d{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3})$`)
	optionRE   = regexp.MustCompile(`^SQLITE_[A-Z0-9_]+$`)
	embeddedOf = sync.OnceValues(func() (*File, error) {
		return Parse(sqlitegraft.AdvisoriesFileName, sqlitegraft.AdvisoriesYAML)
	})
)

// Embedded is the advisories file built into the tool.
func Embedded() (*File, error) { return embeddedOf() }

// Load reads and validates an advisories file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

type rawFile struct {
	Advisories []rawAdvisory `yaml:"advisories"`
}

type rawAdvisory struct {
	ID         string   `yaml:"id"`
	Summary    string   `yaml:"summary"`
	Introduced string   `yaml:"introduced"`
	Fixed      string   `yaml:"fixed"`
	Requires   string   `yaml:"requires"`
	Sources    []string `yaml:"sources"`
	Measured   string   `yaml:"measured"`
	Note       string   `yaml:"note"`
}

// Parse validates advisories file contents; name is used in errors, which
// name the line of the offending entry or field.
func Parse(name string, data []byte) (f *File, err error) {
	defer func() {
		// The YAML library is not ours: a panic on odd input is still only an
		// invalid file.
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("%s: unreadable YAML (%v)", name, r)
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty advisories file", name)
	}
	var raw rawFile
	if err := yaml.UnmarshalWithOptions(data, &raw, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s: %s", name, yaml.FormatError(err, false, false))
	}
	tree, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, yaml.FormatError(err, false, false))
	}
	at := func(path string) int {
		p, err := yaml.PathString(path)
		if err != nil {
			return 0
		}
		n, err := p.FilterFile(tree)
		if err != nil || n == nil {
			return 0
		}
		return lineOf(n)
	}
	f = &File{Name: name}
	if len(raw.Advisories) == 0 {
		return nil, fmt.Errorf("%s: advisories: the list is empty", name)
	}
	seen := map[string]int{}
	for i, r := range raw.Advisories {
		item := fmt.Sprintf("$.advisories[%d]", i)
		errf := func(field, format string, args ...any) error {
			ln := at(item + "." + field)
			if ln == 0 {
				ln = at(item)
			}
			return fmt.Errorf("%s:%d: advisories[%d] (%s): %s", name, ln, i, r.ID, fmt.Sprintf(format, args...))
		}
		a := Advisory{ID: r.ID, Summary: strings.TrimSpace(r.Summary), Requires: r.Requires, Sources: r.Sources,
			Measured: strings.TrimSpace(r.Measured), Note: strings.TrimSpace(r.Note), Line: at(item)}
		if !IDRE.MatchString(a.ID) {
			return nil, errf("id", "id %q: want CVE-YYYY-NNNN or GHSA-xxxx-xxxx-xxxx", a.ID)
		}
		if prev, dup := seen[a.ID]; dup {
			return nil, errf("id", "%s is listed twice (also at line %d)", a.ID, prev)
		}
		seen[a.ID] = a.Line
		if a.Summary == "" || strings.ContainsAny(a.Summary, "\n\r") {
			return nil, errf("summary", "summary: want one line saying what is wrong")
		}
		for _, b := range []struct {
			field, text string
			dst         **pins.Version
		}{{"introduced", r.Introduced, &a.Introduced}, {"fixed", r.Fixed, &a.Fixed}} {
			if b.text == "" {
				continue
			}
			v, err := pins.ParseVersion(b.text)
			if err != nil {
				return nil, errf(b.field, "%s: %v", b.field, err)
			}
			*b.dst = &v
		}
		if a.Introduced == nil && a.Fixed == nil {
			return nil, errf("id", "neither introduced nor fixed: say which releases are affected")
		}
		if a.Introduced != nil && a.Fixed != nil && !a.Introduced.Less(*a.Fixed) {
			return nil, errf("fixed", "fixed %s is not after introduced %s", a.Fixed, a.Introduced)
		}
		if a.Requires != "" && !optionRE.MatchString(a.Requires) {
			return nil, errf("requires", "requires %q: want a compile option such as SQLITE_ENABLE_FTS5", a.Requires)
		}
		for j, s := range a.Sources {
			if u, err := url.Parse(s); err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(s, " \t\n") {
				return nil, errf(fmt.Sprintf("sources[%d]", j), "sources[%d] %q: want an https address", j, s)
			}
		}
		if len(a.Sources) == 0 && a.Measured == "" {
			return nil, errf("id", "no sources and no measured: say where the facts come from")
		}
		f.Advisories = append(f.Advisories, a)
	}
	return f, nil
}

func lineOf(n ast.Node) int {
	if n == nil || n.GetToken() == nil || n.GetToken().Position == nil {
		return 0
	}
	if mv, ok := n.(*ast.MappingNode); ok && len(mv.Values) > 0 {
		return lineOf(mv.Values[0].Key)
	}
	return n.GetToken().Position.Line
}

// Range is the affected range in words: "3.39.2 to <3.41.2", "<3.53.2",
// ">=3.49.1 (not fixed)".
func (a Advisory) Range() string {
	switch {
	case a.Introduced != nil && a.Fixed != nil:
		return fmt.Sprintf("%s to <%s", a.Introduced, a.Fixed)
	case a.Fixed != nil:
		return "<" + a.Fixed.String()
	default:
		return fmt.Sprintf(">=%s (not fixed)", a.Introduced)
	}
}

// AffectsVersion says whether release v is in the affected range, whatever
// it was compiled with.
func (a Advisory) AffectsVersion(v pins.Version) bool {
	if a.Introduced != nil && v.Less(*a.Introduced) {
		return false
	}
	return a.Fixed == nil || v.Less(*a.Fixed)
}

// Affects says whether a build of v with the given compile options (recipe
// defines, "NAME" or "NAME=VALUE") contains the vulnerable code.
func (a Advisory) Affects(v pins.Version, defines []string) bool {
	return a.AffectsVersion(v) && (a.Requires == "" || Enabled(defines, a.Requires))
}

// Enabled says whether option is defined (to anything but 0) in defines.
func Enabled(defines []string, option string) bool {
	for _, d := range defines {
		d = strings.TrimPrefix(d, "-D")
		name, value, hasValue := strings.Cut(d, "=")
		if name == option {
			return !hasValue || strings.TrimSpace(value) != "0"
		}
	}
	return false
}

// Lookup finds an advisory by id.
func (f *File) Lookup(id string) (Advisory, bool) {
	for _, a := range f.Advisories {
		if a.ID == id {
			return a, true
		}
	}
	return Advisory{}, false
}

// Affecting lists the advisories that affect a build of v with defines, in
// file order.
func (f *File) Affecting(v pins.Version, defines []string) []Advisory {
	var out []Advisory
	for _, a := range f.Advisories {
		if a.Affects(v, defines) {
			out = append(out, a)
		}
	}
	return out
}

// AffectingVersion lists the advisories whose range covers v, whatever the
// build's options: the judgement for a distribution package, whose options
// sqlite-graft does not know.
func (f *File) AffectingVersion(v pins.Version) []Advisory {
	var out []Advisory
	for _, a := range f.Advisories {
		if a.AffectsVersion(v) {
			out = append(out, a)
		}
	}
	return out
}

// Unaccepted lists the advisories affecting a build of v with defines that
// accepted does not name.
func (f *File) Unaccepted(v pins.Version, defines []string, accepted []Acceptance) []Advisory {
	ok := map[string]bool{}
	for _, acc := range accepted {
		if strings.TrimSpace(acc.Reason) != "" {
			ok[acc.ID] = true
		}
	}
	var out []Advisory
	for _, a := range f.Affecting(v, defines) {
		if !ok[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// ErrRefused marks a build refused for an unaccepted advisory.
var ErrRefused = errors.New("refused")

// Refuse is the build's gate: nil when every advisory affecting a build of v
// with defines is accepted by the image definition in file, else an error
// that names the file, each advisory, and how to accept it or which release
// fixes them all.
func (f *File) Refuse(file string, v pins.Version, defines []string, accepted []Acceptance) error {
	open := f.Unaccepted(v, defines, accepted)
	if len(open) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v: SQLite %s, as compiled by the recipe, is affected by %d advisor%s that the definition does not accept:",
		file, ErrRefused, v, len(open), map[bool]string{true: "y", false: "ies"}[len(open) == 1])
	for _, a := range open {
		fmt.Fprintf(&b, "\n  %s (%s; affected %s", a.ID, a.Summary, a.Range())
		if a.Requires != "" {
			fmt.Fprintf(&b, "; needs %s, which the recipe enables", a.Requires)
		}
		b.WriteString(")")
		if len(a.Sources) > 0 {
			fmt.Fprintf(&b, " %s", a.Sources[0])
		}
	}
	if fix := FirstFixing(open); fix != nil {
		fmt.Fprintf(&b, "\nSQLite %s or later fixes them all (pin it and set sqlite: in %s, or pass --sqlite), or accept each in %s:", fix, file, file)
	} else {
		fmt.Fprintf(&b, "\nno release fixes them all yet; accept each in %s:", file)
	}
	b.WriteString("\n  accept_advisories:")
	for _, a := range open {
		fmt.Fprintf(&b, "\n    - id: %s\n      reason: <why this image ships it anyway>", a.ID)
	}
	return &RefusedError{Advisories: open, msg: b.String()}
}

// RefusedError is Refuse's error; it lists the unaccepted advisories.
type RefusedError struct {
	Advisories []Advisory
	msg        string
}

func (e *RefusedError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Refuse is (*File).Refuse with the embedded advisories: the one call the
// build's planning makes.
func Refuse(file string, v pins.Version, defines []string, accepted []Acceptance) error {
	f, err := Embedded()
	if err != nil {
		return err
	}
	return f.Refuse(file, v, defines, accepted)
}

// FirstFixing is the lowest release that fixes every advisory in list, or
// nil when one of them is not fixed.
func FirstFixing(list []Advisory) *pins.Version {
	var max *pins.Version
	for _, a := range list {
		if a.Fixed == nil {
			return nil
		}
		if max == nil || max.Less(*a.Fixed) {
			v := *a.Fixed
			max = &v
		}
	}
	return max
}

// IDs lists the ids of list, sorted.
func IDs(list []Advisory) []string {
	var ids []string
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	sort.Strings(ids)
	return ids
}
