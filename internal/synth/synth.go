// Package synth makes large synthetic histories, deterministically from a
// seed, for tests and benchmarks of the checkers.
//
// [Register] simulates clients of a linearizable key-value store of
// registers: every operation takes effect at one instant strictly between
// its invocation and its completion, and a read returns the value current at
// that instant. With [RegisterConfig.StaleProb] above zero some reads return
// an older version instead, as a lagging replica would, so the register
// checkers have something to find. Written values are unique integers.
package synth

import (
	"container/heap"
	"math/rand/v2"
	"strconv"

	"github.com/eccheck/eccheck/history"
)

// RegisterConfig shapes a synthetic register history. The zero value of
// every field but Ops has a usable meaning.
type RegisterConfig struct {
	// Ops is the number of history lines to make. Every operation is two
	// lines (an invocation and its completion), so the history has Ops/2
	// operations and Ops rounded down to even lines.
	Ops int
	// Keys is the number of registers, named k0, k1, ...; 0 means 1.
	Keys int
	// Clients is the number of concurrent client processes; 0 means 1.
	Clients int
	// Seed makes the history: the same configuration and seed always give
	// the same history.
	Seed uint64
	// ReadProb is the probability that an operation is a read; 0 means 0.5.
	ReadProb float64
	// CASProb is the probability that an operation that is not a read is a
	// compare-and-set rather than a plain write.
	CASProb float64
	// StaleProb is the probability that a successful read returns an older
	// version of the register (one to several versions back, possibly the
	// initial nil) instead of the current one. How far back that is in time
	// depends on how often the key is written: with many keys and few
	// clients a stale read can be seconds old. 0 makes the history
	// linearizable.
	StaleProb float64
	// InfoProb is the probability that an operation ends with info. An info
	// write or CAS takes effect with probability 1/2, possibly after its
	// info completion; the process then continues under a fresh id.
	InfoProb float64
	// FailProb is the probability that an operation fails without effect.
	FailProb float64
}

// Timing of the simulation, in nanoseconds.
const (
	minLatency = 100_000   // every operation takes at least 0.1 ms
	maxLatency = 5_000_000 // and at most about 5 ms
	maxThink   = 500_000   // a client waits up to 0.5 ms between operations
	lateApply  = 20_000_000
	keepVers   = 16 // versions of each register a stale read can reach
)

// Register makes a register history as cfg describes. The history passes
// [history.Validate].
func Register(cfg RegisterConfig) history.History {
	s := newSim(cfg)
	s.run()
	return s.h
}

// version history of one register: its last keepVers values, oldest first.
type register struct {
	vers    []history.Value
	dropped bool // older versions than vers[0] existed, so nil is out of reach
}

func (r *register) current() history.Value {
	if len(r.vers) == 0 {
		return history.Nil()
	}
	return r.vers[len(r.vers)-1]
}

func (r *register) set(v history.Value) {
	if len(r.vers) == keepVers {
		copy(r.vers, r.vers[1:])
		r.vers = r.vers[:keepVers-1]
		r.dropped = true
	}
	r.vers = append(r.vers, v)
}

// older returns a version k >= 1 steps back, or the initial nil when that
// is reachable and k goes past every version.
func (r *register) older(k int) history.Value {
	n := len(r.vers)
	switch {
	case k < n:
		return r.vers[n-1-k]
	case r.dropped:
		return r.vers[0]
	}
	return history.Nil()
}

// pending is an operation in flight.
type pending struct {
	f       string
	key     int
	value   history.Value // invocation value: written value or CAS pair
	outcome history.Type  // how it will complete
	result  history.Value // what a read returned, set when it takes effect
}

type eventKind uint8

const (
	evInvoke eventKind = iota
	evApply
	evComplete
)

type event struct {
	at     int64
	seq    uint64 // breaks ties in creation order, for determinism
	kind   eventKind
	client int
	op     *pending
}

type eventHeap []event

func (e eventHeap) Len() int { return len(e) }
func (e eventHeap) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].seq < e[j].seq
}
func (e eventHeap) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *eventHeap) Push(x any)   { *e = append(*e, x.(event)) }
func (e *eventHeap) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

type sim struct {
	cfg      RegisterConfig
	rng      *rand.Rand
	h        history.History
	keys     []string
	regs     []register
	procs    []history.Process // client -> its current process id
	inflight []*pending        // client -> its operation in flight
	nextProc history.Process
	nextVal  int64
	invokes  int // invocations still to make
	events   eventHeap
	seq      uint64
}

func newSim(cfg RegisterConfig) *sim {
	if cfg.Keys <= 0 {
		cfg.Keys = 1
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 1
	}
	if cfg.ReadProb == 0 {
		cfg.ReadProb = 0.5
	}
	s := &sim{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		h:        make(history.History, 0, max(cfg.Ops, 0)),
		keys:     make([]string, cfg.Keys),
		regs:     make([]register, cfg.Keys),
		procs:    make([]history.Process, cfg.Clients),
		inflight: make([]*pending, cfg.Clients),
		nextProc: history.Process(cfg.Clients),
		invokes:  max(cfg.Ops, 0) / 2,
	}
	for i := range s.keys {
		s.keys[i] = "k" + strconv.Itoa(i)
	}
	for c := range s.procs {
		s.procs[c] = history.Process(c)
		s.push(event{at: s.rng.Int64N(maxThink + 1), kind: evInvoke, client: c})
	}
	return s
}

func (s *sim) push(e event) {
	e.seq = s.seq
	s.seq++
	heap.Push(&s.events, e)
}

func (s *sim) run() {
	for s.events.Len() > 0 {
		e := heap.Pop(&s.events).(event)
		switch e.kind {
		case evInvoke:
			s.invoke(e.at, e.client)
		case evApply:
			s.apply(e.op)
		case evComplete:
			s.complete(e.at, e.client)
		}
	}
}

func (s *sim) line(at int64, c int, t history.Type, p *pending) {
	op := history.Op{
		Index: int64(len(s.h)), Time: at, Process: s.procs[c], Type: t,
		F: p.f, Key: s.keys[p.key], Value: p.value,
	}
	switch t {
	case history.OK:
		if p.f == "read" {
			op.Value = p.result
		}
	case history.Info:
		op.Error = "timeout"
	case history.Fail:
		if p.f != "cas" {
			op.Error = "unavailable"
		}
	}
	if p.f == "read" && t != history.OK {
		op.Value = history.Nil()
	}
	s.h = append(s.h, op)
}

func (s *sim) newValue() history.Value {
	s.nextVal++
	return history.Int(s.nextVal)
}

func (s *sim) invoke(at int64, c int) {
	if s.invokes == 0 {
		return
	}
	s.invokes--
	r := s.rng
	p := &pending{key: r.IntN(len(s.keys)), outcome: history.OK}
	reg := &s.regs[p.key]
	switch {
	case r.Float64() < s.cfg.ReadProb:
		p.f = "read"
	case r.Float64() < s.cfg.CASProb:
		p.f = "cas"
		old := reg.current()
		if r.IntN(5) == 0 {
			old = reg.older(1 + r.IntN(3))
		}
		p.value = history.List(old, s.newValue())
	default:
		p.f = "write"
		p.value = s.newValue()
	}
	switch x := r.Float64(); {
	case x < s.cfg.FailProb:
		p.outcome = history.Fail
	case x < s.cfg.FailProb+s.cfg.InfoProb:
		p.outcome = history.Info
	}
	s.inflight[c] = p
	s.line(at, c, history.Invoke, p)

	latency := minLatency + r.Int64N(maxLatency-minLatency)
	done := at + latency
	switch p.outcome {
	case history.OK:
		// Take effect strictly inside (at, done).
		s.push(event{at: at + 1 + r.Int64N(latency-1), kind: evApply, op: p})
	case history.Info:
		if p.f != "read" && r.IntN(2) == 0 {
			// Take effect at some point after the call, perhaps well after
			// the client gave up on it.
			s.push(event{at: at + 1 + r.Int64N(latency+lateApply), kind: evApply, op: p})
		}
	}
	s.push(event{at: done, kind: evComplete, client: c})
}

func (s *sim) apply(p *pending) {
	reg := &s.regs[p.key]
	switch p.f {
	case "read":
		p.result = reg.current()
		if s.cfg.StaleProb > 0 && s.rng.Float64() < s.cfg.StaleProb {
			k := 1
			for k < keepVers && s.rng.IntN(2) == 0 {
				k++
			}
			p.result = reg.older(k)
		}
	case "write":
		reg.set(p.value)
	case "cas":
		old, nv, _ := p.value.Pair()
		if !reg.current().Equal(old) {
			if p.outcome == history.OK {
				p.outcome = history.Fail
			}
			return
		}
		reg.set(nv)
	}
}

func (s *sim) complete(at int64, c int) {
	p := s.inflight[c]
	s.inflight[c] = nil
	s.line(at, c, p.outcome, p)
	if p.outcome == history.Info {
		s.procs[c] = s.nextProc
		s.nextProc++
	}
	s.push(event{at: at + s.rng.Int64N(maxThink+1), kind: evInvoke, client: c})
}
