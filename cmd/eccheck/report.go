package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
)

// reportFormats are the formats `eccheck report` renders.
var reportFormats = []string{"table", "json", "markdown", "junit", "html"}

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
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: "+strings.Join(reportFormats, ", "))
	cmd.Flags().BoolVar(&o.write, "write", false, "write report.txt, report.md, junit.xml and report.html into RUN_DIR instead of printing")
	return cmd
}

// runReport renders a run directory's report.
func runReport(o reportOptions, a *app) error {
	known := false
	for _, f := range reportFormats {
		known = known || f == o.output
	}
	if !known {
		return usagef("-o %q: want %s", o.output, strings.Join(reportFormats, ", "))
	}
	dir := o.dir
	if st, err := os.Stat(dir); err == nil && !st.IsDir() && filepath.Base(dir) == "results.json" {
		dir = filepath.Dir(dir)
	}
	rep, err := readResults(dir)
	if err != nil {
		return err
	}
	warnf := func(format string, args ...any) {
		fmt.Fprintf(a.stderr, "eccheck: warning: "+format+"\n", args...)
	}
	var h history.History
	if o.write || o.output == "markdown" || o.output == "html" {
		h = readRunHistory(dir, warnf)
	}
	if o.write {
		if err := writeRunReport(dir, "report.txt", func(w io.Writer) error { return results.WriteTable(w, rep) }); err != nil {
			return err
		}
		writeRunReports(dir, rep, h, warnf)
		return nil
	}
	if err := renderReport(a.stdout, o.output, rep, h); err != nil {
		return fmt.Errorf("write %s report: %w", o.output, err)
	}
	return nil
}

// readResults reads dir/results.json, with errors that say what to do.
func readResults(dir string) (results.Report, error) {
	path := filepath.Join(dir, "results.json")
	if st, err := os.Stat(dir); err != nil {
		return results.Report{}, fmt.Errorf("run directory %s: %w", dir, err)
	} else if !st.IsDir() {
		return results.Report{}, fmt.Errorf("%s is a file, not a run directory: give the directory 'eccheck test' made (runs/latest), or check a history with 'eccheck check %s'", dir, dir)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return results.Report{}, fmt.Errorf("%s has no results.json: give a run directory made by 'eccheck test' (runs/latest), or check the history again with 'eccheck check %s'", dir, dir)
	}
	if err != nil {
		return results.Report{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	rep, err := results.ReadJSON(f)
	if err != nil {
		return results.Report{}, fmt.Errorf("read %s: %w; re-create it with 'eccheck check %s -o json > %s'", path, err, dir, path)
	}
	return rep, nil
}

// readRunHistory reads dir/history.jsonl for the fault periods and the
// plots. Without it the reports leave those out, with a warning.
func readRunHistory(dir string, warnf func(string, ...any)) history.History {
	path := filepath.Join(dir, "history.jsonl")
	h, warnings, err := history.ReadFile(path)
	for _, w := range warnings {
		warnf("%s", w)
	}
	if err != nil {
		warnf("%v: the report has no fault periods, latency or throughput plots", err)
		return nil
	}
	return h
}

// renderReport writes rep in format; h may be nil (no faults, no plots).
func renderReport(w io.Writer, format string, rep results.Report, h history.History) error {
	var faults []results.FaultPeriod
	if h != nil {
		faults = results.FaultPeriods(h)
	}
	switch format {
	case "json":
		return results.WriteJSON(w, rep)
	case "markdown":
		return results.WriteMarkdown(w, rep, faults)
	case "junit":
		return results.WriteJUnit(w, rep)
	case "html":
		return results.WriteHTML(w, rep, h)
	}
	return results.WriteTable(w, rep)
}

// writeRunReports writes report.md, junit.xml and report.html into a run
// directory. A report that cannot be written is a warning, not a failed
// run: the verdict still comes out, and results.json holds everything.
func writeRunReports(dir string, rep results.Report, h history.History, warnf func(string, ...any)) {
	for _, f := range []struct{ name, format string }{
		{"report.md", "markdown"}, {"junit.xml", "junit"}, {"report.html", "html"},
	} {
		err := writeRunReport(dir, f.name, func(w io.Writer) error { return renderReport(w, f.format, rep, h) })
		if err != nil {
			warnf("%v", err)
		}
	}
}

// writeRunReport writes one report file into dir.
func writeRunReport(dir, name string, write func(io.Writer) error) error {
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	werr := write(f)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
