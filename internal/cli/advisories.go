package cli

import (
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/advisories"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// pinAdvisories is what `versions` and `upstream` say about one pin: the
// advisories that affect it as the recipe compiles it.
type pinAdvisories struct {
	Version    pins.Version          `json:"version"`
	Default    bool                  `json:"default,omitempty"`
	Advisories []advisories.Advisory `json:"advisories"`
}

// advisoriesOfPins judges every pin of pf against the embedded advisories
// with the shipped recipe's options (the options every build uses).
func advisoriesOfPins(pf *pins.File) ([]pinAdvisories, error) {
	known, err := advisories.Embedded()
	if err != nil {
		return nil, err
	}
	defines := recipe.Default().Defines
	var out []pinAdvisories
	for _, v := range pf.Versions() {
		list := known.Affecting(v, defines)
		if list == nil {
			list = []advisories.Advisory{}
		}
		out = append(out, pinAdvisories{Version: v, Default: v == pf.Default, Advisories: list})
	}
	return out, nil
}

// advisoryIDs is the short form for a table cell: "none" or the ids.
func advisoryIDs(list []advisories.Advisory) string {
	if len(list) == 0 {
		return "none"
	}
	var ids []string
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	return strings.Join(ids, ", ")
}
