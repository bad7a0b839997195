package run

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/results"
)

// FileTraces is where `eccheck export` writes a run's traces.
const FileTraces = "traces.otlp.json"

// ChecklistRun is one run the checklist answers from.
type ChecklistRun struct {
	Dir    string
	Config Config
	Report results.Report
	Traces bool // the run was exported as traces
}

// Answer is the checklist's answer to one question.
type Answer = results.ChecklistAnswer

// The architect's checklist, in order.
const (
	QStaleness      = "What is the maximum stale window?"
	QReadYourWrites = "Do clients read their own writes?"
	QConflicts      = "How are concurrent writes resolved, and what does it cost?"
	QIdempotency    = "Are retried writes applied once?"
	QTracing        = "Can a run be looked at in a tracing tool?"
	QReconciliation = "Do replicas agree again after a fault, and what is left?"
)

// FindRuns returns the run directories under each path: the path itself
// when it holds test.json and results.json, else the run directories
// below it (the cells of a matrix), at most three levels down.
func FindRuns(paths []string) ([]ChecklistRun, error) {
	var out []ChecklistRun
	for _, p := range paths {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real // runs/latest is a link
		}
		var found []string
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				return nil
			}
			if rel, _ := filepath.Rel(p, path); strings.Count(rel, string(filepath.Separator)) > 3 {
				return filepath.SkipDir
			}
			if fileExists(filepath.Join(path, FileConfig)) && fileExists(filepath.Join(path, FileResults)) {
				found = append(found, path)
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w (give run directories, such as runs/latest, or a matrix's directory)", p, err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s holds no run (no test.json with results.json in it or below it): give run directories made by 'eccheck test' or 'eccheck matrix'", p)
		}
		for _, dir := range found {
			cfg, err := ReadConfig(dir)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", dir, err)
			}
			rep, err := Dir{Path: dir}.ReadResults()
			if err != nil {
				return nil, err
			}
			out = append(out, ChecklistRun{Dir: dir, Config: cfg, Report: rep, Traces: fileExists(filepath.Join(dir, FileTraces))})
		}
	}
	return out, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// label names a run by its configuration: its system, the system's
// settings and the faults (a matrix's cells share one command line, so
// the settings, not the arguments, tell them apart).
func (r ChecklistRun) label() string {
	return r.Config.DB + " " + strings.Join(r.words(), " ")
}

// words are the run's configuration as words: each setting k=v (sorted),
// the faults, retries and idempotency keys.
func (r ChecklistRun) words() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(r.Config.Settings)) {
		out = append(out, fmt.Sprintf("%s=%v", k, r.Config.Settings[k]))
	}
	nem := "none"
	if len(r.Config.Nemesis) > 0 {
		nem = strings.Join(r.Config.Nemesis, ",")
	}
	out = append(out, "nemesis="+nem)
	if r.Config.Retry > 0 {
		out = append(out, fmt.Sprintf("retry=%d", r.Config.Retry))
	}
	if r.Config.IdempotencyKeys {
		out = append(out, "idempotency_keys=true")
	}
	return out
}

// results returns the run's results of checker (over every workload).
func (r ChecklistRun) results(checker string) []checkers.Result {
	var out []checkers.Result
	for _, res := range r.Report.Results {
		if name, _, _ := strings.Cut(res.Checker, " ("); name == checker {
			out = append(out, res)
		}
	}
	return out
}

// Checklist answers the architect's checklist from runs, each answer from
// the runs' own results; a question no run answers says which run would.
func Checklist(runs []ChecklistRun) []Answer {
	return []Answer{staleness(runs), readYourWrites(runs), conflicts(runs), idempotency(runs), tracing(runs), reconciliation(runs)}
}

func staleness(runs []ChecklistRun) Answer {
	a := Answer{Question: QStaleness}
	var worst float64
	var worstRun string
	for _, r := range runs {
		for _, res := range r.results(checkers.NameStaleness) {
			p99, ok := res.Stats["stale_p99_ms"]
			if !ok {
				continue
			}
			mx := res.Stats["stale_max_ms"]
			line := fmt.Sprintf("%s: stale reads p99 %.1f ms, max %.1f ms", r.label(), p99, mx)
			if bound, ok := res.Stats["max_staleness_ms"]; ok && bound > 0 {
				verdict := "within it"
				if res.Verdict == checkers.Invalid {
					verdict = fmt.Sprintf("%.0f reads beyond it", res.Stats["reads_beyond_max"])
				}
				line += fmt.Sprintf(" (--max-staleness %.0f ms: %s)", bound, verdict)
			}
			a.Lines = append(a.Lines, line)
			if mx >= worst {
				worst, worstRun = mx, r.label()
			}
		}
	}
	if len(a.Lines) == 0 {
		a.Next = "a run with the register workload measures it: eccheck test --workload register (add --max-staleness 500ms to hold it to a bound)"
		return a
	}
	a.Answered = true
	a.Answer = fmt.Sprintf("at most %.1f ms behind the latest acknowledged write, in %s", worst, worstRun)
	return a
}

func readYourWrites(runs []ChecklistRun) Answer {
	a := Answer{Question: QReadYourWrites}
	var held, broken []ChecklistRun
	for _, r := range runs {
		rs := r.results(checkers.NameReadYourWrites)
		if len(rs) == 0 {
			continue
		}
		v := rs[0].Verdict
		for _, res := range rs[1:] {
			v = checkers.Compose(v, res.Verdict)
		}
		switch v {
		case checkers.Valid:
			held = append(held, r)
			a.Lines = append(a.Lines, r.label()+": held")
		case checkers.Invalid:
			broken = append(broken, r)
			a.Lines = append(a.Lines, fmt.Sprintf("%s: broken (%d reads missed the process's own write)", r.label(), anomalies(rs)))
		default:
			a.Lines = append(a.Lines, r.label()+": unknown")
		}
	}
	switch {
	case len(a.Lines) == 0:
		a.Next = "a run with the session or register workload checks it: eccheck test --workload session"
		return a
	case len(held) > 0 && len(broken) > 0:
		a.Answer = fmt.Sprintf("it depends on the configuration: held in %d run(s), broken in %d; settings only the runs that held have: %s", len(held), len(broken), argDiff(held, broken))
	case len(held) > 0:
		a.Answer = "yes, in every run that checked it"
	case len(broken) > 0:
		a.Answer = "no: every run that checked it saw a process miss its own acknowledged write"
	default:
		a.Answer = "undecided: the checker could not decide"
	}
	a.Answered = true
	return a
}

// argDiff names the settings some run of a has and no run of b has: what
// made the difference.
func argDiff(a, b []ChecklistRun) string {
	var in []string
	for _, r := range a {
		for _, w := range r.words() {
			if !slices.Contains(in, w) && !slices.ContainsFunc(b, func(o ChecklistRun) bool { return slices.Contains(o.words(), w) }) {
				in = append(in, w)
			}
		}
	}
	if len(in) == 0 {
		return "no setting of their own (compare the runs listed)"
	}
	return strings.Join(in, ", ")
}

func anomalies(rs []checkers.Result) int {
	n := 0
	for _, r := range rs {
		n += r.AnomalyCount
	}
	return n
}

// conflictModel says how a configuration resolves concurrent writes.
func conflictModel(c Config) string {
	mode, _ := c.Settings["mode"].(string)
	switch {
	case c.DB == "ecstore" && mode == "raft":
		return "consensus (Raft): one order of all writes; none is overwritten by a concurrent one"
	case c.DB == "ecstore" && mode == "hlc":
		return "last write wins, by hybrid logical clock timestamps; sets and counters are CRDTs"
	case c.DB == "ecstore" && mode == "primary":
		return "one primary orders the writes; followers copy it asynchronously"
	case c.DB == "ecstore" && mode == "mvr":
		return "multi-value registers: concurrent writes kept side by side as siblings (dotted version vectors) until a write that saw them supersedes them; sets and counters are CRDTs"
	case c.DB == "ecstore":
		return "last write wins, by the coordinator's wall clock; sets and counters are CRDTs"
	case c.DB == "postgres":
		return "one primary orders the writes (row locks, the isolation level's rules); replicas stream its WAL"
	case c.DB == "galera":
		return "every node takes writes; certification lets the first committer win and aborts the conflicting transaction"
	case c.DB == "redis":
		return "one primary orders the writes; replicas copy it asynchronously, Sentinel fails over"
	case c.DB == "etcd":
		return "consensus (Raft): one order of all writes"
	}
	return "unknown for " + c.DB
}

func conflicts(runs []ChecklistRun) Answer {
	a := Answer{Question: QConflicts}
	for _, r := range runs {
		line := fmt.Sprintf("%s: %s", r.label(), conflictModel(r.Config))
		rs := r.results(checkers.NameLostWrites)
		if len(rs) > 0 {
			var lost, sib, maxSib float64
			for _, res := range rs {
				lost += res.Stats["lost"]
				sib += res.Stats["reads_with_siblings"]
				maxSib = max(maxSib, res.Stats["siblings_max"])
			}
			line += fmt.Sprintf("; %.0f acknowledged writes lost", lost)
			if sib > 0 {
				line += fmt.Sprintf("; %.0f reads returned siblings (at most %.0f)", sib, maxSib)
			}
		}
		a.Lines = append(a.Lines, line)
	}
	if len(a.Lines) == 0 {
		a.Next = "any run answers it: eccheck test --workload register,set --nemesis clock,partition"
		return a
	}
	a.Answered = true
	a.Answer = "per configuration below (lost writes from the lost-writes checker's final reads; for multi-value registers, --mode mvr, a write is lost only when no sibling and no write that saw it holds it, and the siblings reads returned are counted)"
	return a
}

func idempotency(runs []ChecklistRun) Answer {
	a := Answer{Question: QIdempotency}
	for _, r := range runs {
		if r.Config.Retry == 0 {
			continue
		}
		rs := r.results(checkers.NameDuplicates)
		if len(rs) == 0 {
			continue
		}
		keys := "without idempotency keys"
		if r.Config.IdempotencyKeys {
			keys = "with idempotency keys"
		}
		var retried float64
		for _, res := range rs {
			retried += res.Stats["retried"]
		}
		v := rs[0].Verdict
		for _, res := range rs[1:] {
			v = checkers.Compose(v, res.Verdict)
		}
		what := "each applied once"
		switch v {
		case checkers.Invalid:
			what = fmt.Sprintf("%d reads show a request applied twice", anomalies(rs))
		case checkers.Unknown:
			what = "undecided (the duplicates checker could not decide)"
		}
		a.Lines = append(a.Lines, fmt.Sprintf("%s: --retry %d %s: %.0f requests retried, %s", r.label(), r.Config.Retry, keys, retried, what))
	}
	// Sagas: compensations retried and redelivered must apply once too.
	for _, r := range runs {
		for _, res := range r.results(checkers.NameSaga) {
			what := "every saga fully applied or fully compensated, no step twice"
			switch res.Verdict {
			case checkers.Invalid:
				what = fmt.Sprintf("%d anomalies (half-finished sagas, steps applied twice, or stock and money that do not add up)", res.AnomalyCount)
			case checkers.Unknown:
				what = "undecided: " + res.Reason
			}
			a.Lines = append(a.Lines, fmt.Sprintf("%s: sagas: %.0f, %.0f completed, %.0f compensated; %s", r.label(), res.Stats["sagas"], res.Stats["completed"], res.Stats["compensated"], what))
		}
	}
	if len(a.Lines) == 0 {
		a.Next = "a run with retries measures it: eccheck test --workload counter --retry 2, and again with --idempotency-keys; sagas: eccheck test --mode raft --workload saga"
		return a
	}
	a.Answered = true
	a.Answer = "per run below (the duplicates checker: each request applied at most once; the saga checker: compensations applied once, every saga finished)"
	return a
}

func tracing(runs []ChecklistRun) Answer {
	a := Answer{Question: QTracing}
	for _, r := range runs {
		if r.Traces {
			a.Lines = append(a.Lines, fmt.Sprintf("%s: %s", r.label(), filepath.Join(r.Dir, FileTraces)))
		}
	}
	if len(a.Lines) == 0 {
		a.Next = "eccheck export RUN_DIR writes a run as OpenTelemetry traces (OTLP JSON) for Jaeger or a collector"
		return a
	}
	a.Answered = true
	a.Answer = "yes: these runs were exported as OpenTelemetry traces (OTLP JSON), a span per operation and per fault"
	return a
}

func reconciliation(runs []ChecklistRun) Answer {
	a := Answer{Question: QReconciliation}
	measured := false
	for _, r := range runs {
		for _, res := range r.results(checkers.NameConvergence) {
			if res.Verdict == checkers.Unknown {
				continue
			}
			measured = true
			st := res.Stats
			a.Lines = append(a.Lines, fmt.Sprintf("%s: %.0f of %.0f keys agreed on every node %.1f ms (p50), %.1f ms (p99), %.1f ms (max) after the heal; %.0f still disagreed at %.0f ms",
				r.label(), st["converged"], st["keys"], st["converge_p50_ms"], st["converge_p99_ms"], st["converge_max_ms"], st["never_converged"], st["bound_ms"]))
		}
		rs := r.results(checkers.NameLostWrites)
		if len(rs) == 0 {
			continue
		}
		divergent := 0
		for _, res := range rs {
			divergent += int(res.Stats["divergent_keys"])
		}
		a.Lines = append(a.Lines, fmt.Sprintf("%s: %d keys still read differently by the nodes in the final reads, taken the --recovery wait after the heal", r.label(), divergent))
	}
	if len(a.Lines) == 0 {
		a.Next = "a run with a fault and a convergence phase answers it: eccheck test --workload register,set --nemesis partition --converge 10s"
		return a
	}
	a.Answered = true
	a.Answer = "per run below: how long after the heal the nodes agreed (the convergence phase), and the divergence left in the final reads"
	if !measured {
		a.Answer = "divergence left after the recovery wait, per run below; how long the nodes took to agree was not measured (no run had --converge)"
		a.Next = "eccheck test --converge 10s measures how long after the heal the nodes agree"
	}
	return a
}

// WriteChecklist renders answers as text (markdown false) or Markdown.
func WriteChecklist(w io.Writer, answers []Answer, runs int, markdown bool) error {
	var b strings.Builder
	if markdown {
		fmt.Fprintf(&b, "### The architect's checklist (eccheck checklist, %d runs)\n\n", runs)
	} else {
		fmt.Fprintf(&b, "The architect's checklist, from %d run(s)\n\n", runs)
	}
	for i, a := range answers {
		if markdown {
			fmt.Fprintf(&b, "%d. **%s** ", i+1, a.Question)
		} else {
			fmt.Fprintf(&b, "%d. %s\n   ", i+1, a.Question)
		}
		if a.Answered {
			b.WriteString(a.Answer + "\n")
		} else {
			b.WriteString("not answered by these runs; " + a.Next + "\n")
		}
		for _, l := range a.Lines {
			if markdown {
				fmt.Fprintf(&b, "   - %s\n", l)
			} else {
				fmt.Fprintf(&b, "   - %s\n", l)
			}
		}
		if a.Answered && a.Next != "" {
			fmt.Fprintf(&b, "   (%s)\n", a.Next)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return errors.Join(err)
}
