package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/history"
)

// The fault kinds, as [Options.Faults] and --nemesis name them.
const (
	KindPartition = "partition"
	KindClock     = "clock"
	KindKill      = "kill"
	KindPause     = "pause"
	KindFailover  = "failover"
	KindLag       = "lag"
	KindCrash     = "crash"
)

// kind is one kind of fault: how the nemesis checks that a cluster can take
// it, draws a step of it, starts it and stops it. Each kind lives in a file
// of its own and is listed in kinds; adding a kind is one file and one line
// there.
type kind interface {
	// name is the kind's name, one of the Kind constants.
	name() string
	// needs reports why a cluster of n nodes cannot take this kind of
	// fault; nil when it can.
	needs(n int) error
	// check reports why cluster c cannot take this kind of fault (it
	// lacks a capability the kind needs); nil when it can.
	check(c Cluster) error
	// plan draws the next step of this kind.
	plan(p *planner) Step
	// start injects f's step. Before each change to the cluster it notes
	// in f what it is changing, so that undo can undo a start that failed
	// half way. It may complete f.step (a failover learns the primary
	// only now). It returns the start operation's value.
	start(ctx context.Context, n *Nemesis, f *fault) (history.Value, error)
	// stop ends the fault at the end of its interval, as planned; for
	// every kind but failover that is undo.
	stop(n *Nemesis, f *fault) (history.Value, error)
	// undo undoes what of f may be in force and clears f.left when
	// nothing is; what it could not undo stays noted in f for a retry. It
	// returns the stop operation's value.
	undo(n *Nemesis, f *fault) (history.Value, error)
}

// kinds lists every fault kind, in the order error messages name them.
var kinds = []kind{partitionKind{}, clockKind{}, killKind, pauseKind, failoverKind{}, lagKind{}, crashKind{}}

// Kinds returns the names of every fault kind.
func Kinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name()
	}
	return out
}

// kindNamed returns the kind called name, or nil.
func kindNamed(name string) kind {
	for _, k := range kinds {
		if k.name() == name {
			return k
		}
	}
	return nil
}

// fault is a fault that may be in force, wholly or in part.
type fault struct {
	kind kind
	step Step
	// left says something of the fault may still be in force.
	left bool
	// pending are the nodes of a kill or pause that were acted on (or
	// were being acted on) and are not yet back.
	pending []string
	strobe  *strobe
	// failedOver says a failover's Failover was called (whatever came
	// of it): it is never carried out twice.
	failedOver bool
}

// desc describes the fault in force, for [Nemesis.Active].
func (f *fault) desc() string {
	if (f.step.Kind == KindKill || f.step.Kind == KindPause) && len(f.pending) > 0 && len(f.pending) < len(f.step.Nodes) {
		return f.step.Kind + " " + strings.Join(f.pending, ",")
	}
	return f.step.Desc
}

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
		case kindNamed(name) == nil:
			return nil, fmt.Errorf("unknown fault %q (valid: %s, or none)", name, strings.Join(Kinds(), ", "))
		case !slices.Contains(out, name):
			out = append(out, name)
		}
	}
	return out, nil
}

// Step is one fault of the schedule: what [Nemesis.Run] starts, keeps in
// force for one [Options.Interval], then stops.
type Step struct {
	// Kind is "partition", "clock", "kill", "pause", "failover", "lag"
	// or "crash".
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
	// the node whose clock moves, the nodes killed or paused (every node
	// for a crash).
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
	name := p.o.Faults[p.i%len(p.o.Faults)]
	at := time.Duration(2*p.i+1) * p.o.Interval
	p.i++
	k := kindNamed(name)
	if k == nil {
		panic("nemesis: planner with unknown fault " + name) // New validates the options
	}
	s := k.plan(p)
	s.At = at
	return s
}

// shuffled returns the nodes in a random order.
func (p *planner) shuffled() []string {
	order := slices.Clone(p.nodes)
	p.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// sorted returns a sorted copy of nodes.
func sorted(nodes []string) []string {
	out := slices.Clone(nodes)
	slices.Sort(out)
	return out
}
