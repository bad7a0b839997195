package nemesis

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// The partition shapes, as [Options.Partitions] and --shape name them.
const (
	ShapeHalves  = "halves"
	ShapeIsolate = "isolate"
	ShapeRing    = "ring"
	ShapeBridge  = "bridge"
	ShapeOneWay  = "one-way"
)

// shapeInfo is a partition shape and the fewest nodes it needs.
type shapeInfo struct {
	name     string
	minNodes int
}

// partitionShapes lists the valid partition shapes.
var partitionShapes = []shapeInfo{
	{ShapeHalves, 2},
	{ShapeIsolate, 2},
	{ShapeRing, 3},
	{ShapeBridge, 3},
	{ShapeOneWay, 2},
}

// Shapes returns the names of every partition shape.
func Shapes() []string {
	out := make([]string, len(partitionShapes))
	for i, s := range partitionShapes {
		out[i] = s.name
	}
	return out
}

// checkShape reports why shape cannot partition n nodes.
func checkShape(shape string, n int) error {
	i := slices.IndexFunc(partitionShapes, func(s shapeInfo) bool { return s.name == shape })
	if i < 0 {
		return fmt.Errorf("unknown partition shape %q (valid: %s)", shape, strings.Join(Shapes(), ", "))
	}
	if n < partitionShapes[i].minNodes {
		return fmt.Errorf("partition %s needs at least %d nodes, the cluster has %d", shape, partitionShapes[i].minNodes, n)
	}
	return nil
}

// Partition returns the partition of the given shape over the nodes, in
// the order given: order[0] is the node the shape is about (the isolated
// node of isolate, the deaf node of one-way, the bridge of bridge); halves
// cuts the first half of order from the rest; ring goes around in this
// order. The nemesis draws the order at random; `eccheck nemesis partition`
// puts the node it names first. Every partition anywhere is built here.
func Partition(shape string, order []string) (Step, error) {
	if err := checkShape(shape, len(order)); err != nil {
		return Step{}, err
	}
	s := Step{Kind: KindPartition, Shape: shape}
	switch shape {
	case ShapeHalves:
		a, b := sorted(order[:len(order)/2]), sorted(order[len(order)/2:])
		s.Grudge = cut(a, b)
		s.Nodes = a
		s.Desc = fmt.Sprintf("partition halves %s|%s", strings.Join(a, ","), strings.Join(b, ","))
	case ShapeIsolate:
		x, rest := order[0], sorted(order[1:])
		s.Grudge = cut([]string{x}, rest)
		s.Nodes = []string{x}
		s.Desc = "partition isolate " + x
	case ShapeRing:
		s.Grudge = ring(order)
		s.Desc = "partition ring " + strings.Join(order, "-")
	case ShapeBridge:
		bridge, rest := order[0], order[1:]
		a, b := sorted(rest[:len(rest)/2]), sorted(rest[len(rest)/2:])
		s.Grudge = cut(a, b)
		s.Nodes = []string{bridge}
		s.Desc = fmt.Sprintf("partition bridge %s between %s|%s", bridge, strings.Join(a, ","), strings.Join(b, ","))
	case ShapeOneWay:
		x, rest := order[0], sorted(order[1:])
		s.Grudge = map[string][]string{x: rest}
		s.Nodes = []string{x}
		s.Desc = fmt.Sprintf("partition one-way %s deaf", x)
	}
	return s, nil
}

// isolate is the grudge that cuts node off from every other node, both
// ways.
func isolate(node string, nodes []string) map[string][]string {
	order := []string{node}
	for _, o := range nodes {
		if o != node {
			order = append(order, o)
		}
	}
	s, err := Partition(ShapeIsolate, order)
	if err != nil {
		panic("nemesis: isolate: " + err.Error()) // callers check the node count
	}
	return s.Grudge
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
// included: a majority. Two nodes never see the same majority, because each
// sees a different arc of a ring it does not cover whole. Links are kept or
// cut both ways. Three nodes have no such ring (d = 1 covers them all), so
// for them the ring is a chain: the two ends cut from each other, the
// middle node seeing both.
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

// partitionKind cuts the network in one of the shapes of
// [Options.Partitions] and heals it.
type partitionKind struct{}

func (partitionKind) name() string { return KindPartition }

func (partitionKind) needs(n int) error {
	if n < 2 {
		return fmt.Errorf("partitions need at least 2 nodes, the cluster has %d", n)
	}
	return nil
}

func (partitionKind) check(Cluster) error { return nil }

func (partitionKind) plan(p *planner) Step {
	shape := p.shapes[p.rng.IntN(len(p.shapes))]
	s, err := Partition(shape, p.shuffled())
	if err != nil {
		panic("nemesis: planner: " + err.Error()) // New keeps only the shapes that fit
	}
	return s
}

func (partitionKind) start(_ context.Context, n *Nemesis, f *fault) (history.Value, error) {
	err := n.try(func() error { return n.c.Partition(f.step.Grudge) })
	if err != nil {
		err = fmt.Errorf("%s: %w", f.step.Desc, err)
	}
	return grudgeValue(f.step.Grudge), err
}

func (k partitionKind) stop(n *Nemesis, f *fault) (history.Value, error) { return k.undo(n, f) }

func (partitionKind) undo(n *Nemesis, f *fault) (history.Value, error) {
	if err := n.try(n.c.Heal); err != nil {
		return grudgeValue(f.step.Grudge), fmt.Errorf("heal %s: %w", f.step.Desc, err)
	}
	f.left = false
	return grudgeValue(f.step.Grudge), nil
}

// grudgeValue is a grudge as a JSON object, keys sorted:
// {"n1":["n2","n3"],...}.
func grudgeValue(g map[string][]string) history.Value {
	return rawValue(g)
}
