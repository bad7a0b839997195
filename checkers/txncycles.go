package checkers

import (
	"context"
	"fmt"
	"strings"
)

const items = depWW | depWR | depRW

// cycles finds the dependency cycles, one per strongly connected
// component and class, strongest class first: G0 (ww), G1c (ww and wr),
// G-single (one rw edge and a ww/wr path back), G-nonadjacent (a cycle of
// the graph whose rw edges each follow a ww or wr edge: the cycles
// snapshot isolation rules out), G2-item (any cycle left) and, for
// strict-serializable, the cycles that need the real-time order.
func (c *txnCheck) cycles(ctx context.Context) error {
	c.inCycle = make([]bool, c.n())
	// Every cycle of a level is a cycle of the whole graph: when the
	// whole graph has none (a valid history), no level is searched.
	all := items
	if c.model == ModelStrictSerializable {
		all |= depRT
	}
	if _, size := c.g.sccs(all); !cyclic(size) {
		return ctx.Err()
	}
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
		c.level(l.label, l.comp, l.path, l.through, done)
	}
	c.nonadjacent()
	c.level(AnomalyG2Item, items, items, depRW, done)
	if c.model == ModelStrictSerializable {
		c.level("realtime", items|depRT, items|depRT, items|depRT, done)
	}
	return ctx.Err()
}

// level reports, for each strongly connected component over comp's
// edges, the first cycle that starts with a through edge and comes back
// over path's edges. The G2-item and real-time levels skip components
// with a transaction already in a reported cycle.
func (c *txnCheck) level(label string, comp, path, through depKind, done map[string]bool) {
	g := c.g
	cs, size := g.sccs(comp)
	skipSeen := label == AnomalyG2Item || label == "realtime"
	seen := map[int32]bool{}
	if skipSeen {
		for t, in := range c.inCycle {
			if in {
				seen[cs[t]] = true
			}
		}
	}
	for v := 0; v < g.txns; v++ {
		if !c.in[v] || size[cs[v]] < 2 || seen[cs[v]] {
			continue
		}
		comp := cs[v]
		for _, e := range g.out(int32(v)) {
			if e.kind&through == 0 || cs[e.to] != comp {
				continue
			}
			p := g.path(e.to, int32(v), path, cs, comp, &c.budget)
			if p == nil {
				if c.budget < 0 {
					c.undecided = append(c.undecided, fmt.Sprintf("the search for %s cycles ran out of its budget in a component of %d transactions", strings.TrimSuffix(label, "realtime")+map[bool]string{true: "real-time", false: ""}[label == "realtime"], size[comp]))
					return
				}
				continue
			}
			c.report(append([]step{{from: int32(v), e: e}}, p...))
			seen[comp] = true
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
func (c *txnCheck) nonadjacent() {
	n := c.g.txns
	pg := buildGraph(2*n, func(pg *depGraph) {
		for v := 0; v < n; v++ {
			for _, e := range c.g.out(int32(v)) {
				if int(e.to) >= n {
					continue
				}
				switch e.kind {
				case depWW, depWR:
					to := e
					to.to = 2 * e.to
					pg.add(2*v, to)
					pg.add(2*v+1, to)
				case depRW:
					to := e
					to.to = 2*e.to + 1
					pg.add(2*v, to)
				}
			}
		}
	})
	cs, size := pg.sccs(items)
	seen := map[int32]bool{}
	for x := 0; x < 2*n; x++ {
		comp := cs[x]
		if size[comp] < 2 || seen[comp] || !c.in[x/2] {
			continue
		}
		for _, e := range pg.out(int32(x)) {
			if e.kind != depRW || cs[e.to] != comp {
				continue
			}
			p := pg.path(e.to, int32(x), items, cs, comp, &c.budget)
			if p == nil {
				if c.budget < 0 {
					c.undecided = append(c.undecided, fmt.Sprintf("the search for G-nonadjacent cycles ran out of its budget in a component of %d transactions", size[comp]/2))
					return
				}
				continue
			}
			cycle := append([]step{{from: int32(x), e: e}}, p...)
			for i, s := range cycle {
				s.e.to /= 2
				cycle[i] = step{from: s.from / 2, e: s.e}
			}
			seen[comp] = true
			if classify(cycle) == AnomalyGNonadjacent {
				c.report(cycle)
			}
			break
		}
	}
}

// report names a cycle and records it.
func (c *txnCheck) report(cycle []step) {
	cycle = c.g.collapse(cycle)
	kind := classify(cycle)
	ts := make([]int, 0, len(cycle))
	names := make([]string, 0, len(cycle)+1)
	edges := make([]CycleEdge, 0, len(cycle))
	for _, s := range cycle {
		ts = append(ts, int(s.from))
		names = append(names, c.name(int(s.from)))
		c.inCycle[s.from] = true
		e := CycleEdge{From: c.name(int(s.from)), To: c.name(int(s.e.to)), Kind: s.e.kind.String()}
		if s.e.key >= 0 {
			e.Key = c.keyName(s.e.key)
		}
		edges = append(edges, e)
	}
	names = append(names, names[0])
	rt := func(x, y int32) string {
		return fmt.Sprintf("%s returned at %s, before %s was invoked at %s (rt)", c.name(int(x)), ms(c.ops[x].Return), c.name(int(y)), ms(c.call(int(y))))
	}
	text := fmt.Sprintf("%s cycle %s: %s; so no order of the transactions explains what they read%s", kind, strings.Join(names, " → "),
		describeCycle(cycle, c.explain, rt), cycleMeaning(kind))
	c.cycleAnomaly(kind, ts, text, edges)
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
