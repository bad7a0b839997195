package checkers

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/synth"
)

// hotKeyHistory simulates a linearizable single-key register hammered by
// clients concurrent clients, n operations in all: every operation takes
// effect at a random point inside its interval, reads return the state at
// their point, writes are unique, CASes succeed when their expected value
// is current, and about 1% of writes and CASes end indeterminate (applied
// or not). Deterministic in seed.
func hotKeyHistory(clients, n int, seed uint64) history.History {
	r := rand.New(rand.NewPCG(seed, 7))
	type sim struct {
		p           int
		f           string
		call, ret   int64
		point       int64
		typ         history.Type
		apply       bool
		v, old, got history.Value
	}
	ops := make([]sim, 0, n)
	next := make([]int64, clients)
	for i := 0; i < n; i++ {
		p := i % clients
		call := next[p] + int64(r.IntN(1000))
		ret := call + 1 + int64(r.IntN(20000))
		next[p] = ret
		s := sim{p: p, call: call, ret: ret, point: call + r.Int64N(ret-call+1), typ: history.OK}
		switch k := r.IntN(10); {
		case k < 5:
			s.f = FRead
		case k < 8:
			s.f = FWrite
		default:
			s.f = FCAS
		}
		if s.f != FRead && r.IntN(100) == 0 {
			s.typ, s.apply = history.Info, r.IntN(2) == 0
		}
		ops = append(ops, s)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return ops[order[a]].point < ops[order[b]].point })
	state, val := history.Nil(), int64(1)
	for _, i := range order {
		s := &ops[i]
		switch s.f {
		case FRead:
			s.got = state
		case FWrite:
			s.v = history.Int(val)
			val++
			if s.typ == history.OK || s.apply {
				state = s.v
			}
		case FCAS:
			s.old = state
			if r.IntN(2) == 0 {
				s.old = history.Int(val + 1_000_000_000) // never written: the CAS fails
			}
			s.v = history.Int(val)
			val++
			if s.old.Equal(state) {
				if s.typ == history.OK || s.apply {
					state = s.v
				}
			} else if s.typ == history.OK {
				s.typ = history.Fail
			}
		}
	}
	type ev struct {
		t   int64
		seq int
		op  history.Op
	}
	evs := make([]ev, 0, 2*n)
	for i, s := range ops {
		val := s.v
		if s.f == FCAS {
			val = history.List(s.old, s.v)
		}
		inv := history.Op{Process: history.Process(s.p), Type: history.Invoke, F: s.f, Value: val}
		comp := inv
		comp.Type = s.typ
		if s.f == FRead {
			comp.Value = s.got
		}
		evs = append(evs, ev{s.call, 2 * i, inv}, ev{s.ret, 2*i + 1, comp})
	}
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].t != evs[b].t {
			return evs[a].t < evs[b].t
		}
		return evs[a].seq < evs[b].seq
	})
	h := make(history.History, len(evs))
	for i, e := range evs {
		e.op.Index, e.op.Time = int64(i), e.t
		h[i] = e.op
	}
	return h
}

func TestHotKeyHistoryIsLinearizable(t *testing.T) {
	h := hotKeyHistory(20, 1600, 1)
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	out := zonesOn(t, h)
	if out.Fallback != "" || len(out.Anomalies) > 0 {
		t.Fatalf("simulated linearizable history judged otherwise: fallback %q, anomalies %+v", out.Fallback, out.Anomalies)
	}
}

var hotKeyCases = []struct {
	name       string
	clients, n int
}{
	{"c20-1.6k", 20, 1600},
	{"c50-16k", 50, 16000},
	{"c100-800k", 100, 800000},
}

// BenchmarkZonesHotKey is the engine alone on one hot key.
func BenchmarkZonesHotKey(b *testing.B) {
	for _, c := range hotKeyCases {
		h := hotKeyHistory(c.clients, c.n, 1)
		ops := history.Pair(h)
		pos := make([]int, len(ops))
		for i := range pos {
			pos[i] = i
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if out := checkZones("", ops, pos); out.Fallback != "" || len(out.Anomalies) > 0 {
					b.Fatalf("wrong verdict: %q %d", out.Fallback, len(out.Anomalies))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ops)), "ns/history-op")
		})
	}
}

// BenchmarkPorcupineHotKey is raw Porcupine on the same operations, with a
// 60 s bound: "unknown" counts how often it gave up.
func BenchmarkPorcupineHotKey(b *testing.B) {
	for _, c := range hotKeyCases {
		h := hotKeyHistory(c.clients, c.n, 1)
		var ops []porcupine.Operation
		for _, o := range history.Pair(h) {
			if o.Type == history.Fail || (o.Type == history.Info && o.F == FRead) {
				continue
			}
			in := refIn{f: o.F, v: o.Value, info: o.Type == history.Info}
			if o.F == FCAS {
				in.old, in.v, _ = o.Value.Pair()
			}
			ret := o.Return
			if ret == history.Open {
				ret = 1 << 60
			}
			ops = append(ops, porcupine.Operation{ClientId: int(o.Process), Input: in, Call: o.Call, Return: ret})
		}
		b.Run(c.name, func(b *testing.B) {
			unknown := 0
			for b.Loop() {
				switch porcupine.CheckOperationsTimeout(refModel, ops, 60*time.Second) {
				case porcupine.Unknown:
					unknown++
				case porcupine.Illegal:
					b.Fatal("porcupine says a simulated linearizable history is not")
				}
			}
			b.ReportMetric(float64(unknown)/float64(b.N), "unknown")
		})
	}
}

// BenchmarkLinearizableUnique100k compares the two engines through the
// checker on a 100k-operation history with unique written values (100
// keys, 10 clients, 10% CAS, 1% info), the shape eccheck's own workloads
// record.
func BenchmarkLinearizableUnique100k(b *testing.B) {
	const seed = 3
	b.Logf("seed %d", seed)
	in := NewInput(synth.Register(synth.RegisterConfig{Ops: 200_000, Keys: 100, Clients: 10, Seed: seed, CASProb: 0.1, InfoProb: 0.01}))
	for _, engine := range []string{EngineAuto, EnginePorcupine} {
		b.Run(engine, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := Linearizable(context.Background(), in, Options{Engine: engine})
				if r.Verdict != Valid {
					b.Fatalf("verdict %s: %s", r.Verdict, r.Summary)
				}
				if engine == EngineAuto && r.Stats["keys_zones"] != 100 {
					b.Fatalf("zones decided %v keys, want 100: %v", r.Stats["keys_zones"], r.Details)
				}
			}
		})
	}
}
