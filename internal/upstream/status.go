package upstream

// The watch's outcome as an exit status, the same for `sqlite-graft upstream`
// and the Dagger module's upstream function (which fails for StatusFailed and
// reports the others in its JSON): what a nightly job acts on.
const (
	StatusNothingToDo = 0
	StatusFailed      = 1 // an index or the download page could not be read, or an image not judged
	StatusNewerSQLite = 3 // the download page has a SQLite newer than every pin
	StatusRetire      = 4 // a graft can be retired (wins over StatusNewerSQLite)
)

// Status is the report's outcome: a failure wins, then retire, then a newer
// SQLite.
func (r *Report) Status() int {
	switch {
	case r.Failed():
		return StatusFailed
	case r.Retire():
		return StatusRetire
	case r.NewerSQLite():
		return StatusNewerSQLite
	}
	return StatusNothingToDo
}
