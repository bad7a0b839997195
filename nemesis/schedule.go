package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The fault kinds, as named in [Options.Faults] and on the command line.
const (
	kindPartition = "partition"
	kindClock     = "clock"
	kindKill      = "kill"
	kindPause     = "pause"
	kindFailover  = "failover"
	kindLag       = "lag"
)

// faultKinds lists the valid fault kinds in the order error messages name
// them.
var faultKinds = []string{kindPartition, kindClock, kindKill, kindPause, kindFailover, kindLag}

// The partition shapes, as named in [Options.Partitions].
const (
	shapeHalves  = "halves"
	shapeIsolate = "isolate"
	shapeRing    = "ring"
	shapeBridge  = "bridge"
	shapeOneWay  = "one-way"
)

// shapeInfo is a partition shape and the fewest nodes it needs.
type shapeInfo struct {
	name     string
	minNodes int
}

// partitionShapes lists the valid partition shapes.
var partitionShapes = []shapeInfo{
	{shapeHalves, 2},
	{shapeIsolate, 2},
	{shapeRing, 3},
	{shapeBridge, 3},
	{shapeOneWay, 2},
}

// The clock fault shapes.
const (
	clockBump   = "bump"
	clockStrobe = "strobe"
)

// seedStream is the second PCG seed word: "nemesis" in ASCII. It keeps the
// nemesis's random stream apart from any other stream drawn from the same
// run seed (the workload's, for one).
const seedStream = 0x6e656d65736973

// ParseFaults parses a comma-separated list of fault kinds, such as
// "partition,clock", as given to --nemesis. "none" or an empty string give
// no faults. Names are kept in the order given, without repeats; an unknown
// name is an error that lists the valid ones.
func ParseFaults(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case name == "none":
			return nil, fmt.Errorf("nemesis %q: none cannot be combined with other faults", s)
		case !slices.Contains(faultKinds, name):
			return nil, fmt.Errorf("unknown fault %q (valid: %s, or none)", name, strings.Join(faultKinds, ", "))
		case !slices.Contains(out, name):
			out = append(out, name)
		}
	}
	return out, nil
}

// Step is one fault of the schedule: what [Nemesis.Run] starts, keeps in
// force for one [Options.Interval], then stops.
type Step struct {
	// Kind is "partition", "clock", "kill", "pause", "failover" or "lag".
	Kind string
	// Desc describes the fault for people, as [Nemesis.Active] shows it:
	// "partition isolate n2", "clock n1 -3.2s", "kill n2,n4".
	Desc string
	// At is when Run starts the fault, counted from Run's start, if every
	// fault started and stopped at once: step i starts at (2i+1) intervals.
	At time.Duration
	// Shape is the partition shape ("halves", "isolate", "ring", "bridge",
	// "one-way"), or for a clock fault "bump" or "strobe"; empty otherwise.
	Shape string
	// Grudge is the partition: Grudge[a] lists, sorted, the nodes whose
	// messages a drops. A node with no grudge has no entry.
	Grudge map[string][]string
	// Nodes are the nodes the fault is about: the isolated, deaf or bridge
	// node of a partition, the smaller half of halves (none for a ring),
	// the node whose clock moves, the nodes killed or paused.
	Nodes []string
	// Offset is the clock offset a clock fault sets (a strobe flips between
	// zero and Offset); a whole number of milliseconds, never zero.
	Offset time.Duration
	// Period is how long a strobe holds each offset before it flips.
	Period time.Duration
	// Pick chooses, for a lag, the replica among those there are when it
	// starts (Pick modulo their count, in name order).
	Pick int
}

// String returns s.Desc.
func (s Step) String() string { return s.Desc }

// planner draws the steps of a schedule. It is a pure function of the
// options (seed, faults, shapes, interval, largest clock offset) and the
// sorted node list: nothing else decides anything.
type planner struct {
	rng    *rand.Rand
	o      Options
	nodes  []string // sorted
	shapes []string // partition shapes that fit the node count
	i      int
}

func newPlanner(o Options, nodes, shapes []string) *planner {
	return &planner{rng: rand.New(rand.NewPCG(o.Seed, seedStream)), o: o, nodes: nodes, shapes: shapes}
}

// next returns the next step. The kinds take turns in the order of
// [Options.Faults]; the rest comes from the seeded generator.
func (p *planner) next() Step {
	kind := p.o.Faults[p.i%len(p.o.Faults)]
	at := time.Duration(2*p.i+1) * p.o.Interval
	p.i++
	var s Step
	switch kind {
	case kindPartition:
		s = p.partition(p.shapes[p.rng.IntN(len(p.shapes))])
	case kindClock:
		s = p.clock()
	case kindKill:
		s = p.kill()
	case kindPause:
		node := p.nodes[p.rng.IntN(len(p.nodes))]
		s = Step{Kind: kindPause, Desc: "pause " + node, Nodes: []string{node}}
	case kindFailover:
		// Which node is primary is known only when the step starts.
		s = Step{Kind: kindFailover, Desc: "failover"}
	case kindLag:
		// Which nodes are replicas is known only when the step starts:
		// the draw picks one of them then.
		s = Step{Kind: kindLag, Desc: "lag", Pick: p.rng.IntN(1 << 30)}
	default:
		panic("nemesis: planner with unknown fault " + kind) // New validates the options
	}
	s.At = at
	return s
}

// shuffled returns the nodes in a random order.
func (p *planner) shuffled() []string {
	order := slices.Clone(p.nodes)
	p.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// partition draws a partition of the given shape.
func (p *planner) partition(shape string) Step {
	order := p.shuffled()
	s := Step{Kind: kindPartition, Shape: shape}
	switch shape {
	case shapeHalves:
		a, b := sorted(order[:len(order)/2]), sorted(order[len(order)/2:])
		s.Grudge = cut(a, b)
		s.Nodes = a
		s.Desc = fmt.Sprintf("partition halves %s|%s", strings.Join(a, ","), strings.Join(b, ","))
	case shapeIsolate:
		x, rest := order[0], sorted(order[1:])
		s.Grudge = cut([]string{x}, rest)
		s.Nodes = []string{x}
		s.Desc = "partition isolate " + x
	case shapeRing:
		s.Grudge = ring(order)
		s.Desc = "partition ring " + strings.Join(order, "-")
	case shapeBridge:
		bridge, rest := order[0], order[1:]
		a, b := sorted(rest[:len(rest)/2]), sorted(rest[len(rest)/2:])
		s.Grudge = cut(a, b)
		s.Nodes = []string{bridge}
		s.Desc = fmt.Sprintf("partition bridge %s between %s|%s", bridge, strings.Join(a, ","), strings.Join(b, ","))
	case shapeOneWay:
		x, rest := order[0], sorted(order[1:])
		s.Grudge = map[string][]string{x: rest}
		s.Nodes = []string{x}
		s.Desc = fmt.Sprintf("partition one-way %s deaf", x)
	default:
		panic("nemesis: planner with unknown partition shape " + shape) // New validates the options
	}
	return s
}

// cut returns the grudge that splits a from b, both ways.
func cut(a, b []string) map[string][]string {
	g := make(map[string][]string, len(a)+len(b))
	for _, x := range a {
		g[x] = slices.Clone(b)
	}
	for _, x := range b {
		g[x] = slices.Clone(a)
	}
	return g
}

// ring returns a majorities ring over the nodes in the given order: each
// node keeps its links to the nodes at most d places away around the ring,
// where d is half a majority rounded down, so it sees 2d+1 nodes, itself
// included: a majority. Two nodes never see the same majority, because each sees a
// different arc of a ring it does not cover whole. Links are kept or cut
// both ways. Three nodes have no such ring (d = 1 covers them all), so for
// them the ring is a chain: the two ends cut from each other, the middle
// node seeing both.
func ring(order []string) map[string][]string {
	n := len(order)
	g := map[string][]string{}
	if n == 3 {
		g[order[0]] = []string{order[2]}
		g[order[2]] = []string{order[0]}
		return g
	}
	d := (n/2 + 1) / 2
	for i, x := range order {
		var drops []string
		for j, y := range order {
			if dist := min((i-j+n)%n, (j-i+n)%n); dist > d {
				drops = append(drops, y)
			}
		}
		if len(drops) > 0 {
			g[x] = sorted(drops)
		}
	}
	return g
}

// clock draws a clock fault: a bump or, one time in three, a strobe.
func (p *planner) clock() Step {
	node := p.nodes[p.rng.IntN(len(p.nodes))]
	maxMS := p.o.ClockMax.Milliseconds()
	ms := int64(0)
	for ms == 0 {
		ms = p.rng.Int64N(2*maxMS+1) - maxMS
	}
	offset := time.Duration(ms) * time.Millisecond
	s := Step{Kind: kindClock, Shape: clockBump, Nodes: []string{node}, Offset: offset}
	if p.rng.IntN(3) == 0 {
		s.Shape = clockStrobe
		s.Period = time.Duration(5+p.rng.IntN(16)) * time.Millisecond
		s.Desc = fmt.Sprintf("clock strobe %s %s every %s", node, signed(offset), s.Period)
	} else {
		s.Desc = fmt.Sprintf("clock %s %s", node, signed(offset))
	}
	return s
}

// signed formats d with its sign, "+3.2s" or "-150ms".
func signed(d time.Duration) string {
	if d > 0 {
		return "+" + d.String()
	}
	return d.String()
}

// kill draws a random minority to kill: at least one node, at most (n-1)/2.
func (p *planner) kill() Step {
	k := 1 + p.rng.IntN((len(p.nodes)-1)/2)
	nodes := sorted(p.shuffled()[:k])
	return Step{Kind: kindKill, Desc: "kill " + strings.Join(nodes, ","), Nodes: nodes}
}

// sorted returns a sorted copy of nodes.
func sorted(nodes []string) []string {
	out := slices.Clone(nodes)
	slices.Sort(out)
	return out
}
