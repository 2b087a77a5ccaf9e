package check

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// optionRule says how a baseline compile option must appear in the library
// under test for the library to be a drop-in superset.
type optionRule int

const (
	// required: the library must list the option (a feature programs use).
	required optionRule = iota
	// atLeast: a numeric limit; the library's value must be >= the baseline's.
	atLeast
	// equal: the library must list the option with the same value.
	equal
	// mayLack: the baseline has less than we do; lacking it is fine.
	mayLack
	// note: build environment or behaviour; a difference is reported, not failed.
	note
)

// optionRules decide, first match wins, how each compile option of the
// baseline (PRAGMA compile_options, without the SQLITE_ prefix) is compared.
// A pattern ending in * matches a prefix of the option name (the part before
// "="); any other pattern matches the whole name.
var optionRules = []struct {
	pattern string
	rule    optionRule
	why     string
}{
	// Listed by a build from the full source tree only: the grammar change needs a
	// parser generated with it, and the amalgamation's parser is not, so
	// defining it in an amalgamation build changes compile_options and nothing else.
	{"ENABLE_UPDATE_DELETE_LIMIT", note, "DELETE/UPDATE ... LIMIT needs a parser generated with it; no amalgamation build can have it"},
	{"ENABLE_*", required, "a feature that programs use: lacking it breaks them"},
	{"SOUNDEX", required, "the soundex() function"},
	{"USE_URI", required, "file: URIs in filenames, which programs rely on"},
	{"SECURE_DELETE", required, "deleted content is overwritten; dropping it weakens the baseline"},
	{"ALLOW_URI_AUTHORITY", required, "file://host/ URIs"},
	{"MAX_*", atLeast, "a limit: a lower one fails statements that worked"},
	{"THREADSAFE", equal, "the threading mode decides which concurrent calls are safe"},
	{"OMIT_*", mayLack, "the baseline omits something we keep"},
	{"COMPILER", note, "build environment"},
	{"HAVE_*", note, "build environment (what configure detected)"},
	{"DEFAULT_*", note, "a default that applications can change at run time"},
	{"*", note, "build environment or behaviour"},
}

func ruleFor(name string) (optionRule, string) {
	for _, r := range optionRules {
		if p, ok := strings.CutSuffix(r.pattern, "*"); ok {
			if strings.HasPrefix(name, p) {
				return r.rule, r.why
			}
		} else if name == r.pattern {
			return r.rule, r.why
		}
	}
	return note, ""
}

// splitOption splits "MAX_LENGTH=1000" into its name and value ("" when none).
func splitOption(o string) (name, value string) {
	name, value, _ = strings.Cut(o, "=")
	return name, value
}

// optionDiff is the outcome of comparing compile options with a baseline.
type optionDiff struct {
	Missing  []string // baseline options the library fails to match, as the baseline lists them
	Problems []string // why each one fails
	Notes    []string // differences that do not fail the check
}

// compareOptions checks that lib's compile options are a superset of
// baseline's under optionRules, and that lib omits nothing the baseline has.
func compareOptions(baseline, lib []string) optionDiff {
	var d optionDiff
	have := map[string]string{}
	for _, o := range lib {
		n, v := splitOption(o)
		have[n] = v
	}
	base := map[string]bool{}
	for _, o := range baseline {
		name, want := splitOption(o)
		base[name] = true
		got, ok := have[name]
		rule, why := ruleFor(name)
		fail := func(format string, args ...any) {
			d.Missing = append(d.Missing, o)
			d.Problems = append(d.Problems, fmt.Sprintf("compile option %s: ", o)+fmt.Sprintf(format, args...)+" ("+why+")")
		}
		switch rule {
		case required:
			if !ok {
				fail("the baseline has it, the library does not")
			} else if got != want {
				d.Notes = append(d.Notes, fmt.Sprintf("compile option %s: library has %s=%s", o, name, got))
			}
		case atLeast:
			if !ok {
				fail("the library does not list %s, so its limit cannot be compared; define it explicitly", name)
				break
			}
			w, err1 := strconv.ParseInt(want, 0, 64)
			g, err2 := strconv.ParseInt(got, 0, 64)
			switch {
			case err1 != nil || err2 != nil:
				if got != want {
					fail("cannot compare library's %s=%s as numbers", name, got)
				}
			case g < w:
				fail("library has %s=%s, lower than the baseline", name, got)
			}
		case equal:
			if !ok || got != want {
				fail("library has %s", optionString(name, got, ok))
			}
		case mayLack:
		case note:
			if !ok || got != want {
				d.Notes = append(d.Notes, fmt.Sprintf("compile option %s: library has %s (%s)", o, optionString(name, got, ok), why))
			}
		}
	}
	// An OMIT_ of ours that the baseline does not have removes something programs
	// may use: the opposite of a superset.
	for _, o := range lib {
		name, _ := splitOption(o)
		if strings.HasPrefix(name, "OMIT_") && !base[name] {
			d.Problems = append(d.Problems, fmt.Sprintf("compile option %s: the library omits what the baseline has", o))
		}
	}
	// Options only the library has are the "more" of a superset; list them for the reader.
	var extra []string
	for _, o := range lib {
		if n, _ := splitOption(o); !base[n] && !strings.HasPrefix(n, "OMIT_") {
			extra = append(extra, o)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		d.Notes = append(d.Notes, "compile options only the library has: "+strings.Join(extra, " "))
	}
	return d
}

func optionString(name, value string, ok bool) string {
	switch {
	case !ok:
		return "no " + name
	case value == "":
		return name
	}
	return name + "=" + value
}
