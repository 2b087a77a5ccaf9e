package pins

import "fmt"

// FixMarker is a comment the WAL-reset fix adds to sqlite3.c; its presence in
// a source is independent evidence that the fix is in (e.g. from a patch).
const FixMarker = "wrapped since the header was read for this checkpoint"

var (
	firstAffected = MustParseVersion("3.7.0") // WAL mode appeared in 3.7.0
	firstFixed    = MustParseVersion("3.51.3")
	// Check-ins that backported the fix to older release branches.
	backports = [][2]Version{
		{MustParseVersion("3.50.7"), MustParseVersion("3.51.0")},
		{MustParseVersion("3.44.6"), MustParseVersion("3.45.0")},
	}
)

// HasWALResetFix reports whether release v contains the fix for the WAL-reset
// bug: 3.51.3 and later, and the 3.50.7+ and 3.44.6+ backport branches.
// Releases before 3.7.0 have no WAL and are not affected.
func HasWALResetFix(v Version) bool {
	if v.Less(firstAffected) || !v.Less(firstFixed) {
		return true
	}
	for _, r := range backports {
		if !v.Less(r[0]) && v.Less(r[1]) {
			return true
		}
	}
	return false
}

// WALResetError explains why v must not be grafted, or is nil when v is fixed.
func WALResetError(v Version) error {
	if HasWALResetFix(v) {
		return nil
	}
	return fmt.Errorf("SQLite %s is affected by the WAL-reset bug (3.7.0 through 3.51.2; fixed in 3.51.3, "+
		"backported to 3.50.7 and 3.44.6): two connections writing or checkpointing at the same instant can corrupt a WAL database", v)
}
