package upstream

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// PinsUpdate is the result of adding the download page's new releases to a
// pins file.
type PinsUpdate struct {
	Data     []byte     // the new file contents; the old ones when nothing was added
	Added    []pins.Pin // in the order appended
	Warnings []string   // releases left out, and why
	// Conflicts are pinned releases whose hash on the page differs from the
	// pin: the page or the pin is wrong, and a person must look. Pins are
	// never changed; a caller should not write Data when there are any.
	Conflicts []string
}

// PublishedBy is the `published:` text for hashes read from page: the page's
// URL, or for a saved copy its file name.
func PublishedBy(page string) string {
	if IsURL(page) {
		return page + " (machine-readable block)"
	}
	return page + " (machine-readable block of a saved copy of the download page)"
}

// UpdatePins adds to the pins file (name, data) every release of page that
// it does not pin yet, with the archive hashes the page publishes. Existing
// entries are never changed: the new entries are appended as YAML text at
// the end of the releases list, so comments and layout stay, and the
// result must parse (pins.Parse) to exactly the old entries plus the new
// ones. Withdrawn versions, versions without the WAL-reset fix and
// releases whose URL has no YYYY/ directory are left out with a warning.
//
// The download page gives no release date; pins need one (it is the
// default SOURCE_DATE_EPOCH). An added entry's date is the day it was first
// seen (today, UTC), kept within the year of its URL, and a comment above
// the entry says so.
func UpdatePins(name string, data []byte, page *DownloadPage, published string, today time.Time) (*PinsUpdate, error) {
	old, err := pins.Parse(name, data)
	if err != nil {
		return nil, err
	}
	up := &PinsUpdate{Data: data}
	for _, r := range page.Releases() {
		if pinned, err := old.Lookup(r.Version); err == nil {
			for _, a := range r.Archives {
				if h := pinned.ArchiveHash(a.Kind); h != nil && h.SHA3 != a.SHA3 {
					up.Conflicts = append(up.Conflicts, fmt.Sprintf("%s: %s lists %s with SHA3 %s, but %s pins %s (published: %s)",
						r.Version, page.Name, a.Path, a.SHA3, name, h.SHA3, h.Published))
				}
			}
			continue
		}
		if withdrawn(old, r.Version) {
			up.Warnings = append(up.Warnings, fmt.Sprintf("%s: withdrawn upstream (see withdrawn: in %s); not added", r.Version, name))
			continue
		}
		if !pins.HasWALResetFix(r.Version) {
			up.Warnings = append(up.Warnings, fmt.Sprintf("%s: lacks the WAL-reset fix; not added", r.Version))
			continue
		}
		p, why := newPin(r, published, today)
		if why != "" {
			up.Warnings = append(up.Warnings, fmt.Sprintf("%s: %s; not added", r.Version, why))
			continue
		}
		up.Added = append(up.Added, p)
	}
	if len(up.Added) == 0 {
		return up, nil
	}
	text, err := appendReleases(name, data, up.Added, published, today)
	if err != nil {
		return nil, err
	}
	// The text must say what we meant, and nothing else.
	got, err := pins.Parse(name, text)
	if err != nil {
		return nil, fmt.Errorf("%s: the updated file does not parse (%v); left unchanged", name, err)
	}
	want := *old
	want.Releases = append(append([]pins.Pin(nil), old.Releases...), up.Added...)
	if !reflect.DeepEqual(got, &want) {
		return nil, fmt.Errorf("%s: the updated file parses to other entries than intended; left unchanged", name)
	}
	up.Data = text
	return up, nil
}

func newPin(r Release, published string, today time.Time) (pins.Pin, string) {
	p := pins.Pin{Version: r.Version}
	var noYear []string
	for _, a := range r.Archives {
		if a.Year == 0 {
			noYear = append(noYear, a.Path)
			continue
		}
		if p.Year != 0 && p.Year != a.Year {
			return p, fmt.Sprintf("its archives sit in different year directories (%d, %d)", p.Year, a.Year)
		}
		p.Year = a.Year
		h := &pins.Hash{SHA3: a.SHA3, Published: published}
		switch a.Kind {
		case pins.Amalgamation:
			p.Amalgamation = h
		case pins.Autoconf:
			p.AutoconfArchive = h
		}
	}
	if p.Year == 0 {
		return p, fmt.Sprintf("no YYYY/ directory in its URL (%s), so its download URL cannot be built", strings.Join(noYear, ", "))
	}
	d := today.UTC()
	switch {
	case d.Year() > p.Year:
		d = time.Date(p.Year, 12, 31, 0, 0, 0, 0, time.UTC)
	case d.Year() < p.Year:
		d = time.Date(p.Year, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	p.Date = d.Format("2006-01-02")
	return p, ""
}

var (
	releasesKeyRE = regexp.MustCompile(`^releases:[ \t]*(#.*)?$`)
	listItemRE    = regexp.MustCompile(`^([ \t]*)- `)
)

// appendReleases inserts entries after the last entry of the top-level
// block-style releases list.
func appendReleases(name string, data []byte, add []pins.Pin, published string, today time.Time) ([]byte, error) {
	lines := strings.SplitAfter(string(data), "\n")
	start := -1
	for i, l := range lines {
		if releasesKeyRE.MatchString(strings.TrimRight(l, "\r\n")) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("%s: no top-level block list \"releases:\" to append to (a flow list [..] cannot be extended without rewriting it)", name)
	}
	last, indent := -1, ""
	for j := start + 1; j < len(lines); j++ {
		l := strings.TrimRight(lines[j], "\r\n")
		t := strings.TrimSpace(l)
		if l != "" && l[0] != ' ' && l[0] != '\t' && l[0] != '#' && (l[0] != '-' || strings.HasPrefix(l, "---")) {
			break // the next top-level key or document
		}
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if m := listItemRE.FindStringSubmatch(l); m != nil && indent == "" && last < 0 {
			indent = m[1]
		}
		last = j
	}
	if last < 0 {
		return nil, fmt.Errorf("%s:%d: the releases list is empty; nothing to append after", name, start+1)
	}
	crlf := strings.HasSuffix(lines[start], "\r\n")
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b strings.Builder
	for _, l := range lines[:last+1] {
		b.WriteString(l)
	}
	if !strings.HasSuffix(lines[last], "\n") {
		b.WriteString(nl)
	}
	for _, p := range add {
		b.WriteString(nl)
		writePin(&b, indent, nl, p, published, today)
	}
	for _, l := range lines[last+1:] {
		b.WriteString(l)
	}
	return []byte(b.String()), nil
}

func writePin(b *strings.Builder, ind, nl string, p pins.Pin, published string, today time.Time) {
	line := func(depth int, format string, args ...any) {
		b.WriteString(ind + strings.Repeat("  ", depth) + fmt.Sprintf(format, args...) + nl)
	}
	line(0, "# Added by `sqlite-graft pins update` on %s from %s.", today.UTC().Format("2006-01-02"), oneLine(published))
	line(0, "# The download page gives no release date: date is the day this release was")
	line(0, "# first seen there (within its year); changes.html has the real one.")
	line(0, "- version: %s", p.Version)
	line(1, "year: %d", p.Year)
	line(1, "date: %s", p.Date)
	for _, h := range []struct {
		key string
		h   *pins.Hash
	}{{"amalgamation", p.Amalgamation}, {"autoconf", p.AutoconfArchive}} {
		if h.h == nil {
			continue
		}
		line(1, "%s:", h.key)
		line(2, "sha3: %s", h.h.SHA3)
		line(2, "published: %s", yamlString(h.h.Published))
	}
}

var plainRE = regexp.MustCompile(`^[A-Za-z0-9/][A-Za-z0-9 ._/()+,=;@%-]*[A-Za-z0-9/)._-]$|^[A-Za-z0-9/]$`)

// yamlString writes s plain when that reads back as the same string, else
// double-quoted (a JSON string is a YAML double-quoted scalar).
func yamlString(s string) string {
	if plainRE.MatchString(strings.ReplaceAll(s, "://", "/")) && !strings.Contains(s, ": ") && !strings.Contains(s, " #") {
		return s
	}
	q, _ := json.Marshal(s)
	return string(q)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
