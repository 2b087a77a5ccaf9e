// Package pins knows the SQLite releases sqlite-graft may build: their
// versions, download URLs and published hashes (sqlite-pins.yaml), and which
// versions carry the WAL-reset fix.
package pins

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a SQLite release number such as 3.51.3.
type Version struct {
	Major, Minor, Patch int
}

// ParseVersion accepts the dotted form ("3.51.3", "3.51" meaning 3.51.0) and
// the number form used in file names and SQLITE_VERSION_NUMBER ("3510300").
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Version{}, fmt.Errorf("empty SQLite version")
	}
	if !strings.Contains(s, ".") {
		n, err := strconv.Atoi(s)
		if err != nil || len(s) != 7 || n < 3000000 || n > 3999999 || s[0] != '3' {
			return Version{}, fmt.Errorf("SQLite version %q: want 3.X.Y or a 7-digit number like 3510300", s)
		}
		// 3XXYYZZ: ZZ is a sub-patch that SQLite 3 releases always leave 00.
		if n%100 != 0 {
			return Version{}, fmt.Errorf("SQLite version %q: last two digits must be 00", s)
		}
		return Version{Major: n / 1000000, Minor: n / 10000 % 100, Patch: n / 100 % 100}, nil
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("SQLite version %q: want 3.X.Y", s)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 99 || p == "" || (len(p) > 1 && p[0] == '0') || p[0] == '+' {
			return Version{}, fmt.Errorf("SQLite version %q: part %q is not a number from 0 to 99", s, p)
		}
		nums[i] = n
	}
	if nums[0] != 3 {
		return Version{}, fmt.Errorf("SQLite version %q: only SQLite 3 is supported", s)
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

// MustParseVersion is ParseVersion for constants; it panics on error.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Number is the 7-digit form used in download file names (3.51.3 -> 3510300).
func (v Version) Number() int { return v.Major*1000000 + v.Minor*10000 + v.Patch*100 }

// Compare returns -1, 0 or +1.
func (v Version) Compare(w Version) int {
	a, b := v.Number(), w.Number()
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (v Version) Less(w Version) bool { return v.Compare(w) < 0 }

// MarshalText and UnmarshalText make a Version a plain string in YAML and JSON.
func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

func (v *Version) UnmarshalText(b []byte) error {
	p, err := ParseVersion(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
