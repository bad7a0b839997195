// Package nemesis injects faults into a cluster on a schedule and heals
// them: network partitions of several shapes (random halves, one node
// isolated, a majorities ring, a bridge, a one-way cut), clock bumps and
// strobes, killed and restarted nodes, paused and resumed nodes.
//
// The schedule is a pure function of a seed and the node list, so one seed
// gives one fault schedule; [Nemesis.Schedule] shows it without touching the
// cluster. Every fault is recorded as a nemesis operation of the history
// ("start-partition", "stop-partition", ...), and every fault is healed on
// the way out: when [Nemesis.Run]'s context ends, when it panics, and on
// demand by [Nemesis.HealAll].
//
// The nemesis talks to a cluster through [Cluster], which the in-process
// backend (store.LocalCluster) and the Docker backend implement. It imports
// only history and the standard library.
package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eccheck/eccheck/history"
)

// Cluster is what the nemesis needs of a cluster. Every method returns an
// error when it names a node the cluster does not have, or when the backend
// could not apply the change (a container that would not start, a helper
// that could not install a rule); the nemesis wraps that error with the
// fault it was applying and returns it.
//
// HealAll may undo the same fault twice (a retry after an error), so Heal,
// SetClock, Start of a running node and Resume of a running node must
// succeed and change nothing when there is nothing to undo.
type Cluster interface {
	// Nodes returns the node names.
	Nodes() []string
	// Partition replaces any previous partition: grudge[a] lists the nodes
	// whose messages a drops. One-way grudges are allowed.
	Partition(grudge map[string][]string) error
	// Heal removes every partition (and every link delay).
	Heal() error
	// SetClock sets a node's clock offset from the real time; 0 resets it.
	SetClock(node string, offset time.Duration) error
	// Kill stops a node at once, losing what it keeps only in memory.
	Kill(node string) error
	// Start starts a killed node again.
	Start(node string) error
	// Pause freezes a node without closing its connections.
	Pause(node string) error
	// Resume unfreezes a paused node.
	Resume(node string) error
}

// Failoverer is a [Cluster] with one primary that a failover replaces,
// such as Postgres with streaming replicas; the "failover" fault needs it.
type Failoverer interface {
	// Primary returns the node that takes writes now.
	Primary() string
	// Failover kills the primary (it does not come back through Start),
	// promotes a replica and points the rest at it; it may then bring the
	// old primary back as a replica (Rejoined).
	Failover() (FailoverResult, error)
}

// FailoverResult says what a failover did: the primary it killed, the
// replica it promoted ("" if none), the replicas it rewound because they
// had received WAL past the promotion point (they lose it, though they
// may have served it), and the old primary if it came back as a replica.
type FailoverResult struct {
	Killed   string   `json:"killed"`
	Promoted string   `json:"promoted,omitempty"`
	Rewound  []string `json:"rewound,omitempty"`
	Rejoined string   `json:"rejoined,omitempty"`
}

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

// Options configures a [Nemesis].
type Options struct {
	// Faults are the kinds of fault to inject, taking turns in this order:
	// any of "partition", "clock", "kill", "pause", "failover" (see
	// [ParseFaults]). A kind named twice comes up twice as often. Empty
	// means no faults: Run just waits.
	//
	// A failover, on a cluster that is a [Failoverer], starts by cutting
	// the primary off from every other node (clients still reach it: with
	// asynchronous replication it goes on acknowledging writes that no
	// replica gets) and, one interval later, stops with
	// [Failoverer.Failover] and the partition healed. Healed early (Run
	// ending, HealAll), only the partition is undone: the primary stays.
	//
	// A lag, on a cluster that is a [Lagger], makes one replica stop
	// applying replicated writes for an interval while it goes on serving
	// reads: replication lag on demand.
	Faults []string
	// Interval is the time between fault changes: Run waits Interval,
	// starts a fault, keeps it Interval, stops it, and so on. 0 means 10s.
	Interval time.Duration
	// Seed decides the schedule, with the node list and these options.
	Seed uint64
	// ClockMax is the largest clock offset, either way; offsets are whole
	// milliseconds. 0 means 10s, as in Jepsen's clock nemesis.
	ClockMax time.Duration
	// Partitions are the partition shapes to draw from: "halves" (a random
	// split in two), "isolate" (one node cut from all others), "ring" (every
	// node sees a majority, no two the same one; a chain for 3 nodes),
	// "bridge" (two halves that only talk through one bridge node),
	// "one-way" (one node drops the messages of all others, which still get
	// its own). Empty means every shape the node count allows (ring and
	// bridge need 3 nodes).
	Partitions []string
}

// HealTimeout bounds the healing [Nemesis.Run] does on its way out.
const HealTimeout = 30 * time.Second

// Nemesis injects the faults of a schedule into a cluster and heals them.
// Run, HealAll and Active may be called from different goroutines.
type Nemesis struct {
	c      Cluster
	o      Options
	nodes  []string // sorted
	shapes []string // partition shapes to draw from
	record func(history.Op) history.Op

	sem     chan struct{} // held while acting on the cluster
	cur     *fault        // the fault possibly in force; guarded by sem
	active  atomic.Pointer[[]string]
	running atomic.Bool
}

// fault is a fault that may be in force, wholly or in part.
type fault struct {
	step Step
	// pending are the nodes of a kill or pause that were acted on (or were
	// being acted on) and are not yet back.
	pending []string
	strobe  *strobe
	// failedOver says a failover's Failover was called (whatever came
	// of it): it is never tried twice.
	failedOver bool
}

// New returns a nemesis for cluster c, which records each fault it starts
// or stops through record (nil records nothing). It checks the options
// against the cluster's nodes: partitions need 2 nodes, a ring or a bridge
// 3, and killing a minority needs 3.
func New(c Cluster, o Options, record func(history.Op) history.Op) (*Nemesis, error) {
	nodes := sorted(c.Nodes())
	if len(nodes) == 0 {
		return nil, errors.New("nemesis: the cluster has no nodes")
	}
	for i := 1; i < len(nodes); i++ {
		if nodes[i] == nodes[i-1] {
			return nil, fmt.Errorf("nemesis: node %q appears twice in the cluster", nodes[i])
		}
	}
	if o.Interval < 0 || o.ClockMax < 0 {
		return nil, fmt.Errorf("nemesis: negative interval %s or clock offset %s", o.Interval, o.ClockMax)
	}
	if o.Interval == 0 {
		o.Interval = 10 * time.Second
	}
	if o.ClockMax == 0 {
		o.ClockMax = 10 * time.Second
	}
	if o.ClockMax < time.Millisecond {
		return nil, fmt.Errorf("nemesis: largest clock offset %s is under a millisecond", o.ClockMax)
	}
	o.Faults = slices.Clone(o.Faults)
	for _, f := range o.Faults {
		if !slices.Contains(faultKinds, f) {
			return nil, fmt.Errorf("nemesis: unknown fault %q (valid: %s)", f, strings.Join(faultKinds, ", "))
		}
	}
	n := len(nodes)
	if slices.Contains(o.Faults, kindPartition) && n < 2 {
		return nil, fmt.Errorf("nemesis: partitions need at least 2 nodes, the cluster has %d", n)
	}
	if slices.Contains(o.Faults, kindKill) && n < 3 {
		return nil, fmt.Errorf("nemesis: killing a minority needs at least 3 nodes, the cluster has %d", n)
	}
	if slices.Contains(o.Faults, kindFailover) {
		if _, ok := c.(Failoverer); !ok {
			return nil, errors.New("nemesis: failover needs a cluster with a primary to replace (such as --db postgres); this one has none")
		}
		if n < 2 {
			return nil, fmt.Errorf("nemesis: failover needs a replica to promote, the cluster has %d node(s)", n)
		}
	}
	if slices.Contains(o.Faults, kindLag) {
		if _, ok := c.(Lagger); !ok {
			return nil, errors.New("nemesis: lag needs a cluster whose replicas can stop applying writes on demand (such as --db postgres); this one has none")
		}
		if n < 2 {
			return nil, fmt.Errorf("nemesis: lag needs a replica, the cluster has %d node(s)", n)
		}
	}
	var shapes []string
	for _, want := range o.Partitions {
		i := slices.IndexFunc(partitionShapes, func(s shapeInfo) bool { return s.name == want })
		if i < 0 {
			var valid []string
			for _, s := range partitionShapes {
				valid = append(valid, s.name)
			}
			return nil, fmt.Errorf("nemesis: unknown partition shape %q (valid: %s)", want, strings.Join(valid, ", "))
		}
		if n < partitionShapes[i].minNodes {
			return nil, fmt.Errorf("nemesis: partition %s needs at least %d nodes, the cluster has %d", want, partitionShapes[i].minNodes, n)
		}
		if !slices.Contains(shapes, want) {
			shapes = append(shapes, want)
		}
	}
	if len(o.Partitions) == 0 {
		for _, s := range partitionShapes {
			if n >= s.minNodes {
				shapes = append(shapes, s.name)
			}
		}
	}
	o.Partitions = slices.Clone(o.Partitions)
	return &Nemesis{c: c, o: o, nodes: nodes, shapes: shapes, record: record, sem: make(chan struct{}, 1)}, nil
}

// Schedule returns the first k steps of the schedule, without touching the
// cluster: the faults Run starts, in order.
func (n *Nemesis) Schedule(k int) []Step {
	if len(n.o.Faults) == 0 || k <= 0 {
		return nil
	}
	p := newPlanner(n.o, n.nodes, n.shapes)
	steps := make([]Step, k)
	for i := range steps {
		steps[i] = p.next()
	}
	return steps
}

// Active returns short descriptions of the faults in force now, such as
// "partition isolate n2" or "clock n1 -3.2s", for a progress line. A fault
// being started or stopped counts as in force.
func (n *Nemesis) Active() []string {
	if p := n.active.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// Run injects the schedule's faults until ctx is done: it waits one
// interval, starts a fault, waits one interval, stops it, and so on. When
// ctx ends, Run heals the fault in force (within [HealTimeout]) and returns
// nil, or the healing's error. When the cluster fails to start or stop a
// fault, Run heals what it can and returns the error. A panic inside Run
// heals too, then goes on panicking. Only one Run may run at a time.
func (n *Nemesis) Run(ctx context.Context) (err error) {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("nemesis: Run is already running")
	}
	defer n.running.Store(false)
	if len(n.o.Faults) == 0 {
		<-ctx.Done()
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			_ = n.healOnExit() // the panic is the news; healing is best effort
			panic(r)
		}
	}()
	p := newPlanner(n.o, n.nodes, n.shapes)
	for {
		if !sleep(ctx, n.o.Interval) {
			return n.healOnExit()
		}
		if err := n.start(ctx, p.next()); err != nil {
			return errors.Join(err, n.healOnExit())
		}
		if !sleep(ctx, n.o.Interval) {
			return n.healOnExit()
		}
		if err := n.stop(); err != nil {
			return errors.Join(err, n.healOnExit())
		}
	}
}

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return ctx.Err() == nil
	}
}

func (n *Nemesis) healOnExit() error {
	ctx, cancel := context.WithTimeout(context.Background(), HealTimeout)
	defer cancel()
	return n.HealAll(ctx)
}

// HealAll undoes every fault that may be in force: it heals the partition,
// sets the clock it moved back to zero (stopping a strobe), resumes the
// nodes it paused and starts the nodes it killed, recording a stop
// operation for each. It goes on past a step that fails, joins the errors,
// and keeps what it could not undo for the next call. With nothing in force
// it does and records nothing, so calling it again is harmless. It works
// after Run returned or panicked.
//
// Pass a live context: HealAll stops waiting when ctx ends and returns its
// error. Cluster calls take no context, so one already under way finishes in
// the background; the next HealAll waits for it, then retries what is left.
func (n *Nemesis) HealAll(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		n.lock()
		defer n.unlock()
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("heal: panic: %v", r)
			}
		}()
		done <- n.undo()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done:
			return err
		default:
		}
		return fmt.Errorf("heal %s: %w", strings.Join(n.Active(), "; "), context.Cause(ctx))
	}
}

func (n *Nemesis) lock()   { n.sem <- struct{}{} }
func (n *Nemesis) unlock() { <-n.sem }

// setCur makes f the fault in force, or none, and publishes its
// description for Active.
func (n *Nemesis) setCur(f *fault) {
	n.cur = f
	if f == nil {
		n.active.Store(nil)
		return
	}
	desc := f.step.Desc
	if f.step.Kind == kindKill || f.step.Kind == kindPause {
		if len(f.pending) > 0 && len(f.pending) < len(f.step.Nodes) {
			desc = f.step.Kind + " " + strings.Join(f.pending, ",")
		}
	}
	n.active.Store(&[]string{desc})
}

// start starts step s. The fault counts as in force before the first
// cluster call, so that a failure or a panic half way leaves it for HealAll.
func (n *Nemesis) start(ctx context.Context, s Step) error {
	n.lock()
	defer n.unlock()
	f := &fault{step: s}
	n.setCur(f)
	var err error
	switch s.Kind {
	case kindPartition:
		if e := n.c.Partition(s.Grudge); e != nil {
			err = fmt.Errorf("%s: %w", s.Desc, e)
		}
	case kindClock:
		if e := n.c.SetClock(s.Nodes[0], s.Offset); e != nil {
			err = fmt.Errorf("%s: %w", s.Desc, e)
		} else if s.Shape == clockStrobe {
			f.strobe = startStrobe(ctx, n.c, s)
		}
	case kindKill, kindPause:
		act := n.c.Kill
		if s.Kind == kindPause {
			act = n.c.Pause
		}
		for _, node := range s.Nodes {
			f.pending = append(f.pending, node)
			if e := act(node); e != nil {
				err = fmt.Errorf("%s %s: %w", s.Kind, node, e)
				break
			}
		}
	case kindLag:
		l := n.c.(Lagger)
		replicas := sorted(l.Replicas())
		if len(replicas) == 0 {
			err = errors.New("lag: the cluster has no replica now (after failovers?)")
			n.emit("start-"+s.Kind, nodeValue(""), err)
			return err
		}
		node := replicas[s.Pick%len(replicas)]
		f.step.Nodes = []string{node}
		f.step.Desc = "lag " + node
		n.setCur(f)
		if e := l.Lag(node, true); e != nil {
			err = fmt.Errorf("%s: %w", f.step.Desc, e)
		}
		n.emit("start-"+s.Kind, nodeValue(node), err)
		return err
	case kindFailover:
		primary := n.c.(Failoverer).Primary()
		f.step.Nodes = []string{primary}
		f.step.Grudge = isolate(primary, n.nodes)
		f.step.Desc = "failover: " + primary + " cut off"
		n.setCur(f)
		if e := n.c.Partition(f.step.Grudge); e != nil {
			err = fmt.Errorf("%s: %w", f.step.Desc, e)
		}
		n.emit("start-"+s.Kind, primaryValue(primary), err)
		return err
	}
	n.emit("start-"+s.Kind, startValue(s), err)
	return err
}

// isolate is the grudge that cuts node off from every other node, both
// ways.
func isolate(node string, nodes []string) map[string][]string {
	g := map[string][]string{}
	for _, o := range nodes {
		if o != node {
			g[node] = append(g[node], o)
			g[o] = []string{node}
		}
	}
	return g
}

// stop stops the fault in force, if any, as planned: a failover in force
// is carried out.
func (n *Nemesis) stop() error {
	n.lock()
	defer n.unlock()
	if f := n.cur; f != nil && f.step.Kind == kindFailover && !f.failedOver {
		return n.failover(f)
	}
	return n.undo()
}

// failover carries out the failover f: the old primary is killed and a
// replica promoted, then the partition healed. The caller holds the lock.
func (n *Nemesis) failover(f *fault) error {
	f.failedOver = true
	res, ferr := n.c.(Failoverer).Failover()
	var errs []error
	if ferr != nil {
		errs = append(errs, fmt.Errorf("failover from %s: %w", f.step.Nodes[0], ferr))
	}
	if err := n.c.Heal(); err != nil {
		errs = append(errs, fmt.Errorf("heal after the failover: %w", err))
		n.setCur(f)
	} else {
		n.setCur(nil)
	}
	err := errors.Join(errs...)
	n.emit("stop-"+kindFailover, rawValue(res), err)
	return err
}

// undo stops the fault in force, if any, and records that. The caller holds
// the lock. What it could not undo stays in force. A failover not yet
// carried out is undone by healing its partition only.
func (n *Nemesis) undo() error {
	f := n.cur
	if f == nil {
		return nil
	}
	s := f.step
	var errs []error
	var value history.Value
	inForce := false
	switch s.Kind {
	case kindPartition, kindFailover:
		if err := n.c.Heal(); err != nil {
			errs = append(errs, fmt.Errorf("heal %s: %w", s.Desc, err))
			inForce = true
		}
		value = grudgeValue(s.Grudge)
		if s.Kind == kindFailover && len(s.Nodes) > 0 {
			value = primaryValue(s.Nodes[0])
		}
	case kindClock:
		if f.strobe != nil {
			if err := f.strobe.stop(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.Desc, err))
			}
			f.strobe = nil
		}
		if err := n.c.SetClock(s.Nodes[0], 0); err != nil {
			errs = append(errs, fmt.Errorf("reset clock %s: %w", s.Nodes[0], err))
			inForce = true
		}
		value = clockValue(s.Nodes[0], 0, 0)
	case kindLag:
		value = nodeValue("")
		if len(s.Nodes) > 0 {
			if err := n.c.(Lagger).Lag(s.Nodes[0], false); err != nil {
				errs = append(errs, fmt.Errorf("resume %s: %w", s.Desc, err))
				inForce = true
			}
			value = nodeValue(s.Nodes[0])
		}
	case kindKill, kindPause:
		act, verb := n.c.Start, "start"
		if s.Kind == kindPause {
			act, verb = n.c.Resume, "resume"
		}
		var left []string
		for _, node := range f.pending {
			if err := act(node); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", verb, node, err))
				left = append(left, node)
			}
		}
		value = nodesValue(f.pending)
		f.pending = left
		inForce = len(left) > 0
	}
	if inForce {
		n.setCur(f)
	} else {
		n.setCur(nil)
	}
	err := errors.Join(errs...)
	n.emit("stop-"+s.Kind, value, err)
	return err
}

// emit records a nemesis operation, with the error's text if any.
func (n *Nemesis) emit(f string, value history.Value, err error) {
	if n.record == nil {
		return
	}
	op := history.Op{Process: history.Nemesis, Type: history.Info, F: f, Value: value}
	if err != nil {
		op.Error = err.Error()
	}
	n.record(op)
}

// startValue is the value of a start operation: the grudge of a partition,
// the node and offset of a clock fault, the nodes killed or paused.
func startValue(s Step) history.Value {
	switch s.Kind {
	case kindPartition:
		return grudgeValue(s.Grudge)
	case kindClock:
		return clockValue(s.Nodes[0], s.Offset, s.Period)
	default:
		return nodesValue(s.Nodes)
	}
}

// nodeValue is {"node":"n2"}.
func nodeValue(node string) history.Value {
	return rawValue(struct {
		Node string `json:"node"`
	}{node})
}

// primaryValue is {"primary":"n1"}.
func primaryValue(node string) history.Value {
	return rawValue(struct {
		Primary string `json:"primary"`
	}{node})
}

// grudgeValue is a grudge as a JSON object, keys sorted:
// {"n1":["n2","n3"],...}.
func grudgeValue(g map[string][]string) history.Value {
	return rawValue(g)
}

// clockValue is {"node":"n1","offset_ms":-3200}, with "strobe_ms" (the
// strobe period) for a strobe.
func clockValue(node string, offset, period time.Duration) history.Value {
	return rawValue(struct {
		Node     string `json:"node"`
		OffsetMS int64  `json:"offset_ms"`
		StrobeMS int64  `json:"strobe_ms,omitempty"`
	}{node, offset.Milliseconds(), period.Milliseconds()})
}

// nodesValue is a list of node names.
func nodesValue(nodes []string) history.Value {
	vs := make([]history.Value, len(nodes))
	for i, node := range nodes {
		vs[i] = history.String(node)
	}
	return history.List(vs...)
}

func rawValue(v any) history.Value {
	js, err := json.Marshal(v)
	if err != nil {
		panic("nemesis: encode value: " + err.Error()) // plain maps and structs of strings always encode
	}
	val, err := history.Raw(js)
	if err != nil {
		panic("nemesis: value: " + err.Error())
	}
	return val
}

// strobe flips a node's clock between an offset and zero until stopped.
type strobe struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the first SetClock error; read after done is closed
}

// startStrobe starts flipping the clock of s's node every s.Period; the
// clock is at s.Offset when it starts. It stops at stop, or when ctx ends.
func startStrobe(ctx context.Context, c Cluster, s Step) *strobe {
	ctx, cancel := context.WithCancel(ctx)
	st := &strobe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		t := time.NewTicker(s.Period)
		defer t.Stop()
		on := true
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			on = !on
			offset := time.Duration(0)
			if on {
				offset = s.Offset
			}
			if err := c.SetClock(s.Nodes[0], offset); err != nil {
				st.err = fmt.Errorf("strobe %s: %w", s.Nodes[0], err)
				return
			}
		}
	}()
	return st
}

// stop stops the strobe, waits for it, and returns the error that stopped it
// early, if any.
func (st *strobe) stop() error {
	st.cancel()
	<-st.done
	return st.err
}
