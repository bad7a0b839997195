package checkers

import (
	"fmt"
	"slices"
	"strings"
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

// gedge is an edge of the dependency graph. What it rests on is kept as
// numbers the inference that added it reads back when it explains a
// reported cycle (see [txnCheck.explain]): the key, and two values a and
// b (element or value ids, or a read's length); unseen marks a write no
// read saw. A barrier edge has key -1.
type gedge struct {
	to     int32
	key    int32
	a, b   int32
	kind   depKind
	unseen bool
}

// depGraph is the dependency graph of a history's transactions: nodes
// 0..txns-1 are the transactions; the nodes after them are real-time
// barriers, one per completion, chained in time order, so that T1 reaches
// T2 through barriers exactly when T1 returned before T2 was invoked
// (linear in the history instead of quadratic). Edges are laid out by
// source (compressed rows): [buildGraph] runs the code that adds them
// twice, once to count each node's edges and once to put them in place,
// so that a graph of millions of edges is two allocations and no copy.
type depGraph struct {
	txns  int
	nodes int
	off   []int32 // node v's edges are edges[off[v]:off[v+1]]
	edges []gedge
	// counting is set during the first pass, which only counts each
	// node's edges (deg); next is where the second pass puts the next
	// edge of each node.
	counting bool
	deg      []int32
	next     []int32
}

// buildGraph builds the graph of txns transactions whose edges (and
// barrier nodes) add adds; add runs twice and must add the same edges
// each time (see g.counting for what else it should do only once).
func buildGraph(txns int, add func(g *depGraph)) *depGraph {
	g := &depGraph{txns: txns, nodes: txns, counting: true, deg: make([]int32, txns)}
	add(g)
	g.off = make([]int32, g.nodes+1)
	for v := 0; v < g.nodes; v++ {
		g.off[v+1] = g.off[v] + g.deg[v]
	}
	g.edges = make([]gedge, g.off[g.nodes])
	g.next = slices.Clone(g.off[:g.nodes])
	g.deg, g.counting, g.nodes = nil, false, txns
	add(g)
	for v := 0; v < g.nodes; v++ {
		if g.next[v] != g.off[v+1] {
			panic(fmt.Sprintf("depgraph: node %d got %d edges on the second pass, %d on the first", v, g.next[v]-g.off[v], g.off[v+1]-g.off[v]))
		}
	}
	g.next = nil
	return g
}

// addNode adds a barrier node and returns it.
func (g *depGraph) addNode() int {
	g.nodes++
	if g.counting {
		g.deg = append(g.deg, 0)
	}
	return g.nodes - 1
}

// add adds the edge a -e.kind-> e.to.
func (g *depGraph) add(a int, e gedge) {
	if g.counting {
		g.deg[a]++
		return
	}
	g.edges[g.next[a]] = e
	g.next[a]++
}

// barrier adds an rt edge that involves a barrier node.
func (g *depGraph) barrier(a, b int) {
	g.add(a, gedge{to: int32(b), key: -1, kind: depRT})
}

// out returns node v's edges.
func (g *depGraph) out(v int32) []gedge { return g.edges[g.off[v]:g.off[v+1]] }

// sccs returns each node's strongly connected component over the edges of
// the kinds in mask (iterative Tarjan), and the size of each component.
func (g *depGraph) sccs(mask depKind) (comp []int32, size []int32) {
	n := g.nodes
	comp = make([]int32, n)
	index := make([]int32, n)
	low := make([]int32, n)
	for i := range index {
		index[i] = -1
		comp[i] = -1
	}
	onStack := make([]bool, n)
	// The stacks can get as deep as the graph (the barriers are a chain).
	stack := make([]int32, 0, n)
	type frame struct {
		v    int32
		edge int32
	}
	call := make([]frame, 0, n)
	size = make([]int32, 0, n)
	var next int32
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call = append(call[:0], frame{v: int32(root), edge: g.off[root]})
		index[root], low[root] = next, next
		next++
		stack = append(stack, int32(root))
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.edge < g.off[v+1] {
				e := &g.edges[f.edge]
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
					call = append(call, frame{v: w, edge: g.off[w]})
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

// cyclic reports whether some component has two nodes or more.
func cyclic(size []int32) bool {
	return slices.ContainsFunc(size, func(s int32) bool { return s > 1 })
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
		for _, e := range g.out(v) {
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
		out = append(out, step{from: s.from, e: gedge{to: rot[j].e.to, key: -1, kind: depRT}})
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

// describeCycle explains a cycle between transactions step by step:
// edge explains a dependency edge, rt a real-time one.
func describeCycle(cycle []step, edge func(from int32, e gedge) string, rt func(a, b int32) string) string {
	var b strings.Builder
	for i, s := range cycle {
		if i > 0 {
			b.WriteString("; ")
		}
		if s.e.kind == depRT {
			b.WriteString(rt(s.from, s.e.to))
			continue
		}
		b.WriteString(edge(s.from, s.e))
	}
	return b.String()
}
