package results

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"

	"github.com/eccheck/eccheck/checkers"
)

// cycleColors are the stroke colours of the dependency kinds.
var cycleColors = map[string]string{"ww": "#1f77b4", "wr": "#2ca02c", "rw": "#d62728", "rt": "#7f7f7f"}

// cycleSVG draws a dependency cycle as inline SVG: its transactions on a
// circle, in cycle order clockwise, each edge an arrow labelled with its
// kind and key (rw in red, the anti-dependencies that make a cycle a
// G-single or a G2). It escapes every name it writes.
func cycleSVG(edges []checkers.CycleEdge) template.HTML {
	n := len(edges)
	if n == 0 {
		return ""
	}
	const w, h, r, nodeR = 460.0, 340.0, 115.0, 24.0
	cx, cy := w/2, h/2
	pos := make([][2]float64, n)
	for i := range edges {
		a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(n)
		pos[i] = [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="dependency cycle">`, w, h, w, h)
	for i, e := range edges {
		from, to := pos[i], pos[(i+1)%n]
		dx, dy := to[0]-from[0], to[1]-from[1]
		d := math.Hypot(dx, dy)
		if d == 0 {
			continue
		}
		ux, uy := dx/d, dy/d
		x1, y1 := from[0]+ux*nodeR, from[1]+uy*nodeR
		x2, y2 := to[0]-ux*nodeR, to[1]-uy*nodeR
		// Bend each arrow away from the centre (the two arrows of a
		// two-node cycle bend to opposite sides), and put its label just
		// outside the bend.
		nx, ny := -uy, ux
		if ox, oy := (x1+x2)/2-cx, (y1+y2)/2-cy; math.Hypot(ox, oy) > 1 && nx*ox+ny*oy < 0 {
			nx, ny = -nx, -ny
		}
		mx, my := (x1+x2)/2+nx*30, (y1+y2)/2+ny*30
		lx, ly := 0.25*x1+0.5*mx+0.25*x2+nx*14, 0.25*y1+0.5*my+0.25*y2+ny*14
		col, ok := cycleColors[e.Kind]
		if !ok {
			col = "#000000"
		}
		fmt.Fprintf(&b, `<path d="M%.1f,%.1f Q%.1f,%.1f %.1f,%.1f" fill="none" stroke="%s" stroke-width="2"/>`, x1, y1, mx, my, x2, y2, col)
		// The arrowhead, drawn in place (no markers: the page refers to
		// nothing outside itself), along the curve's last tangent.
		tx, ty := x2-mx, y2-my
		if tl := math.Hypot(tx, ty); tl > 0 {
			tx, ty = tx/tl, ty/tl
			fmt.Fprintf(&b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`,
				x2, y2, x2-9*tx-4.5*ty, y2-9*ty+4.5*tx, x2-9*tx+4.5*ty, y2-9*ty-4.5*tx, col)
		}
		label := e.Kind
		if e.Key != "" {
			label += " " + e.Key
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle" dominant-baseline="middle" fill="%s">%s</text>`, lx, ly, col, html.EscapeString(label))
	}
	for i, e := range edges {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%.0f" fill="#ffffff" stroke="#333333" stroke-width="1.5"/>`, pos[i][0], pos[i][1], nodeR)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle" dominant-baseline="middle">%s</text>`, pos[i][0], pos[i][1], html.EscapeString(e.From))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
