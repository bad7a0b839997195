// This file holds the primary engine itself: how the primary mode works,
// its bounds, its state and log entries, and the node type with its start,
// stop, status and the dispatch of peer messages. The mode's other parts:
// primary_failover.go (pings, promotion, stepping down),
// primary_replication.go (the log shipped to followers, full copies) and
// primary_serve.go (client operations and forwarding).

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/eccheck/eccheck/checkers"
)

// The primary mode is asynchronous primary/replica replication with
// failover, the way Postgres async streaming replication with a failover
// manager or Redis replication with Sentinel behave:
//
//   - One primary per epoch (a term number). A fresh cluster starts with the
//     lowest node id as primary of epoch 1.
//   - The primary applies writes, CASes (atomically, against its own state),
//     set adds and counter adds to its state, appends them to its log with
//     increasing indexes and acknowledges the client at once. A background
//     loop per follower ships the log in batches (or heartbeats when there is
//     nothing new); followers apply entries in order and reply with the index
//     they have. Nothing waits for a follower, so an acknowledged write that
//     was not shipped yet exists only on the primary.
//   - Writes that reach a follower are forwarded to the node it believes is
//     the primary, with the request's deadline. A forwarded write that gets
//     no reply is ErrIndeterminate; one certainly not delivered (connection
//     refused, an error status) is ErrUnavailable, as is any forwarded read
//     that fails (a read changes nothing). A node that receives a
//     forwarded request while not the primary answers ErrNotLeader naming the
//     primary it knows; forwarding never takes a second hop. Forwarding was
//     chosen over answering ErrNotLeader so that clients bound to one node
//     (as the harness's are) can write through any node.
//   - Reads: with Config.PrimaryReads "any" every node answers from its own
//     copy (a follower's may be stale); with "primary" reads are forwarded to
//     the primary like writes. A node that restarted empty answers no read
//     (ErrUnavailable) until it has received its copy, as a Postgres replica
//     does not serve before it is consistent.
//   - Failover: a follower that has heard nothing from its primary for
//     Config.FailoverTimeout pings every peer. If some peer knows a newer
//     primary it follows that one; if its own primary answers, it waits on.
//     Otherwise the lowest-id node among those that answered, itself
//     included, that holds a copy promotes itself: epoch = the highest epoch
//     seen + 1, its state kept as it is (followers keep no log: every
//     follower of a new primary starts from its full copy). There is no
//     quorum: an isolated follower promotes itself, and the old primary,
//     cut off, keeps acknowledging writes, so two primaries exist during a
//     partition (split brain). Writes the old primary acknowledged but never shipped
//     are lost once it steps down, as in real asynchronous replication.
//   - A node that hears of a newer primary (a higher epoch; within one epoch
//     the lower id wins) follows it; an old primary steps down. Rewind: each
//     primary's term has a random nonce, and a follower that is not synced
//     with the current term (a new follower, a stepped-down primary, a node
//     that followed the previous primary) receives the primary's full state
//     and replaces its own with it, which discards whatever it had that the
//     new primary lacks. Within a term it receives log entries only.
//   - State lives in memory only: a killed node comes back empty, learns the
//     current epoch and primary from its peers and receives a full copy. A
//     node that lost its state cannot be promoted until it has its copy (as a
//     Redis replica that never synced cannot). If its peers still name it as
//     primary (it was the primary before it died), it waits for them to fail
//     over. If no peer answers at all, it takes the cluster for a fresh one
//     (epoch 1, lowest id primary): the node cannot tell the two apart
//     without a disk.
//   - Saga operations (OpSaga) are applied on the primary, each atomically
//     under its lock, against its own state; one that changed something is
//     logged as an entry carrying the operation, which followers replay
//     (applying it to the same state gives the same result). saga-read and
//     saga-pending are reads, served like the others. An acknowledged saga
//     step that was not shipped is lost on failover like any write.
//   - Status: Ready once the node knows a primary and holds a copy; Role
//     "primary" or "follower"; Leader the primary it follows; Detail its
//     epoch and applied index.
//   - Sessions: a version's stamp is Stamp{Index: epoch<<40 | log index},
//     where the epoch is the one the entry was written in, so every entry of
//     a newer epoch compares greater than every entry of an older one (a
//     promoted primary writes a marker entry first, so every node that
//     follows it moves past the old epoch). A request whose session holds a
//     stamp for its key waits (up to Config.SessionWait) until the node that
//     serves it has applied that far, else ErrSession.

const (
	// primaryIndexBits is how many low bits of a stamp's Index hold the log
	// index; the epoch fills the bits above.
	primaryIndexBits = 40
	primaryIndexMask = 1<<primaryIndexBits - 1
	// primaryBatch bounds the entries of one shipment.
	primaryBatch = 512
	// primaryMaxLog bounds the primary's log; followers further behind than
	// this receive a full copy.
	primaryMaxLog = 1 << 17
	// opMarker is the kind of the entry a promoted primary writes first.
	opMarker Op = "epoch"
)

// primaryStamp packs the epoch an entry was written in and its log index
// into one comparable number.
func primaryStamp(epoch, index uint64) uint64 {
	return epoch<<primaryIndexBits | index&primaryIndexMask
}

// pEntry is one log entry. CASes are logged as the writes they became; a
// saga operation as itself (Kind OpSaga, Key its saga's id, Value its
// SagaCommand).
type pEntry struct {
	Index uint64          `json:"i"`
	Epoch uint64          `json:"e"`
	Kind  Op              `json:"k"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"v,omitempty"` // canonical JSON: the value written or the element added
	Delta int64           `json:"d,omitempty"`
	// Request is a counter add's idempotency key: an entry whose key was
	// applied before changes nothing.
	Request string `json:"r,omitempty"`
}

type pReg struct {
	Value json.RawMessage `json:"v"` // canonical JSON
	Stamp uint64          `json:"s"`
}

type pSet struct {
	Elems map[string]struct{} // canonical JSON of each element
	Stamp uint64
}

type pCounter struct {
	Total int64  `json:"t"`
	Stamp uint64 `json:"s"`
}

// pSetCopy is a set as a full copy carries it.
type pSetCopy struct {
	Elems []string `json:"e"`
	Stamp uint64   `json:"s"`
}

// pSnapshot is a node's whole state, which a primary sends to a follower
// not synced with its term.
type pSnapshot struct {
	Index    uint64              `json:"index"`
	Epoch    uint64              `json:"epoch"` // the epoch of the entry at Index
	Regs     map[string]pReg     `json:"regs"`
	Sets     map[string]pSetCopy `json:"sets"`
	Counters map[string]pCounter `json:"counters"`
	// Requests are the idempotency keys applied.
	Requests map[string]bool `json:"requests,omitempty"`
	// Saga is the saga workload's state (a checkers.SagaState), absent
	// when no saga operation changed anything.
	Saga json.RawMessage `json:"saga,omitempty"`
}

// Peer message kinds of the primary mode.
const (
	pKindPing    = "primary-ping"
	pKindAppend  = "primary-append"
	pKindForward = "primary-forward"
)

// primaryEngine is the primary mode's engine.
type primaryEngine struct {
	e    env
	cfg  Config
	self string
	hb   time.Duration // heartbeat interval

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	stopped   bool
	epoch     uint64 // the epoch of the primary this node follows or is
	maxSeen   uint64 // the highest epoch heard of
	leader    string // the primary this node believes in; "" when unknown
	isPrimary bool
	term      uint64             // while primary: the nonce of its term
	termStop  context.CancelFunc // while primary: stops the shipping loops
	synced    uint64             // the nonce of the term whose log this node's state follows
	hasCopy   bool
	lastHeard time.Time // when the primary was last heard from
	lastTry   time.Time // when this node last looked for a new primary
	deferTo   string    // the node it last expected to take over (logged once)

	lastIndex uint64 // the index of the last entry applied
	lastEpoch uint64 // the epoch that entry was written in
	regs      map[string]pReg
	sets      map[string]*pSet
	counters  map[string]pCounter
	requests  map[string]bool     // idempotency keys of the counter adds applied
	saga      *checkers.SagaState // the saga workload's state; nil until a saga operation ran
	changed   chan struct{}       // closed and replaced whenever entries are applied

	// Primary only: log holds the entries after index logStart, and match
	// the index each follower reported.
	log      []pEntry
	logStart uint64
	match    map[string]uint64
}

// newPrimary makes the primary engine.
func newPrimary(e env) (engine, error) {
	hb := e.cfg.FailoverTimeout / 5
	if hb < 10*time.Millisecond {
		hb = 10 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &primaryEngine{
		e: e, cfg: e.cfg, self: e.cfg.ID, hb: hb,
		ctx: ctx, cancel: cancel,
		regs: map[string]pReg{}, sets: map[string]*pSet{}, counters: map[string]pCounter{},
		changed: make(chan struct{}),
	}, nil
}

// better reports whether primary p1 of epoch e1 supersedes p2 of e2: a
// higher epoch wins, and within one epoch (two nodes promoted themselves
// in different partitions) the lower id.
func better(e1 uint64, p1 string, e2 uint64, p2 string) bool {
	if e1 != e2 {
		return e1 > e2
	}
	return p1 != "" && (p2 == "" || p1 < p2)
}

// logLocked logs unless the engine has stopped (so nothing logs after a
// test ends). The caller holds mu.
func (p *primaryEngine) logLocked(format string, args ...any) {
	if !p.stopped {
		p.e.logf(format, args...)
	}
}

func (p *primaryEngine) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *primaryEngine) posLocked() uint64 { return primaryStamp(p.lastEpoch, p.lastIndex) }

func (p *primaryEngine) start(ctx context.Context) error {
	views := p.pingAll(ctx, p.pingTimeout())
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch == 0 { // no primary contacted this node meanwhile
		var best pPing
		for _, v := range views {
			p.maxSeen = max(p.maxSeen, v.Epoch)
			if v.Primary != "" && v.Primary != p.self && better(v.Epoch, v.Primary, best.Epoch, best.Primary) {
				best = v
			}
		}
		switch {
		case p.maxSeen == 0:
			// A fresh cluster (or nobody answered): the lowest id is the
			// primary of epoch 1, and every node's empty state is a copy.
			p.hasCopy = true
			p.epoch, p.maxSeen = 1, 1
			if first := p.e.peers.IDs()[0]; first == p.self {
				p.becomePrimaryLocked(1, false)
			} else {
				p.leader = first
			}
		case best.Primary != "":
			p.epoch, p.leader = best.Epoch, best.Primary
			p.logLocked("started: following %s, primary of epoch %d; serving reads once it sends a copy", p.leader, p.epoch)
		default:
			// The peers still name this node as primary: it was, and lost
			// its state. It waits for them to fail over.
			p.epoch = p.maxSeen
			p.logLocked("restarted empty after leading epoch %d: waiting for a failover", p.epoch)
		}
	}
	p.lastHeard = time.Now()
	p.wg.Go(p.monitor)
	return nil
}

func (p *primaryEngine) stop() error {
	p.mu.Lock()
	p.stopped = true
	if p.termStop != nil {
		p.termStop()
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

func (p *primaryEngine) status(s *Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Ready: it knows a primary and can serve reads (a restarted node
	// once it has its copy).
	s.Ready = p.leader != "" && (p.isPrimary || p.hasCopy)
	s.Role = "follower"
	if p.isPrimary {
		s.Role = "primary"
	}
	s.Leader = p.leader
	s.Detail = fmt.Sprintf("epoch %d, applied index %d (written in epoch %d)", p.epoch, p.lastIndex, p.lastEpoch)
	switch {
	case !p.hasCopy:
		s.Detail += ", no copy yet"
	case p.isPrimary:
		s.Detail += fmt.Sprintf(", %d log entries kept", len(p.log))
	}
}

func (p *primaryEngine) peer(ctx context.Context, from, kind string, body []byte) (any, error) {
	switch kind {
	case pKindPing:
		p.mu.Lock()
		defer p.mu.Unlock()
		return pPing{Epoch: p.epoch, Primary: p.leader, IsPrimary: p.isPrimary, HasCopy: p.hasCopy, Index: p.lastIndex}, nil
	case pKindAppend:
		var msg pAppend
		if err := json.Unmarshal(body, &msg); err != nil {
			return nil, fmt.Errorf("decode shipment from %s: %w", from, err)
		}
		return p.receive(from, msg), nil
	case pKindForward:
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			return badRequest("decode forwarded request: %v", err), nil
		}
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout+p.cfg.SessionWait)
		defer cancel()
		resp := p.serve(ctx, req, true)
		resp.Node = p.self
		return resp, nil
	}
	return nil, fmt.Errorf("primary mode has no peer message %q", kind)
}
