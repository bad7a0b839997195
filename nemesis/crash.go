package nemesis

import (
	"context"
	"fmt"
	"sync"

	"github.com/eccheck/eccheck/history"
)

// Restarter is a [Cluster] that comes back from a whole-cluster crash its
// own way, as its operators would bring it back, rather than by starting
// each node: Galera recovers each node's position and bootstraps from the
// most advanced one.
type Restarter interface {
	// RestartAll starts the cluster again once every node was killed,
	// and returns what it did (for the history: which node it started
	// from, and why).
	RestartAll() (any, error)
}

// crashKind kills every node at once (a power cut of the whole cluster,
// as far as the processes can tell: what a node kept only in memory is
// gone) and, one interval later, starts them again: with
// [Restarter.RestartAll] when the cluster has it, else node by node.
type crashKind struct{}

func (crashKind) name() string { return KindCrash }

func (crashKind) needs(int) error { return nil }

func (crashKind) check(Cluster) error { return nil }

func (crashKind) plan(p *planner) Step {
	return Step{Kind: KindCrash, Desc: "crash " + joinNodes(p.nodes), Nodes: p.nodes}
}

// start kills every node concurrently, so that none goes on without the
// others; every node is pending from the start.
func (crashKind) start(_ context.Context, n *Nemesis, f *fault) (history.Value, error) {
	f.pending = append(f.pending[:0], f.step.Nodes...)
	errs := make([]error, len(f.step.Nodes))
	var wg sync.WaitGroup
	for i, node := range f.step.Nodes {
		wg.Go(func() {
			if err := n.try(func() error { return n.c.Kill(node) }); err != nil {
				errs[i] = prefixed("kill "+node, err)
			}
		})
	}
	wg.Wait()
	return nodesValue(f.step.Nodes), joinErrs(compact(errs))
}

func (k crashKind) stop(n *Nemesis, f *fault) (history.Value, error) { return k.undo(n, f) }

// undo restarts the cluster: all at once through the Restarter (twice at
// most), or each pending node by Start.
func (crashKind) undo(n *Nemesis, f *fault) (history.Value, error) {
	if r, ok := n.c.(Restarter); ok {
		res, err := r.RestartAll()
		if err != nil {
			pause(n.retryPause)
			if res, err = r.RestartAll(); err != nil {
				return rawValue(res), fmt.Errorf("restart after the crash: %w (tried twice)", err)
			}
		}
		f.pending, f.left = nil, false
		return rawValue(res), nil
	}
	return killKind.undo(n, f)
}

// compact drops the nil errors.
func compact(errs []error) []error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
