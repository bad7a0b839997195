package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/run"
)

// reportOptions are the flags of `eccheck report`.
type reportOptions struct {
	dir    string
	output string
	write  bool
}

func newReportCmd(a *app) *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Render a run's results again, in any format, without re-checking",
		Long: `Report reads a run directory's results.json (and its history.jsonl, for the
fault periods and the plots) and renders it again without re-checking:

  table     the summary table (report.txt)
  json      the report as JSON, schema 1 (results.json)
  markdown  for a CI step summary, e.g. >> "$GITHUB_STEP_SUMMARY" (report.md)
  junit     JUnit XML, a test case per checker (junit.xml)
  html      the self-contained page with plots (report.html)

The report goes to stdout; with --write every format is written into RUN_DIR
instead (which brings a run made by an older eccheck up to date). The exit
code is 0 when the report was rendered, whatever its verdict: the verdict's
exit code is 'eccheck check RUN_DIR''s.`,
		Example: `  eccheck report runs/latest -o markdown >> "$GITHUB_STEP_SUMMARY"
  eccheck report runs/latest -o html > /tmp/report.html
  eccheck report runs/latest --write`,
		Args: exactArgs(1, "one run directory"),
		RunE: func(_ *cobra.Command, args []string) error {
			o.dir = args[0]
			return runReport(o, a)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: "+strings.Join(run.ReportFormats, ", "))
	cmd.Flags().BoolVar(&o.write, "write", false, "write report.txt, report.md, junit.xml and report.html into RUN_DIR instead of printing")
	return cmd
}

// runReport renders a run directory's report.
func runReport(o reportOptions, a *app) error {
	if !slices.Contains(run.ReportFormats, o.output) {
		return usagef("-o %q: want %s", o.output, strings.Join(run.ReportFormats, ", "))
	}
	path := o.dir
	if st, err := os.Stat(path); err == nil && !st.IsDir() && filepath.Base(path) == run.FileResults {
		path = filepath.Dir(path)
	}
	dir := run.Dir{Path: path}
	rep, err := dir.ReadResults()
	if err != nil {
		return err
	}
	warnf := func(format string, args ...any) {
		fmt.Fprintf(a.stderr, "eccheck: warning: "+format+"\n", args...)
	}
	var h history.History
	if o.write || o.output == "markdown" || o.output == "html" {
		h = dir.ReadHistory(warnf)
	}
	if o.write {
		if err := dir.WriteTable(rep); err != nil {
			return err
		}
		dir.WriteReports(rep, h, warnf)
		return nil
	}
	if err := run.RenderReport(a.stdout, o.output, rep, h); err != nil {
		return fmt.Errorf("write %s report: %w", o.output, err)
	}
	return nil
}
