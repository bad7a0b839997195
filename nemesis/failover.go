package nemesis

import (
	"context"
	"errors"
	"fmt"

	"github.com/eccheck/eccheck/history"
)

// Failoverer is a [Cluster] with one primary that a failover replaces,
// such as Postgres with streaming replicas; the "failover" fault needs it.
type Failoverer interface {
	// Primary returns the node that takes writes now.
	Primary() string
	// Failover replaces the primary, which the nemesis has cut off:
	// Postgres kills it (it does not come back through Start), promotes a
	// replica and points the rest at it; Redis waits for Sentinel to
	// promote one. Either may then bring the old primary back as a
	// replica (Rejoined). When it fails, the result
	// says what it did change: an empty result means nothing, and only
	// then does the nemesis try it a second time.
	Failover() (FailoverResult, error)
}

// FailoverResult says what a failover did: the primary it killed, the
// replica it promoted ("" if none), the replicas it rewound because they
// had received WAL past the promotion point (they lose it, though they
// may have served it), and the old primary if it came back as a replica.
type FailoverResult struct {
	Killed   string   `json:"killed,omitempty"`
	Promoted string   `json:"promoted,omitempty"`
	Rewound  []string `json:"rewound,omitempty"`
	Rejoined string   `json:"rejoined,omitempty"`
}

// failoverKind starts by cutting the primary off from every other node
// (clients still reach it: with asynchronous replication it goes on
// acknowledging writes that no replica gets) and, one interval later,
// stops with [Failoverer.Failover] and the partition healed. Healed early
// (Run ending, HealAll), only the partition is undone: the primary stays.
type failoverKind struct{}

func (failoverKind) name() string { return KindFailover }

func (failoverKind) needs(n int) error {
	if n < 2 {
		return fmt.Errorf("failover needs a replica to promote, the cluster has %d node(s)", n)
	}
	return nil
}

func (failoverKind) check(c Cluster) error {
	if _, ok := c.(Failoverer); !ok {
		return errors.New("failover needs a cluster with a primary to replace (such as --db postgres); this one has none")
	}
	return nil
}

// plan leaves the primary open: which node it is is known only when the
// step starts.
func (failoverKind) plan(*planner) Step {
	return Step{Kind: KindFailover, Desc: "failover"}
}

func (failoverKind) start(_ context.Context, n *Nemesis, f *fault) (history.Value, error) {
	primary := n.c.(Failoverer).Primary()
	f.step.Nodes = []string{primary}
	f.step.Grudge = isolate(primary, n.nodes)
	f.step.Desc = "failover: " + primary + " cut off"
	n.setCur(f)
	var err error
	if e := n.try(func() error { return n.c.Partition(f.step.Grudge) }); e != nil {
		err = fmt.Errorf("%s: %w", f.step.Desc, e)
	}
	return primaryValue(primary), err
}

// stop carries out the failover, once (a second time only when the first
// changed nothing), then heals the partition.
func (failoverKind) stop(n *Nemesis, f *fault) (history.Value, error) {
	if f.failedOver {
		v, err := failoverKind{}.undo(n, f)
		return v, err
	}
	f.failedOver = true
	fo := n.c.(Failoverer)
	res, ferr := fo.Failover()
	if ferr != nil && res.Killed == "" && res.Promoted == "" {
		pause(n.retryPause)
		res, ferr = fo.Failover()
	}
	var errs []error
	if ferr != nil {
		errs = append(errs, fmt.Errorf("failover from %s: %w", f.step.Nodes[0], ferr))
	}
	if err := n.try(n.c.Heal); err != nil {
		errs = append(errs, fmt.Errorf("heal after the failover: %w", err))
	} else {
		f.left = false
	}
	return rawValue(res), joinErrs(errs)
}

// undo heals the partition only: the primary stays.
func (failoverKind) undo(n *Nemesis, f *fault) (history.Value, error) {
	value := grudgeValue(f.step.Grudge)
	if len(f.step.Nodes) > 0 {
		value = primaryValue(f.step.Nodes[0])
	}
	if err := n.try(n.c.Heal); err != nil {
		return value, fmt.Errorf("heal %s: %w", f.step.Desc, err)
	}
	f.left = false
	return value, nil
}

// primaryValue is {"primary":"n1"}.
func primaryValue(node string) history.Value {
	return rawValue(struct {
		Primary string `json:"primary"`
	}{node})
}
