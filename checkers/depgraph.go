package checkers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// depKind is the kind of a dependency between two transactions, as Adya
// defines them: T1 ww T2 (T2 wrote the version after T1's), T1 wr T2 (T2
// read what T1 wrote), T1 rw T2 (T2 wrote the version after the one T1
// read), and the real-time order T1 rt T2 (T1 returned before T2 began).
type depKind uint8

const (
	depWW depKind = 1 << iota
	depWR
	depRW
	depRT
)

func (k depKind) String() string {
	switch k {
	case depWW:
		return "ww"
	case depWR:
		return "wr"
	case depRW:
		return "rw"
	case depRT:
		return "rt"
	}
	return "?"
}

// gedge is an edge of the dependency graph; why indexes its explanation.
type gedge struct {
	to   int32
	kind depKind
	why  int32
}

// depGraph is the dependency graph of a history's transactions: nodes
// 0..txns-1 are the transactions; the nodes after them are real-time
// barriers, one per completion, chained in time order, so that T1 reaches
// T2 through barriers exactly when T1 returned before T2 was invoked
// (linear in the history instead of quadratic).
type depGraph struct {
	txns int
	adj  [][]gedge
	// whys explain the edges between transactions; a barrier edge has
	// why -1.
	whys []why
}

// why is what an edge between transactions rests on, rendered into a
// sentence only for the edges of a reported cycle: the key, the element
// of the version written (x; for ww also the one before it, y), and for
// wr and rw the list the reader read; unseen marks an append no read saw.
type why struct {
	key    string
	x, y   history.Scalar
	list   []history.Scalar
	unseen bool
}

func newDepGraph(txns int) *depGraph {
	return &depGraph{txns: txns, adj: make([][]gedge, txns)}
}

// addNode adds a barrier node and returns it.
func (g *depGraph) addNode() int {
	g.adj = append(g.adj, nil)
	return len(g.adj) - 1
}

// add adds the edge a -kind-> b with what it rests on (nil for a
// barrier edge).
func (g *depGraph) add(a, b int, kind depKind, y *why) {
	w := int32(-1)
	if y != nil {
		w = int32(len(g.whys))
		g.whys = append(g.whys, *y)
	}
	g.adj[a] = append(g.adj[a], gedge{to: int32(b), kind: kind, why: w})
}

// sccs returns each node's strongly connected component over the edges of
// the kinds in mask (iterative Tarjan), and the size of each component.
func (g *depGraph) sccs(mask depKind) (comp []int32, size []int32) {
	n := len(g.adj)
	comp = make([]int32, n)
	index := make([]int32, n)
	low := make([]int32, n)
	for i := range index {
		index[i] = -1
		comp[i] = -1
	}
	onStack := make([]bool, n)
	var stack []int32
	type frame struct {
		v    int32
		edge int
	}
	var next int32
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{v: int32(root)}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, int32(root))
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.edge < len(g.adj[v]) {
				e := g.adj[v][f.edge]
				f.edge++
				if e.kind&mask == 0 {
					continue
				}
				w := e.to
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{v: w})
				} else if onStack[w] && index[w] < low[v] {
					low[v] = index[w]
				}
				continue
			}
			if low[v] == index[v] {
				c := int32(len(size))
				var sz int32
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = c
					sz++
					if w == v {
						break
					}
				}
				size = append(size, sz)
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				if low[v] < low[p] {
					low[p] = low[v]
				}
			}
		}
	}
	return comp, size
}

// step is one edge of a cycle: from node from along e.
type step struct {
	from int32
	e    gedge
}

// path finds a shortest path from a to b over the edges of mask whose
// ends lie in component c (comp), spending at most *budget node visits;
// nil when there is none or the budget ran out (then *budget is < 0).
func (g *depGraph) path(a, b int32, mask depKind, comp []int32, c int32, budget *int) []step {
	prev := map[int32]step{a: {from: -1}}
	queue := []int32{a}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		*budget--
		if *budget < 0 {
			return nil
		}
		for _, e := range g.adj[v] {
			if e.kind&mask == 0 || comp[e.to] != c {
				continue
			}
			if _, seen := prev[e.to]; seen && e.to != b {
				continue
			}
			if e.to == b {
				out := []step{{from: v, e: e}}
				for x := v; x != a; {
					s := prev[x]
					out = append(out, s)
					x = s.from
				}
				slices.Reverse(out)
				return out
			}
			prev[e.to] = step{from: v, e: e}
			queue = append(queue, e.to)
		}
	}
	return nil
}

// collapse turns a cycle through barrier nodes into one between
// transactions: a run of barrier edges from T1 to T2 becomes one rt edge.
// A cycle always holds a transaction (the barriers alone form a chain).
func (g *depGraph) collapse(cycle []step) []step {
	start := slices.IndexFunc(cycle, func(s step) bool { return int(s.from) < g.txns })
	rot := append(slices.Clone(cycle[start:]), cycle[:start]...)
	var out []step
	for i := 0; i < len(rot); i++ {
		s := rot[i]
		if int(s.e.to) < g.txns {
			out = append(out, s)
			continue
		}
		j := i
		for int(rot[j].e.to) >= g.txns {
			j++
		}
		out = append(out, step{from: s.from, e: gedge{to: rot[j].e.to, kind: depRT, why: -1}})
		i = j
	}
	return out
}

// kinds counts a cycle's edges by kind.
func kinds(cycle []step) map[depKind]int {
	out := map[depKind]int{}
	for _, s := range cycle {
		out[s.e.kind]++
	}
	return out
}

// rwAdjacent reports whether two rw edges of cycle follow each other
// (cyclically).
func rwAdjacent(cycle []step) bool {
	for i, s := range cycle {
		if s.e.kind == depRW && cycle[(i+1)%len(cycle)].e.kind == depRW {
			return true
		}
	}
	return false
}

// classify names a cycle by Adya's phenomena: G0 (write cycle), G1c (ww
// and wr only), G-single (exactly one rw), G-nonadjacent (several rw, no
// two adjacent), G2-item (adjacent rw); "-realtime" when it needs a
// real-time edge.
func classify(cycle []step) string {
	k := kinds(cycle)
	var name string
	switch {
	case k[depRW] == 0 && k[depWR] == 0:
		name = "G0"
	case k[depRW] == 0:
		name = "G1c"
	case k[depRW] == 1:
		name = "G-single"
	case !rwAdjacent(cycle):
		name = "G-nonadjacent"
	default:
		name = "G2-item"
	}
	if k[depRT] > 0 {
		name += "-realtime"
	}
	return name
}

// describeCycle explains a cycle between transactions step by step.
func describeCycle(g *depGraph, cycle []step, name func(int32) string, rt func(a, b int32) string) string {
	var b strings.Builder
	for i, s := range cycle {
		if i > 0 {
			b.WriteString("; ")
		}
		from, to := name(s.from), name(s.e.to)
		switch {
		case s.e.why < 0 && s.e.kind == depRT:
			b.WriteString(rt(s.from, s.e.to))
		case s.e.why < 0:
			fmt.Fprintf(&b, "%s %s %s", from, s.e.kind, to)
		default:
			w := g.whys[s.e.why]
			switch {
			case s.e.kind == depWW && w.unseen:
				fmt.Fprintf(&b, "%s appended %s to key %s, and %s appended after it an element no read saw (ww)", from, w.y, w.key, to)
			case s.e.kind == depWW:
				fmt.Fprintf(&b, "%s appended %s to key %s and %s appended %s right after it (ww)", from, w.y, w.key, to, w.x)
			case s.e.kind == depWR:
				fmt.Fprintf(&b, "%s appended %s to key %s and %s read it as %s, ending there (wr)", from, w.x, w.key, to, scalarsText(w.list))
			case s.e.kind == depRW && w.unseen:
				fmt.Fprintf(&b, "%s read key %s as %s and %s appended to it an element no read saw, later (rw)", from, w.key, scalarsText(w.list), to)
			default:
				fmt.Fprintf(&b, "%s read key %s as %s and %s appended %s, the next element (rw)", from, w.key, scalarsText(w.list), to, w.x)
			}
		}
	}
	return b.String()
}
