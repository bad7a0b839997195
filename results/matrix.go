package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/eccheck/eccheck/checkers"
)

// MatrixSchemaVersion is the version of the report card's JSON layout
// ([WriteMatrixJSON]). It grows when a field changes meaning or disappears;
// new fields do not change it.
const MatrixSchemaVersion = 1

// Mark is what the report card shows in one of its property columns, and as
// a cell's verdict: a checker verdict, [MarkError] when the cell could not
// run, or [MarkNone] when no checker of that property ran (the workloads did
// not include one it checks).
type Mark string

// The marks. MarkValid, MarkInvalid and MarkUnknown are the checker verdicts.
const (
	MarkValid        = Mark(checkers.Valid)
	MarkInvalid      = Mark(checkers.Invalid)
	MarkUnknown      = Mark(checkers.Unknown)
	MarkError   Mark = "error"
	MarkNone    Mark = ""
)

// Symbol is the mark's glyph on the table and Markdown card.
func (m Mark) Symbol() string {
	switch m {
	case MarkValid:
		return "✓"
	case MarkInvalid:
		return "✗"
	case MarkUnknown:
		return "?"
	case MarkError:
		return "!"
	}
	return "-"
}

// MatrixLegend explains the glyphs of [Mark.Symbol].
const MatrixLegend = "✓ valid, ✗ invalid (anomalies found), ? unknown (a checker could not decide), ! error (the cell did not run), - not checked"

// The card's columns that are not a checker's.
const (
	// ColumnVerdict is the cell's composed verdict.
	ColumnVerdict = "verdict"
)

// Names of checker columns, as expectations name them (the checkers').
const (
	ColumnLinearizable   = checkers.LinearizableName
	ColumnReadYourWrites = checkers.NameReadYourWrites
	ColumnMonotonicReads = checkers.NameMonotonicReads
	ColumnLostWrites     = checkers.NameLostWrites
)

// CardColumn is a checker's column on the card, from the checker registry.
type CardColumn struct {
	Checker string // the checker's name: what expectations and JSON name it by
	Title   string // the column's title
	Stat    string // a figure of Stats shown instead of a mark, if set
}

// CardColumns are the card's checker columns, in the registry's order:
// adding a checker with a Card title adds a column.
func CardColumns() []CardColumn {
	var out []CardColumn
	for _, c := range checkers.All() {
		if c.Card != "" {
			out = append(out, CardColumn{Checker: c.Name, Title: c.Card, Stat: c.CardStat})
		}
	}
	return out
}

// MatrixColumns lists the columns an expectation may name: the verdict and
// every checker column that shows a mark.
var MatrixColumns = func() []string {
	out := []string{ColumnVerdict}
	for _, c := range CardColumns() {
		if c.Stat == "" {
			out = append(out, c.Checker)
		}
	}
	return out
}()

// Cell is one configuration under one nemesis: one run of `eccheck test`.
type Cell struct {
	Config  string // the configuration as the matrix names it, e.g. "lww:w1r1"
	Nemesis string // "none", "partition", "partition+clock"
	// Dir is the cell's run directory (empty when the cell failed before it
	// had one).
	Dir string
	// Verdict is the run's composed verdict (every checker, staleness and
	// counters included), or "error".
	Verdict Mark
	// Marks are the verdicts of the mark columns, by checker name; the
	// results of one checker over several workloads compose (lost writes
	// of registers and of sets: invalid if either is).
	Marks map[string]Mark
	// Stats are the figures of the figure columns, by checker name (the
	// staleness checker's stale_p99_ms); absent when no such result exists.
	Stats map[string]float64
	// OpsPerSec is the workload's throughput, from test.json's summary.
	OpsPerSec *float64
	// Seconds is how long the cell took, cluster start to checked report.
	Seconds float64
	// Error is the harness failure of an "error" cell.
	Error string
}

// Name is "config x nemesis", as progress lines and expectations say it.
func (c Cell) Name() string { return c.Config + " x " + c.Nemesis }

// Column returns the mark of a column named in [MatrixColumns].
func (c Cell) Column(name string) Mark {
	if name == ColumnVerdict {
		return c.Verdict
	}
	return c.Marks[name]
}

// Stat returns the figure of a figure column, by checker name.
func (c Cell) Stat(checker string) (float64, bool) {
	v, ok := c.Stats[checker]
	return v, ok
}

// jsonKey is a checker column's key in matrix.json: its name in
// snake_case ("read_your_writes"), or its figure's name.
func (col CardColumn) jsonKey() string {
	if col.Stat != "" {
		return col.Stat
	}
	return strings.ReplaceAll(col.Checker, "-", "_")
}

// cellJSON is a Cell's fixed fields in matrix.json; the columns' marks
// and figures sit beside them, one key each.
type cellJSON struct {
	Config    string   `json:"config"`
	Nemesis   string   `json:"nemesis"`
	Dir       string   `json:"dir,omitempty"`
	Verdict   Mark     `json:"verdict"`
	OpsPerSec *float64 `json:"ops_per_sec,omitempty"`
	Seconds   float64  `json:"seconds"`
	Error     string   `json:"error,omitempty"`
}

// MarshalJSON writes the cell with one key per column that has a value,
// in card order: config, nemesis, dir, verdict, the columns, ops_per_sec,
// seconds, error.
func (c Cell) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	add := func(key string, v any, omit bool) {
		if omit {
			return
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		k, _ := json.Marshal(key)
		val, err := json.Marshal(v)
		if err != nil {
			val = []byte("null")
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
	}
	add("config", c.Config, false)
	add("nemesis", c.Nemesis, false)
	add("dir", c.Dir, c.Dir == "")
	add("verdict", c.Verdict, false)
	for _, col := range CardColumns() {
		if col.Stat != "" {
			v, ok := c.Stats[col.Checker]
			add(col.jsonKey(), v, !ok)
		} else {
			mk := c.Marks[col.Checker]
			add(col.jsonKey(), mk, mk == MarkNone)
		}
	}
	add("ops_per_sec", c.OpsPerSec, c.OpsPerSec == nil)
	add("seconds", c.Seconds, false)
	add("error", c.Error, c.Error == "")
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Cell) UnmarshalJSON(b []byte) error {
	var base cellJSON
	if err := json.Unmarshal(b, &base); err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = Cell{Config: base.Config, Nemesis: base.Nemesis, Dir: base.Dir, Verdict: base.Verdict, OpsPerSec: base.OpsPerSec, Seconds: base.Seconds, Error: base.Error}
	for _, col := range CardColumns() {
		raw, ok := m[col.jsonKey()]
		if !ok {
			continue
		}
		if col.Stat != "" {
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("%s: %w", col.jsonKey(), err)
			}
			c.setStat(col.Checker, v)
		} else {
			var mk Mark
			if err := json.Unmarshal(raw, &mk); err != nil {
				return fmt.Errorf("%s: %w", col.jsonKey(), err)
			}
			c.setMark(col.Checker, mk)
		}
	}
	return nil
}

func (c *Cell) setMark(checker string, m Mark) {
	if c.Marks == nil {
		c.Marks = map[string]Mark{}
	}
	c.Marks[checker] = m
}

func (c *Cell) setStat(checker string, v float64) {
	if c.Stats == nil {
		c.Stats = map[string]float64{}
	}
	c.Stats[checker] = v
}

// NewCell builds the cell of a finished run from its report: each result
// counts for its checker's column (several results of one checker, over
// the workloads of a mixed run, compose; a figure column keeps the
// largest).
func NewCell(config, nemesis, dir string, rep Report) Cell {
	c := Cell{Config: config, Nemesis: nemesis, Dir: dir, Verdict: Mark(rep.Verdict)}
	columns := CardColumns()
	for _, r := range rep.Results {
		name := r.Checker
		if r.Workload != "" {
			name = strings.TrimSuffix(name, " ("+string(r.Workload)+")")
		} else {
			name, _, _ = strings.Cut(name, " (") // a report from before results carried their workload
		}
		i := slices.IndexFunc(columns, func(col CardColumn) bool { return col.Checker == name })
		if i < 0 {
			continue
		}
		col := columns[i]
		if col.Stat != "" {
			if p, ok := r.Stats[col.Stat]; ok {
				if old, had := c.Stats[name]; !had || p > old {
					c.setStat(name, p)
				}
			}
			continue
		}
		if m := c.Marks[name]; m != MarkNone {
			c.setMark(name, Mark(checkers.Compose(checkers.Verdict(m), r.Verdict)))
		} else {
			c.setMark(name, Mark(r.Verdict))
		}
	}
	return c
}

// ErrorCell is the cell of a run that failed in the harness: it has no
// verdicts, only the error (and the run directory, if it got one).
func ErrorCell(config, nemesis, dir string, err error) Cell {
	return Cell{Config: config, Nemesis: nemesis, Dir: dir, Verdict: MarkError, Error: err.Error()}
}

// Card is the consistency report card of `eccheck matrix`: one [Cell] per
// configuration and nemesis, in the order they ran.
type Card struct {
	Schema    int       `json:"schema"` // MatrixSchemaVersion
	DB        string    `json:"db"`
	Workloads []string  `json:"workloads"`
	Configs   []string  `json:"configs"`
	Nemeses   []string  `json:"nemeses"`
	TimeLimit string    `json:"time_limit"` // per cell
	Seed      uint64    `json:"seed"`       // the same for every cell
	Start     time.Time `json:"start"`
	Dir       string    `json:"dir"` // the matrix directory holding the cells' run directories
	// Planned is how many cells the matrix asked for; Cells holds fewer when
	// it was interrupted.
	Planned     int  `json:"planned"`
	Interrupted bool `json:"interrupted"`
	// Verdict composes the verdicts of the cells that ran (error cells
	// aside); Errors counts the error cells.
	Verdict checkers.Verdict `json:"verdict"`
	Errors  int              `json:"errors"`
	Cells   []Cell           `json:"cells"`
	// Expectations are the outcomes of --expect, when given.
	Expectations []ExpectationOutcome `json:"expectations,omitempty"`
}

// Add appends a cell and updates the card's verdict and error count.
func (c *Card) Add(cell Cell) {
	c.Cells = append(c.Cells, cell)
	if c.Verdict == "" {
		c.Verdict = checkers.Valid
	}
	if cell.Verdict == MarkError {
		c.Errors++
		return
	}
	c.Verdict = checkers.Compose(c.Verdict, checkers.Verdict(cell.Verdict))
}

// WriteMatrixJSON writes the card as indented JSON (schema
// [MatrixSchemaVersion]).
func WriteMatrixJSON(w io.Writer, c Card) error {
	c.Schema = MatrixSchemaVersion
	if c.Cells == nil {
		c.Cells = []Cell{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// matrixHeader are the card's column titles: the cell, the checkers'
// columns from the registry, the throughput and the verdict.
func matrixHeader() []string {
	h := []string{"configuration", "nemesis"}
	for _, col := range CardColumns() {
		h = append(h, col.Title)
	}
	return append(h, "ops/s", "verdict")
}

// matrixRow renders a cell as the card's row.
func matrixRow(c Cell) []string {
	row := []string{c.Config, c.Nemesis}
	for _, col := range CardColumns() {
		if col.Stat != "" {
			var p *float64
			if v, ok := c.Stats[col.Checker]; ok {
				p = &v
			}
			row = append(row, matrixNumber(p, 1))
		} else {
			row = append(row, c.Marks[col.Checker].Symbol())
		}
	}
	return append(row, matrixNumber(c.OpsPerSec, 0), c.Verdict.Symbol()+" "+string(c.Verdict))
}

func matrixNumber(p *float64, prec int) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', prec, 64)
}

// matrixTitle is the line above the card.
func matrixTitle(c Card) string {
	s := fmt.Sprintf("%s: %s, %s per cell, seed %d, %d of %d cells", c.DB, strings.Join(c.Workloads, ","), c.TimeLimit, c.Seed, len(c.Cells), c.Planned)
	if c.Interrupted {
		s += " (interrupted)"
	}
	return s
}

// matrixFooter is what follows the card in text formats: errors, failed
// expectations, the verdict.
func matrixFooter(w io.Writer, c Card, code func(string) string) {
	if c.Errors > 0 {
		fmt.Fprintf(w, "\ncells in error:\n")
	}
	for _, cell := range c.Cells {
		if cell.Verdict == MarkError {
			fmt.Fprintf(w, "- %s: %s\n", code(cell.Name()), cell.Error)
		}
	}
	if len(c.Expectations) > 0 {
		failed := 0
		for _, e := range c.Expectations {
			if !e.Holds {
				failed++
			}
		}
		fmt.Fprintf(w, "\nexpectations: %d of %d hold\n", len(c.Expectations)-failed, len(c.Expectations))
		for _, e := range c.Expectations {
			if !e.Holds {
				fmt.Fprintf(w, "- does not hold: %s (%s): %s\n", code(e.Expectation.Text), e.Expectation.Pos(), e.Reason)
			}
		}
	}
	verdict := string(c.Verdict)
	if c.Errors > 0 {
		verdict += fmt.Sprintf(", %d cell%s in error", c.Errors, plural(c.Errors, "", "s"))
	}
	fmt.Fprintf(w, "\nverdict: %s; run directories in %s\n", verdict, code(c.Dir))
}

// WriteMatrixTable writes the card as a terminal table with its legend,
// followed by the errors of cells that did not run and the expectations
// that do not hold.
func WriteMatrixTable(w io.Writer, c Card) error {
	fmt.Fprintln(w, matrixTitle(c))
	// The titles are already what they should read: no upper-casing, which
	// would split "read-your-writes" and "ops/s" at their punctuation.
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header(matrixHeader())
	for _, cell := range c.Cells {
		if err := t.Append(matrixRow(cell)); err != nil {
			return fmt.Errorf("table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	fmt.Fprintln(w, MatrixLegend)
	matrixFooter(w, c, func(s string) string { return s })
	return nil
}

// WriteMatrixMarkdown writes the card as GitHub-flavoured Markdown, fit for
// a CI step summary ($GITHUB_STEP_SUMMARY).
func WriteMatrixMarkdown(w io.Writer, c Card) error {
	fmt.Fprintf(w, "### Consistency report card (eccheck matrix)\n\n%s\n\n", matrixMDEscape(matrixTitle(c)))
	fmt.Fprintf(w, "| %s |\n", strings.Join(matrixHeader(), " | "))
	align := []string{"---", "---"}
	for _, col := range CardColumns() {
		if col.Stat != "" {
			align = append(align, "--:")
		} else {
			align = append(align, ":-:")
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(append(align, "--:", "---"), " | "))
	for _, cell := range c.Cells {
		row := matrixRow(cell)
		for i := range row {
			row[i] = matrixMDEscape(row[i])
		}
		row[0], row[1] = "`"+row[0]+"`", "`"+row[1]+"`"
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintf(w, "\n%s\n", MatrixLegend)
	matrixFooter(w, c, func(s string) string { return "`" + matrixMDEscape(s) + "`" })
	return nil
}

// matrixMDEscape keeps text from breaking a Markdown table row.
func matrixMDEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "`", "'")
	return strings.ReplaceAll(s, "\n", " ")
}

// WriteMatrixHTML writes the card as one self-contained page (no scripts,
// no network). Each row links to its run directory's report.html when it
// exists, else to its results.json; links are relative to base, the
// directory the page is saved in ("" for the current directory).
func WriteMatrixHTML(w io.Writer, c Card, base string) error {
	type column struct {
		Mark   Mark
		Figure string // for a figure column
	}
	type row struct {
		Cells   []string
		Columns []column
		Ops     string
		Verdict string
		Link    string
		Cell    Cell
	}
	data := struct {
		Title, Legend string
		Header        []string
		Rows          []row
		Card          Card
		Footer        string
	}{Title: matrixTitle(c), Legend: MatrixLegend, Header: matrixHeader(), Card: c}
	for _, cell := range c.Cells {
		cells := matrixRow(cell)
		r := row{Cells: cells, Cell: cell, Ops: cells[len(cells)-2], Verdict: cells[len(cells)-1]}
		for i, col := range CardColumns() {
			if col.Stat != "" {
				r.Columns = append(r.Columns, column{Figure: cells[2+i]})
			} else {
				r.Columns = append(r.Columns, column{Mark: cell.Marks[col.Checker]})
			}
		}
		r.Link = matrixLink(cell.Dir, base)
		data.Rows = append(data.Rows, r)
	}
	var foot strings.Builder
	matrixFooter(&foot, c, func(s string) string { return s })
	data.Footer = strings.TrimSpace(foot.String())
	if err := matrixPage.Execute(w, data); err != nil {
		return fmt.Errorf("html: %w", err)
	}
	return nil
}

// matrixLink is the link from the page to a cell's report: report.html if
// the run directory has one, else results.json, else the directory.
func matrixLink(dir, base string) string {
	if dir == "" {
		return ""
	}
	target := dir
	for _, f := range []string{"report.html", "results.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			target = filepath.Join(dir, f)
			break
		}
	}
	if base != "" {
		if rel, err := filepath.Rel(base, target); err == nil {
			target = rel
		}
	}
	return filepath.ToSlash(target)
}

// matrixPage is the HTML card. It is well-formed XML as well as HTML, so
// tests parse it with encoding/xml.
var matrixPage = template.Must(template.New("matrix").Funcs(template.FuncMap{
	"symbol": func(m Mark) string { return m.Symbol() },
	"class": func(m Mark) string {
		if m == MarkNone {
			return "none"
		}
		return string(m)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>eccheck matrix: {{.Card.DB}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: center; }
td.name { text-align: left; font-family: monospace; }
td.num { text-align: right; }
.valid { background: #dcf5dc; }
.invalid { background: #f8d0d0; }
.unknown { background: #fdf0c0; }
.error { background: #e0e0e0; }
pre { white-space: pre-wrap; }
</style>
</head>
<body>
<h1>eccheck matrix: {{.Card.DB}}</h1>
<p>{{.Title}}</p>
<table>
<thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>
<td class="name">{{.Cell.Config}}</td><td class="name">{{.Cell.Nemesis}}</td>
{{range .Columns}}{{if .Figure}}<td class="num">{{.Figure}}</td>{{else}}<td class="{{class .Mark}}">{{symbol .Mark}}</td>{{end}}{{end}}
<td class="num">{{.Ops}}</td>
<td class="{{class .Cell.Verdict}}">{{if .Link}}<a href="{{.Link}}">{{.Verdict}}</a>{{else}}{{.Verdict}}{{end}}</td>
</tr>
{{end}}</tbody>
</table>
<p>{{.Legend}}</p>
<pre>{{.Footer}}</pre>
</body>
</html>
`))
