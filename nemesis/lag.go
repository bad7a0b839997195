package nemesis

import (
	"context"
	"errors"
	"fmt"

	"github.com/eccheck/eccheck/history"
)

// Lagger is a [Cluster] whose replicas can fall behind on demand, still
// serving reads, such as Postgres replicas whose WAL replay pauses; the
// "lag" fault needs it.
type Lagger interface {
	// Replicas returns the nodes that can lag now.
	Replicas() []string
	// Lag stops (on) or resumes (off) a replica's applying of replicated
	// writes. Resuming a node that does not lag (any more) succeeds.
	Lag(node string, on bool) error
}

// lagKind makes one replica (the seed's pick among the replicas there are
// when it starts) stop applying replicated writes for an interval while it
// goes on serving reads: replication lag on demand.
type lagKind struct{}

func (lagKind) name() string { return KindLag }

func (lagKind) needs(n int) error {
	if n < 2 {
		return fmt.Errorf("lag needs a replica, the cluster has %d node(s)", n)
	}
	return nil
}

func (lagKind) check(c Cluster) error {
	if _, ok := c.(Lagger); !ok {
		return errors.New("lag needs a cluster whose replicas can stop applying writes on demand (such as --db postgres); this one has none")
	}
	return nil
}

// plan draws the pick; which nodes are replicas is known only when the
// step starts.
func (lagKind) plan(p *planner) Step {
	return Step{Kind: KindLag, Desc: "lag", Pick: p.rng.IntN(1 << 30)}
}

func (lagKind) start(_ context.Context, n *Nemesis, f *fault) (history.Value, error) {
	l := n.c.(Lagger)
	replicas := sorted(l.Replicas())
	if len(replicas) == 0 {
		return nodeValue(""), errors.New("lag: the cluster has no replica now (after failovers?)")
	}
	node := replicas[f.step.Pick%len(replicas)]
	f.step.Nodes = []string{node}
	f.step.Desc = "lag " + node
	n.setCur(f)
	if err := n.try(func() error { return l.Lag(node, true) }); err != nil {
		return nodeValue(node), fmt.Errorf("%s: %w", f.step.Desc, err)
	}
	return nodeValue(node), nil
}

func (k lagKind) stop(n *Nemesis, f *fault) (history.Value, error) { return k.undo(n, f) }

func (lagKind) undo(n *Nemesis, f *fault) (history.Value, error) {
	if len(f.step.Nodes) == 0 {
		f.left = false
		return nodeValue(""), nil
	}
	node := f.step.Nodes[0]
	if err := n.try(func() error { return n.c.(Lagger).Lag(node, false) }); err != nil {
		return nodeValue(node), fmt.Errorf("resume %s: %w", f.step.Desc, err)
	}
	f.left = false
	return nodeValue(node), nil
}

// nodeValue is {"node":"n2"}.
func nodeValue(node string) history.Value {
	return rawValue(struct {
		Node string `json:"node"`
	}{node})
}
