package results

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/eccheck/eccheck/checkers"
)

// verdictMark is a verdict with a symbol that reads at a glance in a CI
// summary.
func verdictMark(v checkers.Verdict) string {
	switch v {
	case checkers.Valid:
		return "✅ valid"
	case checkers.Invalid:
		return "❌ invalid"
	}
	return "⚠️ " + string(v)
}

// WriteMarkdown writes r as GitHub-flavoured Markdown, fit for a CI step
// summary ($GITHUB_STEP_SUMMARY): a header with the verdict, the summary
// table, the first anomalies of each failing checker with their
// explanations and operations, the visualizations, the fault periods and
// the warnings. faults are the run's fault periods ([FaultPeriods]); nil
// leaves the section out (the history was not at hand), empty says no fault
// was injected.
func WriteMarkdown(w io.Writer, r Report, faults []FaultPeriod) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "## eccheck: %s\n\n", verdictMark(r.Verdict))
	fmt.Fprintf(b, "%s: %s workload, %d operations\n\n", mdCode(r.Source), mdText(string(r.Workload)), r.Ops)

	b.WriteString("| Checker | Verdict | Anomalies | Figures |\n| --- | --- | ---: | --- |\n")
	for _, res := range r.Results {
		fig := res.Summary
		if res.Verdict == checkers.Unknown && res.Reason != "" {
			fig = res.Reason
		}
		fmt.Fprintf(b, "| %s | %s | %d | %s |\n", mdText(res.Checker), verdictMark(res.Verdict), res.AnomalyCount, mdText(fig))
	}

	for _, res := range r.Results {
		if len(res.Anomalies) == 0 && len(res.Artifacts) == 0 {
			continue
		}
		fmt.Fprintf(b, "\n### %s: %d anomal%s\n\n", mdText(res.Checker), res.AnomalyCount, plural(res.AnomalyCount, "y", "ies"))
		for i, a := range res.Anomalies {
			if i == ShownAnomalies {
				fmt.Fprintf(b, "- ... and %d more (%s)\n", res.AnomalyCount-ShownAnomalies, listedIn(res))
				break
			}
			key := ""
			if a.Key != "" {
				key = " on key " + mdCode(a.Key)
			}
			fmt.Fprintf(b, "- **%s**%s: %s\n", mdText(a.Kind), key, mdText(a.Explanation))
			if len(a.Ops) > 0 {
				parts := make([]string, len(a.Ops))
				for j, o := range a.Ops {
					parts[j] = mdCode(opRef(o))
				}
				fmt.Fprintf(b, "  - ops: %s\n", strings.Join(parts, ", "))
			}
		}
		if len(res.Artifacts) > 0 {
			names := make([]string, len(res.Artifacts))
			for i, art := range res.Artifacts {
				names[i] = mdCode(filepath.Base(art))
			}
			fmt.Fprintf(b, "\nVisualization (in the run directory): %s\n", strings.Join(names, ", "))
		}
	}

	if faults != nil {
		b.WriteString("\n### Faults\n\n")
		if len(faults) == 0 {
			b.WriteString("No faults were injected.\n")
		} else {
			b.WriteString("| Fault | From (s) | To (s) | Details |\n| --- | ---: | ---: | --- |\n")
			for _, f := range faults {
				to := seconds(f.End)
				if f.Open {
					to += " (still in force)"
				}
				detail := strings.ReplaceAll(mdCode(shortValue(f.Value)), "|", `\|`)
				if f.Error != "" {
					detail += " error: " + mdText(f.Error)
				}
				fmt.Fprintf(b, "| %s | %s | %s | %s |\n", mdText(f.Kind), seconds(f.Start), to, detail)
			}
		}
	}

	if len(r.Warnings) > 0 {
		b.WriteString("\n### Warnings\n\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(b, "- %s\n", mdText(w))
		}
	}
	return b.Flush()
}

// opRef renders an operation as the table does: its invocation line, the
// function, the value and how it ended.
func opRef(o checkers.OpRef) string {
	return fmt.Sprintf("#%d %s %s %s", o.Invoke, o.F, shortValue(o.Value), o.Type)
}

// seconds renders nanoseconds as seconds with millisecond precision.
func seconds(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64)
}

// mdReplacer escapes what Markdown or the HTML GitHub allows in it would
// otherwise interpret in text taken from histories and checkers.
var mdReplacer = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "&", "&amp;", "|", `\|`, "\n", " ", "\r", " ",
)

// mdText escapes s for Markdown running text and table cells.
func mdText(s string) string { return mdReplacer.Replace(s) }

// mdCode renders s as a code span (outside tables), with a fence longer
// than any run of backticks inside it.
func mdCode(s string) string {
	s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if len(fence) > 1 {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}
