package run

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
)

// CheckOptions are what a check of a history takes: the checker flags
// that `eccheck check`, `eccheck test` and `eccheck matrix` share.
type CheckOptions struct {
	// Workload names the workload instead of inferring it from the
	// operations; Checkers names the checkers to run instead of every one
	// that fits.
	Workload string
	Checkers []string
	// Timeout bounds the linearizability search; MaxStaleness fails the
	// staleness checker beyond it; Engine picks the linearizability engine.
	Timeout      time.Duration
	MaxStaleness time.Duration
	Engine       string
	// Convergence, when set, is what a run's convergence phase found; its
	// judgment joins the report (eccheck test --converge, and a re-check
	// of such a run).
	Convergence *checkers.Convergence
	// ConsistencyModel is what the transactional checker holds
	// transactions to; empty means strict-serializable.
	ConsistencyModel string
	// VizDir is where the visualizations of failing keys go (none when
	// empty), their names starting with VizPrefix.
	VizDir, VizPrefix string
}

// Validate checks the options before any history is read; its errors are
// usage errors that name the flag.
func (o CheckOptions) Validate() error {
	if !slices.Contains(checkers.Engines, o.Engine) && o.Engine != "" {
		return db.Usagef("--engine %q: want %s", o.Engine, strings.Join(checkers.Engines, ", "))
	}
	if o.Timeout < 0 || o.MaxStaleness < 0 {
		return db.Usagef("--timeout and --max-staleness must not be negative")
	}
	if err := checkers.CheckModel(o.ConsistencyModel); err != nil {
		return db.UsageError{Err: fmt.Errorf("--consistency-model: %w", err)}
	}
	if o.Workload != "" {
		if _, err := checkers.ParseWorkload(o.Workload); err != nil {
			return db.UsageError{Err: fmt.Errorf("--workload: %w", err)}
		}
	}
	for _, name := range o.Checkers {
		if name = strings.TrimSpace(name); name != "" {
			if _, err := checkers.Lookup(name); err != nil {
				return db.UsageError{Err: fmt.Errorf("--checkers: %w", err)}
			}
		}
	}
	return nil
}

// resolveCheckers returns the checkers to run per workload on ops (the
// operations some checker understands). A history that mixes workloads (as
// `eccheck test` records) is split by key. --workload, when given, must fit
// every operation; --checkers must name checkers that apply.
func resolveCheckers(o CheckOptions, ops []history.Operation) ([]workloadRun, error) {
	var groups []workloadRun
	if o.Workload != "" {
		w, err := checkers.ParseWorkload(o.Workload)
		if err != nil {
			return nil, db.UsageError{Err: fmt.Errorf("--workload: %w", err)}
		}
		if err := workloadFits(w, ops); err != nil {
			return nil, db.UsageError{Err: fmt.Errorf("--workload %s: %w", w, err)}
		}
		groups = []workloadRun{{workload: w, ops: ops}}
	} else if w, err := checkers.InferWorkload(ops); err == nil {
		groups = []workloadRun{{workload: w, ops: ops}}
	} else {
		split, order := checkers.SplitByWorkload(ops)
		if len(order) == 0 {
			return nil, db.UsageError{Err: err}
		}
		for _, w := range order {
			groups = append(groups, workloadRun{workload: w, ops: split[w]})
		}
	}
	var named []checkers.Checker
	seen := map[string]bool{}
	for _, name := range o.Checkers {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		c, err := checkers.Lookup(name)
		if err != nil {
			return nil, db.UsageError{Err: fmt.Errorf("--checkers: %w", err)}
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
			return nil, db.Usagef("--checkers: %s does not apply to a %s workload (it checks %v)", c.Name, groups[0].workload, c.Workloads)
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
	if !slices.ContainsFunc(ops, func(op history.Operation) bool { return !checkers.UnderstoodOp(op) }) {
		return ops, unchecked, nil // all of them: no copy
	}
	seenKey := map[string]bool{}
	for _, op := range ops {
		if checkers.UnderstoodOp(op) {
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
		parts = append(parts, fmt.Sprintf("%d transaction(s) that both append and write (micro-operations append and w) were not checked: a transaction is list-append or rw-register, not both", txn))
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

// CheckerWarnings are the problems checkers met that did not change their
// verdict, such as a visualization that could not be written.
func CheckerWarnings(rep results.Report) []string {
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

// Check runs the checkers that fit h (split by workload when it
// mixes them) and composes the report. `eccheck test` and `eccheck check`
// share it, so a re-check of a run gives the same verdict.
//
// Operations no checker understands are never passed off as checked: they
// are counted and named in a warning and in the report's unchecked_ops,
// and a history with nothing checkable (only such operations, or only
// nemesis operations) is unknown, never valid.
func Check(ctx context.Context, source string, h history.History, warnings []string, o CheckOptions, logf func(string, ...any)) (results.Report, error) {
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
	checked, mixed, deselected := 0, map[string]int{}, map[string]int{}
	for i := range groups {
		g := &groups[i]
		if len(g.checkers) == 0 {
			// --checkers chose none that checks this workload: its
			// operations are not checked, and the report says so.
			left := map[string]int{}
			for _, op := range g.ops {
				left[op.F]++
				deselected[op.F]++
			}
			w := fmt.Sprintf("--checkers %s checks nothing of the %s workload: %d operation(s) were not checked (%s)", strings.Join(o.Checkers, ","), g.workload, len(g.ops), countsText(left))
			warnings = append(warnings, w)
			logf("warning: %s", w)
			g.ops = nil
			continue
		}
		fs := g.workload.Fs()
		if !slices.ContainsFunc(g.ops, func(op history.Operation) bool { return !slices.Contains(fs, op.F) }) {
			checked += len(g.ops) // all of them: no copy
			continue
		}
		var keep []history.Operation
		for _, op := range g.ops {
			if slices.Contains(fs, op.F) {
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
	if len(unchecked) > 0 || len(mixed) > 0 || len(deselected) > 0 {
		uncheckedCopy = maps.Clone(unchecked)
		for _, m := range []map[string]int{mixed, deselected} {
			for f, n := range m {
				uncheckedCopy[f] += n
			}
		}
	}
	if len(unchecked) > 0 || len(mixed) > 0 {
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
	opt := checkers.Options{Timeout: o.Timeout, MaxStaleness: o.MaxStaleness, VizDir: o.VizDir, VizPrefix: o.VizPrefix, Engine: o.Engine, ConsistencyModel: o.ConsistencyModel}
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
	if o.Convergence != nil {
		r := checkers.ConvergenceResult(*o.Convergence)
		logf("%s: %s", r.Checker, r.Verdict)
		rs = append(rs, r)
	}
	rep := results.NewReport(source, checkers.Workload(strings.Join(names, "+")), len(ops), rs, warnings)
	rep.Unchecked = uncheckedCopy
	rep.FaultErrors = results.FaultErrors(h)
	return rep, nil
}
