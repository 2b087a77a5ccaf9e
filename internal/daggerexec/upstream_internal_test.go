package daggerexec

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/upstream"
)

// The Dagger function fails where the CLI exits 1 and reports 3 and 4 in its
// JSON, as `sqlite-graft upstream --json` does.
func TestDaggerUpstreamResult(t *testing.T) {
	unreadable := "alpine v3.21: https://dl-cdn.alpinelinux.org/alpine/v3.21/main/x86_64/APKINDEX.tar.gz: no such host"
	_, err := upstreamResult(&upstream.Report{Errors: []string{unreadable}})
	if err == nil || !strings.Contains(err.Error(), unreadable) || !strings.Contains(err.Error(), `"exit_code": 1`) {
		t.Errorf("upstreamResult(an unreadable index) = %v, want an error with the problem and the JSON", err)
	}
	for _, tc := range []struct {
		rep  upstream.Report
		code int
	}{
		{upstream.Report{}, upstream.StatusNothingToDo},
		{upstream.Report{NewReleases: []upstream.Release{{}}}, upstream.StatusNewerSQLite},
		{upstream.Report{NewReleases: []upstream.Release{{}}, Images: []upstream.ImageVerdict{{Retire: true}}}, upstream.StatusRetire},
	} {
		out, err := upstreamResult(&tc.rep)
		var doc struct {
			ExitCode *int `json:"exit_code"`
		}
		if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.ExitCode == nil || *doc.ExitCode != tc.code {
			t.Errorf("upstreamResult(%+v) = %q, %v; want JSON with exit_code %d", tc.rep, out, err, tc.code)
		}
	}
}
