// This file holds the lww, hlc and mvr engine itself: how the modes work,
// their bounds, the node type with its start, stop and status, replica
// placement on the ring, write stamps, and the dispatch of peer messages.
// The engine's other parts: lww_crdt.go (replica state and merges),
// lww_outbox.go (batched replica messages), lww_quorum.go (W-acked updates,
// R-answered reads, read repair), lww_handlers.go (client operations),
// lww_antientropy.go and lww_mvr.go (mvr's multi-value registers).

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
//     sums them. With CounterImpl g they are G-Counters, the increments
//     half alone: a negative add is refused. Sets are OR-sets: an add
//     sends the element with a unique tag; a read returns the union of R
//     replicas' elements. Replicas, reads and anti-entropy all merge, so
//     no acknowledged add or increment is lost. With SetImpl lww-blob a
//     set is instead one last-write-wins register holding a JSON array,
//     updated by read-modify-write (read R, add, write W), so that
//     concurrent adds overwrite each other.
//   - Sessions: a client token holds, per key, the stamp of the newest
//     version the client saw. A read waits (re-asking the replicas) until the
//     newest answer is at least that new; a write in lww mode waits until
//     the coordinator's wall clock has passed it (in hlc mode the clock
//     observes it). Both give up after SessionWait with ErrSession. Sessions
//     cover registers; set and counter operations pass the token through.
//
// The mvr mode is the same engine with multi-value registers in place of
// last-write-wins ones (lww_mvr.go): no stamp, and so no clock, decides
// anything in it.
//
// Replicas keep everything in memory: a killed node restarts empty and
// catches up by read repair and anti-entropy.

// Peer message kinds of the lww, hlc and mvr modes.
const (
	lwwBatchKind = "lww-batch" // replica operations: writes, reads, counter slots, set adds
	lwwAEKind    = "lww-ae"    // anti-entropy push, answered with what the receiver holds newer
	mvrWriteKind = "mvr-write" // a register write handed to a replica to coordinate (mvr)
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

// lww is the engine of the lww mode, of the hlc mode when hlc is set, and
// of the mvr mode when mvr is set.
type lww struct {
	e     env
	cfg   Config
	id    string
	hlc   *HLC   // nil in lww and mvr modes
	actor string // this incarnation's counter actor and set tag prefix
	ids   []string
	// mvr: registers are multi-value (lww_mvr.go), their dots issued
	// under dotActor.
	mvr      bool
	dotActor string
	gCounter bool // counters are G-Counters

	shards [lwwShards]lwwShard

	mineMu sync.Mutex
	mine   map[string]lwwSlot // this actor's counter slots, by key
	// requests are the idempotency keys of the adds this node applied
	// (under mineMu, with the slots they changed).
	requests map[string]bool
	seq      atomic.Uint64 // set tag sequence

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

// newLWW makes the lww engine, the hlc engine when hlc is set, or the mvr
// engine when the configuration's mode is mvr.
func newLWW(e env, hlc bool) (engine, error) {
	l := &lww{
		e: e, cfg: e.cfg, id: e.cfg.ID, ids: e.peers.IDs(),
		actor:    e.cfg.ID + "@" + strconv.FormatInt(time.Now().UnixNano(), 36),
		mvr:      e.cfg.Mode == ModeMVR,
		gCounter: e.cfg.CounterImpl == CounterG,
		mine:     map[string]lwwSlot{},
		out:      map[string]*lwwOutbox{},
		stopCh:   make(chan struct{}),
	}
	if hlc {
		l.hlc = NewHLC(e.clock, e.cfg.ID)
	}
	if l.mvr {
		a, err := mvrDotActor(e.cfg)
		if err != nil {
			return nil, err
		}
		l.dotActor = a
	}
	for i := range l.shards {
		s := &l.shards[i]
		s.regs = map[string]lwwVersion{}
		s.mv = map[string]mvrState{}
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
	s.Detail = fmt.Sprintf("N=%d W=%d R=%d sets=%s counters=%s anti-entropy=%s", l.cfg.N, l.cfg.W, l.cfg.R, l.cfg.SetImpl, l.cfg.CounterImpl, ae)
	if l.mvr {
		s.Detail += " dots=" + l.dotActor
	}
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
	case mvrWriteKind:
		if !l.mvr {
			break
		}
		var m mvrWriteMsg
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("decode mvr write from %s: %w", from, err)
		}
		return l.coordinateMVWrite(ctx, m.K, m.V, m.C), nil
	}
	return nil, fmt.Errorf("unknown peer message %q for mode %s", kind, l.cfg.Mode)
}
