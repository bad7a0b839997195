// This file holds the lww, hlc and mvr modes' replica round trips: updates
// sent to N replicas and acknowledged by W, quorum reads that ask R
// replicas (with speculative retry) and keep the newest answer, and read
// repair.

package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

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

// quorumRead is the skeleton of every quorum read. It asks the replicas
// of it.K, R of them first (see lwwAsk), and hands each answer to fold
// until R replicas answered and fresh reports that their answers satisfy
// the read. fresh, when set, is a condition beyond the count (a client's
// session); a read waiting for it stops soon after it has R answers (see
// lwwAsk.poll), so that its caller can ask again rather than wait out a
// replica that may be cut off. quorumRead returns the ask, on whose
// channel late answers are still to come (for read repair), and
// ErrUnavailable when fewer than R replicas answered.
func (l *lww) quorumRead(ctx context.Context, it lwwItem, fold func(lwwResult), fresh func() bool) (ask *lwwAsk, late int, kind ErrorKind, msg string) {
	ask = l.newAsk(it, l.deadline(ctx))
	answers := 0
	if fresh != nil {
		ask.poll = time.Now().Add(min(max(l.cfg.SessionWait/5, 10*time.Millisecond), l.cfg.RequestTimeout))
		ask.settle = func() bool { return answers >= l.cfg.R }
	}
	got := ask.gather(ctx, l.cfg.R, func(r lwwResult) bool {
		if r.out != lwwAcked {
			return false
		}
		answers++
		fold(r)
		return answers >= l.cfg.R && (fresh == nil || fresh())
	})
	late = ask.asked - got
	if answers < l.cfg.R {
		return ask, late, ErrUnavailable, fmt.Sprintf("%d of R=%d replicas answered", answers, l.cfg.R)
	}
	return ask, late, "", ""
}

// readRegister reads key from R replicas and returns the newest version
// (a zero stamp and null when none has it). With need set, it waits until
// the newest answer is at least need, asking the replicas again, for up to
// SessionWait.
func (l *lww) readRegister(ctx context.Context, key string, need Stamp) (lwwVersion, ErrorKind, string) {
	giveUp := time.Now().Add(l.cfg.SessionWait)
	pause := lwwSessionPause
	for {
		newest := lwwVersion{V: nullJSON}
		seen := make([]lwwAnswer, 0, l.cfg.R)
		var fresh func() bool
		if !need.IsZero() {
			fresh = func() bool { return !newest.S.Less(need) }
		}
		ask, late, kind, msg := l.quorumRead(ctx, lwwItem{T: lwwOpRead, K: key}, func(r lwwResult) {
			a := l.registerAnswer(r)
			if r.rep.S != nil && newest.S.Less(a.s) {
				newest = lwwVersion{S: a.s, V: lwwOrNull(r.rep.V)}
			}
			seen = append(seen, a)
		}, fresh)
		if kind != "" {
			return lwwVersion{}, kind, msg
		}
		if !newest.S.Less(need) {
			l.readRepair(ask, late, newest, seen)
			return newest, "", ""
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

// registerAnswer is a replica's answer to a register read, its stamp
// observed by the HLC (hlc mode).
func (l *lww) registerAnswer(r lwwResult) lwwAnswer {
	a := lwwAnswer{from: r.from}
	if r.rep.S != nil {
		l.observe(r.rep.S)
		a.s = *r.rep.S
	}
	return a
}

// readRepair sends the newest version to the replicas that answered a
// register read (ask) with an older one, and waits in the background for
// the late answers, late of them, to do the same. It is bounded: when too
// many reads wait already, late answers are left to anti-entropy.
func (l *lww) readRepair(ask *lwwAsk, late int, newest lwwVersion, seen []lwwAnswer) {
	if newest.S.IsZero() {
		return
	}
	repair := func(a lwwAnswer) {
		if a.s.Less(newest.S) {
			st := newest.S
			it := lwwItem{T: lwwOpWrite, K: ask.it.K, V: newest.V, S: &st}
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
	l.repairLate(ask, late, func(r lwwResult) { repair(l.registerAnswer(r)) })
}

// repairLate waits in the background for the late answers of a read,
// late of them, and hands each to repair. It is bounded: when too many
// reads wait already, late answers are left to anti-entropy.
func (l *lww) repairLate(ask *lwwAsk, late int, repair func(lwwResult)) {
	if late == 0 || l.repairs.Add(1) > lwwMaxRepairs {
		if late > 0 {
			l.repairs.Add(-1)
		}
		return
	}
	if !l.goBG(func() {
		defer l.repairs.Add(-1)
		l.gather(l.ctx, ask.ch, late, ask.deadline, func(r lwwResult) bool {
			if r.out == lwwAcked {
				repair(r)
			}
			return false
		})
	}) {
		l.repairs.Add(-1)
	}
}
