package checkers

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/synth"
)

func TestStaleness(t *testing.T) {
	// Two writes of k; reads of the older value and of the initial one
	// after them. lag(w1) = 4 - 1 = 3 ms (the read of nil at 4); lag(w2) =
	// 10 - 3 = 7 ms (the second read of 1).
	lagged := []hop{hw(1, 1, 0, 1), hw(1, 2, 2, 3), hr(4, 2, 3.5, 4), hr(3, nil, 4, 4.5), hr(2, 1, 5, 6), hr(2, 1, 10, 11)}
	tests := []struct {
		name    string
		ops     []hop
		max     time.Duration
		verdict Verdict
		stats   map[string]float64
		// anomalies lists, per anomaly, the hops its Ops must cite.
		anomalies [][]int
	}{
		{name: "staleness/older value and initial value after writes/exact lags", ops: lagged, verdict: Valid,
			stats: map[string]float64{"writes": 2, "stale_writes": 2, "stale_reads": 3, "reads": 4,
				"stale_p50_ms": 3, "stale_p95_ms": 7, "stale_p99_ms": 7, "stale_max_ms": 7}},
		{name: "staleness/max staleness exceeded/invalid", ops: lagged, max: 5 * time.Millisecond, verdict: Invalid,
			stats:     map[string]float64{"stale_max_ms": 7, "reads_beyond_max": 1},
			anomalies: [][]int{{1, 5, 0}}},
		{name: "staleness/max staleness just exceeded/invalid", ops: lagged, max: 6900 * time.Microsecond, verdict: Invalid,
			stats: map[string]float64{"reads_beyond_max": 1}, anomalies: [][]int{{1, 5, 0}}},
		{name: "staleness/max staleness equal to the worst lag/valid", ops: lagged, max: 7 * time.Millisecond, verdict: Valid,
			stats: map[string]float64{"stale_max_ms": 7, "reads_beyond_max": 0}},
		{name: "staleness/initial value beyond max staleness/invalid", ops: lagged, max: 2 * time.Millisecond, verdict: Invalid,
			stats: map[string]float64{"reads_beyond_max": 2}, anomalies: [][]int{{0, 3}, {1, 5, 0}}},
		{name: "staleness/concurrent writes/lag 0",
			ops:     []hop{hw(1, 1, 0, 5), hw(2, 2, 1, 3), hr(3, 1, 10, 11), hr(3, 2, 12, 13)},
			verdict: Valid, stats: map[string]float64{"writes": 2, "stale_reads": 0, "stale_max_ms": 0, "stale_writes": 0}},
		{name: "staleness/read begins before the write completes/lag 0",
			ops:     []hop{hw(1, 1, 0, 1), hw(2, 2, 2, 10), hr(3, 1, 5, 6), hr(3, nil, 0.5, 0.8)},
			verdict: Valid, stats: map[string]float64{"stale_reads": 0, "stale_max_ms": 0}},
		{name: "staleness/value of an info write is never older/lag 0",
			ops:     []hop{hw(1, 1, 0, 1).info(), hw(2, 2, 2, 3), hr(3, 1, 5, 6)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 0, "stale_max_ms": 0}},
		// The info write of 1 was seen by a read that returned at 2 ms,
		// before the write of 2 began at 3: 1 had taken effect, and the
		// read of it at 6, after 2 was acknowledged at 4, is stale (lag
		// 2 ms).
		{name: "staleness/info write seen by a read before the next write/stale",
			ops:     []hop{hw(1, 1, 0, 1).info(), hr(3, 1, 1.5, 2), hw(2, 2, 3, 4), hr(3, 1, 6, 7)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 1, "stale_max_ms": 2, "stale_writes": 1}},
		{name: "staleness/info write seen early, beyond max staleness/invalid, citing the read that saw it",
			ops: []hop{hw(1, 1, 0, 1).info(), hr(3, 1, 1.5, 2), hw(2, 2, 3, 4), hr(3, 1, 6, 7)}, max: time.Millisecond, verdict: Invalid,
			stats: map[string]float64{"reads_beyond_max": 1}, anomalies: [][]int{{2, 3, 0, 1}}},
		// The same, but the first read of 1 returned after the write of 2
		// began: 1 may have taken effect after 2, so no read is stale.
		{name: "staleness/info write seen only after the next write began/lag 0",
			ops:     []hop{hw(1, 1, 0, 1).info(), hr(3, 1, 1.5, 3.5), hw(2, 2, 3, 4), hr(3, 1, 6, 7)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 0, "stale_max_ms": 0}},
		// An acknowledged write that finished late (at 10) whose value was
		// read at 2: read again at 6 after the write of 2 (3 to 4), it is
		// stale; without the early read it would not be.
		{name: "staleness/slow write seen early/stale",
			ops:     []hop{hw(1, 1, 0, 10), hr(3, 1, 1, 2), hw(2, 2, 3, 4), hr(3, 1, 6, 7)},
			verdict: Valid, stats: map[string]float64{"writes": 2, "stale_reads": 1, "stale_max_ms": 2}},
		{name: "staleness/info write is not acknowledged/lag 0",
			ops:     []hop{hw(1, 1, 0, 1), hw(2, 2, 2, 3).info(), hr(3, 1, 5, 6)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 0, "stale_max_ms": 0}},
		{name: "staleness/failed write is not acknowledged/lag 0",
			ops:     []hop{hw(1, 1, 0, 1), hw(2, 2, 2, 3).fail(), hr(3, 1, 5, 6), hr(3, 2, 7, 8)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 0, "skipped_reads": 1}},
		{name: "staleness/initial value before any write/lag 0",
			ops:     []hop{hr(2, nil, 0, 1), hw(1, 1, 2, 3), hr(2, 1, 4, 5)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 0, "stale_max_ms": 0}},
		{name: "staleness/initial value after a write/lag 2 ms",
			ops:     []hop{hw(1, 1, 0, 1), hr(2, nil, 3, 4)},
			verdict: Valid, stats: map[string]float64{"writes": 1, "stale_reads": 1, "stale_max_ms": 2, "stale_p50_ms": 2}},
		{name: "staleness/acknowledged cas/lag 4 ms",
			ops:     []hop{hw(1, 1, 0, 1), hcas(1, 1, 2, 2, 3), hr(2, 1, 7, 8)},
			verdict: Valid, stats: map[string]float64{"writes": 2, "stale_reads": 1, "stale_max_ms": 4, "stale_p50_ms": 0}},
		{name: "staleness/keys apart/lag only where older",
			ops:     []hop{hw(1, 1, 0, 1), hw(1, 2, 2, 3).on("k2"), hr(2, 1, 7, 8), hr(2, nil, 9, 10).on("k3")},
			verdict: Valid, stats: map[string]float64{"writes": 2, "stale_reads": 0, "keys": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := regInput(t, tt.ops...)
			res := Staleness(context.Background(), in, Options{MaxStaleness: tt.max})
			if res.Checker != NameStaleness {
				t.Errorf("checker %q", res.Checker)
			}
			if res.Verdict != tt.verdict {
				t.Fatalf("verdict %s, want %s: %+v", res.Verdict, tt.verdict, res.Anomalies)
			}
			for k, want := range tt.stats {
				if got, ok := res.Stats[k]; !ok || math.Abs(got-want) > 1e-9 {
					t.Errorf("stats[%q] = %v, want %v (all: %v)", k, got, want, res.Stats)
				}
			}
			if res.AnomalyCount != len(tt.anomalies) {
				t.Fatalf("%d anomalies, want %d: %+v", res.AnomalyCount, len(tt.anomalies), res.Anomalies)
			}
			for i, a := range res.Anomalies {
				var got, want []int
				for _, r := range a.Ops {
					got = append(got, r.Invoke)
				}
				for _, hi := range tt.anomalies[i] {
					want = append(want, invokeOf(in, tt.ops, hi))
				}
				if a.Kind != "stale-read" || !slices.Equal(got, want) {
					t.Errorf("anomaly %d: kind %q cites %v, want stale-read citing %v: %s", i, a.Kind, got, want, a.Explanation)
				}
			}
		})
	}
}

func TestStalenessExplanation(t *testing.T) {
	in := regInput(t, hw(1, 5, 0, 3), hw(1, 7, 10, 12.1), hr(2, 5, 262.1, 263))
	res := Staleness(context.Background(), in, Options{MaxStaleness: 100 * time.Millisecond})
	if len(res.Anomalies) != 1 {
		t.Fatalf("%d anomalies, want 1", len(res.Anomalies))
	}
	want := "the write of 7 to k (op 2) was acknowledged at 12.1 ms, yet a read invoked 250.0 ms later (op 4, at 262.1 ms) returned 5, a value whose write (op 0) had finished at 3.0 ms, before that write began at 10.0 ms: stale for longer than the 100ms allowed"
	if got := res.Anomalies[0].Explanation; got != want {
		t.Errorf("explanation\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(res.Summary, "1 stale reads") || !strings.Contains(res.Summary, "1 beyond 100ms") {
		t.Errorf("summary %q", res.Summary)
	}
}

func TestStalenessCurve(t *testing.T) {
	// Reads measured against the latest finished write (w2, done at 3 ms):
	// 2 at 3.5 ms is fresh (0-1 ms bucket); nil at 4 ms (1-2 ms), 1 at 5 ms
	// (2-5 ms) and 1 at 10 ms (5-10 ms) are not. A read of 2 at 9000 ms
	// lands in the open last bucket, fresh.
	in := regInput(t, hw(1, 1, 0, 1), hw(1, 2, 2, 3), hr(4, 2, 3.5, 4), hr(3, nil, 4, 4.5), hr(2, 1, 5, 6), hr(2, 1, 10, 11), hr(2, 2, 9000, 9001), hr(5, nil, 0.1, 0.2))
	res := Staleness(context.Background(), in, Options{})
	d, ok := res.Details.(StalenessDetails)
	if !ok {
		t.Fatalf("details are %T, want StalenessDetails", res.Details)
	}
	want := []FreshnessPoint{
		{FromMS: 0, ToMS: 1, Reads: 1, Fresh: 1, PFresh: 1},
		{FromMS: 1, ToMS: 2, Reads: 1, Fresh: 0, PFresh: 0},
		{FromMS: 2, ToMS: 5, Reads: 1, Fresh: 0, PFresh: 0},
		{FromMS: 5, ToMS: 10, Reads: 1, Fresh: 0, PFresh: 0},
		{FromMS: 5000, Reads: 1, Fresh: 1, PFresh: 1},
	}
	if !slices.Equal(d.Curve, want) {
		t.Errorf("curve\n got %+v\nwant %+v", d.Curve, want)
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("marshal result: %v", err)
	}
	if !strings.Contains(string(js), `"curve":[{"from_ms":0,"to_ms":1,"reads":1,"fresh":1,"p_fresh":1}`) ||
		!strings.Contains(string(js), `{"from_ms":5000,"reads":1,"fresh":1,"p_fresh":1}`) {
		t.Errorf("JSON curve not as documented: %s", js)
	}
}

func TestStalenessEmpty(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"staleness/empty history/valid", NewInput(nil)},
		{"staleness/reads only/valid", regInput(t, hr(1, nil, 0, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Staleness(context.Background(), tc.in, Options{MaxStaleness: time.Millisecond})
			if res.Verdict != Valid || res.Stats["stale_max_ms"] != 0 || res.Summary == "" {
				t.Errorf("verdict %s stats %v summary %q", res.Verdict, res.Stats, res.Summary)
			}
			if _, err := json.Marshal(res); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

// refIndex finds the single write of a read value, as the reference
// checkers below see it, independently of registers().
type refIndex struct {
	ops    []history.Operation
	writer map[string]map[history.Scalar][]int // key -> value -> writes (OK or info)
}

func newRefIndex(ops []history.Operation) refIndex {
	ix := refIndex{ops: ops, writer: map[string]map[history.Scalar][]int{}}
	for i, o := range ops {
		if o.Type == history.Fail || (o.F != FWrite && o.F != FCAS) {
			continue
		}
		v := o.Value
		if o.F == FCAS {
			_, v, _ = o.Value.Pair()
		}
		if ix.writer[o.Key] == nil {
			ix.writer[o.Key] = map[history.Scalar][]int{}
		}
		ix.writer[o.Key][v.Scalar()] = append(ix.writer[o.Key][v.Scalar()], i)
	}
	return ix
}

// older reports whether read r's value is certainly older than write w, and
// whether r names one write at all.
func (ix refIndex) older(r, w history.Operation) (older, named bool) {
	if r.Value.IsNil() {
		return true, true
	}
	ws := ix.writer[r.Key][r.Value.Scalar()]
	if len(ws) != 1 {
		return false, false
	}
	return ix.ops[ws[0]].Return < w.Call, true
}

// olderSeen is older as staleness reads it: a value is also certainly
// older than w when a read that returned it finished before w began.
func (ix refIndex) olderSeen(r, w history.Operation) bool {
	if old, named := ix.older(r, w); old || !named {
		return old
	}
	for _, e := range ix.ops {
		if e.F == FRead && e.Type == history.OK && e.Key == r.Key && e.Value.Equal(r.Value) && e.Return < w.Call {
			return true
		}
	}
	return false
}

// refStaleness is the quadratic reading of the staleness definition.
func refStaleness(ops []history.Operation) (lags []int64, staleReads int) {
	ix := newRefIndex(ops)
	isRead := func(o history.Operation) bool { return o.F == FRead && o.Type == history.OK }
	isAck := func(o history.Operation) bool { return (o.F == FWrite || o.F == FCAS) && o.Type == history.OK }
	for _, w := range ops {
		if !isAck(w) {
			continue
		}
		var lag int64
		for _, r := range ops {
			if isRead(r) && r.Key == w.Key && r.Call > w.Return {
				if ix.olderSeen(r, w) {
					lag = max(lag, r.Call-w.Return)
				}
			}
		}
		lags = append(lags, lag)
	}
	for _, r := range ops {
		if !isRead(r) {
			continue
		}
		for _, w := range ops {
			if isAck(w) && w.Key == r.Key && w.Return < r.Call {
				if ix.olderSeen(r, w) {
					staleReads++
					break
				}
			}
		}
	}
	slices.Sort(lags)
	return lags, staleReads
}

// refSessions counts read-your-writes and monotonic-reads violations
// straight from the definitions, quadratically.
func refSessions(ops []history.Operation) (ryw, mono int) {
	ix := newRefIndex(ops)
	for i, r := range ops {
		if r.F != FRead || r.Type != history.OK {
			continue
		}
		_, named := ix.older(r, r)
		if !named {
			continue
		}
		// read-your-writes: p's latest OK write of the key before r.
		wp := -1
		for j := range ops[:i] {
			o := ops[j]
			if o.Process == r.Process && o.Key == r.Key && (o.F == FWrite || o.F == FCAS) && o.Type == history.OK && o.Return < r.Call {
				wp = j
			}
		}
		if wp >= 0 {
			if old, _ := ix.older(r, ops[wp]); old {
				ryw++
			}
		}
		// monotonic reads: against every earlier read's write.
		for _, e := range ops[:i] {
			if e.Process != r.Process || e.Key != r.Key || e.F != FRead || e.Type != history.OK || e.Value.IsNil() {
				continue
			}
			ws := ix.writer[e.Key][e.Value.Scalar()]
			if len(ws) != 1 {
				continue
			}
			if old, _ := ix.older(r, ops[ws[0]]); old {
				mono++
				break
			}
		}
	}
	return ryw, mono
}

// FuzzRegisterCheckers runs the three checkers on synthetic histories. A
// linearizable simulation (no stale reads) must be valid everywhere with
// lag 0; with stale reads the fast checkers must agree with the quadratic
// reference readings of the definitions.
func FuzzRegisterCheckers(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint8(2), uint8(0))
	f.Add(uint64(2), uint8(1), uint8(5), uint8(30))
	f.Add(uint64(3), uint8(4), uint8(8), uint8(10))
	f.Add(uint64(4), uint8(2), uint8(3), uint8(90))
	f.Add(uint64(5), uint8(1), uint8(1), uint8(50))
	f.Fuzz(func(t *testing.T, seed uint64, keys, clients, stalePct uint8) {
		cfg := synth.RegisterConfig{
			Ops: 1200, Keys: int(keys%6) + 1, Clients: int(clients%10) + 1, Seed: seed,
			CASProb: 0.3, InfoProb: 0.05, FailProb: 0.05, StaleProb: float64(stalePct%101) / 100,
		}
		t.Logf("synth config %+v", cfg)
		in := NewInput(synth.Register(cfg))
		ctx := context.Background()
		ryw := ReadYourWrites(ctx, in, Options{})
		mono := MonotonicReads(ctx, in, Options{})
		st := Staleness(ctx, in, Options{MaxStaleness: time.Nanosecond})

		if cfg.StaleProb == 0 {
			for _, res := range []Result{ryw, mono, st} {
				if res.Verdict != Valid {
					t.Errorf("%s on a linearizable history: %s, %d anomalies, first %+v", res.Checker, res.Verdict, res.AnomalyCount, res.Anomalies[0])
				}
			}
			if st.Stats["stale_max_ms"] != 0 || st.Stats["stale_reads"] != 0 {
				t.Errorf("staleness on a linearizable history: %v", st.Stats)
			}
		}

		wantRYW, wantMono := refSessions(in.Ops)
		if ryw.AnomalyCount != wantRYW {
			t.Errorf("read-your-writes found %d violations, the reference %d", ryw.AnomalyCount, wantRYW)
		}
		if mono.AnomalyCount != wantMono {
			t.Errorf("monotonic reads found %d violations, the reference %d", mono.AnomalyCount, wantMono)
		}
		lags, staleReads := refStaleness(in.Ops)
		if st.Stats["stale_reads"] != float64(staleReads) || st.AnomalyCount != staleReads {
			t.Errorf("staleness counted %v stale reads and %d beyond 1 ns, the reference %d", st.Stats["stale_reads"], st.AnomalyCount, staleReads)
		}
		if st.Stats["writes"] != float64(len(lags)) {
			t.Errorf("staleness saw %v writes, the reference %d", st.Stats["writes"], len(lags))
		}
		var positive int
		for _, l := range lags {
			if l > 0 {
				positive++
			}
		}
		for name, want := range map[string]float64{
			"stale_max_ms": staleMS(stalePercentile(lags, 1)),
			"stale_p50_ms": staleMS(stalePercentile(lags, 0.5)),
			"stale_p99_ms": staleMS(stalePercentile(lags, 0.99)),
			"stale_writes": float64(positive),
		} {
			if st.Stats[name] != want {
				t.Errorf("staleness %s = %v, the reference %v", name, st.Stats[name], want)
			}
		}
	})
}

// TestRegisterCheckersFindStaleness makes sure the synthetic stale reads
// give the checkers work: each one finds something.
func TestRegisterCheckersFindStaleness(t *testing.T) {
	cfg := synth.RegisterConfig{Ops: 20000, Keys: 3, Clients: 5, Seed: 11, StaleProb: 0.2, InfoProb: 0.02, FailProb: 0.02, CASProb: 0.2}
	t.Logf("synth config %+v", cfg)
	in := NewInput(synth.Register(cfg))
	ctx := context.Background()
	for _, res := range []Result{
		ReadYourWrites(ctx, in, Options{}),
		MonotonicReads(ctx, in, Options{}),
		Staleness(ctx, in, Options{MaxStaleness: time.Millisecond}),
	} {
		if res.Verdict != Invalid || res.AnomalyCount == 0 {
			t.Errorf("%s: verdict %s with %d anomalies on a history with 20%% stale reads, want invalid", res.Checker, res.Verdict, res.AnomalyCount)
		}
		t.Logf("%s: %s", res.Checker, res.Summary)
	}
}

// TestRegisterCheckersLinearizable is the no-false-alarm property: on
// linearizable simulations (no stale reads, but info, failed and concurrent
// operations and CASes), all three checkers are valid with lag 0. One key
// with ten clients makes concurrent writes the rule, not the exception.
func TestRegisterCheckersLinearizable(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 20; seed++ {
		cfg := synth.RegisterConfig{
			Ops: 6000, Keys: 1 + int(seed%3)*4, Clients: 2 + int(seed%9), Seed: seed,
			CASProb: 0.3, InfoProb: 0.1, FailProb: 0.05,
		}
		in := NewInput(synth.Register(cfg))
		for _, res := range []Result{
			ReadYourWrites(ctx, in, Options{}),
			MonotonicReads(ctx, in, Options{}),
			Staleness(ctx, in, Options{MaxStaleness: time.Nanosecond}),
		} {
			if res.Verdict != Valid || res.AnomalyCount != 0 {
				t.Fatalf("config %+v: %s is %s with %d anomalies, first %+v", cfg, res.Checker, res.Verdict, res.AnomalyCount, res.Anomalies[0])
			}
			if res.Checker == NameStaleness && (res.Stats["stale_max_ms"] != 0 || res.Stats["stale_reads"] != 0 || res.Stats["writes"] == 0) {
				t.Fatalf("config %+v: staleness stats %v, want lag 0 over some writes", cfg, res.Stats)
			}
			if res.Stats["reads"] == 0 {
				t.Fatalf("config %+v: %s saw no reads", cfg, res.Checker)
			}
		}
	}
}
