// This file holds the primary mode's failover: pinging the peers, watching
// the primary, promoting a follower to primary and stepping down.

package store

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

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
