package upstream

import (
	"encoding/csv"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// The download page's machine-readable block: an HTML comment whose first
// line reads "Download product data for scripts to read", then a CSV table
// with this header. sqlite.org: "This format will remain stable except for
// possible new columns appended to the right of older columns."
var downloadColumns = []string{"PRODUCT", "VERSION", "RELATIVE-URL", "SIZE-IN-BYTES", "SHA3-HASH"}

// Archive is one SQLite source archive listed on the download page.
type Archive struct {
	Version pins.Version `json:"version"`
	Kind    pins.Kind    `json:"kind"`
	Path    string       `json:"path"`           // relative URL, e.g. 2026/sqlite-amalgamation-3510300.zip
	Year    int          `json:"year,omitempty"` // from Path's YYYY/ directory; 0 when it has none
	Size    int64        `json:"size"`
	SHA3    string       `json:"sha3"`
	Line    int          `json:"line"` // in the page
}

// Release is the archives of one version.
type Release struct {
	Version  pins.Version `json:"version"`
	Archives []Archive    `json:"archives"`
}

// Archive returns the release's archive of kind k, or nil.
func (r Release) Archive(k pins.Kind) *Archive {
	for i := range r.Archives {
		if r.Archives[i].Kind == k {
			return &r.Archives[i]
		}
	}
	return nil
}

// DownloadPage is the parsed machine-readable block of sqlite.org's
// download page. Other products (documentation, Windows DLLs, tools, wasm,
// the canonical sources) are checked for form and then left out.
type DownloadPage struct {
	Name     string    `json:"source"`
	Archives []Archive `json:"archives"`
	// Warnings are rows that are well formed but cannot be used, such as a
	// branch version 3.X.Y.Z that pins cannot name.
	Warnings []string `json:"warnings,omitempty"`
}

var (
	archiveNameRE = regexp.MustCompile(`^sqlite-(amalgamation|autoconf)-(\d{7})\.(zip|tar\.gz)$`)
	yearDirRE     = regexp.MustCompile(`^(\d{4})/`)
	branchVerRE   = regexp.MustCompile(`^3\.\d+\.\d+\.\d+$`)
	hexRE         = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// ParseDownloadPage reads the machine-readable block of the download page
// (HTML, or the bare CSV block). name is used in errors, with the line.
// A page without the block, a row that is not well formed, or a block that
// lists no amalgamation or autoconf archive is an error.
func ParseDownloadPage(name string, data []byte) (*DownloadPage, error) {
	lines := strings.Split(string(data), "\n")
	header := -1
	var cols []string
	for i, l := range lines {
		f := strings.Split(strings.TrimSpace(l), ",")
		if len(f) >= len(downloadColumns) && equalFold(f[:len(downloadColumns)], downloadColumns) {
			header, cols = i, f
			break
		}
	}
	if header < 0 {
		return nil, fmt.Errorf("%s: no machine-readable download block (a line %q); is this sqlite.org's download page?", name, strings.Join(downloadColumns, ","))
	}
	before := strings.Join(lines[:header], "\n")
	inComment := strings.LastIndex(before, "<!--") > strings.LastIndex(before, "-->")
	page := &DownloadPage{Name: name}
	seen := map[string]int{} // version/kind -> index in Archives
	closed := false
	for i := header + 1; i < len(lines); i++ {
		ln := i + 1
		l := strings.TrimSpace(lines[i])
		if end := strings.Index(l, "-->"); end >= 0 {
			if strings.TrimSpace(l[:end]) != "" {
				return nil, fmt.Errorf("%s:%d: text before the end of the download block: %q", name, ln, l[:end])
			}
			closed = true
			break
		}
		if l == "" {
			continue
		}
		rec, err := csv.NewReader(strings.NewReader(l)).Read()
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s:%d: not a CSV row: %v", name, ln, err)
		}
		if len(rec) != len(cols) {
			return nil, fmt.Errorf("%s:%d: %d columns, the header has %d (%s): %q", name, ln, len(rec), len(cols), strings.Join(cols, ","), clip(l))
		}
		a, skip, err := parseRow(rec)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, ln, err)
		}
		if skip != "" {
			page.Warnings = append(page.Warnings, fmt.Sprintf("%s:%d: %s", name, ln, skip))
			continue
		}
		if a == nil {
			continue
		}
		a.Line = ln
		key := a.Version.String() + "/" + string(a.Kind)
		if j, dup := seen[key]; dup {
			if p := page.Archives[j]; p.Path != a.Path || p.SHA3 != a.SHA3 || p.Size != a.Size {
				return nil, fmt.Errorf("%s:%d: %s %s listed again with another file or hash (first on line %d)", name, ln, a.Kind, a.Version, p.Line)
			}
			continue
		}
		seen[key] = len(page.Archives)
		page.Archives = append(page.Archives, *a)
	}
	if inComment && !closed {
		return nil, fmt.Errorf("%s: the download block starting on line %d is never closed (\"-->\"): truncated page?", name, header+1)
	}
	if len(page.Archives) == 0 {
		return nil, fmt.Errorf("%s:%d: the download block lists no sqlite-amalgamation or sqlite-autoconf archive", name, header+1)
	}
	return page, nil
}

// parseRow checks a row and returns the archive it lists, nil for another
// product, or a reason to skip a well-formed row.
func parseRow(rec []string) (a *Archive, skip string, err error) {
	if rec[0] != "PRODUCT" {
		return nil, "", fmt.Errorf("first column %q, want the constant PRODUCT", clip(rec[0]))
	}
	ver, rel, size, hash := strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2]), strings.TrimSpace(rec[3]), strings.TrimSpace(rec[4])
	if ver == "" {
		return nil, "", fmt.Errorf("empty VERSION")
	}
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "://") || strings.Contains(rel, "..") || strings.ContainsAny(rel, " \t\\") {
		return nil, "", fmt.Errorf("RELATIVE-URL %q is not a relative path", clip(rel))
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n <= 0 {
		return nil, "", fmt.Errorf("SIZE-IN-BYTES %q is not a positive number", clip(size))
	}
	if !hexRE.MatchString(hash) {
		return nil, "", fmt.Errorf("SHA3-HASH %q is not 64 hex digits", clip(hash))
	}
	m := archiveNameRE.FindStringSubmatch(path.Base(rel))
	if m == nil {
		return nil, "", nil // docs, DLLs, tools, wasm, src: not ours
	}
	kind := pins.Kind(m[1])
	if (kind == pins.Amalgamation) != (m[3] == "zip") {
		return nil, "", fmt.Errorf("%s: a %s archive with an unexpected extension", rel, kind)
	}
	v, err := pins.ParseVersion(ver)
	if err != nil {
		if branchVerRE.MatchString(ver) {
			return nil, fmt.Sprintf("%s %s: a branch release (3.X.Y.Z) cannot be pinned; skipped", ver, kind), nil
		}
		return nil, "", fmt.Errorf("VERSION: %v", err)
	}
	if want := strconv.Itoa(v.Number()); m[2] != want {
		return nil, "", fmt.Errorf("%s names %s but VERSION is %s (%s)", rel, m[2], ver, want)
	}
	a = &Archive{Version: v, Kind: kind, Path: rel, Size: n, SHA3: strings.ToLower(hash)}
	if y := yearDirRE.FindStringSubmatch(rel); y != nil {
		a.Year, _ = strconv.Atoi(y[1])
	}
	return a, "", nil
}

// Releases groups the archives by version, oldest first.
func (p *DownloadPage) Releases() []Release {
	byV := map[pins.Version]*Release{}
	for _, a := range p.Archives {
		r := byV[a.Version]
		if r == nil {
			r = &Release{Version: a.Version}
			byV[a.Version] = r
		}
		r.Archives = append(r.Archives, a)
	}
	var out []Release
	for _, r := range byV {
		sort.Slice(r.Archives, func(i, j int) bool { return r.Archives[i].Kind < r.Archives[j].Kind })
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version.Less(out[j].Version) })
	return out
}

// NewerThanPins lists the releases newer than every release pinned in f,
// leaving out withdrawn versions.
func (p *DownloadPage) NewerThanPins(f *pins.File) []Release {
	vs := f.Versions()
	var newest pins.Version
	if len(vs) > 0 {
		newest = vs[len(vs)-1]
	}
	var out []Release
	for _, r := range p.Releases() {
		if newest.Less(r.Version) && !withdrawn(f, r.Version) {
			out = append(out, r)
		}
	}
	return out
}

func withdrawn(f *pins.File, v pins.Version) bool {
	for _, w := range f.Withdrawn {
		if w.Version == v {
			return true
		}
	}
	return false
}

func equalFold(a, b []string) bool {
	for i := range b {
		if !strings.EqualFold(strings.TrimSpace(a[i]), b[i]) {
			return false
		}
	}
	return true
}

// clip keeps error messages about garbage input short.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
