package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/run"
)

func newChecklistCmd(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "checklist RUN_DIR...",
		Short: "Answer the architect's checklist from runs' own results",
		Long: `Checklist answers six questions an architect asks of a replicated store, each
from the results of the runs given (run directories, or a matrix's directory,
whose cells it takes):

  1. the maximum stale window (the staleness checker's p99 and max, against
     --max-staleness when a run set one)
  2. whether clients read their own writes (and, when some runs held and
     others did not, the flags the runs that held add: what fixed it)
  3. how concurrent writes are resolved, and the acknowledged writes lost
  4. whether retried writes are applied once (runs with --retry: the
     duplicates checker, with and without --idempotency-keys)
  5. whether a run can be looked at in a tracing tool ('eccheck export')
  6. what divergence is left after a fault (the final reads)

A question the runs cannot answer says which run would.`,
		Example: `  eccheck checklist runs/latest
  eccheck checklist runs/ecstore-lww-w1r1/20261206T101010Z runs/ecstore-lww-w1r1-sessions/20261206T102020Z
  eccheck checklist runs/matrix-20261206T130356.894Z -o markdown >> "$GITHUB_STEP_SUMMARY"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if output != "table" && output != "markdown" && output != "json" {
				return usagef("-o %q: want table, markdown or json", output)
			}
			runs, err := run.FindRuns(args)
			if err != nil {
				return err
			}
			answers := run.Checklist(runs)
			if output == "json" {
				b, err := json.MarshalIndent(answers, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(a.stdout, string(b))
				return err
			}
			return run.WriteChecklist(a.stdout, answers, len(runs), output == "markdown")
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, markdown or json")
	return cmd
}
