// This file holds the replica state of the lww, hlc and mvr modes: replica
// operations and their answers, the CRDT values (last-write-wins registers,
// PN-counter and G-Counter slots, OR-set elements; mvr's multi-value
// registers are in lww_mvr.go), the sharded state that holds them, and
// their merges.

package store

import (
	"encoding/json"
	"sync"
)

// Replica operation types, the T of an lwwItem.
const (
	lwwOpWrite       = "w"  // store a register version if newer
	lwwOpRead        = "r"  // answer a register's version
	lwwOpCounterSlot = "c"  // merge one actor's counter slot
	lwwOpCounterRead = "cr" // answer a counter's slots
	lwwOpSetAdd      = "s"  // add a tagged element to an OR-set
	lwwOpSetRead     = "sr" // answer an OR-set's tagged elements
	mvrOpMerge       = "mw" // merge a multi-value register's state (mvr)
	mvrOpRead        = "mr" // answer a multi-value register's state (mvr)
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
	D   *mvrState       `json:"d,omitempty"` // multi-value register state
}

// lwwReply answers one replica operation: empty for an update, the state
// of the key for a read.
type lwwReply struct {
	S *Stamp             `json:"s,omitempty"` // register stamp (absent: never written)
	V json.RawMessage    `json:"v,omitempty"` // register value
	C map[string]lwwSlot `json:"c,omitempty"` // counter slots by actor
	E []lwwElem          `json:"e,omitempty"` // set elements with their tags
	D *mvrState          `json:"d,omitempty"` // multi-value register state (absent: never written)
}

// lwwSlot is one actor's part of a PN-counter: its total increments and
// decrements. Slots merge by taking the greater of each. A G-Counter is
// the increments half alone: its slots' N is always 0 (see lww.slot).
type lwwSlot struct {
	P int64 `json:"p"`
	N int64 `json:"n"`
}

func (s lwwSlot) merge(o lwwSlot) lwwSlot { return lwwSlot{P: max(s.P, o.P), N: max(s.N, o.N)} }

// slot is a slot as this node's counters keep it: a G-Counter drops the
// decrements a misconfigured peer might send, so that its total never
// falls.
func (l *lww) slot(s lwwSlot) lwwSlot {
	if l.gCounter {
		s.N = 0
	}
	return s
}

// slots applies slot to each of a counter's slots.
func (l *lww) slots(c map[string]lwwSlot) map[string]lwwSlot {
	if !l.gCounter {
		return c
	}
	out := make(map[string]lwwSlot, len(c))
	for a, sl := range c {
		out[a] = l.slot(sl)
	}
	return out
}

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
	mv       map[string]mvrState                       // multi-value registers (mvr)
	counters map[string]map[string]lwwSlot             // key -> actor -> slot
	sets     map[string]map[string]map[string]struct{} // key -> element -> tags
}

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
		s.mergeCounter(it.K, map[string]lwwSlot{it.A: l.slot(lwwSlot{P: it.P, N: it.N})})
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
	case mvrOpMerge:
		if it.D == nil {
			return lwwReply{}
		}
		st := it.D.normalized()
		s.mu.Lock()
		s.mv[it.K] = mvrMerge(s.mv[it.K], st)
		s.mu.Unlock()
	case mvrOpRead:
		s.mu.Lock()
		cur, ok := s.mv[it.K]
		s.mu.Unlock()
		if ok {
			return lwwReply{D: &cur} // states are never changed in place
		}
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

// lwwOrNull is v, or null when v is empty (a register never written).
func lwwOrNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return nullJSON
	}
	return v
}
