package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
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

// pEntry is one log entry. CASes are logged as the writes they became.
type pEntry struct {
	Index uint64          `json:"i"`
	Epoch uint64          `json:"e"`
	Kind  Op              `json:"k"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"v,omitempty"` // canonical JSON: the value written or the element added
	Delta int64           `json:"d,omitempty"`
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
}

// pAppend is a shipment from a primary: entries following the follower's
// index, or a full copy, or neither (a heartbeat or a probe).
type pAppend struct {
	Epoch    uint64     `json:"epoch"`
	Term     uint64     `json:"term"`
	Entries  []pEntry   `json:"entries,omitempty"`
	Snapshot *pSnapshot `json:"snapshot,omitempty"`
}

// pAppendReply answers a shipment with the index the follower has applied.
type pAppendReply struct {
	Epoch   uint64 `json:"epoch"`
	Primary string `json:"primary"`
	// Rejected: the sender is not the primary this node follows (it knows a
	// newer one, named by Epoch and Primary).
	Rejected bool `json:"rejected,omitempty"`
	// NeedCopy: the follower is not synced with the sender's term.
	NeedCopy bool   `json:"need_copy,omitempty"`
	Index    uint64 `json:"index"`
}

// pPing is a node's view, the answer to a ping.
type pPing struct {
	Epoch     uint64 `json:"epoch"`
	Primary   string `json:"primary"`
	IsPrimary bool   `json:"is_primary"`
	// HasCopy: the node holds a copy of the data (it is not a restarted
	// node still waiting for its copy), so it may be promoted.
	HasCopy bool   `json:"has_copy"`
	Index   uint64 `json:"index"`
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
	changed   chan struct{} // closed and replaced whenever entries are applied

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

// pingTimeout bounds a ping: short, so that failover and start are quick.
func (p *primaryEngine) pingTimeout() time.Duration {
	return max(min(p.cfg.RequestTimeout, p.cfg.FailoverTimeout/2), 20*time.Millisecond)
}

// pingAll asks every peer for its view and returns those that answered.
func (p *primaryEngine) pingAll(ctx context.Context, timeout time.Duration) map[string]pPing {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]pPing{}
	)
	for _, id := range p.e.peers.Others() {
		wg.Go(func() {
			var v pPing
			if err := p.e.peers.Call(ctx, id, pKindPing, struct{}{}, &v); err == nil {
				mu.Lock()
				out[id] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// becomePrimaryLocked makes this node the primary of epoch with a new term
// and starts shipping to every follower; with marker it first logs a marker
// entry, so that every node following it moves past older epochs. The
// caller holds mu.
func (p *primaryEngine) becomePrimaryLocked(epoch uint64, marker bool) {
	if p.stopped {
		return
	}
	p.epoch, p.maxSeen = epoch, max(p.maxSeen, epoch)
	p.leader, p.isPrimary = p.self, true
	p.term = rand.Uint64() | 1
	p.synced = p.term
	p.log, p.logStart, p.match = nil, p.lastIndex, map[string]uint64{}
	if marker {
		p.appendLocked(pEntry{Kind: opMarker})
		p.notifyLocked()
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.termStop = cancel
	term := p.term
	for _, id := range p.e.peers.Others() {
		p.wg.Go(func() { p.ship(ctx, id, term) })
	}
}

// followLocked makes this node a follower of leader in epoch; a primary
// steps down, and its log entries that the new primary lacks will be
// discarded when the new primary sends its copy. The caller holds mu.
func (p *primaryEngine) followLocked(epoch uint64, leader string) {
	if p.isPrimary {
		p.termStop()
		p.isPrimary, p.termStop, p.log, p.match = false, nil, nil, nil
		p.logLocked("stepping down: %s is primary of epoch %d (was primary of epoch %d up to index %d)", leader, epoch, p.epoch, p.lastIndex)
	} else if leader != p.leader || epoch != p.epoch {
		p.logLocked("following %s, primary of epoch %d", leader, epoch)
	}
	p.epoch, p.leader = epoch, leader
	p.maxSeen = max(p.maxSeen, epoch)
	p.lastHeard = time.Now()
}

// monitor watches a follower's primary and starts a failover when it has
// been silent for the failover timeout.
func (p *primaryEngine) monitor() {
	t := time.NewTicker(p.hb)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		if f := p.cfg.Faults; f != nil {
			if f.WaitRunning(p.ctx, p.self) != nil {
				return
			}
		}
		p.mu.Lock()
		now := time.Now()
		due := !p.isPrimary && now.Sub(p.lastHeard) > p.cfg.FailoverTimeout && now.Sub(p.lastTry) > p.cfg.FailoverTimeout/2
		epoch, leader := p.epoch, p.leader
		if due {
			p.lastTry = now
		}
		p.mu.Unlock()
		if due {
			p.failover(epoch, leader)
		}
	}
}

// failover looks for a primary after the one followed (leader of epoch)
// went silent, and promotes this node when it is the lowest-id node with
// a copy among those it can reach.
func (p *primaryEngine) failover(epoch uint64, leader string) {
	views := p.pingAll(p.ctx, p.pingTimeout())
	silent := "no word from primary " + leader
	if leader == "" {
		silent = "no known primary"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.isPrimary || p.epoch != epoch || p.leader != leader || time.Since(p.lastHeard) <= p.cfg.FailoverTimeout {
		return // something was heard meanwhile
	}
	var best pPing
	for _, v := range views {
		p.maxSeen = max(p.maxSeen, v.Epoch)
		if v.Primary != "" && v.Primary != p.self && better(v.Epoch, v.Primary, best.Epoch, best.Primary) {
			best = v
		}
	}
	if best.Primary != "" && better(best.Epoch, best.Primary, p.epoch, p.leader) {
		p.followLocked(best.Epoch, best.Primary)
		return
	}
	if v, ok := views[leader]; ok && v.IsPrimary && v.Epoch == epoch {
		p.lastHeard = time.Now() // the primary is alive after all
		return
	}
	candidates := make([]string, 0, len(views)+1)
	if p.hasCopy {
		candidates = append(candidates, p.self)
	}
	for id, v := range views {
		if v.HasCopy {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return
	}
	if lowest := slices.Min(candidates); lowest != p.self {
		if lowest != p.deferTo {
			p.logLocked("%s for %v: %s should take over", silent, p.cfg.FailoverTimeout, lowest)
			p.deferTo = lowest
		}
		return
	}
	p.deferTo = ""
	next := max(p.epoch, p.maxSeen) + 1
	p.logLocked("%s for %v: promoting myself to primary of epoch %d at index %d (reached %d of %d peers)",
		silent, p.cfg.FailoverTimeout, next, p.lastIndex, len(views), len(p.e.peers.Others()))
	p.becomePrimaryLocked(next, true)
}

// ship sends the log to one follower for as long as this node is the
// primary of term: entries after the follower's index in batches, a full
// copy when the follower is not synced with the term or is behind what the
// log keeps, and heartbeats when there is nothing new.
func (p *primaryEngine) ship(ctx context.Context, to string, term uint64) {
	var (
		match         uint64
		known, doCopy bool
	)
	for ctx.Err() == nil {
		p.mu.Lock()
		if !p.isPrimary || p.term != term {
			p.mu.Unlock()
			return
		}
		msg := pAppend{Epoch: p.epoch, Term: term}
		switch {
		case !known: // probe for the follower's index
		case doCopy || match < p.logStart || match > p.lastIndex:
			msg.Snapshot = p.snapshotLocked()
		default:
			from := match - p.logStart
			msg.Entries = p.log[from:min(len(p.log), int(from)+primaryBatch)]
		}
		wake, last := p.changed, p.lastIndex
		p.mu.Unlock()

		var rep pAppendReply
		cctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		err := p.e.peers.Call(cctx, to, pKindAppend, msg, &rep)
		cancel()
		if err != nil {
			if !sleepCtx(ctx, p.hb) {
				return
			}
			continue
		}
		if rep.Rejected {
			p.mu.Lock()
			if p.isPrimary && p.term == term && better(rep.Epoch, rep.Primary, p.epoch, p.self) {
				p.followLocked(rep.Epoch, rep.Primary)
			}
			p.mu.Unlock()
			if !sleepCtx(ctx, p.hb) {
				return
			}
			continue
		}
		known, doCopy = true, rep.NeedCopy
		if doCopy {
			continue
		}
		match = rep.Index
		p.mu.Lock()
		if p.isPrimary && p.term == term {
			p.match[to] = match
			p.trimLocked()
		}
		p.mu.Unlock()
		if match < last {
			continue
		}
		t := time.NewTimer(p.hb)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// trimLocked drops the log entries every follower has, and the oldest
// entries past primaryMaxLog (followers that far behind get a full copy).
// The caller holds mu.
func (p *primaryEngine) trimLocked() {
	upto := p.lastIndex
	for _, id := range p.e.peers.Others() {
		m, ok := p.match[id]
		if !ok {
			m = p.logStart
		}
		upto = min(upto, m)
	}
	if len(p.log) > primaryMaxLog {
		upto = max(upto, p.lastIndex-primaryMaxLog/2)
	}
	if upto > p.logStart {
		p.log = p.log[upto-p.logStart:]
		p.logStart = upto
	}
}

// snapshotLocked copies the state. The caller holds mu.
func (p *primaryEngine) snapshotLocked() *pSnapshot {
	s := &pSnapshot{
		Index: p.lastIndex, Epoch: p.lastEpoch,
		Regs:     make(map[string]pReg, len(p.regs)),
		Sets:     make(map[string]pSetCopy, len(p.sets)),
		Counters: make(map[string]pCounter, len(p.counters)),
	}
	for k, r := range p.regs {
		s.Regs[k] = r
	}
	for k, c := range p.counters {
		s.Counters[k] = c
	}
	for k, set := range p.sets {
		elems := make([]string, 0, len(set.Elems))
		for e := range set.Elems {
			elems = append(elems, e)
		}
		s.Sets[k] = pSetCopy{Elems: elems, Stamp: set.Stamp}
	}
	return s
}

// installLocked replaces the state with a copy. The caller holds mu.
func (p *primaryEngine) installLocked(s *pSnapshot) {
	p.regs = s.Regs
	if p.regs == nil {
		p.regs = map[string]pReg{}
	}
	p.counters = s.Counters
	if p.counters == nil {
		p.counters = map[string]pCounter{}
	}
	p.sets = make(map[string]*pSet, len(s.Sets))
	for k, c := range s.Sets {
		set := &pSet{Elems: make(map[string]struct{}, len(c.Elems)), Stamp: c.Stamp}
		for _, e := range c.Elems {
			set.Elems[e] = struct{}{}
		}
		p.sets[k] = set
	}
	p.lastIndex, p.lastEpoch = s.Index, s.Epoch
	p.notifyLocked()
}

// appendLocked logs and applies a new entry on the primary and returns its
// stamp. The caller holds mu and notifies.
func (p *primaryEngine) appendLocked(e pEntry) uint64 {
	e.Index, e.Epoch = p.lastIndex+1, p.epoch
	p.applyLocked(e)
	p.log = append(p.log, e)
	return primaryStamp(e.Epoch, e.Index)
}

// applyLocked applies an entry to the state. The caller holds mu.
func (p *primaryEngine) applyLocked(e pEntry) {
	st := primaryStamp(e.Epoch, e.Index)
	switch e.Kind {
	case OpWrite:
		p.regs[e.Key] = pReg{Value: e.Value, Stamp: st}
	case OpSetAdd:
		set := p.sets[e.Key]
		if set == nil {
			set = &pSet{Elems: map[string]struct{}{}}
			p.sets[e.Key] = set
		}
		set.Elems[string(e.Value)] = struct{}{}
		set.Stamp = st
	case OpCounterAdd:
		c := p.counters[e.Key]
		c.Total += e.Delta
		c.Stamp = st
		p.counters[e.Key] = c
	}
	p.lastIndex, p.lastEpoch = e.Index, e.Epoch
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

// receive handles a shipment from node from.
func (p *primaryEngine) receive(from string, msg pAppend) pAppendReply {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxSeen = max(p.maxSeen, msg.Epoch)
	if from != p.leader || msg.Epoch != p.epoch || p.isPrimary {
		if !better(msg.Epoch, from, p.epoch, p.leader) {
			return pAppendReply{Epoch: p.epoch, Primary: p.leader, Rejected: true, Index: p.lastIndex}
		}
		p.followLocked(msg.Epoch, from)
	}
	p.lastHeard = time.Now()
	switch {
	case msg.Snapshot != nil:
		if p.synced == msg.Term && p.lastIndex >= msg.Snapshot.Index {
			break // a late duplicate: never go back
		}
		if p.synced != msg.Term && p.lastIndex > 0 {
			p.logLocked("replacing my state (index %d of epoch %d) with %s's copy (index %d of epoch %d)",
				p.lastIndex, p.lastEpoch, from, msg.Snapshot.Index, msg.Snapshot.Epoch)
		}
		p.installLocked(msg.Snapshot)
		p.synced, p.hasCopy = msg.Term, true
	case p.synced != msg.Term:
		return pAppendReply{Epoch: p.epoch, Primary: p.leader, NeedCopy: true, Index: p.lastIndex}
	case len(msg.Entries) > 0:
		n := 0
		for _, e := range msg.Entries {
			if e.Index <= p.lastIndex {
				continue
			}
			if e.Index != p.lastIndex+1 {
				break // a gap: the primary resends from the index replied
			}
			p.applyLocked(e)
			n++
		}
		if n > 0 {
			p.notifyLocked()
		}
	}
	return pAppendReply{Epoch: p.epoch, Primary: p.leader, Index: p.lastIndex}
}

func (p *primaryEngine) do(ctx context.Context, req Request) Response {
	return p.serve(ctx, req, false)
}

func isWriteOp(op Op) bool {
	return op == OpWrite || op == OpCAS || op == OpSetAdd || op == OpCounterAdd
}

// serve performs a client operation here, or forwards it to the primary
// (unless it was forwarded already).
func (p *primaryEngine) serve(ctx context.Context, req Request, forwarded bool) Response {
	var (
		value, old string // canonical JSON
		d          int64
		err        error
	)
	switch req.Op {
	case OpRead, OpSetRead, OpCounterRead:
	case OpWrite, OpSetAdd:
		if req.Op == OpSetAdd && len(req.Value) == 0 {
			return badRequest("set add without an element")
		}
		if value, err = canonical(req.Value); err != nil {
			return badRequest("value: %v", err)
		}
	case OpCAS:
		if value, err = canonical(req.Value); err != nil {
			return badRequest("value: %v", err)
		}
		if old, err = canonical(req.Old); err != nil {
			return badRequest("old value: %v", err)
		}
	case OpCounterAdd:
		if d, err = delta(req.Value); err != nil {
			return badRequest("%v", err)
		}
	default:
		return badRequest("unknown operation %q", req.Op)
	}
	write := isWriteOp(req.Op)

	p.mu.Lock()
	isPrimary, leader, hasCopy := p.isPrimary, p.leader, p.hasCopy
	p.mu.Unlock()
	if !isPrimary && (write || p.cfg.PrimaryReads == "primary") {
		switch {
		case forwarded:
			return Response{Error: ErrNotLeader, Leader: leader, Message: fmt.Sprintf("%s is not the primary", p.self)}
		case leader == "":
			return Response{Error: ErrUnavailable, Message: "no known primary"}
		}
		return p.forward(ctx, leader, req, write)
	}
	if !isPrimary && !hasCopy {
		return Response{Error: ErrUnavailable, Message: "this node has no copy of the data yet"}
	}

	if req.Session != nil {
		if need := req.Session.Seen[req.Key].Index; need > 0 && !p.waitApplied(ctx, need) {
			return Response{Error: ErrSession, Session: req.Session,
				Message: fmt.Sprintf("not caught up with the session's index %d of epoch %d within %v", need&primaryIndexMask, need>>primaryIndexBits, p.cfg.SessionWait)}
		}
	}

	p.mu.Lock()
	if write && !p.isPrimary {
		leader := p.leader
		p.mu.Unlock()
		return Response{Error: ErrNotLeader, Leader: leader, Message: fmt.Sprintf("%s stepped down before applying", p.self)}
	}
	var (
		resp  Response
		stamp uint64
	)
	switch req.Op {
	case OpRead:
		r := p.regs[req.Key]
		resp.Value, stamp = orNullJSON(r.Value), r.Stamp
	case OpWrite:
		stamp = p.appendLocked(pEntry{Kind: OpWrite, Key: req.Key, Value: json.RawMessage(value)})
	case OpCAS:
		r := p.regs[req.Key]
		cur := orNullJSON(r.Value)
		if string(cur) != old {
			resp = Response{Error: ErrCASMismatch, Value: cur, Message: fmt.Sprintf("register holds %s, not %s", cur, old)}
			stamp = r.Stamp
			break
		}
		stamp = p.appendLocked(pEntry{Kind: OpWrite, Key: req.Key, Value: json.RawMessage(value)})
	case OpSetAdd:
		stamp = p.appendLocked(pEntry{Kind: OpSetAdd, Key: req.Key, Value: json.RawMessage(value)})
	case OpSetRead:
		var elems []string
		if set := p.sets[req.Key]; set != nil {
			elems = make([]string, 0, len(set.Elems))
			for e := range set.Elems {
				elems = append(elems, e)
			}
			stamp = set.Stamp
		}
		slices.Sort(elems)
		resp.Value = json.RawMessage("[" + strings.Join(elems, ",") + "]")
	case OpCounterAdd:
		stamp = p.appendLocked(pEntry{Kind: OpCounterAdd, Key: req.Key, Delta: d})
	case OpCounterRead:
		c := p.counters[req.Key]
		resp.Value, stamp = json.RawMessage(fmt.Sprint(c.Total)), c.Stamp
	}
	if write && resp.Error == "" {
		p.notifyLocked()
	}
	p.mu.Unlock()

	resp.Session = &Session{}
	resp.Session.Merge(req.Session)
	if stamp != 0 {
		resp.Session.Observe(req.Key, Stamp{Index: stamp})
	}
	return resp
}

func orNullJSON(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return nullJSON
	}
	return v
}

// waitApplied waits until this node has applied the entry stamped need (or
// a later one), up to the session bound.
func (p *primaryEngine) waitApplied(ctx context.Context, need uint64) bool {
	t := time.NewTimer(p.cfg.SessionWait)
	defer t.Stop()
	for {
		p.mu.Lock()
		ok, ch := p.posLocked() >= need, p.changed
		p.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// forward sends a client request to the primary and relays its answer.
func (p *primaryEngine) forward(ctx context.Context, to string, req Request, write bool) Response {
	var resp Response
	err := p.e.peers.Call(ctx, to, pKindForward, req, &resp)
	if err == nil {
		return resp
	}
	kind := forwardError(err)
	if !write {
		kind = ErrUnavailable // a read changed nothing either way
	}
	return Response{Error: kind, Leader: to, Message: fmt.Sprintf("forward to primary %s: %v", to, err)}
}

// forwardError classifies a failed forward: ErrUnavailable when the
// primary certainly did not act on it (the connection was refused, or it
// answered with an error status, which it does only before acting), else
// ErrIndeterminate (no reply, or the connection broke after the request
// went out).
func forwardError(err error) ErrorKind {
	var (
		opErr  *net.OpError
		urlErr *url.Error
		synErr *json.SyntaxError
		typErr *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, ErrNoReply):
		return ErrIndeterminate
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ErrUnavailable
	case errors.As(err, &urlErr), errors.As(err, &synErr), errors.As(err, &typErr):
		return ErrIndeterminate
	}
	return ErrUnavailable
}
