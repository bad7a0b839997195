package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// HTMLShownAnomalies is how many anomalies per checker report.html lists,
// each with its operations; results.json has them all.
const HTMLShownAnomalies = 50

// WriteHTML writes report.html: one self-contained page (no scripts, no
// network, styles and plots inline) with the verdict and summary table, the
// latency and throughput plots of h with the fault periods shaded, the
// fault periods, the staleness freshness curve, the anomalies with their
// operations, and relative links to the linearizability visualizations (so
// the run directory can be moved or uploaded as a whole). h may be nil: the
// page then has no latency, throughput or fault sections.
//
// The page is written even when a plot cannot be drawn; the page says so and
// the returned error names the plot.
func WriteHTML(w io.Writer, r Report, h history.History) error {
	pg := htmlPage{Report: r, Verdict: string(r.Verdict), HasHistory: h != nil}
	var errs []error
	plotErr := func(what string, err error) {
		errs = append(errs, fmt.Errorf("%s plot: %w", what, err))
		pg.PlotErrors = append(pg.PlotErrors, fmt.Sprintf("the %s plot could not be drawn: %v", what, err))
	}
	for _, res := range r.Results {
		row := htmlRow{Checker: res.Checker, Verdict: string(res.Verdict), Count: res.AnomalyCount, Figures: res.Summary}
		if res.Verdict == checkers.Unknown && res.Reason != "" {
			row.Figures = res.Reason
		}
		pg.Rows = append(pg.Rows, row)
	}
	if h != nil {
		faults := FaultPeriods(h)
		tl := newTimeline(h)
		pg.Ops, pg.EndS = len(tl.points), seconds(tl.end)
		p, marks, err := latencyPlot(tl, faults)
		pg.Latency, err = svgOf(p, err)
		if err != nil {
			plotErr("latency", err)
		}
		pg.Marks = marks
		p, err = throughputPlot(tl, faults)
		if pg.Throughput, err = svgOf(p, err); err != nil {
			plotErr("throughput", err)
		}
		pg.Bin = throughputBin(tl.end).String()
		for _, f := range faults {
			hf := htmlFault{Kind: f.Kind, From: seconds(f.Start), To: seconds(f.End), Open: f.Open, Value: shortValue(f.Value), Error: f.Error}
			pg.Faults = append(pg.Faults, hf)
		}
	}
	if curve, ok := stalenessCurve(r); ok {
		pg.Curve = curve
		if len(curve) > 0 {
			p, err := freshnessPlot(curve)
			if pg.Freshness, err = svgOf(p, err); err != nil {
				plotErr("freshness", err)
			}
		}
	}
	for _, res := range r.Results {
		if len(res.Anomalies) > 0 {
			hc := htmlChecker{Checker: res.Checker, Count: res.AnomalyCount, Plural: plural(res.AnomalyCount, "y", "ies")}
			for i, a := range res.Anomalies {
				if i == HTMLShownAnomalies {
					break
				}
				ha := htmlAnomaly{Kind: a.Kind, Key: a.Key, Explanation: a.Explanation, Cycle: cycleSVG(a.Cycle)}
				for _, o := range a.Ops {
					ret := "open"
					if o.Return >= 0 {
						ret = seconds(o.Return)
					}
					ha.Ops = append(ha.Ops, htmlOp{Invoke: o.Invoke, Complete: o.Complete, Process: o.Process.String(),
						F: o.F, Key: o.Key, Value: shortValue(o.Value), Type: o.Type, Call: seconds(o.Call), Return: ret})
				}
				hc.Shown = append(hc.Shown, ha)
			}
			hc.More = res.AnomalyCount - len(hc.Shown)
			pg.Anomalies = append(pg.Anomalies, hc)
		}
		for _, art := range res.Artifacts {
			pg.Links = append(pg.Links, htmlLink{Checker: res.Checker, Href: relLink(r.Source, art), Name: filepath.Base(art)})
		}
	}
	if err := htmlTemplate.Execute(w, pg); err != nil {
		return fmt.Errorf("html: %w", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("html: %w", errors.Join(errs...))
	}
	return nil
}

// svgOf renders a plot built without error to inline SVG.
func svgOf(p *plot.Plot, err error) (template.HTML, error) {
	if err != nil {
		return "", err
	}
	svg, err := renderSVG(p)
	// The SVG is gonum/plot's output from eccheck's own labels and numbers.
	return template.HTML(svg), err
}

// stalenessCurve finds the staleness checker's freshness curve in r. It
// reads Details whether they are the checker's own type or were decoded from
// results.json into generic JSON.
func stalenessCurve(r Report) ([]checkers.FreshnessPoint, bool) {
	for _, res := range r.Results {
		if !strings.HasPrefix(res.Checker, "staleness") || res.Details == nil {
			continue
		}
		switch d := res.Details.(type) {
		case checkers.StalenessDetails:
			return d.Curve, true
		case *checkers.StalenessDetails:
			return d.Curve, true
		}
		b, err := json.Marshal(res.Details)
		if err != nil {
			continue
		}
		var d checkers.StalenessDetails
		if json.Unmarshal(b, &d) == nil {
			return d.Curve, true
		}
	}
	return nil, false
}

// relLink links to a checker's artifact from the page, which sits next to
// the history (source): relative, so the run directory can move.
func relLink(source, art string) string {
	if rel, err := filepath.Rel(filepath.Dir(source), art); err == nil {
		return filepath.ToSlash(rel)
	}
	return filepath.ToSlash(art)
}

type htmlPage struct {
	Report     Report
	Verdict    string
	Rows       []htmlRow
	HasHistory bool
	Ops, Marks int
	EndS       string
	Bin        string
	Latency    template.HTML
	Throughput template.HTML
	Freshness  template.HTML
	PlotErrors []string
	Faults     []htmlFault
	Curve      []checkers.FreshnessPoint
	Anomalies  []htmlChecker
	Links      []htmlLink
}

type htmlRow struct {
	Checker, Verdict string
	Count            int
	Figures          string
}

type htmlFault struct {
	Kind, From, To string
	Open           bool
	Value, Error   string
}

type htmlChecker struct {
	Checker     string
	Count, More int
	Plural      string
	Shown       []htmlAnomaly
}

type htmlAnomaly struct {
	Kind, Key, Explanation string
	// Cycle is the picture of a dependency cycle, when the anomaly is one.
	Cycle template.HTML
	Ops   []htmlOp
}

type htmlOp struct {
	Invoke, Complete                           int
	Process, F, Key, Value, Type, Call, Return string
}

type htmlLink struct{ Checker, Href, Name string }

// The page is well-formed XML as well as HTML (every element closed, no
// named entities), so tests can parse it with encoding/xml.
var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(p float64) string { return fmt.Sprintf("%.1f%%", 100*p) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>eccheck: {{.Verdict}} ({{.Report.Source}})</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 .verdict, td.verdict { font-weight: bold; }
.valid { color: #1a7f37; } .invalid { color: #cf222e; } .unknown { color: #9a6700; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; }
code, table.ops td { font-family: ui-monospace, monospace; font-size: 0.9em; }
figure { margin: 0 0 1.5em; }
figure svg { width: 100%; height: auto; }
figcaption, .note { color: #57606a; font-size: 0.9em; }
.warn { color: #9a6700; }
nav a { margin-right: 1em; }
</style>
</head>
<body>
<h1>eccheck report: <span class="verdict {{.Verdict}}">{{.Verdict}}</span></h1>
<p><code>{{.Report.Source}}</code>: {{.Report.Workload}} workload, {{.Report.Ops}} operations.</p>
<nav><a href="#summary">Summary</a>{{if .HasHistory}}<a href="#latency">Latency</a><a href="#throughput">Throughput</a><a href="#faults">Faults</a>{{end}}{{if .Curve}}<a href="#staleness">Staleness</a>{{end}}{{if .Anomalies}}<a href="#anomalies">Anomalies</a>{{end}}{{if .Links}}<a href="#visualizations">Visualizations</a>{{end}}{{if .Report.Checklist}}<a href="#checklist">Checklist</a>{{end}}</nav>
{{range .PlotErrors}}<p class="warn">{{.}}</p>
{{end}}
<h2 id="summary">Summary</h2>
<table>
<tr><th>Checker</th><th>Verdict</th><th>Anomalies</th><th>Figures</th></tr>
{{range .Rows}}<tr><td>{{.Checker}}</td><td class="verdict {{.Verdict}}">{{.Verdict}}</td><td class="num">{{.Count}}</td><td>{{.Figures}}</td></tr>
{{end}}</table>
{{with .Report.Warnings}}<p class="warn">Warnings:</p>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>
{{end}}
{{if .HasHistory}}<h2 id="latency">Latency</h2>
<figure>{{.Latency}}
<figcaption>Each completed operation at its invocation time and latency (log scale): ok as blue dots, info (indeterminate, latency up to its timeout) as orange triangles, fail as red crosses; shaded bands are fault periods. {{.Ops}} operations over {{.EndS}} s, drawn as {{.Marks}} marks: where several operations of one type fall within a mark's width of each other, one mark stands for them.</figcaption>
</figure>
<h2 id="throughput">Throughput</h2>
<figure>{{.Throughput}}
<figcaption>Completions per second by type, in {{.Bin}} bins by completion time; shaded bands are fault periods.</figcaption>
</figure>
<h2 id="faults">Faults</h2>
{{if .Faults}}<table>
<tr><th>Fault</th><th>From (s)</th><th>To (s)</th><th>Details</th></tr>
{{range .Faults}}<tr><td>{{.Kind}}</td><td class="num">{{.From}}</td><td class="num">{{.To}}{{if .Open}} (still in force){{end}}</td><td><code>{{.Value}}</code>{{if .Error}} <span class="warn">error: {{.Error}}</span>{{end}}</td></tr>
{{end}}</table>
{{else}}<p>No faults were injected.</p>
{{end}}{{else}}<p class="note">The history was not at hand, so there are no latency, throughput or fault plots.</p>
{{end}}
{{if .Curve}}<h2 id="staleness">Staleness</h2>
<figure>{{.Freshness}}
<figcaption>The probability that a read is fresh (returns the latest acknowledged write of its key or a newer one), by the time since that write finished; after Bailis et al., Probabilistically Bounded Staleness.</figcaption>
</figure>
<table>
<tr><th>From (ms)</th><th>To (ms)</th><th>Reads</th><th>Fresh</th><th>P(fresh)</th></tr>
{{range .Curve}}<tr><td class="num">{{.FromMS}}</td><td class="num">{{if .ToMS}}{{.ToMS}}{{else}}and later{{end}}</td><td class="num">{{.Reads}}</td><td class="num">{{.Fresh}}</td><td class="num">{{pct .PFresh}}</td></tr>
{{end}}</table>
{{end}}
{{if .Anomalies}}<h2 id="anomalies">Anomalies</h2>
{{range .Anomalies}}<section>
<h3>{{.Checker}}: {{.Count}} anomal{{.Plural}}</h3>
<ol>
{{range .Shown}}<li><p><b>{{.Kind}}</b>{{if .Key}} on key <code>{{.Key}}</code>{{end}}: {{.Explanation}}</p>
{{if .Cycle}}<div class="cycle">{{.Cycle}}</div>
{{end}}{{if .Ops}}<table class="ops">
<tr><th>Lines</th><th>Process</th><th>F</th><th>Key</th><th>Value</th><th>Type</th><th>Call (s)</th><th>Return (s)</th></tr>
{{range .Ops}}<tr><td>{{.Invoke}}{{if ge .Complete 0}}, {{.Complete}}{{end}}</td><td>{{.Process}}</td><td>{{.F}}</td><td>{{.Key}}</td><td>{{.Value}}</td><td>{{.Type}}</td><td class="num">{{.Call}}</td><td class="num">{{.Return}}</td></tr>
{{end}}</table>
{{end}}</li>
{{end}}</ol>
{{if gt .More 0}}<p class="note">... and {{.More}} more: results.json lists them all.</p>
{{end}}</section>
{{end}}{{end}}
{{if .Links}}<h2 id="visualizations">Linearizability visualizations</h2>
<ul>
{{range .Links}}<li><a href="{{.Href}}">{{.Name}}</a> ({{.Checker}})</li>
{{end}}</ul>
{{end}}
{{with .Report.Checklist}}<h2 id="checklist">The architect's checklist</h2>
<ol>
{{range .}}<li><p><b>{{.Question}}</b> {{if .Answered}}{{.Answer}}{{else}}<span class="note">Not answered by this run: {{.Next}}.</span>{{end}}</p>
{{with .Lines}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}</li>
{{end}}</ol>
<p class="note">From this run alone; <code>eccheck checklist RUN_DIR...</code> answers it from several runs (a run with sessions beside one without, a matrix).</p>
{{end}}
<p class="note">Written by eccheck; re-render with <code>eccheck report RUN_DIR -o html</code>.</p>
</body>
</html>
`))
