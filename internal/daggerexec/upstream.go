package daggerexec

import (
	"context"
	"encoding/json"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// Upstream runs the watch over every built-in image definition with the
// default indexes and returns the report as JSON (what `sqlite-graft
// upstream --json` prints). Read failures are in the report, not an error.
func (m *Module) Upstream(ctx context.Context) (string, error) {
	env, err := m.env()
	if err != nil {
		return "", err
	}
	var defs []*imagedef.Definition
	for _, n := range imagedef.EmbeddedNames() {
		d, err := imagedef.Embedded(n)
		if err != nil {
			return "", err
		}
		defs = append(defs, d)
	}
	rep, err := upstream.Watch(ctx, upstream.Options{Images: defs, Pins: env.Pins})
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	return string(b) + "\n", err
}
