package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
)

// checkOptions are the flags of `eccheck check`.
type checkOptions struct {
	file   string
	check  run.CheckOptions
	output string
	quiet  bool
	// modelGiven says --consistency-model was given (else a run is
	// checked against the model it recorded).
	modelGiven bool
}

func newCheckCmd(a *app) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check FILE|RUN_DIR",
		Short: "Check a recorded history (JSONL, Jepsen EDN, or a run directory)",
		Long: `Check reads a history and runs the checkers that fit its workload, which is
inferred from the operations unless --workload names it. It reads eccheck's
JSONL format, Jepsen's EDN (history.edn, Knossos and Elle files; recognised
by content whatever the file is called) and Jepsen's text logs (jepsen.util
operation lines, as Knossos and Porcupine ship them).

Checkers:
` + checkerHelp() + `
The linearizable checker uses the zones engine (exact, O(n log n)) on every
key whose written values are unique and Porcupine on the rest: that is the
default, --engine auto.

An operation no checker understands (an unknown f, a transaction) is never
counted as checked: it is named in a warning and in unchecked_ops, and a
history with nothing checkable is unknown (exit 2), never valid.

Check writes nothing unless asked: with --viz-dir it draws the first 50 keys
that are not linearizable there (files named after the history); checking a
run directory draws them into it.

Results go to stdout; progress and warnings to stderr. The exit code is 0 when
every checker finds the history valid, 1 when any finds anomalies, 2 when one
could not decide (for example the linearizability search hit --timeout) or
nothing could be checked, 3 on a usage error and 4 when the file cannot be
read, is malformed or is empty.`,
		Example: `  eccheck check runs/latest/history.jsonl
  eccheck check history.edn --checkers linearizable --timeout 2m
  eccheck check history.jsonl --max-staleness 250ms -o json`,
		Args: exactArgs(1, "one history file or run directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			o.modelGiven = cmd.Flags().Changed("consistency-model")
			rep, err := runCheck(cmd.Context(), o, a)
			if err != nil {
				return err
			}
			a.verdict = rep.Verdict
			return nil
		},
	}
	f := cmd.Flags()
	bindCheckerFlags(f, &o.check, true)
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress lines on stderr")
	return cmd
}

func checkerHelp() string {
	var b strings.Builder
	for _, c := range checkers.All() {
		ws := make([]string, len(c.Workloads))
		for i, w := range c.Workloads {
			ws[i] = string(w)
		}
		fmt.Fprintf(&b, "  %-17s %s [%s]\n", c.Name, c.Doc, strings.Join(ws, ", "))
	}
	return b.String()
}

// runCheck reads, checks and prints one history.
func runCheck(ctx context.Context, o checkOptions, a *app) (results.Report, error) {
	if o.output != "table" && o.output != "json" {
		return results.Report{}, usagef("-o %q: want table or json", o.output)
	}
	if err := o.check.Validate(); err != nil {
		return results.Report{}, err
	}
	path, err := run.HistoryPath(o.file)
	if err != nil {
		return results.Report{}, err
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, "eccheck: "+format+"\n", args...)
		}
	}
	start := time.Now()
	h, warnings, err := history.ReadFile(path)
	for _, w := range warnings {
		fmt.Fprintf(a.stderr, "eccheck: warning: %s\n", w)
	}
	if err != nil {
		return results.Report{}, err
	}
	logf("read %d lines from %s in %s", len(h), path, time.Since(start).Round(time.Millisecond))
	// Check is read-only unless asked: visualizations go where --viz-dir
	// says, named after the history, or into the run directory checked.
	switch {
	case o.check.VizDir != "":
		o.check.VizPrefix = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + "."
	case run.IsRunDir(path):
		o.check.VizDir = filepath.Dir(path)
	}
	// A run is checked again against the model it was held to, unless
	// --consistency-model says otherwise.
	if run.IsRunDir(path) {
		if cfg, err := run.ReadConfig(filepath.Dir(path)); err == nil {
			if cfg.ConsistencyModel != "" && !o.modelGiven {
				o.check.ConsistencyModel = cfg.ConsistencyModel
			}
			// The convergence phase is not in the history: its findings
			// come from test.json, so a re-check gives the same verdict.
			if cfg.Summary != nil {
				o.check.Convergence = cfg.Summary.Convergence
			}
		}
	}
	rep, err := run.Check(ctx, path, h, warnings, o.check, logf)
	if err != nil {
		return results.Report{}, err
	}
	for _, w := range run.CheckerWarnings(rep) {
		fmt.Fprintf(a.stderr, "eccheck: warning: %s\n", w)
	}
	return rep, writeReport(a, o.output, rep)
}
