// Package nemesis injects faults into a cluster on a schedule and heals
// them: network partitions of several shapes (random halves, one node
// isolated, a majorities ring, a bridge, a one-way cut), clock bumps and
// strobes, killed and restarted nodes, paused and resumed nodes, the whole
// cluster crashed at once and restarted, and, on clusters that have them,
// failovers of a primary and replicas that lag.
//
// Each kind of fault is a file of its own (partition.go, clock.go, ...).
// The schedule is a pure function of a seed and the node list, so one seed
// gives one fault schedule; [Nemesis.Schedule] shows it without touching the
// cluster. Every fault is recorded as a nemesis operation of the history
// ("start-partition", "stop-partition", ...), and every fault is healed on
// the way out: when [Nemesis.Run]'s context ends, when it panics, and on
// demand by [Nemesis.HealAll].
//
// A fault the cluster fails to apply is tried a second time; if that fails
// too, the operation is recorded with the error and the schedule goes on,
// as Jepsen's nemesis does: the run's verdict stays about the data, and
// the report lists the faults that could not be applied.
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
// that could not install a rule).
//
// The nemesis calls a method a second time when it fails, and HealAll may
// undo the same fault twice, so Heal, SetClock, Start of a running node,
// Resume of a running node, Kill of a stopped node and Partition with the
// grudge in force must succeed and change nothing when there is nothing
// to do.
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

// Options configures a [Nemesis].
type Options struct {
	// Faults are the kinds of fault to inject, taking turns in this order:
	// any of [Kinds] (see [ParseFaults]). A kind named twice comes up twice
	// as often. Empty means no faults: Run just waits.
	Faults []string
	// Interval is the time between fault changes: Run waits Interval,
	// starts a fault, keeps it Interval, stops it, and so on. 0 means 10s.
	Interval time.Duration
	// Cycles, when positive, makes Run return once it has started and
	// stopped this many faults, so that a run can last as long as its
	// faults need rather than a fixed time. 0 means until ctx ends.
	Cycles int
	// Seed decides the schedule, with the node list and these options.
	Seed uint64
	// ClockMax is the largest clock offset, either way; offsets are whole
	// milliseconds. 0 means 10s, as in Jepsen's clock nemesis.
	ClockMax time.Duration
	// Partitions are the partition shapes to draw from (see [Shapes]):
	// "halves" (a random split in two), "isolate" (one node cut from all
	// others), "ring" (every node sees a majority, no two the same one; a
	// chain for 3 nodes), "bridge" (two halves that only talk through one
	// bridge node), "one-way" (one node drops the messages of all others,
	// which still get its own). Empty means every shape the node count
	// allows (ring and bridge need 3 nodes).
	Partitions []string
}

// HealTimeout bounds the healing [Nemesis.Run] does on its way out.
const HealTimeout = 30 * time.Second

// retryPause is the wait before the second try of a cluster call that
// failed; tests shorten it.
var retryPause = time.Second

// Nemesis injects the faults of a schedule into a cluster and heals them.
// Run, HealAll, Active and Cycles may be called from different goroutines.
type Nemesis struct {
	c          Cluster
	o          Options
	nodes      []string // sorted
	shapes     []string // partition shapes to draw from
	record     func(history.Op) history.Op
	retryPause time.Duration

	sem     chan struct{} // held while acting on the cluster
	cur     *fault        // the fault possibly in force; guarded by sem
	active  atomic.Pointer[[]string]
	running atomic.Bool
	cycles  atomic.Int64 // faults Run started and stopped
	failed  atomic.Int64 // nemesis operations recorded with an error
}

// New returns a nemesis for cluster c, which records each fault it starts
// or stops through record (nil records nothing). It checks the options
// against the cluster: partitions need 2 nodes, a ring or a bridge 3,
// killing a minority 3, a failover or a lag a cluster that can do it.
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
	o, shapes, err := checkOptions(o, len(nodes))
	if err != nil {
		return nil, err
	}
	for _, f := range o.Faults {
		if err := kindNamed(f).check(c); err != nil {
			return nil, fmt.Errorf("nemesis: %w", err)
		}
	}
	return &Nemesis{c: c, o: o, nodes: nodes, shapes: shapes, record: record, retryPause: retryPause, sem: make(chan struct{}, 1)}, nil
}

// Validate checks options o for a cluster of n nodes before there is one:
// what [New] checks, but for the capabilities of the cluster (a failover
// needs a primary to replace), so that a command can refuse bad flags
// before it starts anything.
func Validate(o Options, n int) error {
	_, _, err := checkOptions(o, n)
	return err
}

// checkOptions checks o against a node count and fills in its defaults;
// it returns the partition shapes to draw from.
func checkOptions(o Options, n int) (Options, []string, error) {
	if o.Interval < 0 || o.ClockMax < 0 || o.Cycles < 0 {
		return o, nil, fmt.Errorf("nemesis: negative interval %s, clock offset %s or cycles %d", o.Interval, o.ClockMax, o.Cycles)
	}
	if o.Interval == 0 {
		o.Interval = 10 * time.Second
	}
	if o.ClockMax == 0 {
		o.ClockMax = 10 * time.Second
	}
	if o.ClockMax < time.Millisecond {
		return o, nil, fmt.Errorf("nemesis: largest clock offset %s is under a millisecond", o.ClockMax)
	}
	o.Faults = slices.Clone(o.Faults)
	for _, f := range o.Faults {
		k := kindNamed(f)
		if k == nil {
			return o, nil, fmt.Errorf("nemesis: unknown fault %q (valid: %s)", f, strings.Join(Kinds(), ", "))
		}
		if err := k.needs(n); err != nil {
			return o, nil, fmt.Errorf("nemesis: %w", err)
		}
	}
	var shapes []string
	for _, want := range o.Partitions {
		if err := checkShape(want, n); err != nil {
			return o, nil, fmt.Errorf("nemesis: %w", err)
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
	return o, shapes, nil
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

// Cycles returns how many faults Run has started and stopped so far.
func (n *Nemesis) Cycles() int { return int(n.cycles.Load()) }

// Failed returns how many nemesis operations were recorded with an error:
// faults that could not be applied or undone, even on a second try.
func (n *Nemesis) Failed() int { return int(n.failed.Load()) }

// Run injects the schedule's faults until ctx is done, or until it has
// started and stopped [Options.Cycles] faults: it waits one interval,
// starts a fault, waits one interval, stops it, and so on. A fault the
// cluster fails to start or stop (twice) is recorded with the error and
// the schedule goes on; while a fault cannot be undone, no new fault
// starts, and each step tries the undo again instead. On its way out Run
// heals the fault in force (within [HealTimeout]) and returns nil, or the
// healing's error. A panic inside Run heals too, then goes on panicking.
// Only one Run may run at a time.
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
	for n.o.Cycles == 0 || n.Cycles() < n.o.Cycles {
		if !sleep(ctx, n.o.Interval) {
			return n.healOnExit()
		}
		s := p.next()
		if n.lingering() {
			// A fault that could not be undone: try again, and start
			// nothing new on a cluster in a state no one planned.
			n.lock()
			_ = n.undo()
			n.unlock()
			if n.lingering() {
				continue
			}
		}
		_ = n.start(ctx, s) // recorded with its error
		if !sleep(ctx, n.o.Interval) {
			return n.healOnExit()
		}
		_ = n.stop()
		n.cycles.Add(1)
	}
	return n.healOnExit()
}

// lingering reports whether a fault is (partly) in force between steps:
// one whose stop failed.
func (n *Nemesis) lingering() bool {
	n.lock()
	defer n.unlock()
	return n.cur != nil
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

// pause waits d.
func pause(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

func (n *Nemesis) healOnExit() error {
	ctx, cancel := context.WithTimeout(context.Background(), HealTimeout)
	defer cancel()
	return n.HealAll(ctx)
}

// try calls a cluster method, and once more after a pause when it fails;
// the second error is the one returned.
func (n *Nemesis) try(call func() error) error {
	if err := call(); err == nil {
		return nil
	}
	pause(n.retryPause)
	if err := call(); err != nil {
		return fmt.Errorf("%w (tried twice)", err)
	}
	return nil
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

// setCur makes f the fault in force, or none when f is nil or nothing of
// it is left, and publishes its description for Active.
func (n *Nemesis) setCur(f *fault) {
	if f == nil || !f.left {
		n.cur = nil
		n.active.Store(nil)
		return
	}
	n.cur = f
	n.active.Store(&[]string{f.desc()})
}

// start starts step s. The fault counts as in force before the first
// cluster call, so that a failure or a panic half way leaves it for the
// stop or HealAll; a start that failed is still stopped as planned.
func (n *Nemesis) start(ctx context.Context, s Step) error {
	n.lock()
	defer n.unlock()
	f := &fault{kind: kindNamed(s.Kind), step: s, left: true}
	if f.kind == nil {
		panic("nemesis: step of unknown kind " + s.Kind) // steps come from the planner
	}
	n.setCur(f)
	value, err := f.kind.start(ctx, n, f)
	n.setCur(f)
	n.emit("start-"+s.Kind, value, err)
	return err
}

// stop stops the fault in force, if any, as planned: a failover in force
// is carried out.
func (n *Nemesis) stop() error {
	n.lock()
	defer n.unlock()
	f := n.cur
	if f == nil {
		return nil
	}
	value, err := f.kind.stop(n, f)
	n.setCur(f)
	n.emit("stop-"+f.step.Kind, value, err)
	return err
}

// undo undoes the fault in force, if any, and records that. The caller
// holds the lock. What it could not undo stays in force. A failover not
// yet carried out is undone by healing its partition only.
func (n *Nemesis) undo() error {
	f := n.cur
	if f == nil {
		return nil
	}
	value, err := f.kind.undo(n, f)
	n.setCur(f)
	n.emit("stop-"+f.step.Kind, value, err)
	return err
}

// emit records a nemesis operation, with the error's text if any.
func (n *Nemesis) emit(f string, value history.Value, err error) {
	if err != nil {
		n.failed.Add(1)
	}
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
	case KindPartition:
		return grudgeValue(s.Grudge)
	case KindClock:
		return clockValue(s.Nodes[0], s.Offset, s.Period)
	default:
		return nodesValue(s.Nodes)
	}
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

// joinErrs joins errs with "; " (errors.Join's newlines do not fit on a
// history line), keeping them for errors.Is; nil when there are none.
func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return joinedError(errs)
}

type joinedError []error

func (e joinedError) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e joinedError) Unwrap() []error { return e }

// joinNodes is "n1,n2".
func joinNodes(nodes []string) string { return strings.Join(nodes, ",") }
