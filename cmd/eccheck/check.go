package main

import (
	"context"
	"fmt"
	"maps"
	"os"
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
	vizPrefix    string
	engine       string
	quiet        bool
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
			rep, err := runCheck(cmd.Context(), o, a)
			if err != nil {
				return err
			}
			a.verdict = rep.Verdict
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.workload, "workload", "", "register, set, counter or kv (default: inferred from the operations)")
	f.StringSliceVar(&o.checkers, "checkers", nil, "checkers to run, comma-separated (default: every checker that fits the workload)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the linearizability search; past it the verdict is unknown (0 = no bound)")
	f.DurationVar(&o.maxStaleness, "max-staleness", 0, "fail the staleness checker when a read was stale for longer than this (0 = only measure)")
	f.StringVar(&o.engine, "engine", checkers.EngineAuto, "linearizability engine: auto (zones where written values are unique, else Porcupine), zones, or porcupine")
	f.StringVar(&o.vizDir, "viz-dir", "", "write the linearizability visualization of failing keys (the first 50) there, named after the history (default: into a run directory when checking one, else nowhere)")
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

// resolveCheckers returns the checkers to run per workload on ops (the
// operations some checker understands). A history that mixes workloads (as
// `eccheck test` records) is split by key. --workload, when given, must fit
// every operation; --checkers must name checkers that apply.
func resolveCheckers(o checkOptions, ops []history.Operation) ([]workloadRun, error) {
	var groups []workloadRun
	if o.workload != "" {
		w, err := checkers.ParseWorkload(o.workload)
		if err != nil {
			return nil, usageError{fmt.Errorf("--workload: %w", err)}
		}
		if err := workloadFits(w, ops); err != nil {
			return nil, usageError{fmt.Errorf("--workload %s: %w", w, err)}
		}
		groups = []workloadRun{{workload: w, ops: ops}}
	} else if w, err := checkers.InferWorkload(ops); err == nil {
		groups = []workloadRun{{workload: w, ops: ops}}
	} else {
		split, order := checkers.SplitByWorkload(ops)
		if len(order) == 0 {
			return nil, usageError{err}
		}
		for _, w := range order {
			groups = append(groups, workloadRun{workload: w, ops: split[w]})
		}
	}
	var named []checkers.Checker
	seen := map[string]bool{}
	for _, name := range o.checkers {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		c, err := checkers.Lookup(name)
		if err != nil {
			return nil, usageError{fmt.Errorf("--checkers: %w", err)}
		}
		named = append(named, c)
	}
	for i := range groups {
		g := &groups[i]
		if len(named) == 0 {
			g.checkers = checkers.ForWorkload(g.workload)
			continue
		}
		for _, c := range named {
			if c.Fits(g.workload) {
				g.checkers = append(g.checkers, c)
			}
		}
	}
	for _, c := range named {
		fits := false
		for _, g := range groups {
			fits = fits || c.Fits(g.workload)
		}
		if !fits {
			return nil, usagef("--checkers: %s does not apply to a %s workload (it checks %v)", c.Name, groups[0].workload, c.Workloads)
		}
	}
	return groups, nil
}

// workloadFits says why ops cannot be checked as workload w: operations
// whose f w's checkers do not understand, or reads whose values are of the
// other kind (lists for a counter, integers for a set).
func workloadFits(w checkers.Workload, ops []history.Operation) error {
	others := map[string]int{}
	var listReads, intReads int
	for _, op := range ops {
		if !slices.Contains(w.Fs(), op.F) {
			others[op.F]++
		}
		if op.F == checkers.FRead && op.Type == history.OK {
			switch op.Value.Kind() {
			case history.KindList:
				listReads++
			case history.KindInt:
				intReads++
			}
		}
	}
	switch {
	case len(others) > 0:
		return fmt.Errorf("the history has %s, which a %s history does not (it has %s); leave --workload out to infer it", countsText(others), w, strings.Join(w.Fs(), ", "))
	case w == checkers.WorkloadSet && intReads > 0:
		return fmt.Errorf("%d reads return integers, as a counter's do; a set's reads return lists", intReads)
	case w == checkers.WorkloadCounter && listReads > 0:
		return fmt.Errorf("%d reads return lists, as a set's do; a counter's reads return integers", listReads)
	}
	return nil
}

// countsText renders counts by name as "get ×2, put ×1", largest first.
func countsText(counts map[string]int) string {
	names := slices.Collect(maps.Keys(counts))
	slices.SortFunc(names, func(a, b string) int {
		if c := counts[b] - counts[a]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s ×%d", n, counts[n])
	}
	return strings.Join(parts, ", ")
}

// splitUnderstood separates the operations some checker understands from
// the rest, which it counts by f and whose keys it names (the first few).
func splitUnderstood(ops []history.Operation) (known []history.Operation, unchecked map[string]int, keys []string) {
	unchecked = map[string]int{}
	seenKey := map[string]bool{}
	for _, op := range ops {
		if checkers.Understood(op.F) {
			known = append(known, op)
			continue
		}
		unchecked[op.F]++
		if !seenKey[op.Key] {
			seenKey[op.Key] = true
			keys = append(keys, op.Key)
		}
	}
	return known, unchecked, keys
}

// uncheckedWarning says which operations were not checked and why:
// transactions, operations no checker understands, and operations of keys
// that mix workloads (a read beside a get), which the key's checkers do
// not understand.
func uncheckedWarning(unknown, mixed map[string]int, keys []string, nothingElse bool) string {
	var parts []string
	unknown = maps.Clone(unknown)
	if txn := unknown["txn"]; txn > 0 {
		parts = append(parts, fmt.Sprintf("%d transaction(s) (f txn, as Elle's list-append and rw-register write them) were not checked: eccheck does not check transactions yet", txn))
		delete(unknown, "txn")
	}
	if n := total(unknown); n > 0 {
		parts = append(parts, fmt.Sprintf("%d operation(s) that no checker understands were not checked: %s (eccheck checks %s)", n, countsText(unknown), understoodText()))
	}
	if n := total(mixed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d operation(s) on keys that mix workloads were not checked: %s (a key's checkers follow its other operations; check such keys apart, with --workload)", n, countsText(mixed)))
	}
	text := strings.Join(parts, "; ")
	if len(keys) > 0 && !(len(keys) == 1 && keys[0] == "") {
		shown := keys[:min(len(keys), 5)]
		text += fmt.Sprintf("; keys %s", strings.Join(shown, ", "))
		if len(keys) > len(shown) {
			text += fmt.Sprintf(" and %d more", len(keys)-len(shown))
		}
	}
	if nothingElse {
		text += "; nothing else is in the history, so the verdict is unknown"
	}
	return text
}

func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// understoodText lists what each workload's checkers understand.
func understoodText() string {
	var parts []string
	for _, w := range checkers.Workloads {
		parts = append(parts, fmt.Sprintf("%s (%s)", w, strings.Join(w.Fs(), ", ")))
	}
	return strings.Join(parts, "; ")
}

// workloadRun is one workload of a history and the checkers to run on it.
type workloadRun struct {
	workload checkers.Workload
	ops      []history.Operation
	checkers []checkers.Checker
}

// isRunDir reports whether path is the history.jsonl of a run directory
// (one with a test.json beside it).
func isRunDir(path string) bool {
	if filepath.Base(path) != "history.jsonl" {
		return false
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(path), "test.json"))
	return err == nil
}

// checkerWarnings are the problems checkers met that did not change their
// verdict, such as a visualization that could not be written.
func checkerWarnings(rep results.Report) []string {
	var out []string
	for _, r := range rep.Results {
		if d, ok := r.Details.(checkers.LinearizableDetails); ok {
			for _, w := range d.Warnings {
				out = append(out, r.Checker+": "+w)
			}
		}
	}
	return out
}

// historyPath resolves a run directory to its history file.
func historyPath(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("open history: %w", err)
	}
	if !st.IsDir() {
		return p, nil
	}
	h := filepath.Join(p, "history.jsonl")
	if _, err := os.Stat(h); err != nil {
		return "", fmt.Errorf("%s is a directory without a history.jsonl; give a history file or a run directory", p)
	}
	return h, nil
}

// runCheck reads, checks and prints one history.
func runCheck(ctx context.Context, o checkOptions, a *app) (results.Report, error) {
	if err := o.validate(); err != nil {
		return results.Report{}, err
	}
	path, err := historyPath(o.file)
	if err != nil {
		return results.Report{}, err
	}
	logf := o.logf(a)
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
	case o.vizDir != "":
		o.vizPrefix = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + "."
	case isRunDir(path):
		o.vizDir = filepath.Dir(path)
	}
	rep, err := checkHistory(ctx, path, h, warnings, o, logf)
	if err != nil {
		return results.Report{}, err
	}
	for _, w := range checkerWarnings(rep) {
		fmt.Fprintf(a.stderr, "eccheck: warning: %s\n", w)
	}
	return rep, writeReport(a, o.output, rep)
}

func (o checkOptions) validate() error {
	if o.output != "table" && o.output != "json" {
		return usagef("-o %q: want table or json", o.output)
	}
	if !slices.Contains(checkers.Engines, o.engine) {
		return usagef("--engine %q: want %s", o.engine, strings.Join(checkers.Engines, ", "))
	}
	if o.timeout < 0 || o.maxStaleness < 0 {
		return usagef("--timeout and --max-staleness must not be negative")
	}
	if o.workload != "" {
		if _, err := checkers.ParseWorkload(o.workload); err != nil {
			return usageError{fmt.Errorf("--workload: %w", err)}
		}
	}
	for _, name := range o.checkers {
		if name = strings.TrimSpace(name); name != "" {
			if _, err := checkers.Lookup(name); err != nil {
				return usageError{fmt.Errorf("--checkers: %w", err)}
			}
		}
	}
	return nil
}

func (o checkOptions) logf(a *app) func(string, ...any) {
	return func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, "eccheck: "+format+"\n", args...)
		}
	}
}

// checkHistory runs the checkers that fit h (split by workload when it
// mixes them) and composes the report. `eccheck test` and `eccheck check`
// share it, so a re-check of a run gives the same verdict.
//
// Operations no checker understands are never passed off as checked: they
// are counted and named in a warning and in the report's unchecked_ops,
// and a history with nothing checkable (only such operations, or only
// nemesis operations) is unknown, never valid.
func checkHistory(ctx context.Context, source string, h history.History, warnings []string, o checkOptions, logf func(string, ...any)) (results.Report, error) {
	ops := history.Pair(h)
	known, unchecked, keys := splitUnderstood(ops)
	var groups []workloadRun
	if len(known) > 0 {
		var err error
		if groups, err = resolveCheckers(o, known); err != nil {
			return results.Report{}, err
		}
	}
	// A key that mixes workloads (a get beside a read) lands in one group;
	// what that group's checkers do not understand is not checked either.
	checked, mixed := 0, map[string]int{}
	for i := range groups {
		g := &groups[i]
		var keep []history.Operation
		for _, op := range g.ops {
			if slices.Contains(g.workload.Fs(), op.F) {
				keep = append(keep, op)
				continue
			}
			mixed[op.F]++
			if !slices.Contains(keys, op.Key) {
				keys = append(keys, op.Key)
			}
		}
		g.ops = keep
		checked += len(keep)
	}
	var uncheckedCopy map[string]int
	if len(unchecked) > 0 || len(mixed) > 0 {
		uncheckedCopy = maps.Clone(unchecked)
		for f, n := range mixed {
			uncheckedCopy[f] += n
		}
		w := uncheckedWarning(unchecked, mixed, keys, checked == 0)
		warnings = append(warnings, w)
		logf("warning: %s", w)
	}
	if checked == 0 {
		if len(ops) == 0 {
			w := fmt.Sprintf("the history holds no client operations, only %d nemesis operation(s): nothing to check, so the verdict is unknown", len(h))
			warnings = append(warnings, w)
			logf("warning: %s", w)
		}
		rep := results.NewReport(source, "", len(ops), nil, warnings)
		rep.Unchecked = uncheckedCopy
		rep.FaultErrors = results.FaultErrors(h)
		return rep, nil
	}
	opt := checkers.Options{Timeout: o.timeout, MaxStaleness: o.maxStaleness, VizDir: o.vizDir, VizPrefix: o.vizPrefix, Engine: o.engine}
	var rs []checkers.Result
	var names []string
	for _, g := range groups {
		if len(g.ops) == 0 {
			continue
		}
		names = append(names, string(g.workload))
		in := checkers.Input{History: h, Ops: g.ops, Workload: g.workload}
		for _, c := range g.checkers {
			t := time.Now()
			r := checkers.Run(ctx, in, []checkers.Checker{c}, opt)[0]
			if len(groups) > 1 {
				r.Checker += " (" + string(g.workload) + ")"
			}
			logf("%s: %s (%s)", r.Checker, r.Verdict, time.Since(t).Round(time.Millisecond))
			rs = append(rs, r)
		}
	}
	if err := ctx.Err(); err != nil {
		return results.Report{}, fmt.Errorf("check interrupted: %w", err)
	}
	rep := results.NewReport(source, checkers.Workload(strings.Join(names, "+")), len(ops), rs, warnings)
	rep.Unchecked = uncheckedCopy
	rep.FaultErrors = results.FaultErrors(h)
	return rep, nil
}

func writeReport(a *app, format string, rep results.Report) error {
	var err error
	if format == "json" {
		err = results.WriteJSON(a.stdout, rep)
	} else {
		err = results.WriteTable(a.stdout, rep)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
