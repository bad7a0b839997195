package results

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/synth"
)

// page is what the structural check of report.html found.
type page struct {
	elements map[string]int // element name -> count, outside SVG
	svgs     []svgInfo
	hrefs    []string
	text     string // all text outside SVG
}

type svgInfo struct {
	shaded int    // translucent fills: fault bands and their legend swatches
	marks  int    // paths in all
	text   string // labels
}

// parsePage parses report.html as XML (the page is written to be
// well-formed), which checks that every element is closed and every
// attribute quoted, and collects what the tests assert on.
func parsePage(t *testing.T, b []byte) page {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	p := page{elements: map[string]int{}}
	var txt strings.Builder
	depth := 0 // inside an <svg> when > 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report.html is not well-formed: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if tk.Name.Local == "svg" {
				if depth == 0 {
					p.svgs = append(p.svgs, svgInfo{})
				}
				depth++
				continue
			}
			for _, a := range tk.Attr {
				if a.Name.Local == "src" {
					t.Errorf("element <%s> loads %q: the page must be self-contained", tk.Name.Local, a.Value)
				}
				if a.Name.Local == "href" && depth == 0 {
					p.hrefs = append(p.hrefs, a.Value)
				}
			}
			if depth > 0 {
				s := &p.svgs[len(p.svgs)-1]
				if tk.Name.Local == "path" {
					s.marks++
					for _, a := range tk.Attr {
						if a.Name.Local == "style" && strings.Contains(a.Value, "fill-opacity") {
							s.shaded++
						}
					}
				}
				continue
			}
			p.elements[tk.Name.Local]++
		case xml.EndElement:
			if tk.Name.Local == "svg" {
				depth--
			}
		case xml.CharData:
			if depth > 0 {
				p.svgs[len(p.svgs)-1].text += string(tk) + " "
			} else {
				txt.Write(tk)
			}
		}
	}
	p.text = txt.String()
	return p
}

func renderHTML(t *testing.T, r Report, h history.History) page {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, r, h); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "<link", "<iframe", "@import", "url("} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("report.html holds %q: it must be self-contained", bad)
		}
	}
	return parsePage(t, b.Bytes())
}

// clientsOnly drops the nemesis lines of h.
func clientsOnly(h history.History) history.History {
	var out history.History
	for _, op := range h {
		if op.Process != history.Nemesis {
			out = append(out, op)
		}
	}
	return out
}

func TestHTML(t *testing.T) {
	rep, h := fixture(t)

	t.Run("html/faults-and-staleness/three-plots-shaded", func(t *testing.T) {
		p := renderHTML(t, rep, h)
		if len(p.svgs) != 3 {
			t.Fatalf("%d <svg> plots, want latency, throughput and freshness", len(p.svgs))
		}
		for i, name := range []string{"Latency", "Throughput", "Freshness"} {
			if !strings.Contains(p.svgs[i].text, name) {
				t.Errorf("plot %d is not titled %s: %q", i, name, p.svgs[i].text)
			}
		}
		for _, i := range []int{0, 1} {
			// Two faults: two bands and two legend swatches.
			if p.svgs[i].shaded != 4 || !strings.Contains(p.svgs[i].text, "partition") || !strings.Contains(p.svgs[i].text, "clock") {
				t.Errorf("plot %d: %d shaded areas (want 4) and legend %q (want partition and clock)", i, p.svgs[i].shaded, p.svgs[i].text)
			}
		}
		if !strings.Contains(p.svgs[0].text, "ok (8)") || !strings.Contains(p.svgs[0].text, "info (1)") || !strings.Contains(p.svgs[0].text, "fail (1)") {
			t.Errorf("latency legend %q: want ok (8), info (1), fail (1)", p.svgs[0].text)
		}
		if !strings.Contains(p.svgs[2].text, "P(read is fresh)") {
			t.Errorf("freshness plot has no P(fresh) axis: %q", p.svgs[2].text)
		}
		for _, want := range []string{"still in force", "overlapping-zones", "read-your-writes", "an example warning"} {
			if !strings.Contains(p.text, want) {
				t.Errorf("page text lacks %q", want)
			}
		}
		if p.elements["table"] < 5 {
			t.Errorf("%d tables; want summary, faults, freshness and the anomalies' operations", p.elements["table"])
		}
		found := false
		for _, href := range p.hrefs {
			if strings.Contains(href, "://") || strings.HasPrefix(href, "/") {
				t.Errorf("link %q is not relative: the run directory must be movable", href)
			}
			found = found || href == "linearizable-k1.html"
		}
		if !found {
			t.Errorf("no relative link to the visualization: %v", p.hrefs)
		}
	})

	t.Run("html/no-faults/no-shading", func(t *testing.T) {
		p := renderHTML(t, rep, clientsOnly(h))
		if len(p.svgs) != 3 || p.svgs[0].shaded != 0 || p.svgs[1].shaded != 0 {
			t.Fatalf("%d plots, shading %d and %d: want 3 plots, none shaded", len(p.svgs), p.svgs[0].shaded, p.svgs[1].shaded)
		}
		if !strings.Contains(p.text, "No faults were injected") {
			t.Error("page does not say no fault was injected")
		}
	})

	t.Run("html/empty-staleness/no-curve", func(t *testing.T) {
		r := rep
		r.Results = append([]checkers.Result(nil), rep.Results...)
		for i := range r.Results {
			if r.Results[i].Checker == "staleness" {
				r.Results[i].Details = checkers.StalenessDetails{}
			}
		}
		p := renderHTML(t, r, h)
		if len(p.svgs) != 2 || strings.Contains(p.text, "Probabilistically Bounded") {
			t.Fatalf("%d plots; want latency and throughput only, no freshness section", len(p.svgs))
		}
	})

	t.Run("html/details-from-results-json/curve", func(t *testing.T) {
		var b bytes.Buffer
		if err := WriteJSON(&b, rep); err != nil {
			t.Fatal(err)
		}
		back, err := ReadJSON(&b)
		if err != nil {
			t.Fatal(err)
		}
		if p := renderHTML(t, back, h); len(p.svgs) != 3 {
			t.Fatalf("%d plots from a report read back from JSON, want 3", len(p.svgs))
		}
	})

	t.Run("html/no-history/freshness-only", func(t *testing.T) {
		p := renderHTML(t, rep, nil)
		if len(p.svgs) != 1 || !strings.Contains(p.text, "history was not at hand") {
			t.Fatalf("%d plots without a history, want the freshness plot and a note", len(p.svgs))
		}
	})

	t.Run("html/markup-in-anomaly/escaped", func(t *testing.T) {
		r := rep
		r.Results = append([]checkers.Result(nil), rep.Results...)
		res := &r.Results[1]
		res.Anomalies = append([]checkers.Anomaly(nil), res.Anomalies...)
		res.Anomalies[0].Explanation = `read <script>alert("x")</script> & more`
		res.Anomalies[0].Ops[0].Value = history.String("</table><b>")
		p := renderHTML(t, r, h)
		if !strings.Contains(p.text, `read <script>alert("x")</script> & more`) || !strings.Contains(p.text, `"</table><b>"`) {
			t.Fatal("the explanation and value are not shown as text")
		}
		if p.elements["script"] != 0 {
			t.Fatal("markup in an explanation became an element")
		}
	})
}

// largeHistory is a 100k-operation register history with a fault every
// second.
func largeHistory() history.History {
	h := synth.Register(synth.RegisterConfig{Ops: 200_000, Keys: 100, Clients: 10, Seed: 1, StaleProb: 0.01, InfoProb: 0.01, FailProb: 0.01})
	out := make(history.History, 0, len(h)+200)
	next, start := int64(500_000_000), true
	for _, op := range h {
		for op.Time >= next {
			f := "stop-partition"
			if start {
				f = "start-partition"
			}
			out = append(out, history.Op{Time: next, Process: history.Nemesis, Type: history.Info, F: f})
			next, start = next+500_000_000, !start
		}
		out = append(out, op)
	}
	for i := range out {
		out[i].Index = int64(i)
	}
	return out
}

func TestHTMLLargeHistory(t *testing.T) {
	h := largeHistory()
	rep, _ := fixture(t)
	start := time.Now()
	var b bytes.Buffer
	if err := WriteHTML(&b, rep, h); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	p := parsePage(t, b.Bytes())
	t.Logf("100k operations: report.html %d KiB, %d paths in the latency plot, in %v", b.Len()/1024, p.svgs[0].marks, elapsed.Round(time.Millisecond))
	if len(p.svgs) != 3 || p.svgs[0].shaded == 0 {
		t.Fatalf("%d plots, latency shading %d", len(p.svgs), p.svgs[0].shaded)
	}
	if max := 3 * latencyCols * latencyRows; p.svgs[0].marks > max {
		t.Fatalf("latency plot has %d paths, more than the %d marks the grid allows", p.svgs[0].marks, max)
	}
	if b.Len() > 8<<20 {
		t.Fatalf("report.html is %d MiB for 100k operations", b.Len()>>20)
	}
}

func BenchmarkHTML100k(b *testing.B) {
	h := largeHistory()
	rep, _ := fixture(b)
	for b.Loop() {
		var buf bytes.Buffer
		if err := WriteHTML(&buf, rep, h); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(buf.Len())/1024, "KiB")
	}
}

// A dependency cycle is drawn: each transaction once, each edge labelled
// with its kind and key, names escaped, nothing outside the page.
func TestHTMLCycle(t *testing.T) {
	rep := Report{Schema: 1, Source: "h.jsonl", Verdict: checkers.Invalid, Results: []checkers.Result{{
		Checker: checkers.NameTransactional, Verdict: checkers.Invalid, AnomalyCount: 1,
		Anomalies: []checkers.Anomaly{{Kind: checkers.AnomalyGSingle, Explanation: "G-single cycle T1 → T2 → T1",
			Cycle: []checkers.CycleEdge{{From: "T1", To: "T2", Kind: "rw", Key: `"<x>"`}, {From: "T2", To: "T1", Kind: "wr", Key: `"y"`}}}},
	}}}
	var b bytes.Buffer
	if err := WriteHTML(&b, rep, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"<svg", ">T1</text>", ">T2</text>", "rw &#34;&lt;x&gt;&#34;", "wr &#34;y&#34;", "<polygon"} {
		if !strings.Contains(out, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(out, `"<x>"`) || strings.Contains(out, "url(") {
		t.Error("report.html holds the key unescaped, or a reference outside the page")
	}
}

// report.html shows the checklist a run directory's writer answered: the
// answers, and for a question the run cannot answer, which run would.
func TestHTMLChecklist(t *testing.T) {
	rep := NewReport("h", "register", 1, []checkers.Result{{Checker: "staleness", Verdict: checkers.Valid}}, nil)
	rep.Checklist = []ChecklistAnswer{
		{Question: "What is the maximum stale window?", Answered: true, Answer: "at most 730.3 ms", Lines: []string{"ecstore mode=lww: p99 203.4 ms"}},
		{Question: "Are retried writes applied once?", Next: "eccheck test --workload counter --retry 2"},
	}
	var b strings.Builder
	if err := WriteHTML(&b, rep, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="checklist"`, "at most 730.3 ms", "ecstore mode=lww: p99 203.4 ms", "Not answered by this run: eccheck test --workload counter --retry 2"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	rep.Checklist = nil
	b.Reset()
	if err := WriteHTML(&b, rep, nil); err != nil || strings.Contains(b.String(), `id="checklist"`) {
		t.Errorf("a report without a checklist shows the section (err %v)", err)
	}
}
