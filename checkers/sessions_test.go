package checkers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

// hop is one register operation of a hand-written history: times in ms.
type hop struct {
	p         history.Process
	f         string
	key       string
	v         history.Value // written value, CAS pair, or what a read returned
	call, ret float64
	typ       history.Type // OK unless changed
}

func hw(p history.Process, v int64, call, ret float64) hop {
	return hop{p: p, f: FWrite, key: "k", v: history.Int(v), call: call, ret: ret, typ: history.OK}
}

// hr is a read returning v; a nil v is the initial value.
func hr(p history.Process, v any, call, ret float64) hop {
	val := history.Nil()
	if n, ok := v.(int); ok {
		val = history.Int(int64(n))
	}
	return hop{p: p, f: FRead, key: "k", v: val, call: call, ret: ret, typ: history.OK}
}

func hcas(p history.Process, old, nv int64, call, ret float64) hop {
	return hop{p: p, f: FCAS, key: "k", v: history.Ints(old, nv), call: call, ret: ret, typ: history.OK}
}

// info makes the operation end with info at its ret time.
func (o hop) info() hop { o.typ = history.Info; return o }
func (o hop) fail() hop { o.typ = history.Fail; return o }
func (o hop) on(k string) hop {
	o.key = k
	return o
}

// regInput builds a valid history from hops: an invocation at each call and
// a completion at each ret, in time order (ties keep the order of hops, all
// invocations of a tie before its completions). The invocation line of the
// i-th hop is not necessarily line i; use opAt to find it.
func regInput(t testing.TB, hops ...hop) Input {
	t.Helper()
	type line struct {
		at  int64
		end bool
		i   int
	}
	var lines []line
	for i, o := range hops {
		lines = append(lines, line{int64(o.call * 1e6), false, i}, line{int64(o.ret * 1e6), true, i})
	}
	slices.SortStableFunc(lines, func(a, b line) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		switch {
		case a.end == b.end:
			return 0
		case b.end:
			return -1
		}
		return 1
	})
	var h history.History
	for _, l := range lines {
		o := hops[l.i]
		op := history.Op{Index: int64(len(h)), Time: l.at, Process: o.p, Type: history.Invoke, F: o.f, Key: o.key, Value: o.v}
		if l.end {
			op.Type = o.typ
		}
		if o.f == FRead && (!l.end || o.typ != history.OK) {
			op.Value = history.Nil()
		}
		h = append(h, op)
	}
	if err := history.Validate(h); err != nil {
		t.Fatalf("test history is invalid: %v", err)
	}
	return NewInput(h)
}

// invokeOf returns the invocation line of the i-th hop (its position among
// the paired operations is its order of invocation).
func invokeOf(in Input, hops []hop, i int) int {
	for _, o := range in.Ops {
		h := hops[i]
		if o.Process == h.p && o.Call == int64(h.call*1e6) && o.F == h.f {
			return o.Invoke
		}
	}
	return -2
}

// sessionCase is a hand history with the anomalies it must give: for each,
// the hops (by position in ops) its Ops must cite, in order.
type sessionCase struct {
	name    string
	ops     []hop
	want    [][]int
	skipped int
}

func runSessionCases(t *testing.T, check Func, kind string, cases []sessionCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := regInput(t, tc.ops...)
			res := check(context.Background(), in, Options{})
			wantVerdict := Valid
			if len(tc.want) > 0 {
				wantVerdict = Invalid
			}
			if res.Verdict != wantVerdict {
				t.Fatalf("verdict %s, want %s; anomalies: %+v", res.Verdict, wantVerdict, res.Anomalies)
			}
			if res.AnomalyCount != len(tc.want) || len(res.Anomalies) != len(tc.want) {
				t.Fatalf("%d anomalies, want %d: %+v", res.AnomalyCount, len(tc.want), res.Anomalies)
			}
			for i, a := range res.Anomalies {
				if a.Kind != kind || a.Key == "" || a.Explanation == "" {
					t.Errorf("anomaly %d: kind %q key %q explanation %q", i, a.Kind, a.Key, a.Explanation)
				}
				var got, want []int
				for _, r := range a.Ops {
					got = append(got, r.Invoke)
				}
				for _, hi := range tc.want[i] {
					want = append(want, invokeOf(in, tc.ops, hi))
				}
				if !slices.Equal(got, want) {
					t.Errorf("anomaly %d cites ops %v, want %v: %s", i, got, want, a.Explanation)
				}
			}
			if got := res.Stats["skipped_reads"]; got != float64(tc.skipped) {
				t.Errorf("skipped_reads %v, want %d", got, tc.skipped)
			}
		})
	}
}

func TestReadYourWrites(t *testing.T) {
	runSessionCases(t, ReadYourWrites, NameReadYourWrites, []sessionCase{
		{name: "ryw/own write then read it/valid", ops: []hop{hw(1, 1, 0, 1), hr(1, 1, 2, 3)}},
		{name: "ryw/initial value before any write/valid", ops: []hop{hr(1, nil, 0, 1), hw(1, 1, 2, 3), hr(1, 1, 4, 5)}},
		{name: "ryw/initial value after own write/invalid", ops: []hop{hw(1, 1, 0, 1), hr(1, nil, 2, 3)}, want: [][]int{{0, 1}}},
		{name: "ryw/initial value after another process's write/valid", ops: []hop{hw(2, 1, 0, 1), hr(1, nil, 2, 3)}},
		{name: "ryw/write finished before own write began/invalid",
			ops:  []hop{hw(2, 5, 0, 1), hw(1, 7, 2, 3), hr(1, 5, 4, 5)},
			want: [][]int{{1, 2, 0}}},
		{name: "ryw/concurrent foreign write read after own/valid",
			ops: []hop{hw(2, 5, 0, 3), hw(1, 7, 2, 4), hr(1, 5, 5, 6)}},
		{name: "ryw/own write through overlapping foreign writes/valid",
			ops: []hop{hw(3, 3, 0, 12), hw(1, 1, 10, 20), hw(2, 2, 15, 25), hr(1, 2, 30, 31), hr(1, 3, 32, 33), hr(1, 1, 34, 35)}},
		{name: "ryw/older write among overlapping foreign writes/invalid",
			ops:  []hop{hw(4, 4, 0, 5), hw(3, 3, 0, 12), hw(1, 1, 10, 20), hw(2, 2, 15, 25), hr(1, 2, 30, 31), hr(1, 4, 32, 33)},
			want: [][]int{{2, 5, 0}}},
		{name: "ryw/value whose write has not completed/valid",
			ops: []hop{hw(2, 2, 0.5, 100), hw(1, 1, 1, 2), hr(1, 2, 3, 4)}},
		{name: "ryw/info write that took effect/valid",
			ops: []hop{hw(2, 2, 0, 1).info(), hw(1, 1, 5, 6), hr(1, 2, 7, 8)}},
		{name: "ryw/failed own write does not count/valid",
			ops: []hop{hw(2, 1, 0, 1), hw(1, 2, 2, 3).fail(), hr(1, 1, 4, 5)}},
		{name: "ryw/failed own write then initial value/valid",
			ops: []hop{hw(1, 2, 2, 3).fail(), hr(1, nil, 4, 5)}},
		{name: "ryw/value only a failed write wrote/skipped",
			ops: []hop{hw(1, 1, 0, 1), hw(2, 9, 2, 3).fail(), hr(1, 9, 4, 5)}, skipped: 1},
		{name: "ryw/value written twice/skipped",
			ops: []hop{hw(2, 5, 0, 1), hw(3, 5, 0, 1), hw(1, 7, 2, 3), hr(1, 5, 4, 5)}, skipped: 1},
		{name: "ryw/own cas then older value/invalid",
			ops:  []hop{hw(2, 5, 0, 1), hcas(1, 5, 8, 2, 3), hr(1, 5, 4, 5)},
			want: [][]int{{1, 2, 0}}},
		{name: "ryw/own failed cas does not count/valid",
			ops: []hop{hw(2, 5, 0, 1), hcas(1, 6, 8, 2, 3).fail(), hr(1, 5, 4, 5)}},
		{name: "ryw/latest own write is the one that counts/invalid",
			ops:  []hop{hw(1, 1, 0, 1), hw(1, 2, 2, 3), hr(1, 1, 4, 5)},
			want: [][]int{{1, 2, 0}}},
		{name: "ryw/another process's session/valid",
			ops: []hop{hw(2, 5, 0, 1), hw(1, 7, 2, 3), hr(2, 5, 4, 5)}},
		{name: "ryw/own write of another key/valid",
			ops: []hop{hw(2, 5, 0, 1), hw(1, 7, 2, 3).on("k2"), hr(1, 5, 4, 5), hr(1, nil, 6, 7).on("k3")}},
	})
}

func TestMonotonicReads(t *testing.T) {
	runSessionCases(t, MonotonicReads, NameMonotonicReads, []sessionCase{
		{name: "monotonic/newer reads/valid",
			ops: []hop{hw(2, 1, 0, 1), hw(2, 2, 2, 3), hr(1, 1, 4, 5), hr(1, 2, 6, 7), hr(1, 2, 8, 9)}},
		{name: "monotonic/newer then older/invalid",
			ops:  []hop{hw(2, 1, 0, 1), hw(2, 2, 2, 3), hr(1, 2, 4, 5), hr(1, 1, 6, 7)},
			want: [][]int{{2, 1, 3, 0}}},
		{name: "monotonic/concurrent writes read in either order/valid",
			ops: []hop{hw(2, 1, 0, 3), hw(3, 2, 1, 4), hr(1, 2, 5, 6), hr(1, 1, 7, 8), hr(1, 2, 9, 10)}},
		{name: "monotonic/initial value before writes/valid",
			ops: []hop{hr(1, nil, 0, 1), hw(2, 1, 2, 3), hr(1, 1, 4, 5)}},
		{name: "monotonic/written value then initial/invalid",
			ops:  []hop{hw(2, 1, 0, 1), hr(1, 1, 2, 3), hr(1, nil, 4, 5)},
			want: [][]int{{1, 0, 2}}},
		{name: "monotonic/info write that took effect then older/invalid",
			ops:  []hop{hw(2, 1, 0, 1), hw(3, 2, 2, 3).info(), hr(1, 2, 4, 5), hr(1, 1, 6, 7)},
			want: [][]int{{2, 1, 3, 0}}},
		{name: "monotonic/value of an info write is never older/valid",
			ops: []hop{hw(3, 1, 0, 1).info(), hw(2, 2, 2, 3), hr(1, 2, 4, 5), hr(1, 1, 6, 7)}},
		{name: "monotonic/value whose write has not completed/valid",
			ops: []hop{hw(2, 2, 0, 100), hr(1, 2, 1, 2), hw(3, 1, 5, 8), hr(1, 1, 10, 11)}},
		{name: "monotonic/latest write began over all earlier reads/invalid",
			ops:  []hop{hw(2, 1, 0, 1), hw(3, 3, 0, 10), hw(2, 2, 2, 3), hr(1, 2, 4, 5), hr(1, 3, 11, 12), hr(1, 1, 13, 14)},
			want: [][]int{{3, 2, 5, 0}}},
		{name: "monotonic/two processes each monotonic/valid",
			ops: []hop{hw(2, 1, 0, 1), hw(2, 2, 2, 3), hr(1, 2, 4, 5), hr(3, 1, 6, 7)}},
		{name: "monotonic/value only a failed write wrote/skipped",
			ops: []hop{hw(2, 1, 0, 1), hw(2, 9, 2, 3).fail(), hr(1, 1, 4, 5), hr(1, 9, 6, 7), hr(1, 1, 8, 9)}, skipped: 1},
		{name: "monotonic/skipped value does not count as read/valid",
			ops: []hop{hw(2, 5, 0, 1), hw(3, 5, 0, 1), hr(1, 5, 2, 3), hr(1, nil, 4, 5)}, skipped: 1},
		{name: "monotonic/newer read on another key/valid",
			ops: []hop{hw(2, 1, 0, 1), hw(2, 2, 2, 3), hw(5, 3, 0, 1).on("k2"), hr(1, 3, 4, 5).on("k2"), hr(1, 1, 6, 7)}},
		{name: "monotonic/cas value then older/invalid",
			ops:  []hop{hw(2, 1, 0, 1), hcas(2, 1, 4, 2, 3), hr(1, 4, 4, 5), hr(1, 1, 6, 7)},
			want: [][]int{{2, 1, 3, 0}}},
	})
}

func TestSessionExplanations(t *testing.T) {
	ops := []hop{hw(2, 5, 0, 3), hw(3, 6, 4, 5), hw(1, 7, 10, 12.1), hr(1, 5, 14, 15), hr(4, 6, 16, 17), hr(4, 5, 18, 19)}
	in := regInput(t, ops...)
	tests := []struct {
		name  string
		check Func
		want  string
	}{
		{"explanation/read-your-writes/names both writes and times", ReadYourWrites,
			"process 1 wrote 7 to k (op 4, acknowledged at 12.1 ms), then read 5 (op 6), a value whose write (op 0) had finished at 3.0 ms, before its own write began at 10.0 ms"},
		{"explanation/monotonic-reads/names the earlier read and times", MonotonicReads,
			"process 4 read 6 from k (op 8), written by op 2 which began at 4.0 ms, then read 5 (op 10), a value whose write (op 0) had finished at 3.0 ms, before that"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.check(context.Background(), in, Options{})
			if len(res.Anomalies) != 1 {
				t.Fatalf("%d anomalies, want 1: %+v", len(res.Anomalies), res.Anomalies)
			}
			if got := res.Anomalies[0].Explanation; got != tt.want {
				t.Errorf("explanation\n got %s\nwant %s", got, tt.want)
			}
			if !strings.Contains(res.Summary, "1 violations") {
				t.Errorf("summary %q does not count the violation", res.Summary)
			}
		})
	}
}

func TestRegisterCheckersCancelled(t *testing.T) {
	in := regInput(t, hw(1, 1, 0, 1), hr(1, nil, 2, 3))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, check := range []Func{ReadYourWrites, MonotonicReads, Staleness} {
		res := check(ctx, in, Options{MaxStaleness: time.Millisecond})
		if res.Verdict != Unknown || res.Reason == "" {
			t.Errorf("%s on a cancelled context: verdict %s reason %q, want unknown with a reason", res.Checker, res.Verdict, res.Reason)
		}
	}
}
