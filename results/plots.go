package results

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// The plots of report.html, drawn by gonum/plot to SVG.

// Plot sizes.
const (
	plotWidth  = 10 * vg.Inch
	plotHeight = 3.6 * vg.Inch
)

// Latency marks are thinned on a grid so a long history stays light: one
// mark per type per cell of latencyCols (time) by latencyRows (log latency)
// cells, the first operation that falls in it. Every cell that holds an
// operation keeps a mark, so outliers and fault-time spikes still show, and a
// plot never holds more than latencyCols*latencyRows marks per type, however
// long the run. The cells are about the size of a mark.
const (
	latencyCols = 360
	latencyRows = 90
)

// opTypes are the completion types the plots tell apart, in drawing order.
var opTypes = []history.Type{history.OK, history.Info, history.Fail}

var (
	colorOK   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorFail = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorInfo = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
)

func typeColor(t history.Type) color.Color {
	switch t {
	case history.Fail:
		return colorFail
	case history.Info:
		return colorInfo
	}
	return colorOK
}

func typeGlyph(t history.Type) draw.GlyphStyle {
	switch t {
	case history.Fail:
		return draw.GlyphStyle{Color: colorFail, Radius: vg.Points(2.2), Shape: draw.CrossGlyph{}}
	case history.Info:
		return draw.GlyphStyle{Color: colorInfo, Radius: vg.Points(2.2), Shape: draw.TriangleGlyph{}}
	}
	return draw.GlyphStyle{Color: colorOK, Radius: vg.Points(1.1), Shape: draw.CircleGlyph{}}
}

// faultColors shade fault periods by kind, translucent so marks show through.
var faultColors = map[string]color.Color{
	"partition": color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x2e},
	"clock":     color.NRGBA{R: 0xe3, G: 0xb5, B: 0x05, A: 0x3a},
	"kill":      color.NRGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0x2e},
	"pause":     color.NRGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0x2e},
}

func faultColor(kind string) color.Color {
	if c, ok := faultColors[kind]; ok {
		return c
	}
	return color.NRGBA{R: 0x70, G: 0x70, B: 0x70, A: 0x2e}
}

// faultBands shades fault periods over the whole height of a plot whose x
// axis is seconds since the run started.
type faultBands []FaultPeriod

// Plot implements plot.Plotter.
func (fb faultBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, f := range fb {
		x0 := max(trX(float64(f.Start)/1e9), c.Min.X)
		x1 := min(trX(float64(f.End)/1e9), c.Max.X)
		if x1 <= x0 {
			x1 = min(x0+vg.Points(1), c.Max.X) // an instant still shows
		}
		c.FillPolygon(faultColor(f.Kind), []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
	}
}

// swatch is a legend entry for a fault kind.
type swatch struct{ color color.Color }

// Thumbnail implements plot.Thumbnailer.
func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.color, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}

// addFaults shades faults on p and names their kinds in the legend.
func addFaults(p *plot.Plot, faults []FaultPeriod) {
	if len(faults) == 0 {
		return
	}
	p.Add(faultBands(faults))
	var kinds []string
	for _, f := range faults {
		if !slices.Contains(kinds, f.Kind) {
			kinds = append(kinds, f.Kind)
		}
	}
	for _, k := range kinds {
		p.Legend.Add(k, swatch{faultColor(k)})
	}
}

// timeline is what the latency and throughput plots draw: each completed
// operation's call time, latency and type, and the run's length.
type timeline struct {
	end    int64 // the last line's time, ns
	points []latencyPoint
	counts map[history.Type]int
}

type latencyPoint struct {
	call, ret int64 // ns since the run started; ret is the completion line's time
	typ       history.Type
}

// newTimeline collects the completed client operations of h. An info
// operation's latency runs to its info completion (usually a timeout); an
// invocation never completed has none and is left out.
func newTimeline(h history.History) timeline {
	tl := timeline{counts: map[history.Type]int{}}
	if len(h) > 0 {
		tl.end = h[len(h)-1].Time
	}
	for _, o := range history.Pair(h) {
		if o.Complete < 0 || o.Complete >= len(h) {
			continue
		}
		tl.points = append(tl.points, latencyPoint{call: o.Call, ret: h[o.Complete].Time, typ: o.Type})
		tl.counts[o.Type]++
	}
	return tl
}

// minLatencyMS is the floor of the log-scale latency axis.
const minLatencyMS = 0.001

func latencyMS(p latencyPoint) float64 {
	return max(float64(p.ret-p.call)/1e6, minLatencyMS)
}

// latencyPlot draws each completed operation at its call time and latency,
// on a log scale, one mark and colour per type, over the fault periods. It
// returns the plot and how many marks it holds.
func latencyPlot(tl timeline, faults []FaultPeriod) (*plot.Plot, int, error) {
	p := newPlot("Latency", "time since start (s)", "latency (ms)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, pt := range tl.points {
		ms := latencyMS(pt)
		lo, hi = min(lo, ms), max(hi, ms)
	}
	if lo > hi { // no operations
		lo, hi = 0.1, 1000
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	endS := max(float64(tl.end)/1e9, 1e-3)
	addFaults(p, faults)
	marks := 0
	logLo, logSpan := math.Log10(lo), math.Log10(hi)-math.Log10(lo)
	for _, t := range opTypes {
		if tl.counts[t] == 0 {
			continue
		}
		seen := make([]bool, latencyCols*latencyRows)
		var xys plotter.XYs
		for _, pt := range tl.points {
			if pt.typ != t {
				continue
			}
			x, ms := float64(pt.call)/1e9, latencyMS(pt)
			col := min(int(x/endS*latencyCols), latencyCols-1)
			row := min(int((math.Log10(ms)-logLo)/logSpan*latencyRows), latencyRows-1)
			if cell := max(col, 0)*latencyRows + max(row, 0); !seen[cell] {
				seen[cell] = true
				xys = append(xys, plotter.XY{X: x, Y: ms})
			}
		}
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, 0, fmt.Errorf("latency plot: %w", err)
		}
		s.GlyphStyle = typeGlyph(t)
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("%s (%d)", t, tl.counts[t]), s)
		marks += len(xys)
	}
	p.X.Min, p.X.Max = 0, endS
	p.Y.Min, p.Y.Max = lo, hi
	return p, marks, nil
}

// throughputBin is the width of a throughput bin: about a hundredth of the
// run, rounded up to 1, 2 or 5 times a power of ten, and at least 1 ms.
func throughputBin(end int64) time.Duration {
	target := end / 100
	for scale := int64(time.Millisecond); ; scale *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*scale >= target {
				return time.Duration(m * scale)
			}
		}
	}
}

// throughputPlot draws completions per second by type, binned by
// completion time, over the fault periods.
func throughputPlot(tl timeline, faults []FaultPeriod) (*plot.Plot, error) {
	bin := int64(throughputBin(tl.end))
	p := newPlot("Throughput", "time since start (s)", fmt.Sprintf("completions/s (%v bins)", time.Duration(bin)))
	addFaults(p, faults)
	nbins := int(tl.end/bin) + 1
	for _, t := range opTypes {
		if tl.counts[t] == 0 {
			continue
		}
		counts := make([]int, nbins)
		for _, pt := range tl.points {
			if pt.typ == t {
				counts[min(int(pt.ret/bin), nbins-1)]++
			}
		}
		xys := make(plotter.XYs, nbins)
		for i, n := range counts {
			from := int64(i) * bin
			width := min(bin, tl.end-from) // the last bin ends with the run
			if width <= 0 {
				width = bin
			}
			xys[i] = plotter.XY{X: float64(from+width/2) / 1e9, Y: float64(n) / (float64(width) / 1e9)}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("throughput plot: %w", err)
		}
		l.Color = typeColor(t)
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(t.String(), l)
	}
	p.X.Min, p.X.Max = 0, max(float64(tl.end)/1e9, 1e-3)
	p.Y.Min = 0
	return p, nil
}

// freshnessPlot draws the staleness checker's freshness curve: the
// probability that a read is fresh, by the time since the latest write of
// its key finished. The x axis is the curve's buckets (0, 1, 2, 5, 10 ... ms)
// evenly spaced and labelled by their lower bound.
func freshnessPlot(curve []checkers.FreshnessPoint) (*plot.Plot, error) {
	p := newPlot("Freshness", "ms since the latest write finished (bucket start)", "P(read is fresh)")
	xys := make(plotter.XYs, len(curve))
	ticks := make(plot.ConstantTicks, len(curve))
	for i, c := range curve {
		xys[i] = plotter.XY{X: float64(i), Y: c.PFresh}
		label := strconv.FormatFloat(c.FromMS, 'f', -1, 64)
		if c.ToMS == 0 {
			label += "+"
		}
		ticks[i] = plot.Tick{Value: float64(i), Label: label}
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, fmt.Errorf("freshness plot: %w", err)
	}
	l.Color, l.Width = colorOK, vg.Points(1.5)
	s.GlyphStyle = draw.GlyphStyle{Color: colorOK, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
	p.Add(plotter.NewGrid(), l, s)
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = -0.5, float64(len(curve))-0.5
	p.Y.Min, p.Y.Max = 0, 1.02
	return p, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Padding = vg.Points(3)
	return p
}

// renderSVG draws p to SVG for inlining in HTML, without the XML
// declaration, with its legend to the right of the plot area where it hides
// no data. gonum/plot panics on data it cannot draw (such as a non-positive
// value on a log axis); that becomes an error.
func renderSVG(p *plot.Plot) (svg string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("draw %q: %v", p.Title.Text, r)
		}
	}()
	c := vgsvg.New(plotWidth, plotHeight)
	dc := draw.New(c)
	leg := p.Legend
	p.Legend = plot.NewLegend()
	legWidth := leg.Rectangle(dc).Size().X
	if legWidth > 0 {
		// Room beyond gonum's own measure: a browser may draw the text in
		// a wider fallback font (the SVG names fonts it does not embed).
		legWidth = legWidth*5/4 + vg.Points(12)
	}
	p.Draw(draw.Crop(dc, 0, -legWidth, 0, 0))
	if legWidth > 0 {
		leg.Left, leg.Top = true, true
		leg.Draw(draw.Crop(dc, plotWidth-legWidth+vg.Points(8), 0, 0, -vg.Points(24)))
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("draw %q: %w", p.Title.Text, err)
	}
	s := buf.String()
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", errors.New("draw: no <svg> in the output")
	}
	return s[i:], nil
}
