// Package results turns checker results into what people and CI read: the
// summary table on a terminal and the JSON document that is eccheck's
// machine-readable contract.
package results

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// SchemaVersion is the version of the JSON report layout. It grows when a
// field changes meaning or disappears; new fields do not change it.
const SchemaVersion = 1

// Report is the outcome of checking one history.
type Report struct {
	Schema   int               `json:"schema"`
	Source   string            `json:"source"`   // the history file
	Workload checkers.Workload `json:"workload"` // register, set or counter
	Ops      int               `json:"ops"`      // paired client operations
	Verdict  checkers.Verdict  `json:"verdict"`  // all results composed
	Results  []checkers.Result `json:"results"`
	Warnings []string          `json:"warnings,omitempty"`
	// FaultErrors are the faults the nemesis could not apply or undo
	// (see [FaultErrors]); set by the caller, which has the history.
	FaultErrors []FaultError `json:"fault_errors,omitempty"`
	// Unchecked counts, by f, the client operations no checker understands
	// and so did not check; set by the caller.
	Unchecked map[string]int `json:"unchecked_ops,omitempty"`
	// Checklist is the architect's checklist answered from this run (set
	// by the run directory's writer for report.html; `eccheck checklist`
	// answers it from several runs).
	Checklist []ChecklistAnswer `json:"-"`
}

// ChecklistAnswer is the answer to one question of the architect's
// checklist.
type ChecklistAnswer struct {
	Question string `json:"question"`
	// Answered is false when no run given could answer; Next then says
	// which run would.
	Answered bool     `json:"answered"`
	Answer   string   `json:"answer"`
	Lines    []string `json:"lines,omitempty"` // one per run that answered
	Next     string   `json:"next,omitempty"`
}

// NewReport composes the verdict of rs. With no results (nothing in the
// history could be checked) the verdict is unknown: never valid for what
// was not checked.
func NewReport(source string, w checkers.Workload, ops int, rs []checkers.Result, warnings []string) Report {
	vs := make([]checkers.Verdict, len(rs))
	for i, r := range rs {
		vs[i] = r.Verdict
	}
	v := checkers.Compose(vs...)
	if len(rs) == 0 {
		v = checkers.Unknown
	}
	if rs == nil {
		rs = []checkers.Result{}
	}
	return Report{Schema: SchemaVersion, Source: source, Workload: w, Ops: ops,
		Verdict: v, Results: rs, Warnings: warnings}
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ShownAnomalies is how many anomalies per checker the table lists under the
// summary; JSON lists them all (up to checkers.MaxAnomalies).
const ShownAnomalies = 5

// WriteTable writes the summary table, one row per checker, followed by the
// first anomalies of each failing checker with their explanations.
func WriteTable(w io.Writer, r Report) error {
	if len(r.Results) == 0 {
		fmt.Fprintf(w, "%s: %d operations, none that a checker understands: nothing was checked\n", r.Source, r.Ops)
		return writeTail(w, r)
	}
	fmt.Fprintf(w, "%s: %s workload, %d operations\n", r.Source, r.Workload, r.Ops)
	t := tablewriter.NewTable(w, tablewriter.WithRowAutoWrap(tw.WrapNormal), tablewriter.WithColumnWidths(tableWidths(r)))
	t.Header("Checker", "Verdict", "Anomalies", "Figures")
	for _, res := range r.Results {
		fig := res.Summary
		if res.Verdict == checkers.Unknown && res.Reason != "" {
			fig = res.Reason
		}
		if err := t.Append(res.Checker, string(res.Verdict), strconv.Itoa(res.AnomalyCount), fig); err != nil {
			return fmt.Errorf("table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	for _, res := range r.Results {
		if len(res.Anomalies) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d anomal%s\n", res.Checker, res.AnomalyCount, plural(res.AnomalyCount, "y", "ies"))
		for i, a := range res.Anomalies {
			if i == ShownAnomalies {
				fmt.Fprintf(w, "  ... and %d more (%s)\n", res.AnomalyCount-ShownAnomalies, listedIn(res))
				break
			}
			fmt.Fprintf(w, "  - [%s] %s\n", a.Kind, a.Explanation)
			if len(a.Ops) > 0 {
				fmt.Fprintf(w, "    ops: %s\n", opList(a.Ops))
			}
		}
		if line := vizLine(res); line != "" {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return writeTail(w, r)
}

// TableWidth is the widest the summary table gets, in columns: the
// Figures column wraps to fit.
const TableWidth = 100

// tableWidths sizes the summary table's columns (each width counts one
// space of padding either side): the checker names as wide as the widest
// (at most 32), the verdict and the count as wide as their header, and
// the figures whatever is left of TableWidth.
func tableWidths(r Report) tw.Mapper[int, int] {
	name := len("Checker")
	count := len("Anomalies")
	for _, res := range r.Results {
		name = max(name, utf8.RuneCountInString(res.Checker))
		count = max(count, len(strconv.Itoa(res.AnomalyCount)))
	}
	name = min(name, 32)
	widths := []int{name + 2, len("invalid") + 2, count + 2}
	used := len(widths) + 2 // the five vertical rules
	for _, w := range widths {
		used += w
	}
	return tw.NewMapper[int, int]().Set(0, widths[0]).Set(1, widths[1]).Set(2, widths[2]).Set(3, max(TableWidth-used, 20))
}

// writeTail writes the warnings, the faults not carried out and the
// verdict under the table.
func writeTail(w io.Writer, r Report) error {
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\nwarnings:\n")
		for _, warn := range r.Warnings {
			fmt.Fprintf(w, "  - %s\n", warn)
		}
	}
	if len(r.FaultErrors) > 0 {
		fmt.Fprintf(w, "\nfaults not carried out (the run went on; each is in the history): %d\n", len(r.FaultErrors))
		for i, fe := range r.FaultErrors {
			if i == ShownAnomalies {
				fmt.Fprintf(w, "  ... and %d more\n", len(r.FaultErrors)-ShownAnomalies)
				break
			}
			fmt.Fprintf(w, "  - #%d at %s s %s: %s\n", fe.Index, seconds(fe.Time), fe.F, fe.Error)
		}
	}
	fmt.Fprintf(w, "\nverdict: %s\n", r.Verdict)
	return nil
}

// listedIn says where the anomalies not shown are: all of them, or the
// first checkers.MaxAnomalies.
func listedIn(res checkers.Result) string {
	if res.AnomalyCount <= checkers.MaxAnomalies {
		return "-o json and results.json list them all"
	}
	return fmt.Sprintf("-o json and results.json list the first %d", checkers.MaxAnomalies)
}

// vizLine is one line about a checker's visualizations: how many, of how
// many failing keys, where.
func vizLine(res checkers.Result) string {
	if len(res.Artifacts) == 0 {
		return ""
	}
	dirs := map[string]bool{}
	for _, a := range res.Artifacts {
		dirs[filepath.Dir(a)] = true
	}
	where := filepath.Dir(res.Artifacts[0])
	if len(dirs) > 1 {
		where = "several directories (results.json lists them)"
	}
	failing := res.AnomalyCount
	if n, ok := res.Stats["keys_failed"]; ok {
		failing = int(n)
	}
	line := fmt.Sprintf("visualizations: %d of %d failing key(s), in %s", len(res.Artifacts), failing, where)
	if failing > len(res.Artifacts) {
		line += fmt.Sprintf(" (at most the first %d are drawn)", checkers.MaxVisualizations)
	}
	return line
}

func opList(ops []checkers.OpRef) string {
	parts := make([]string, len(ops))
	for i, o := range ops {
		parts[i] = fmt.Sprintf("#%d %s %s %s", o.Invoke, o.F, shortValue(o.Value), o.Type)
	}
	return strings.Join(parts, "; ")
}

// shortValue renders a value for the table, eliding the middle of long
// lists (a set read can hold thousands of elements; JSON has them all).
func shortValue(v history.Value) string {
	s := v.String()
	if len(s) <= 60 {
		return s
	}
	if l, ok := v.AsList(); ok {
		return fmt.Sprintf("%s ... %s (%d elements)", s[:30], s[len(s)-15:], len(l))
	}
	return s[:45] + "..." + s[len(s)-12:]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
