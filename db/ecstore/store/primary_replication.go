// This file holds the primary mode's replication: the primary's log, shipped
// to each follower in batches or as a full copy, and a follower applying
// what it receives.

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/eccheck/eccheck/checkers"
)

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
	if len(p.requests) > 0 {
		s.Requests = make(map[string]bool, len(p.requests))
		for k := range p.requests {
			s.Requests[k] = true
		}
	}
	if p.saga != nil {
		s.Saga = mustJSON(p.saga) // a copy: the shipment is encoded later, outside mu
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
	p.requests = s.Requests
	p.saga = nil
	if len(s.Saga) > 0 {
		var st checkers.SagaState
		if err := json.Unmarshal(s.Saga, &st); err != nil {
			// A primary encodes what it holds; it always decodes.
			panic(fmt.Sprintf("decode the saga state of a copy: %v", err))
		}
		normalizeSaga(&st)
		p.saga = &st
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

// sagaLocked applies a saga operation on the primary and, when it changed
// the state, logs it for the followers to replay. The caller holds mu and
// notifies.
func (p *primaryEngine) sagaLocked(op sagaOp) (sagaResult, uint64) {
	if p.saga == nil {
		p.saga = newSagaState()
	}
	res := applySaga(p.saga, op)
	if !res.Changed {
		return res, 0
	}
	e := pEntry{Index: p.lastIndex + 1, Epoch: p.epoch, Kind: OpSaga, Key: op.key, Value: op.raw}
	p.log = append(p.log, e)
	p.lastIndex, p.lastEpoch = e.Index, e.Epoch
	return res, primaryStamp(e.Epoch, e.Index)
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
		if e.Request != "" {
			if p.requests[e.Request] {
				break // applied already
			}
			if p.requests == nil {
				p.requests = map[string]bool{}
			}
			p.requests[e.Request] = true
		}
		c := p.counters[e.Key]
		c.Total += e.Delta
		c.Stamp = st
		p.counters[e.Key] = c
	case OpSaga:
		op, err := parseSaga(e.Key, e.Value)
		if err != nil {
			// The primary logs only what it parsed and applied.
			panic(fmt.Sprintf("saga entry %d of epoch %d: %v", e.Index, e.Epoch, err))
		}
		if p.saga == nil {
			p.saga = newSagaState()
		}
		applySaga(p.saga, op)
	}
	p.lastIndex, p.lastEpoch = e.Index, e.Epoch
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
