package nemesis

import (
	"context"
	"fmt"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// nodesKind is a fault that acts on some nodes and undoes it node by node:
// kill and start, pause and resume.
type nodesKind struct {
	kind         string
	verb, back   string // "kill", "start"
	act, restore func(c Cluster, node string) error
	checkNodes   func(n int) error
	planNodes    func(p *planner) []string
}

func (k nodesKind) name() string { return k.kind }

func (k nodesKind) needs(n int) error {
	if k.checkNodes == nil {
		return nil
	}
	return k.checkNodes(n)
}

func (nodesKind) check(Cluster) error { return nil }

func (k nodesKind) plan(p *planner) Step {
	nodes := k.planNodes(p)
	return Step{Kind: k.kind, Desc: k.kind + " " + joinNodes(nodes), Nodes: nodes}
}

// start acts on each node in turn, noting it pending first; a node that
// fails (twice) is named in the error and the others are still acted on.
func (k nodesKind) start(_ context.Context, n *Nemesis, f *fault) (history.Value, error) {
	var errs []error
	for _, node := range f.step.Nodes {
		f.pending = append(f.pending, node)
		if err := n.try(func() error { return k.act(n.c, node) }); err != nil {
			errs = append(errs, prefixed(k.verb+" "+node, err))
		}
	}
	return nodesValue(f.step.Nodes), joinErrs(errs)
}

func (k nodesKind) stop(n *Nemesis, f *fault) (history.Value, error) { return k.undo(n, f) }

// undo brings back every pending node; those that fail stay pending.
func (k nodesKind) undo(n *Nemesis, f *fault) (history.Value, error) {
	var errs []error
	var left []string
	for _, node := range f.pending {
		if err := n.try(func() error { return k.restore(n.c, node) }); err != nil {
			errs = append(errs, prefixed(k.back+" "+node, err))
			left = append(left, node)
		}
	}
	value := nodesValue(f.pending)
	f.pending = left
	f.left = len(left) > 0
	return value, joinErrs(errs)
}

// nodesValue is a list of node names.
func nodesValue(nodes []string) history.Value {
	vs := make([]history.Value, len(nodes))
	for i, node := range nodes {
		vs[i] = history.String(node)
	}
	return history.List(vs...)
}

// prefixed wraps err as "what: err", unless the cluster's error says what
// already.
func prefixed(what string, err error) error {
	if strings.HasPrefix(err.Error(), what+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
