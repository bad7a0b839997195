// This file holds the lww, hlc and mvr modes' anti-entropy: rounds that push a
// node's whole state to its peers and merge what they hold newer.

package store

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// lwwAEMsg is an anti-entropy push (and its answer): states of keys, merged
// by the receiver.
type lwwAEMsg struct {
	Regs     []lwwAEReg     `json:"r,omitempty"`
	Counters []lwwAECounter `json:"c,omitempty"`
	Sets     []lwwAESet     `json:"s,omitempty"`
	MV       []mvrAEReg     `json:"m,omitempty"`
}

type lwwAEReg struct {
	K string          `json:"k"`
	S Stamp           `json:"s"`
	V json.RawMessage `json:"v"`
}

// mvrAEReg is a multi-value register's state (mvr).
type mvrAEReg struct {
	K string   `json:"k"`
	D mvrState `json:"d"`
}

type lwwAECounter struct {
	K string             `json:"k"`
	C map[string]lwwSlot `json:"c"`
}

type lwwAESet struct {
	K string    `json:"k"`
	E []lwwElem `json:"e"`
}

func (m lwwAEMsg) empty() bool { return len(m.Regs)+len(m.Counters)+len(m.Sets)+len(m.MV) == 0 }

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
		for k, st := range s.mv {
			if l.replicates(peer, k) {
				m.MV = append(m.MV, mvrAEReg{K: k, D: st})
				units += 1 + len(st.Sibs)
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
	for _, r := range m.MV {
		st := r.D.normalized()
		s := l.shard(r.K)
		s.mu.Lock()
		merged := mvrMerge(s.mv[r.K], st)
		s.mv[r.K] = merged
		s.mu.Unlock()
		if reply && !mvrEqual(merged, st) {
			out.MV = append(out.MV, mvrAEReg{K: r.K, D: merged})
		}
	}
	for _, c := range m.Counters {
		s := l.shard(c.K)
		s.mu.Lock()
		s.mergeCounter(c.K, l.slots(c.C))
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
