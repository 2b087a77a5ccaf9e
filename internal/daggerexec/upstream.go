package daggerexec

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// Upstream runs the watch over every built-in image definition with the
// default indexes and returns the report as JSON — the document `sqlite-graft
// upstream --json` prints, with its exit_code. When the CLI would exit 1 (an
// index or the download page could not be read, or an image not judged) it
// is an error carrying the problems and the JSON; exit codes 3 (a newer
// SQLite) and 4 (a graft can be retired) are findings, not failures: they
// are in exit_code.
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
	return upstreamResult(rep)
}

func upstreamResult(rep *upstream.Report) (string, error) {
	code := rep.Status()
	b, err := json.MarshalIndent(struct {
		*upstream.Report
		ExitCode int `json:"exit_code"`
	}{rep, code}, "", "  ")
	if err != nil {
		return "", err
	}
	if code == upstream.StatusFailed {
		return "", fmt.Errorf("upstream: %d problem(s), no verdict from partial data (exit_code %d):\n  %s\n%s",
			len(rep.Errors), code, strings.Join(rep.Errors, "\n  "), b)
	}
	return string(b) + "\n", nil
}
