package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
)

// checkOptions are the flags of `eccheck check`.
type checkOptions struct {
	file         string
	workload     string
	checkers     []string
	output       string
	timeout      time.Duration
	maxStaleness time.Duration
	vizDir       string
	engine       string
	quiet        bool
}

func newCheckCmd(a *app) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a recorded history (JSONL, or Jepsen EDN)",
		Long: `Check reads a history (eccheck's JSONL format, or a Jepsen history.edn) and
runs the checkers that fit its workload, which is inferred from the
operations unless --workload names it.

Checkers:
` + checkerHelp() + `
Results go to stdout; progress and warnings to stderr. The exit code is 0 when
every checker finds the history valid, 1 when any finds anomalies, 2 when one
could not decide (for example the linearizability search hit --timeout), 3 on
a usage error and 4 when the file cannot be read or is malformed.`,
		Example: `  eccheck check runs/latest/history.jsonl
  eccheck check history.edn --checkers linearizable --timeout 2m
  eccheck check history.jsonl --max-staleness 250ms -o json`,
		Args: exactArgs(1, "one history file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			rep, err := runCheck(cmd.Context(), o, a)
			if err != nil {
				return err
			}
			a.verdict = rep.Verdict
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.workload, "workload", "", "register, set or counter (default: inferred from the operations)")
	f.StringSliceVar(&o.checkers, "checkers", nil, "checkers to run, comma-separated (default: every checker that fits the workload)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the linearizability search; past it the verdict is unknown (0 = no bound)")
	f.DurationVar(&o.maxStaleness, "max-staleness", 0, "fail the staleness checker when a read was stale for longer than this (0 = only measure)")
	f.StringVar(&o.engine, "engine", checkers.EngineAuto, "linearizability engine: auto (zones where written values are unique, else Porcupine), zones, or porcupine")
	f.StringVar(&o.vizDir, "viz-dir", "", "where to write the linearizability visualization of failing keys (default: next to the history)")
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

// resolveCheckers validates --workload and --checkers against the history's
// operations.
func resolveCheckers(o checkOptions, ops []history.Operation) (checkers.Workload, []checkers.Checker, error) {
	var w checkers.Workload
	if o.workload != "" {
		var err error
		if w, err = checkers.ParseWorkload(o.workload); err != nil {
			return "", nil, usageError{fmt.Errorf("--workload: %w", err)}
		}
	} else {
		var err error
		if w, err = checkers.InferWorkload(ops); err != nil {
			return "", nil, usageError{err}
		}
	}
	if len(o.checkers) == 0 {
		return w, checkers.ForWorkload(w), nil
	}
	var cs []checkers.Checker
	seen := map[string]bool{}
	for _, name := range o.checkers {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		c, err := checkers.Lookup(name)
		if err != nil {
			return "", nil, usageError{fmt.Errorf("--checkers: %w", err)}
		}
		if !c.Fits(w) {
			return "", nil, usagef("--checkers: %s does not apply to a %s workload (it checks %v)", c.Name, w, c.Workloads)
		}
		cs = append(cs, c)
	}
	return w, cs, nil
}

// runCheck reads, checks and prints one history.
func runCheck(ctx context.Context, o checkOptions, a *app) (results.Report, error) {
	if o.output != "table" && o.output != "json" {
		return results.Report{}, usagef("-o %q: want table or json", o.output)
	}
	if !slices.Contains(checkers.Engines, o.engine) {
		return results.Report{}, usagef("--engine %q: want %s", o.engine, strings.Join(checkers.Engines, ", "))
	}
	if o.timeout < 0 || o.maxStaleness < 0 {
		return results.Report{}, usagef("--timeout and --max-staleness must not be negative")
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, "eccheck: "+format+"\n", args...)
		}
	}
	start := time.Now()
	h, warnings, err := history.ReadFile(o.file)
	for _, w := range warnings {
		fmt.Fprintf(a.stderr, "eccheck: warning: %s\n", w)
	}
	if err != nil {
		return results.Report{}, err
	}
	in := checkers.NewInput(h)
	logf("read %d lines (%d operations) from %s in %s", len(h), len(in.Ops), o.file, time.Since(start).Round(time.Millisecond))
	w, cs, err := resolveCheckers(o, in.Ops)
	if err != nil {
		return results.Report{}, err
	}
	opt := checkers.Options{Timeout: o.timeout, MaxStaleness: o.maxStaleness, VizDir: o.vizDir, Engine: o.engine}
	if opt.VizDir == "" {
		opt.VizDir = filepath.Dir(o.file)
	}
	rs := make([]checkers.Result, 0, len(cs))
	for _, c := range cs {
		t := time.Now()
		r := checkers.Run(ctx, in, []checkers.Checker{c}, opt)[0]
		logf("%s: %s (%s)", c.Name, r.Verdict, time.Since(t).Round(time.Millisecond))
		rs = append(rs, r)
	}
	if err := ctx.Err(); err != nil {
		return results.Report{}, fmt.Errorf("check interrupted: %w", err)
	}
	rep := results.NewReport(o.file, w, len(in.Ops), rs, warnings)
	if o.output == "json" {
		err = results.WriteJSON(a.stdout, rep)
	} else {
		err = results.WriteTable(a.stdout, rep)
	}
	if err != nil {
		return results.Report{}, fmt.Errorf("write report: %w", err)
	}
	return rep, nil
}
