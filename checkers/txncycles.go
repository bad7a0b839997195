package checkers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

const items = depWW | depWR | depRW

// cycles finds the dependency cycles, one per strongly connected
// component and class, strongest class first: G0 (ww), G1c (ww and wr),
// G-single (one rw edge and a ww/wr path back), G-nonadjacent (a cycle of
// the graph whose rw edges each follow a ww or wr edge: the cycles
// snapshot isolation rules out), G2-item (any cycle left) and, for
// strict-serializable, the cycles that need the real-time order.
func (a *listAppend) cycles(ctx context.Context) error {
	a.inCycle = make([]bool, len(a.txns))
	done := map[string]bool{}
	levels := []struct {
		label      string
		comp, path depKind // the edges of the components, and of the path back
		through    depKind // the edge each cycle starts with
	}{
		{AnomalyG0, depWW, depWW, depWW},
		{AnomalyG1c, depWW | depWR, depWW | depWR, depWR},
		{AnomalyGSingle, items, depWW | depWR, depRW},
	}
	for _, l := range levels {
		if err := ctx.Err(); err != nil {
			return err
		}
		a.level(l.label, l.comp, l.path, l.through, done)
	}
	a.nonadjacent()
	a.level(AnomalyG2Item, items, items, depRW, done)
	if a.model == ModelStrictSerializable {
		a.level("realtime", items|depRT, items|depRT, items|depRT, done)
	}
	return ctx.Err()
}

// level reports, for each strongly connected component over comp's
// edges, the first cycle that starts with a through edge and comes back
// over path's edges. The G2-item and real-time levels skip components
// with a transaction already in a reported cycle.
func (a *listAppend) level(label string, comp, path, through depKind, done map[string]bool) {
	g := a.g
	cs, size := g.sccs(comp)
	skipSeen := label == AnomalyG2Item || label == "realtime"
	seen := map[int32]bool{}
	if skipSeen {
		for t, in := range a.inCycle {
			if in {
				seen[cs[t]] = true
			}
		}
	}
	for v := 0; v < g.txns; v++ {
		if !a.in[v] || size[cs[v]] < 2 || seen[cs[v]] {
			continue
		}
		c := cs[v]
		for _, e := range g.adj[v] {
			if e.kind&through == 0 || cs[e.to] != c {
				continue
			}
			p := g.path(e.to, int32(v), path, cs, c, &a.budget)
			if p == nil {
				if a.budget < 0 {
					a.undecided = append(a.undecided, fmt.Sprintf("the search for %s cycles ran out of its budget in a component of %d transactions", strings.TrimSuffix(label, "realtime")+map[bool]string{true: "real-time", false: ""}[label == "realtime"], size[c]))
					return
				}
				continue
			}
			a.report(append([]step{{from: int32(v), e: e}}, p...))
			seen[c] = true
			break
		}
	}
	_ = done
}

// nonadjacent searches the graph of (transaction, whether the last edge
// was rw) pairs, in which an rw edge may only follow a ww or wr edge: its
// cycles are those of the dependency graph with no two adjacent rw edges,
// which snapshot isolation rules out (Cerone and Gotsman). The ones with
// two or more rw edges are G-nonadjacent.
func (a *listAppend) nonadjacent() {
	n := a.g.txns
	pg := newDepGraph(2 * n)
	pg.whys = a.g.whys
	for v := 0; v < n; v++ {
		for _, e := range a.g.adj[v] {
			if int(e.to) >= n {
				continue
			}
			switch e.kind {
			case depWW, depWR:
				pg.adj[2*v] = append(pg.adj[2*v], gedge{to: 2 * e.to, kind: e.kind, why: e.why})
				pg.adj[2*v+1] = append(pg.adj[2*v+1], gedge{to: 2 * e.to, kind: e.kind, why: e.why})
			case depRW:
				pg.adj[2*v] = append(pg.adj[2*v], gedge{to: 2*e.to + 1, kind: e.kind, why: e.why})
			}
		}
	}
	cs, size := pg.sccs(items)
	seen := map[int32]bool{}
	for x := 0; x < 2*n; x++ {
		c := cs[x]
		if size[c] < 2 || seen[c] || !a.in[x/2] {
			continue
		}
		for _, e := range pg.adj[x] {
			if e.kind != depRW || cs[e.to] != c {
				continue
			}
			p := pg.path(e.to, int32(x), items, cs, c, &a.budget)
			if p == nil {
				if a.budget < 0 {
					a.undecided = append(a.undecided, fmt.Sprintf("the search for G-nonadjacent cycles ran out of its budget in a component of %d transactions", size[c]/2))
					return
				}
				continue
			}
			cycle := append([]step{{from: int32(x), e: e}}, p...)
			for i, s := range cycle {
				cycle[i] = step{from: s.from / 2, e: gedge{to: s.e.to / 2, kind: s.e.kind, why: s.e.why}}
			}
			seen[c] = true
			if classify(cycle) == AnomalyGNonadjacent {
				a.report(cycle)
			}
			break
		}
	}
}

// report names a cycle and records it.
func (a *listAppend) report(cycle []step) {
	cycle = a.g.collapse(cycle)
	kind := classify(cycle)
	ts := make([]int, 0, len(cycle))
	names := make([]string, 0, len(cycle)+1)
	edges := make([]CycleEdge, 0, len(cycle))
	for _, s := range cycle {
		ts = append(ts, int(s.from))
		names = append(names, a.name(int(s.from)))
		a.inCycle[s.from] = true
		e := CycleEdge{From: a.name(int(s.from)), To: a.name(int(s.e.to)), Kind: s.e.kind.String()}
		if s.e.why >= 0 {
			e.Key = a.g.whys[s.e.why].key
		}
		edges = append(edges, e)
	}
	names = append(names, names[0])
	rt := func(x, y int32) string {
		return fmt.Sprintf("%s returned at %s, before %s was invoked at %s (rt)", a.name(int(x)), ms(a.txns[x].op.Return), a.name(int(y)), ms(a.txns[y].op.Call))
	}
	text := fmt.Sprintf("%s cycle %s: %s; so no order of the transactions explains what they read%s", kind, strings.Join(names, " → "),
		describeCycle(a.g, cycle, func(t int32) string { return a.name(int(t)) }, rt), cycleMeaning(kind))
	a.cycleAnomaly(kind, ts, text, edges)
}

// cycleMeaning says in a few words what a cycle's class means.
func cycleMeaning(kind string) string {
	switch strings.TrimSuffix(kind, realtimeSuffix) {
	case AnomalyG0:
		return " (write cycle)"
	case AnomalyG1c:
		return " (circular information flow)"
	case AnomalyGSingle:
		return " (read skew: one anti-dependency)"
	case AnomalyGNonadjacent:
		return " (anti-dependencies never adjacent: not snapshot isolation)"
	case AnomalyG2Item:
		return " (write skew: adjacent anti-dependencies)"
	}
	return ""
}

// finish fills the result's figures, summary and verdict.
func (a *listAppend) finish(model string) {
	r := a.res
	var ok, info, fail int
	for _, t := range a.txns {
		switch t.op.Type {
		case history.OK:
			ok++
		case history.Info:
			info++
		case history.Fail:
			fail++
		}
	}
	r.Stats["transactions"] = float64(len(a.txns))
	r.Stats["ok"], r.Stats["info"], r.Stats["fail"] = float64(ok), float64(info), float64(fail)
	r.Stats["keys"] = float64(len(a.writer))
	edges := map[depKind]int{}
	for v := 0; v < a.g.txns; v++ {
		for _, e := range a.g.adj[v] {
			if int(e.to) < a.g.txns {
				edges[e.kind]++
			}
		}
	}
	for _, k := range []depKind{depWW, depWR, depRW} {
		r.Stats["edges_"+k.String()] = float64(edges[k])
	}
	for kind, n := range a.counts {
		r.Stats["found_"+kind] = float64(n)
	}
	var found []string
	for _, kind := range slices.Sorted(maps.Keys(a.counts)) {
		mark := ""
		if !a.forbid[kind] {
			mark = ", allowed"
		}
		found = append(found, fmt.Sprintf("%s ×%d%s", kind, a.counts[kind], mark))
	}
	head := fmt.Sprintf("%d transactions over %d keys, checked for %s", len(a.txns), len(a.writer), model)
	switch {
	case r.Verdict == Invalid:
		r.Summary = head + ": " + strings.Join(found, ", ")
	case len(a.undecided) > 0:
		r.Verdict = Unknown
		r.Reason = strings.Join(a.undecided, "; ") + "; no anomaly found elsewhere"
		r.Summary = head + ": undecided"
	case len(found) > 0:
		r.Summary = head + ": none it rules out (" + strings.Join(found, ", ") + ")"
	default:
		r.Summary = head + ": no anomaly"
	}
}
