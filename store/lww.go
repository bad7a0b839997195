package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The lww and hlc modes work the way Dynamo-style stores (Cassandra, Riak)
// do:
//
//   - Each key lives on N replicas: the nodes that follow the key's hash on
//     a ring of the sorted node ids. Any node coordinates any request, for
//     keys it replicates or not.
//   - A write is stamped by its coordinator (lww: the coordinator's wall
//     clock, which the nemesis may skew; hlc: a hybrid logical clock that
//     observes every stamp carried by a message), sent to all N replicas at
//     once, and acknowledged once W replicas acknowledged it. A replica keeps
//     the version with the greatest stamp and ignores an older one arriving
//     later: under clock skew an acknowledged write silently loses to an
//     older one. Replica messages are batched per peer; replication that no
//     client waits for (with W=1 on a replica coordinator) may linger up to
//     5 ms to share a message, as in Cassandra's message coalescing.
//   - A read asks R replicas (the coordinator itself first when it is one),
//     and the other replicas too when one of those fails, does not answer
//     within a speculative retry delay (RequestTimeout/10), or the answers
//     do not satisfy the client's session, as Cassandra does. It returns the
//     newest version among the answers; the replicas that answered with an
//     older one, late answers included, are repaired in the background
//     (read repair).
//   - A compare-and-set reads with R, compares, then writes with W. It is not
//     atomic across replicas, as in those stores without their
//     Paxos-based "lightweight transactions": two CAS from the same old value
//     can both succeed.
//   - Anti-entropy: in each round a node pushes its whole state, in
//     messages of about lwwAEBudget units, to each peer that replicates the
//     same keys; the peer merges it and answers with what it holds newer,
//     which the sender merges in turn. Rounds start AntiEntropy apart, or
//     twice the last round's length apart when that is longer, so that a
//     large state never starves client requests.
//   - Counters are PN-counters: a counter add raises the coordinator's own
//     slot (its actor is the node id and the start time, so that a restarted
//     node never reuses a slot) and sends the slot to the N replicas (W
//     acks); a read merges R replicas' slots (the greatest of each) and
//     sums them. Sets are OR-sets: an add sends the element with a unique
//     tag; a read returns the union of R replicas' elements. Replicas, reads
//     and anti-entropy all merge, so no acknowledged add or increment is
//     lost. With SetImpl lww-blob a set is instead one last-write-wins
//     register holding a JSON array, updated by read-modify-write (read R,
//     add, write W), so that concurrent adds overwrite each other.
//   - Sessions: a client token holds, per key, the stamp of the newest
//     version the client saw. A read waits (re-asking the replicas) until the
//     newest answer is at least that new; a write in lww mode waits until
//     the coordinator's wall clock has passed it (in hlc mode the clock
//     observes it). Both give up after SessionWait with ErrSession. Sessions
//     cover registers; set and counter operations pass the token through.
//
// Replicas keep everything in memory: a killed node restarts empty and
// catches up by read repair and anti-entropy.

// Peer message kinds of the lww and hlc modes.
const (
	lwwBatchKind = "lww-batch" // replica operations: writes, reads, counter slots, set adds
	lwwAEKind    = "lww-ae"    // anti-entropy push, answered with what the receiver holds newer
)

// Bounds of the engine's work.
const (
	lwwShards       = 32                   // state shards, each with its own lock
	lwwWorkers      = 2                    // concurrent batch messages per peer
	lwwLinger       = 5 * time.Millisecond // how long replication nobody waits for may wait to join a batch
	lwwMaxBatch     = 256                  // replica operations per batch message
	lwwMaxQueue     = 8192                 // queued replica operations per peer; beyond, new ones are dropped
	lwwAEBudget     = 2048                 // about how many registers, counter slots and set tags go in one anti-entropy message
	lwwMaxRepairs   = 32                   // reads waiting for late answers to repair, at once
	lwwSessionPause = 5 * time.Millisecond // first pause before a session read asks the replicas again
)

// Replica operation types, the T of an lwwItem.
const (
	lwwOpWrite       = "w"  // store a register version if newer
	lwwOpRead        = "r"  // answer a register's version
	lwwOpCounterSlot = "c"  // merge one actor's counter slot
	lwwOpCounterRead = "cr" // answer a counter's slots
	lwwOpSetAdd      = "s"  // add a tagged element to an OR-set
	lwwOpSetRead     = "sr" // answer an OR-set's tagged elements
)

// lwwItem is one replica operation.
type lwwItem struct {
	T   string          `json:"t"`
	K   string          `json:"k"`
	V   json.RawMessage `json:"v,omitempty"` // register value or set element (canonical JSON)
	S   *Stamp          `json:"s,omitempty"` // register stamp
	A   string          `json:"a,omitempty"` // counter actor
	P   int64           `json:"p,omitempty"` // counter actor's increments
	N   int64           `json:"n,omitempty"` // counter actor's decrements
	Tag string          `json:"g,omitempty"` // set element tag
}

// lwwReply answers one replica operation: empty for an update, the state
// of the key for a read.
type lwwReply struct {
	S *Stamp             `json:"s,omitempty"` // register stamp (absent: never written)
	V json.RawMessage    `json:"v,omitempty"` // register value
	C map[string]lwwSlot `json:"c,omitempty"` // counter slots by actor
	E []lwwElem          `json:"e,omitempty"` // set elements with their tags
}

type lwwBatch struct {
	Items []lwwItem `json:"items"`
}

type lwwBatchReply struct {
	Items []lwwReply `json:"items"`
}

// lwwSlot is one actor's part of a PN-counter: its total increments and
// decrements. Slots merge by taking the greater of each.
type lwwSlot struct {
	P int64 `json:"p"`
	N int64 `json:"n"`
}

func (s lwwSlot) merge(o lwwSlot) lwwSlot { return lwwSlot{P: max(s.P, o.P), N: max(s.N, o.N)} }

// lwwElem is an OR-set element (canonical JSON) with the unique tags of its
// adds.
type lwwElem struct {
	V    json.RawMessage `json:"v"`
	Tags []string        `json:"g"`
}

// lwwVersion is a register's value and the stamp of its write.
type lwwVersion struct {
	S Stamp
	V json.RawMessage
}

// lwwShard holds the replica state of the keys hashed to it.
type lwwShard struct {
	mu       sync.Mutex
	regs     map[string]lwwVersion
	counters map[string]map[string]lwwSlot             // key -> actor -> slot
	sets     map[string]map[string]map[string]struct{} // key -> element -> tags
}

// lwwOutcome is what became of a replica operation.
type lwwOutcome uint8

const (
	lwwAcked   lwwOutcome = iota // the replica answered
	lwwMaybe                     // no answer: it may or may not have been applied
	lwwRefused                   // certainly not delivered (connection refused, dropped from the queue)
)

type lwwResult struct {
	from string
	out  lwwOutcome
	rep  lwwReply
}

// lwwPending is a replica operation waiting in a peer's outbox.
type lwwPending struct {
	it       lwwItem
	deadline time.Time
	ch       chan<- lwwResult // buffered for every replica of the fan-out; nil: nobody waits
	// urgent: a coordinator waits for this answer (a read, or a write that
	// needs this replica's ack to reach W); otherwise the operation may
	// linger in the queue to share a message with others, as replication
	// that no client waits for does in Cassandra's message coalescing.
	urgent bool
}

func (p *lwwPending) done(r lwwResult) {
	if p.ch != nil {
		p.ch <- r
	}
}

// lwwOutbox batches the replica operations bound for one peer: one
// goroutine takes whatever has queued up and sends it as one message, with
// up to lwwWorkers messages in flight, so that under load one message
// carries many operations. A full queue refuses new operations, and
// operations past their deadline are dropped unsent: anti-entropy repairs
// what they would have carried.
type lwwOutbox struct {
	l      *lww
	to     string
	mu     sync.Mutex
	queue  []*lwwPending
	urgent int           // urgent operations in the queue
	notify chan struct{} // something was queued
	hurry  chan struct{} // something urgent was queued
}

type lww struct {
	e     env
	cfg   Config
	id    string
	hlc   *HLC   // nil in lww mode
	actor string // this incarnation's counter actor and set tag prefix
	ids   []string

	shards [lwwShards]lwwShard

	mineMu sync.Mutex
	mine   map[string]lwwSlot // this actor's counter slots, by key
	seq    atomic.Uint64      // set tag sequence

	lastMu sync.Mutex
	last   Stamp // last wall-clock stamp issued (lww), to keep stamps unique

	out map[string]*lwwOutbox

	ctx      context.Context // cancelled by stop
	cancel   context.CancelFunc
	stopCh   chan struct{}
	stopOnce sync.Once
	bgMu     sync.Mutex
	stopping bool
	wg       sync.WaitGroup
	ready    atomic.Bool
	repairs  atomic.Int32
	spread   atomic.Uint64 // rotates the replicas remote reads go to first
	round    atomic.Uint64 // anti-entropy rounds
}

// newLWW makes the lww engine, or the hlc engine when hlc is set.
func newLWW(e env, hlc bool) (engine, error) {
	l := &lww{
		e: e, cfg: e.cfg, id: e.cfg.ID, ids: e.peers.IDs(),
		actor:  e.cfg.ID + "@" + strconv.FormatInt(time.Now().UnixNano(), 36),
		mine:   map[string]lwwSlot{},
		out:    map[string]*lwwOutbox{},
		stopCh: make(chan struct{}),
	}
	if hlc {
		l.hlc = NewHLC(e.clock, e.cfg.ID)
	}
	for i := range l.shards {
		s := &l.shards[i]
		s.regs = map[string]lwwVersion{}
		s.counters = map[string]map[string]lwwSlot{}
		s.sets = map[string]map[string]map[string]struct{}{}
	}
	for _, p := range e.peers.Others() {
		l.out[p] = &lwwOutbox{l: l, to: p, notify: make(chan struct{}, 1), hurry: make(chan struct{}, 1)}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

func (l *lww) start(ctx context.Context) error {
	for _, o := range l.out {
		l.wg.Go(o.run)
	}
	if l.cfg.AntiEntropy > 0 {
		l.wg.Go(l.antiEntropyLoop)
	}
	l.ready.Store(true)
	return nil
}

func (l *lww) stop() error {
	l.stopOnce.Do(func() {
		l.bgMu.Lock()
		l.stopping = true
		l.bgMu.Unlock()
		l.ready.Store(false)
		close(l.stopCh)
		l.cancel()
	})
	l.wg.Wait()
	return nil
}

// goBG runs f in the background unless the engine is stopping; stop waits
// for it.
func (l *lww) goBG(f func()) bool {
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	if l.stopping {
		return false
	}
	l.wg.Go(f)
	return true
}

func (l *lww) status(s *Status) {
	s.Ready = l.ready.Load()
	s.Role = "replica"
	ae := "off"
	if l.cfg.AntiEntropy > 0 {
		ae = l.cfg.AntiEntropy.String()
	}
	s.Detail = fmt.Sprintf("N=%d W=%d R=%d sets=%s anti-entropy=%s", l.cfg.N, l.cfg.W, l.cfg.R, l.cfg.SetImpl, ae)
}

// shard returns the shard holding key.
func (l *lww) shard(key string) *lwwShard { return &l.shards[lwwHash(key)%lwwShards] }

// lwwHash is FNV-1a: the same on every node, so that every node places a key
// on the same replicas.
func lwwHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// lwwReplicas returns the N nodes that hold key: from the key's hash onwards
// on the ring of sorted node ids.
func lwwReplicas(ids []string, n int, key string) []string {
	if n >= len(ids) {
		return ids
	}
	start := int(lwwHash(key) % uint64(len(ids)))
	out := make([]string, n)
	for i := range out {
		out[i] = ids[(start+i)%len(ids)]
	}
	return out
}

func (l *lww) replicas(key string) []string { return lwwReplicas(l.ids, l.cfg.N, key) }

// replicates reports whether node holds key.
func (l *lww) replicates(node, key string) bool {
	for _, r := range l.replicas(key) {
		if r == node {
			return true
		}
	}
	return false
}

// stamp returns the stamp of a write coordinated now: the wall clock (lww)
// or the next HLC stamp (hlc).
func (l *lww) stamp() Stamp {
	if l.hlc != nil {
		return l.hlc.Next()
	}
	now := l.e.clock.Now()
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	s := Stamp{Wall: now, Node: l.id}
	if now == l.last.Wall {
		s.Logical = l.last.Logical + 1 // two writes in one nanosecond stay distinct
	}
	l.last = s
	return s
}

// observe folds a stamp carried by a message into the HLC (hlc mode).
func (l *lww) observe(s *Stamp) {
	if l.hlc != nil && s != nil && s.Index == 0 {
		l.hlc.Observe(*s)
	}
}

// --- replica state ---

// apply performs a replica operation on this node's state.
func (l *lww) apply(it lwwItem) lwwReply {
	s := l.shard(it.K)
	switch it.T {
	case lwwOpWrite:
		if it.S == nil {
			return lwwReply{}
		}
		v := it.V
		if len(v) == 0 {
			v = nullJSON
		}
		s.mu.Lock()
		s.mergeReg(it.K, lwwVersion{S: *it.S, V: v})
		s.mu.Unlock()
	case lwwOpRead:
		s.mu.Lock()
		cur, ok := s.regs[it.K]
		s.mu.Unlock()
		if ok {
			st := cur.S
			return lwwReply{S: &st, V: cur.V}
		}
	case lwwOpCounterSlot:
		s.mu.Lock()
		s.mergeCounter(it.K, map[string]lwwSlot{it.A: {P: it.P, N: it.N}})
		s.mu.Unlock()
	case lwwOpCounterRead:
		s.mu.Lock()
		defer s.mu.Unlock()
		if c := s.counters[it.K]; len(c) > 0 {
			out := make(map[string]lwwSlot, len(c))
			for a, sl := range c {
				out[a] = sl
			}
			return lwwReply{C: out}
		}
	case lwwOpSetAdd:
		s.mu.Lock()
		s.mergeSet(it.K, []lwwElem{{V: it.V, Tags: []string{it.Tag}}})
		s.mu.Unlock()
	case lwwOpSetRead:
		s.mu.Lock()
		defer s.mu.Unlock()
		return lwwReply{E: s.setElems(it.K, nil)}
	}
	return lwwReply{}
}

// mergeReg keeps the version with the greater stamp; an older or equal one
// is ignored. It reports whether v replaced the held version.
func (s *lwwShard) mergeReg(key string, v lwwVersion) bool {
	cur, ok := s.regs[key]
	if ok && !cur.S.Less(v.S) {
		return false
	}
	s.regs[key] = v
	return true
}

// mergeCounter takes the greater of each slot.
func (s *lwwShard) mergeCounter(key string, slots map[string]lwwSlot) {
	c := s.counters[key]
	if c == nil {
		c = make(map[string]lwwSlot, len(slots))
		s.counters[key] = c
	}
	for a, sl := range slots {
		c[a] = c[a].merge(sl)
	}
}

// mergeSet adds the tagged elements.
func (s *lwwShard) mergeSet(key string, elems []lwwElem) {
	set := s.sets[key]
	if set == nil {
		set = map[string]map[string]struct{}{}
		s.sets[key] = set
	}
	for _, e := range elems {
		tags := set[string(e.V)]
		if tags == nil {
			tags = make(map[string]struct{}, len(e.Tags))
			set[string(e.V)] = tags
		}
		for _, t := range e.Tags {
			tags[t] = struct{}{}
		}
	}
}

// setElems returns key's elements with their tags, leaving out the tags
// skip holds (skip may be nil).
func (s *lwwShard) setElems(key string, skip map[string]map[string]struct{}) []lwwElem {
	set := s.sets[key]
	if len(set) == 0 {
		return nil
	}
	out := make([]lwwElem, 0, len(set))
	for v, tags := range set {
		we := lwwElem{V: json.RawMessage(v)}
		for t := range tags {
			if _, ok := skip[v][t]; !ok {
				we.Tags = append(we.Tags, t)
			}
		}
		if len(we.Tags) > 0 {
			out = append(out, we)
		}
	}
	return out
}

// --- peer messages ---

func (l *lww) peer(ctx context.Context, from, kind string, body []byte) (any, error) {
	switch kind {
	case lwwBatchKind:
		var m lwwBatch
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("decode batch from %s: %w", from, err)
		}
		out := lwwBatchReply{Items: make([]lwwReply, len(m.Items))}
		for i, it := range m.Items {
			l.observe(it.S)
			out.Items[i] = l.apply(it)
		}
		return out, nil
	case lwwAEKind:
		var m lwwAEMsg
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("decode anti-entropy from %s: %w", from, err)
		}
		return l.mergeAE(m, true), nil
	}
	return nil, fmt.Errorf("unknown peer message %q for mode %s", kind, l.cfg.Mode)
}

// push queues a replica operation for the peer.
func (o *lwwOutbox) push(p *lwwPending) {
	select {
	case <-o.l.stopCh:
		p.done(lwwResult{from: o.to, out: lwwRefused})
		return
	default:
	}
	o.mu.Lock()
	if len(o.queue) >= lwwMaxQueue {
		o.mu.Unlock()
		p.done(lwwResult{from: o.to, out: lwwRefused})
		return
	}
	o.queue = append(o.queue, p)
	if p.urgent {
		o.urgent++
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	if p.urgent {
		select {
		case o.hurry <- struct{}{}:
		default:
		}
	}
}

// linger waits up to lwwLinger for more operations to join the next batch,
// unless one in the queue is urgent or the batch is full.
func (o *lwwOutbox) linger() {
	o.mu.Lock()
	wait := o.urgent == 0 && len(o.queue) < lwwMaxBatch
	o.mu.Unlock()
	if !wait {
		return
	}
	t := time.NewTimer(lwwLinger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-o.hurry:
	case <-o.l.stopCh:
	}
}

// take removes up to lwwMaxBatch operations from the queue; it answers
// those whose deadline passed as refused (they were never sent).
func (o *lwwOutbox) take() (batch, expired []*lwwPending) {
	now := time.Now()
	o.mu.Lock()
	i := 0
	for ; i < len(o.queue) && len(batch) < lwwMaxBatch; i++ {
		p := o.queue[i]
		if p.urgent {
			o.urgent--
		}
		if now.After(p.deadline) {
			expired = append(expired, p)
			continue
		}
		batch = append(batch, p)
	}
	n := copy(o.queue, o.queue[i:])
	clear(o.queue[n:])
	o.queue = o.queue[:n]
	o.mu.Unlock()
	return batch, expired
}

// run sends the queue's operations in batches, with up to lwwWorkers
// messages in flight, until stop.
func (o *lwwOutbox) run() {
	slots := make(chan struct{}, lwwWorkers)
	var sending sync.WaitGroup
	defer sending.Wait()
	for {
		select {
		case <-o.l.stopCh:
			o.failAll()
			return
		case <-o.notify:
		}
		o.linger()
		for {
			select {
			case slots <- struct{}{}:
			case <-o.l.stopCh:
				o.failAll()
				return
			}
			batch, expired := o.take()
			for _, p := range expired {
				p.done(lwwResult{from: o.to, out: lwwRefused})
			}
			if len(batch) == 0 {
				<-slots
				break
			}
			sending.Go(func() {
				o.send(batch)
				<-slots
			})
		}
	}
}

// failAll answers every queued operation as never sent.
func (o *lwwOutbox) failAll() {
	o.mu.Lock()
	q := o.queue
	o.queue, o.urgent = nil, 0
	o.mu.Unlock()
	for _, p := range q {
		p.done(lwwResult{from: o.to, out: lwwRefused})
	}
}

// send delivers one batch and answers its operations.
func (o *lwwOutbox) send(batch []*lwwPending) {
	m := lwwBatch{Items: make([]lwwItem, len(batch))}
	for i, p := range batch {
		m.Items[i] = p.it
	}
	ctx, cancel := context.WithTimeout(o.l.ctx, o.l.cfg.RequestTimeout)
	var rep lwwBatchReply
	err := o.l.e.peers.Call(ctx, o.to, lwwBatchKind, m, &rep)
	cancel()
	switch {
	case err == nil && len(rep.Items) == len(batch):
		for i, p := range batch {
			p.done(lwwResult{from: o.to, out: lwwAcked, rep: rep.Items[i]})
		}
	case err != nil && lwwUndelivered(err):
		for _, p := range batch {
			p.done(lwwResult{from: o.to, out: lwwRefused})
		}
	default:
		for _, p := range batch {
			p.done(lwwResult{from: o.to, out: lwwMaybe})
		}
	}
}

// lwwUndelivered reports whether a peer call's error proves the
// message never reached the peer: the connection could not be opened. A
// missing reply (ErrNoReply) or an error answer may follow delivery.
func lwwUndelivered(err error) bool {
	var op *net.OpError
	return !errors.Is(err, ErrNoReply) && errors.As(err, &op) && op.Op == "dial"
}

// fanout sends a replica operation to every replica of its key, applying
// it at once on this node when it is one. Each replica's result arrives
// once on the returned channel, which never blocks its senders.
func (l *lww) fanout(it lwwItem, deadline time.Time) (<-chan lwwResult, int) {
	reps := l.replicas(it.K)
	ch := make(chan lwwResult, len(reps))
	local := slices.Contains(reps, l.id)
	// With W=1 a replica coordinator acknowledges on its own: the others
	// replicate in the background.
	urgent := !local || l.cfg.W > 1
	for _, r := range reps {
		if r != l.id {
			l.out[r].push(&lwwPending{it: it, deadline: deadline, ch: ch, urgent: urgent})
		}
	}
	if local {
		ch <- lwwResult{from: l.id, out: lwwAcked, rep: l.apply(it)}
	}
	return ch, len(reps)
}

// lwwAsk is a read in progress: like Cassandra, a coordinator asks R
// replicas first (itself first when it is one) and the others only when one
// of those fails, does not answer within the speculative retry delay, or
// answers without satisfying the read (a client's session). Late answers
// feed read repair.
type lwwAsk struct {
	l        *lww
	it       lwwItem
	deadline time.Time
	ch       chan lwwResult
	reps     []string // every replica, in the order they are asked
	asked    int
	// At poll, a read that has answers enough to stop (settle returns
	// true) stops waiting for the others and asks again from scratch: a
	// session read that a cut-off replica holds up then sees the replicas
	// catch up. The zero poll never comes.
	poll   time.Time
	settle func() bool
}

func (l *lww) newAsk(it lwwItem, deadline time.Time) *lwwAsk {
	ring := l.replicas(it.K)
	reps := make([]string, 0, len(ring))
	var others []string
	for _, r := range ring {
		if r == l.id {
			reps = append(reps, r)
		} else {
			others = append(others, r)
		}
	}
	// Spread the remote reads over the replicas.
	if len(others) > 1 {
		k := int(l.spread.Add(1) % uint64(len(others)))
		others = append(others[k:], others[:k]...)
	}
	reps = append(reps, others...)
	return &lwwAsk{l: l, it: it, deadline: deadline, ch: make(chan lwwResult, len(reps)), reps: reps}
}

// send asks k more replicas.
func (a *lwwAsk) send(k int) {
	for ; k > 0 && a.asked < len(a.reps); k-- {
		r := a.reps[a.asked]
		a.asked++
		if r == a.l.id {
			a.ch <- lwwResult{from: r, out: lwwAcked, rep: a.l.apply(a.it)}
		} else {
			a.l.out[r].push(&lwwPending{it: a.it, deadline: a.deadline, ch: a.ch, urgent: true})
		}
	}
}

// gather asks the first replicas and reads their answers until enough
// returns true; it asks the rest when one fails, when the speculative
// retry delay passes, or when all asked answered without enough. It
// returns how many answers arrived; it stops at the deadline, ctx's end or
// stop.
func (a *lwwAsk) gather(ctx context.Context, first int, enough func(lwwResult) bool) int {
	l := a.l
	a.send(first)
	var timer, spec, poll *time.Timer
	var specC, pollC <-chan time.Time
	defer func() {
		for _, t := range []*time.Timer{timer, spec, poll} {
			if t != nil {
				t.Stop()
			}
		}
	}()
	got := 0
	for {
		if got == a.asked {
			if a.asked == len(a.reps) {
				return got
			}
			a.send(len(a.reps))
		}
		var r lwwResult
		select {
		case r = <-a.ch:
		default:
			if timer == nil {
				timer = time.NewTimer(time.Until(a.deadline))
				if a.asked < len(a.reps) {
					spec = time.NewTimer(l.cfg.RequestTimeout / 10)
					specC = spec.C
				}
				if !a.poll.IsZero() {
					poll = time.NewTimer(time.Until(a.poll))
					pollC = poll.C
				}
			}
			select {
			case r = <-a.ch:
			case <-specC:
				specC = nil
				a.send(len(a.reps))
				continue
			case <-pollC:
				pollC = nil
				if a.settle() {
					return got
				}
				continue
			case <-timer.C:
				return got
			case <-ctx.Done():
				return got
			case <-l.stopCh:
				return got
			}
		}
		got++
		if r.out != lwwAcked {
			a.send(len(a.reps))
		}
		if enough(r) {
			return got
		}
	}
}

// gather reads results from ch until enough returns true, all n results
// are in, or the deadline, ctx or stop comes. It returns how many results
// arrived.
func (l *lww) gather(ctx context.Context, ch <-chan lwwResult, n int, deadline time.Time, enough func(lwwResult) bool) int {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for got := 0; got < n; {
		var r lwwResult
		select {
		case r = <-ch:
		default:
			if timer == nil {
				timer = time.NewTimer(time.Until(deadline))
			}
			select {
			case r = <-ch:
			case <-timer.C:
				return got
			case <-ctx.Done():
				return got
			case <-l.stopCh:
				return got
			}
		}
		got++
		if enough(r) {
			return got
		}
	}
	return n
}

// deadline is when an operation's replica round trips end: RequestTimeout
// from now, or ctx's deadline if sooner.
func (l *lww) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(l.cfg.RequestTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// update sends a replica update to the key's replicas and waits for W
// acknowledgements. Fewer is ErrIndeterminate, unless every replica
// certainly did not get it (ErrUnavailable).
func (l *lww) update(ctx context.Context, it lwwItem) (ErrorKind, string) {
	deadline := l.deadline(ctx)
	ch, n := l.fanout(it, deadline)
	var acks, refusedN int
	l.gather(ctx, ch, n, deadline, func(r lwwResult) bool {
		switch r.out {
		case lwwAcked:
			acks++
		case lwwRefused:
			refusedN++
		}
		return acks >= l.cfg.W
	})
	switch {
	case acks >= l.cfg.W:
		return "", ""
	case refusedN == n:
		return ErrUnavailable, fmt.Sprintf("no replica of %q reachable", it.K)
	}
	return ErrIndeterminate, fmt.Sprintf("%d of W=%d replicas acknowledged in time; the others may have applied it or still apply it", acks, l.cfg.W)
}

// --- client operations ---

func (l *lww) do(ctx context.Context, req Request) Response {
	if !l.ready.Load() {
		return Response{Error: ErrUnavailable, Message: "node is not serving"}
	}
	sess := &Session{}
	sess.Merge(req.Session)
	if l.hlc != nil {
		for _, st := range sess.Seen {
			l.observe(&st)
		}
	}
	need := sess.Seen[req.Key]
	if need.Index != 0 {
		need = Stamp{} // a stamp from another mode's session means nothing here
	}
	switch req.Op {
	case OpRead:
		return l.doRead(ctx, req, sess, need)
	case OpWrite:
		return l.doWrite(ctx, req, sess, need)
	case OpCAS:
		return l.doCAS(ctx, req, sess, need)
	case OpCounterAdd:
		return l.doCounterAdd(ctx, req, sess)
	case OpCounterRead:
		return l.doCounterRead(ctx, req, sess)
	case OpSetAdd:
		if l.cfg.SetImpl == SetLWWBlob {
			return l.doBlobAdd(ctx, req, sess)
		}
		return l.doSetAdd(ctx, req, sess)
	case OpSetRead:
		if l.cfg.SetImpl == SetLWWBlob {
			return l.doBlobRead(ctx, req, sess)
		}
		return l.doSetRead(ctx, req, sess)
	}
	return badRequest("unknown operation %q", req.Op)
}

// readRegister reads key from R replicas and returns the newest version
// (a zero stamp and null when none has it). With need set, it waits until
// the newest answer is at least need, asking the replicas again, for up to
// SessionWait.
func (l *lww) readRegister(ctx context.Context, key string, need Stamp) (lwwVersion, ErrorKind, string) {
	giveUp := time.Now().Add(l.cfg.SessionWait)
	pause := lwwSessionPause
	for {
		deadline := l.deadline(ctx)
		ask := l.newAsk(lwwItem{T: lwwOpRead, K: key}, deadline)
		var (
			newest  = lwwVersion{V: nullJSON}
			answers int
			seen    = make([]lwwAnswer, 0, len(ask.reps))
		)
		if !need.IsZero() {
			// R answers that are all too old: ask again soon rather than
			// wait out a replica that may be cut off.
			ask.poll = time.Now().Add(min(max(l.cfg.SessionWait/5, 10*time.Millisecond), l.cfg.RequestTimeout))
			ask.settle = func() bool { return answers >= l.cfg.R }
		}
		got := ask.gather(ctx, l.cfg.R, func(r lwwResult) bool {
			if r.out != lwwAcked {
				return false
			}
			answers++
			a := lwwAnswer{from: r.from}
			if r.rep.S != nil {
				l.observe(r.rep.S)
				a.s = *r.rep.S
				if newest.S.Less(a.s) {
					newest = lwwVersion{S: a.s, V: lwwOrNull(r.rep.V)}
				}
			}
			seen = append(seen, a)
			return answers >= l.cfg.R && !newest.S.Less(need)
		})
		if answers >= l.cfg.R && !newest.S.Less(need) {
			l.readRepair(ask.ch, ask.asked-got, deadline, key, newest, seen)
			return newest, "", ""
		}
		if answers < l.cfg.R {
			return lwwVersion{}, ErrUnavailable, fmt.Sprintf("%d of R=%d replicas answered", answers, l.cfg.R)
		}
		if !time.Now().Add(pause).Before(giveUp) || ctx.Err() != nil {
			return lwwVersion{}, ErrSession, fmt.Sprintf("no replica caught up with the session's version of %q within %v", key, l.cfg.SessionWait)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		case <-l.stopCh:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// lwwAnswer is a replica's answer to a register read.
type lwwAnswer struct {
	from string
	s    Stamp
}

func lwwOrNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return nullJSON
	}
	return v
}

// readRepair sends the newest version to the replicas that answered with an
// older one, and waits in the background for the late answers to do the
// same. It is bounded: when too many reads wait already, late answers are
// left to anti-entropy.
func (l *lww) readRepair(ch <-chan lwwResult, late int, deadline time.Time, key string, newest lwwVersion, seen []lwwAnswer) {
	if newest.S.IsZero() {
		return
	}
	repair := func(a lwwAnswer) {
		if a.s.Less(newest.S) {
			st := newest.S
			it := lwwItem{T: lwwOpWrite, K: key, V: newest.V, S: &st}
			if a.from == l.id {
				l.apply(it)
			} else {
				l.out[a.from].push(&lwwPending{it: it, deadline: time.Now().Add(l.cfg.RequestTimeout)})
			}
		}
	}
	for _, a := range seen {
		repair(a)
	}
	if late == 0 || l.repairs.Add(1) > lwwMaxRepairs {
		if late > 0 {
			l.repairs.Add(-1)
		}
		return
	}
	if !l.goBG(func() {
		defer l.repairs.Add(-1)
		l.gather(l.ctx, ch, late, deadline, func(r lwwResult) bool {
			if r.out == lwwAcked {
				a := lwwAnswer{from: r.from}
				if r.rep.S != nil {
					l.observe(r.rep.S)
					a.s = *r.rep.S
				}
				repair(a)
			}
			return false
		})
	}) {
		l.repairs.Add(-1)
	}
}

// waitClock holds a write in lww mode until this node's wall clock has
// passed the session's stamp of the key, so that the write supersedes what
// the client saw; it gives up after SessionWait.
func (l *lww) waitClock(ctx context.Context, need Stamp) bool {
	if l.hlc != nil || need.IsZero() {
		return true // the HLC observed the session: its next stamp is greater
	}
	giveUp := time.Now().Add(l.cfg.SessionWait)
	for {
		gap := time.Duration(need.Wall - l.e.clock.Now() + 1)
		if gap <= 0 {
			return true
		}
		if time.Now().Add(gap).After(giveUp) {
			return false
		}
		select {
		case <-time.After(gap):
		case <-ctx.Done():
			return false
		case <-l.stopCh:
			return false
		}
	}
}

// writeRegister stamps v and writes it with W.
func (l *lww) writeRegister(ctx context.Context, key string, v json.RawMessage, need Stamp) (Stamp, ErrorKind, string) {
	if !l.waitClock(ctx, need) {
		return Stamp{}, ErrSession, fmt.Sprintf("this node's clock did not pass the session's version of %q within %v", key, l.cfg.SessionWait)
	}
	st := l.stamp()
	if st.Less(need) || st == need {
		return Stamp{}, ErrSession, fmt.Sprintf("this node's clock is behind the session's version of %q", key)
	}
	kind, msg := l.update(ctx, lwwItem{T: lwwOpWrite, K: key, V: v, S: &st})
	return st, kind, msg
}

func (l *lww) doRead(ctx context.Context, req Request, sess *Session, need Stamp) Response {
	v, kind, msg := l.readRegister(ctx, req.Key, need)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	if !v.S.IsZero() {
		sess.Observe(req.Key, v.S)
	}
	return Response{Value: v.V, Session: sess}
}

func (l *lww) doWrite(ctx context.Context, req Request, sess *Session, need Stamp) Response {
	v := lwwOrNull(req.Value)
	if _, err := canonical(v); err != nil {
		return badRequest("value: %v", err)
	}
	st, kind, msg := l.writeRegister(ctx, req.Key, v, need)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	sess.Observe(req.Key, st)
	return Response{Session: sess}
}

func (l *lww) doCAS(ctx context.Context, req Request, sess *Session, need Stamp) Response {
	nv := lwwOrNull(req.Value)
	if _, err := canonical(nv); err != nil {
		return badRequest("value: %v", err)
	}
	if _, err := canonical(req.Old); err != nil {
		return badRequest("old value: %v", err)
	}
	cur, kind, msg := l.readRegister(ctx, req.Key, need)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	if !cur.S.IsZero() {
		sess.Observe(req.Key, cur.S)
	}
	if !sameValue(cur.V, req.Old) {
		return Response{Error: ErrCASMismatch, Value: cur.V, Session: sess,
			Message: fmt.Sprintf("%q holds %s, not %s", req.Key, cur.V, lwwOrNull(req.Old))}
	}
	// Not atomic: another write may land between the read and this write,
	// and both CAS succeed, as in Dynamo-style stores without Paxos. With a
	// session, the write must also supersede the version just read, or a
	// skewed clock would let the CAS vanish under it.
	wneed := need
	if req.Session != nil && need.Less(cur.S) {
		wneed = cur.S
	}
	st, kind, msg := l.writeRegister(ctx, req.Key, nv, wneed)
	if kind != "" {
		// ErrIndeterminate when some replica may have it; ErrUnavailable or
		// ErrSession when certainly none does.
		return Response{Error: kind, Message: msg, Session: sess}
	}
	sess.Observe(req.Key, st)
	return Response{Session: sess}
}

func (l *lww) doCounterAdd(ctx context.Context, req Request, sess *Session) Response {
	d, err := delta(req.Value)
	if err != nil {
		return badRequest("%v", err)
	}
	// The increment lands in this node's slot at once, so that a later add
	// carries it even if this one reaches no replica: it is never
	// certainly undone, and fewer than W acks is always indeterminate.
	l.mineMu.Lock()
	sl := l.mine[req.Key]
	if d >= 0 {
		sl.P += d
	} else {
		sl.N -= d
	}
	l.mine[req.Key] = sl
	l.mineMu.Unlock()
	kind, msg := l.update(ctx, lwwItem{T: lwwOpCounterSlot, K: req.Key, A: l.actor, P: sl.P, N: sl.N})
	if kind == ErrUnavailable {
		kind = ErrIndeterminate
		msg += "; the increment stays in this node's slot and a later add carries it"
	}
	return Response{Error: kind, Message: msg, Session: sess}
}

func (l *lww) doCounterRead(ctx context.Context, req Request, sess *Session) Response {
	deadline := l.deadline(ctx)
	merged := map[string]lwwSlot{}
	answers := 0
	l.newAsk(lwwItem{T: lwwOpCounterRead, K: req.Key}, deadline).gather(ctx, l.cfg.R, func(r lwwResult) bool {
		if r.out != lwwAcked {
			return false
		}
		answers++
		for a, sl := range r.rep.C {
			merged[a] = merged[a].merge(sl)
		}
		return answers >= l.cfg.R
	})
	if answers < l.cfg.R {
		return Response{Error: ErrUnavailable, Message: fmt.Sprintf("%d of R=%d replicas answered", answers, l.cfg.R), Session: sess}
	}
	var total int64
	for _, sl := range merged {
		total += sl.P - sl.N
	}
	return Response{Value: json.RawMessage(strconv.FormatInt(total, 10)), Session: sess}
}

func (l *lww) doSetAdd(ctx context.Context, req Request, sess *Session) Response {
	c, err := canonical(req.Value)
	if err != nil {
		return badRequest("element: %v", err)
	}
	tag := l.actor + "." + strconv.FormatUint(l.seq.Add(1), 36)
	kind, msg := l.update(ctx, lwwItem{T: lwwOpSetAdd, K: req.Key, V: json.RawMessage(c), Tag: tag})
	return Response{Error: kind, Message: msg, Session: sess}
}

func (l *lww) doSetRead(ctx context.Context, req Request, sess *Session) Response {
	deadline := l.deadline(ctx)
	elems := map[string]bool{}
	answers := 0
	l.newAsk(lwwItem{T: lwwOpSetRead, K: req.Key}, deadline).gather(ctx, l.cfg.R, func(r lwwResult) bool {
		if r.out != lwwAcked {
			return false
		}
		answers++
		for _, e := range r.rep.E {
			elems[string(e.V)] = true
		}
		return answers >= l.cfg.R
	})
	if answers < l.cfg.R {
		return Response{Error: ErrUnavailable, Message: fmt.Sprintf("%d of R=%d replicas answered", answers, l.cfg.R), Session: sess}
	}
	return Response{Value: lwwArray(elems), Session: sess}
}

// lwwArray makes a JSON array of canonical elements, in a stable order.
func lwwArray(elems map[string]bool) json.RawMessage {
	list := make([]string, 0, len(elems))
	for e := range elems {
		list = append(list, e)
	}
	sort.Strings(list)
	return json.RawMessage("[" + strings.Join(list, ",") + "]")
}

// doBlobAdd adds an element the way many applications keep a set in a
// last-write-wins store: read the whole set (R), add the element, write it
// back (W). Two concurrent adds read the same set, and the later stamp
// wins: the other add is silently lost.
func (l *lww) doBlobAdd(ctx context.Context, req Request, sess *Session) Response {
	c, err := canonical(req.Value)
	if err != nil {
		return badRequest("element: %v", err)
	}
	cur, kind, msg := l.readRegister(ctx, req.Key, Stamp{})
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	elems, err := lwwBlobElems(cur.V)
	if err != nil {
		return Response{Error: ErrUnavailable, Message: fmt.Sprintf("set %q: %v", req.Key, err), Session: sess}
	}
	elems[c] = true
	_, kind, msg = l.writeRegister(ctx, req.Key, lwwArray(elems), Stamp{})
	return Response{Error: kind, Message: msg, Session: sess}
}

func (l *lww) doBlobRead(ctx context.Context, req Request, sess *Session) Response {
	cur, kind, msg := l.readRegister(ctx, req.Key, Stamp{})
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	elems, err := lwwBlobElems(cur.V)
	if err != nil {
		return Response{Error: ErrUnavailable, Message: fmt.Sprintf("set %q: %v", req.Key, err), Session: sess}
	}
	return Response{Value: lwwArray(elems), Session: sess}
}

// lwwBlobElems parses a set kept as one JSON array (null: empty) into its
// canonical elements.
func lwwBlobElems(v json.RawMessage) (map[string]bool, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(lwwOrNull(v), &list); err != nil {
		return nil, fmt.Errorf("value %s is not an array: %w", v, err)
	}
	out := make(map[string]bool, len(list)+1)
	for _, e := range list {
		c, err := canonical(e)
		if err != nil {
			return nil, err
		}
		out[c] = true
	}
	return out, nil
}

// --- anti-entropy ---

// lwwAEMsg is an anti-entropy push (and its answer): states of keys, merged
// by the receiver.
type lwwAEMsg struct {
	Regs     []lwwAEReg     `json:"r,omitempty"`
	Counters []lwwAECounter `json:"c,omitempty"`
	Sets     []lwwAESet     `json:"s,omitempty"`
}

type lwwAEReg struct {
	K string          `json:"k"`
	S Stamp           `json:"s"`
	V json.RawMessage `json:"v"`
}

type lwwAECounter struct {
	K string             `json:"k"`
	C map[string]lwwSlot `json:"c"`
}

type lwwAESet struct {
	K string    `json:"k"`
	E []lwwElem `json:"e"`
}

func (m lwwAEMsg) empty() bool { return len(m.Regs)+len(m.Counters)+len(m.Sets) == 0 }

func (l *lww) antiEntropyLoop() {
	wait := l.cfg.AntiEntropy
	for {
		t := time.NewTimer(wait)
		select {
		case <-l.stopCh:
			t.Stop()
			return
		case <-t.C:
		}
		start := time.Now()
		l.antiEntropyRound()
		// A round over a large state takes long and holds shard locks
		// while it merges; pausing twice that long before the next keeps
		// anti-entropy to about a third of the time, so that client
		// requests (the final reads, above all) are not starved.
		wait = max(l.cfg.AntiEntropy, 2*time.Since(start))
	}
}

// antiEntropyRound pushes this node's whole state, shard by shard in
// messages of about lwwAEBudget units, to each peer that replicates it, and
// merges what each answers. A peer that does not answer is skipped until the
// next round. (A budget per round instead left a large state to converge
// over dozens of rounds: after a heal, final reads found set elements still
// missing seconds later.)
func (l *lww) antiEntropyRound() {
	first := int(l.round.Add(1))
	var wg sync.WaitGroup
	for _, p := range l.e.peers.Others() {
		wg.Go(func() {
			for done := 0; done < lwwShards; {
				if l.ctx.Err() != nil {
					return
				}
				m, n := l.aeCollectFrom(p, first+done, lwwShards-done)
				done += n
				if m.empty() {
					continue
				}
				ctx, cancel := context.WithTimeout(l.ctx, l.cfg.RequestTimeout)
				var rep lwwAEMsg
				err := l.e.peers.Call(ctx, p, lwwAEKind, m, &rep)
				cancel()
				if err != nil {
					return // partitioned or down: the next round tries again
				}
				l.mergeAE(rep, false)
			}
		})
	}
	wg.Wait()
}

// aeCollect gathers the state of the keys that peer replicates, whole
// shards at a time from shard first, up to about lwwAEBudget units.
func (l *lww) aeCollect(peer string, first int) lwwAEMsg {
	m, _ := l.aeCollectFrom(peer, first, lwwShards)
	return m
}

// aeCollectFrom gathers whole shards, at most count of them starting at
// shard first, until about lwwAEBudget units; it returns the message and
// how many shards it took.
func (l *lww) aeCollectFrom(peer string, first, count int) (lwwAEMsg, int) {
	var m lwwAEMsg
	units := 0
	i := 0
	for ; i < count && units < lwwAEBudget; i++ {
		s := &l.shards[(first+i)%lwwShards]
		s.mu.Lock()
		for k, v := range s.regs {
			if l.replicates(peer, k) {
				m.Regs = append(m.Regs, lwwAEReg{K: k, S: v.S, V: v.V})
				units++
			}
		}
		for k, c := range s.counters {
			if l.replicates(peer, k) {
				cp := make(map[string]lwwSlot, len(c))
				for a, sl := range c {
					cp[a] = sl
				}
				m.Counters = append(m.Counters, lwwAECounter{K: k, C: cp})
				units += len(c)
			}
		}
		for k := range s.sets {
			if l.replicates(peer, k) {
				e := s.setElems(k, nil)
				m.Sets = append(m.Sets, lwwAESet{K: k, E: e})
				for _, we := range e {
					units += len(we.Tags)
				}
			}
		}
		s.mu.Unlock()
	}
	return m, i
}

// mergeAE merges pushed state; with answer set it returns, for the same
// keys, the state this node holds that the push lacked.
func (l *lww) mergeAE(m lwwAEMsg, reply bool) lwwAEMsg {
	var out lwwAEMsg
	for _, r := range m.Regs {
		l.observe(&r.S)
		s := l.shard(r.K)
		s.mu.Lock()
		if !s.mergeReg(r.K, lwwVersion{S: r.S, V: lwwOrNull(r.V)}) && reply {
			if cur := s.regs[r.K]; r.S.Less(cur.S) {
				out.Regs = append(out.Regs, lwwAEReg{K: r.K, S: cur.S, V: cur.V})
			}
		}
		s.mu.Unlock()
	}
	for _, c := range m.Counters {
		s := l.shard(c.K)
		s.mu.Lock()
		s.mergeCounter(c.K, c.C)
		if reply {
			var newer map[string]lwwSlot
			for a, sl := range s.counters[c.K] {
				if theirs, ok := c.C[a]; !ok || theirs != sl {
					if newer == nil {
						newer = map[string]lwwSlot{}
					}
					newer[a] = sl
				}
			}
			if newer != nil {
				out.Counters = append(out.Counters, lwwAECounter{K: c.K, C: newer})
			}
		}
		s.mu.Unlock()
	}
	for _, st := range m.Sets {
		s := l.shard(st.K)
		s.mu.Lock()
		s.mergeSet(st.K, st.E)
		if reply {
			theirs := make(map[string]map[string]struct{}, len(st.E))
			for _, e := range st.E {
				tags := make(map[string]struct{}, len(e.Tags))
				for _, t := range e.Tags {
					tags[t] = struct{}{}
				}
				theirs[string(e.V)] = tags
			}
			if extra := s.setElems(st.K, theirs); len(extra) > 0 {
				out.Sets = append(out.Sets, lwwAESet{K: st.K, E: extra})
			}
		}
		s.mu.Unlock()
	}
	return out
}
