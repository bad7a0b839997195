package checkers

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

func ctrAdd(p int, key string, delta int64, call, ret float64, typ history.Type) lwSpan {
	return lwSpan{p: p, f: FAdd, key: key, in: history.Int(delta), out: history.Int(delta), typ: typ, call: call, ret: ret}
}

func ctrRead(p int, key string, call, ret float64, v history.Value) lwSpan {
	return lwSpan{p: p, f: FRead, key: key, out: v, typ: history.OK, call: call, ret: ret}
}

func TestCounter(t *testing.T) {
	v := history.Int
	lwRunCases(t, Counter, []lwCase{
		{
			name: "counter/sequential-adds-exact-total/valid",
			spans: []lwSpan{
				ctrAdd(0, "c", 1, 0, 1, lwOK),
				ctrAdd(0, "c", 2, 2, 3, lwOK),
				ctrRead(1, "c", 4, 5, v(3)),
			},
			want:  Valid,
			stats: map[string]float64{"keys": 1, "reads": 1, "adds": 2, "adds_ok": 2, "out_of_bounds": 0},
		},
		{
			name: "counter/read-concurrent-with-adds-sees-either/valid",
			spans: []lwSpan{
				ctrAdd(0, "c", 5, 0, 10, lwOK),
				ctrAdd(2, "c", 3, 1, 9, lwOK),
				ctrRead(1, "c", 2, 3, v(0)),
				ctrRead(1, "c", 4, 5, v(3)),
				ctrRead(1, "c", 6, 7, v(8)),
				ctrRead(1, "c", 11, 12, v(8)),
			},
			want: Valid,
		},
		{
			name: "counter/info-add-applied/valid",
			spans: []lwSpan{
				ctrAdd(0, "c", 5, 0, 1, lwInfo),
				ctrRead(1, "c", 4, 5, v(5)),
			},
			want:  Valid,
			stats: map[string]float64{"adds_info": 1},
		},
		{
			name: "counter/info-add-not-applied/valid",
			spans: []lwSpan{
				ctrAdd(0, "c", 5, 0, -1, lwInfo),
				ctrRead(1, "c", 4, 5, v(0)),
			},
			want: Valid,
		},
		{
			name: "counter/read-higher-than-every-add/invalid",
			spans: []lwSpan{
				ctrAdd(0, "c", 1, 0, 1, lwOK),
				ctrAdd(2, "c", 1, 0, 10, lwOK),
				ctrRead(1, "c", 2, 3, v(3)),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
			stats: map[string]float64{"out_of_bounds": 1, "max_error": 1},
		},
		{
			name: "counter/read-misses-acknowledged-add/invalid",
			spans: []lwSpan{
				ctrAdd(0, "c", 3, 0, 1, lwOK),
				ctrRead(1, "c", 2, 3, v(0)),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
			stats: map[string]float64{"max_error": 3},
		},
		{
			name: "counter/negative-deltas-in-bounds/valid",
			spans: []lwSpan{
				ctrAdd(0, "c", -3, 0, 1, lwOK),
				ctrAdd(2, "c", 2, 2, 10, lwOK),
				ctrAdd(3, "c", -4, 2, 10, lwInfo),
				ctrRead(1, "c", 3, 4, v(-7)),
				ctrRead(1, "c", 5, 6, v(-1)),
				ctrRead(1, "c", 7, 8, v(-3)),
			},
			want: Valid,
		},
		{
			name: "counter/negative-delta-ignored/invalid",
			spans: []lwSpan{
				ctrAdd(0, "c", -3, 0, 1, lwOK),
				ctrAdd(2, "c", 2, 2, 10, lwOK),
				ctrRead(1, "c", 3, 4, v(0)),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
		},
		{
			name: "counter/read-lower-than-negatives-allow/invalid",
			spans: []lwSpan{
				ctrAdd(0, "c", -3, 0, 10, lwOK),
				ctrRead(1, "c", 3, 4, v(-4)),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
		},
		{
			name: "counter/failed-add-counted/invalid",
			spans: []lwSpan{
				ctrAdd(0, "c", 5, 0, 1, lwFail),
				ctrRead(1, "c", 2, 3, v(5)),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
			stats: map[string]float64{"adds_fail": 1},
		},
		{
			name: "counter/add-invoked-after-read-returned/invalid",
			spans: []lwSpan{
				ctrRead(1, "c", 0, 1, v(5)),
				ctrAdd(0, "c", 5, 2, 3, lwOK),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
		},
		{
			name: "counter/null-read-before-any-add/valid",
			spans: []lwSpan{
				ctrRead(1, "c", 0, 1, history.Nil()),
				ctrAdd(0, "c", 5, 2, 3, lwOK),
			},
			want: Valid,
		},
		{
			name: "counter/keys-judged-apart/invalid",
			spans: []lwSpan{
				ctrAdd(0, "a", 5, 0, 1, lwOK),
				ctrAdd(0, "b", 7, 2, 3, lwOK),
				ctrRead(1, "a", 4, 5, v(5)),
				ctrRead(2, "b", 4, 5, v(5)),
			},
			want:  Invalid,
			kinds: []string{KindCounterOutOfBounds},
			stats: map[string]float64{"keys": 2, "max_error": 2},
		},
		{
			name: "counter/non-integer-delta/unknown",
			spans: []lwSpan{
				{p: 0, f: FAdd, key: "c", in: history.String("x"), out: history.String("x"), typ: lwOK, call: 0, ret: 1},
				ctrRead(1, "c", 2, 3, v(5)),
			},
			want:  Unknown,
			stats: map[string]float64{"skipped_keys": 1},
		},
		{
			name: "counter/set-and-register-keys-ignored/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3, 1),
				lwRegWrite(0, "k", 7, 4, 5, lwOK),
				lwRegRead(1, "k", 6, 7, v(7), false),
			},
			want:  Valid,
			stats: map[string]float64{"keys": 0},
		},
	})
}

func TestCounterExplanation(t *testing.T) {
	h := lwBuild(t,
		ctrAdd(0, "c1", 5, 0, 1, lwOK),
		ctrAdd(2, "c1", -2, 1, 10, lwOK),
		ctrAdd(3, "c1", 4, 1, 10, lwInfo),
		ctrRead(1, "c1", 2, 3, history.Int(12)),
	)
	res := Counter(context.Background(), NewInput(h), Options{})
	if len(res.Anomalies) != 1 {
		t.Fatalf("want one anomaly, got %+v", res.Anomalies)
	}
	got := res.Anomalies[0].Explanation
	for _, want := range []string{"returned 12", "[3, 9]", "sum to 5", "by -2 to +4", "(op 4)"} {
		if !strings.Contains(got, want) {
			t.Errorf("explanation %q lacks %q", got, want)
		}
	}
	if res.Stats["max_error"] != 3 {
		t.Errorf("max_error %v, want 3", res.Stats["max_error"])
	}
}

// TestCounterMatchesBruteForce compares the sweep with the definition
// applied read by read, on random histories.
func TestCounterMatchesBruteForce(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		h := ctrGen(seed, ctrConfig{lines: 2000, keys: 3, negative: true, noise: 2})
		in := NewInput(h)
		res := Counter(context.Background(), in, Options{})
		want := 0
		for _, r := range in.Ops {
			if r.F != FRead || r.Type != history.OK {
				continue
			}
			got, _ := r.Value.AsInt()
			var definite, lo, hi int64
			for _, a := range in.Ops {
				if a.F != FAdd || a.Key != r.Key || a.Type == history.Fail {
					continue
				}
				d, _ := a.Value.AsInt()
				switch {
				case a.Type == history.OK && a.Return < r.Call:
					definite += d
				case a.Call < r.Return && d < 0:
					lo += d
				case a.Call < r.Return:
					hi += d
				}
			}
			if got < definite+lo || got > definite+hi {
				want++
			}
		}
		if want == 0 {
			t.Fatalf("seed %d: the noisy history has no violation to compare", seed)
		}
		if res.AnomalyCount != want {
			t.Errorf("seed %d: %d out of bounds, brute force finds %d", seed, res.AnomalyCount, want)
		}
	}
}

// ctrConfig shapes a synthetic counter history.
type ctrConfig struct {
	clients, lines, keys int
	negative             bool    // deltas in [-5, 5] instead of [1, 5]
	double               float64 // fraction of acknowledged adds applied twice (a retried request)
	noise                int64   // reads off by up to this much, half the time
}

// ctrGen makes a counter history: adds and reads (a third of the operations)
// on keys c0..c(keys-1), 1% info adds (half applied) and 1% failed ones,
// against a store that applies each add when it completes.
func ctrGen(seed uint64, cfg ctrConfig) history.History {
	if cfg.clients == 0 {
		cfg.clients = 10
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	d := &lwDriver{rng: rng}
	totals := map[string]int64{}
	d.run(cfg.clients, cfg.lines, func(t int64) (string, string, history.Value) {
		k := "c" + strconv.Itoa(rng.IntN(cfg.keys))
		if rng.IntN(3) == 0 {
			return FRead, k, history.Nil()
		}
		delta := 1 + rng.Int64N(5)
		if cfg.negative {
			delta = rng.Int64N(11) - 5
		}
		return FAdd, k, history.Int(delta)
	}, func(inv history.Op, t int64) (history.Type, history.Value) {
		if inv.F == FRead {
			v := totals[inv.Key]
			if cfg.noise > 0 && rng.IntN(2) == 0 {
				v += rng.Int64N(2*cfg.noise+1) - cfg.noise
			}
			return history.OK, history.Int(v)
		}
		delta, _ := inv.Value.AsInt()
		typ := history.OK
		switch x := rng.Float64(); {
		case x < 0.01:
			typ = history.Info
		case x < 0.02:
			typ = history.Fail
		}
		if typ == history.OK || (typ == history.Info && rng.IntN(2) == 0) {
			totals[inv.Key] += delta
			if typ == history.OK && rng.Float64() < cfg.double {
				totals[inv.Key] += delta
			}
		}
		return typ, inv.Value
	})
	return d.h
}

// BenchmarkCounter checks a 1M-line counter history over 1000 keys.
func BenchmarkCounter(b *testing.B) {
	h := ctrGen(42, ctrConfig{lines: 1_000_000, keys: 1000, negative: true})
	b.Logf("seed 42: %d lines", len(h))
	lwBenchmark(b, h, Counter)
}
