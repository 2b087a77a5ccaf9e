package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

func (a *app) versionsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "List the pinned SQLite releases, their published hashes and advisories",
		Long: `versions lists the SQLite releases in the pins file: release date, which
hashes sqlite.org published for them, whether each carries the WAL-reset fix,
and the advisories of sqlite-advisories.yaml that affect it as the recipe
compiles it (an advisory that needs FTS5 counts because the recipe enables
FTS5). The default pin is marked with '*'. A build refuses a pin whose
advisories its image definition does not accept (accept_advisories).`,
		Example: `  sqlite-graft versions
  sqlite-graft versions --json | jq -r '.releases[].version'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.global.Pins()
			if err != nil {
				return err
			}
			adv, err := advisoriesOfPins(p)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					*pins.File
					PinAdvisories []pinAdvisories `json:"pin_advisories"`
				}{p, adv})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tDATE\tAMALGAMATION\tAUTOCONF\tSQLITE3.C\tWAL-RESET FIX\tADVISORIES")
			for i, v := range p.Versions() {
				pin, _ := p.Lookup(v)
				mark := " "
				if v == p.Default {
					mark = "*"
				}
				fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, v, pin.Date,
					short(pin.Amalgamation), short(pin.AutoconfArchive), short(pin.SQLite3C), yes(pins.HasWALResetFix(v)), advisoryIDs(adv[i].Advisories))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the pins as JSON")
	return cmd
}

func short(h *pins.Hash) string {
	if h == nil {
		return "-"
	}
	return h.SHA3[:12] + "…"
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
