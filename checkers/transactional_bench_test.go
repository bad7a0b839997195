package checkers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// genListAppend makes a history of n list-append transactions by procs
// concurrent processes against a serializable store: each transaction
// has 1 to 4 micro-operations over a pool of active keys that rotates
// (each key takes at most maxAppends appends), and runs at one instant
// inside its call and return, which overlap those of the other
// processes. The history is strict-serializable, so a checker must
// search it all.
func genListAppend(n, procs, maxAppends int, seed uint64) history.History {
	rng := rand.New(rand.NewPCG(seed, 1))
	const active = 8
	keys := make([]int, active)
	appends := map[int]int{}
	state := map[int][]history.Value{}
	nextKey := active
	for i := range keys {
		keys[i] = i
	}
	h := make(history.History, 0, 2*n)
	type open struct {
		inv, done history.Op
		at        int64
	}
	pending := make([]*open, procs)
	var now int64
	flush := func(p int) {
		if o := pending[p]; o != nil {
			o.done.Time = now
			o.done.Index = int64(len(h))
			h = append(h, o.done)
			pending[p] = nil
		}
	}
	for i := 0; i < n; i++ {
		p := rng.IntN(procs)
		now += 1000
		flush(p)
		var inv, done []history.Value
		for j := 1 + rng.IntN(4); j > 0; j-- {
			slot := rng.IntN(active)
			k := keys[slot]
			key := history.Int(int64(k))
			if rng.IntN(2) == 0 {
				appends[k]++
				e := history.Int(int64(appends[k]))
				state[k] = append(state[k], e)
				inv = append(inv, history.List(history.String(MopAppend), key, e))
				done = append(done, history.List(history.String(MopAppend), key, e))
				if appends[k] >= maxAppends {
					keys[slot] = nextKey
					nextKey++
				}
			} else {
				inv = append(inv, history.List(history.String(MopRead), key, history.Nil()))
				done = append(done, history.List(history.String(MopRead), key, history.List(append([]history.Value(nil), state[k]...)...)))
			}
		}
		op := history.Op{Index: int64(len(h)), Time: now, Process: history.Process(p), Type: history.Invoke, F: FTxn, Value: history.List(inv...)}
		h = append(h, op)
		pending[p] = &open{done: history.Op{Process: history.Process(p), Type: history.OK, F: FTxn, Value: history.List(done...)}}
	}
	for p := range pending {
		now += 1000
		flush(p)
	}
	return h
}

func TestGenListAppendIsValid(t *testing.T) {
	h := genListAppend(5000, 10, 20, 1)
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	r := Transactional(context.Background(), NewInput(h), Options{})
	if r.Verdict != Valid {
		t.Fatalf("%s (%s): %v", r.Verdict, r.Reason, r.Anomalies)
	}
}

// BenchmarkTransactional checks generated list-append histories for
// strict-serializable (the default): n transactions by 10 processes.
func BenchmarkTransactional(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("txns=%d", n), func(b *testing.B) {
			in := NewInput(genListAppend(n, 10, 20, 1))
			b.ReportAllocs()
			for b.Loop() {
				if r := Transactional(context.Background(), in, Options{}); r.Verdict != Valid {
					b.Fatalf("%s: %s", r.Verdict, r.Reason)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "txns/s")
		})
	}
}

// BenchmarkTransactionalConcurrency checks 100,000 transactions by 10,
// 100 and 1000 concurrent processes: the real-time order goes through one
// barrier per completion, so the time should stay flat as more
// transactions overlap.
func BenchmarkTransactionalConcurrency(b *testing.B) {
	for _, procs := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			in := NewInput(genListAppend(100_000, procs, 20, 1))
			b.ReportAllocs()
			for b.Loop() {
				if r := Transactional(context.Background(), in, Options{}); r.Verdict != Valid {
					b.Fatalf("%s: %s", r.Verdict, r.Reason)
				}
			}
			b.ReportMetric(float64(100_000)*float64(b.N)/b.Elapsed().Seconds(), "txns/s")
		})
	}
}
