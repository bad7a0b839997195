package checkers

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// lwSpan is one operation of a hand-written history: its invocation at call
// and its completion at ret, both in milliseconds.
type lwSpan struct {
	p       int
	f, key  string
	in, out history.Value // invocation value; completion value of an OK op
	typ     history.Type  // OK, Fail or Info
	call    float64
	ret     float64 // for Info, the time of the info line; < 0 for none
	final   bool
}

func lwSetAdd(p int, key string, e int64, call, ret float64, typ history.Type) lwSpan {
	return lwSpan{p: p, f: FAdd, key: key, in: history.Int(e), out: history.Int(e), typ: typ, call: call, ret: ret}
}

func lwSetRead(p int, key string, call, ret float64, elems ...int64) lwSpan {
	return lwSpan{p: p, f: FRead, key: key, out: history.Ints(elems...), typ: history.OK, call: call, ret: ret}
}

func lwRegWrite(p int, key string, v int64, call, ret float64, typ history.Type) lwSpan {
	return lwSpan{p: p, f: FWrite, key: key, in: history.Int(v), out: history.Int(v), typ: typ, call: call, ret: ret}
}

func lwRegCAS(p int, key string, old, nv int64, call, ret float64, typ history.Type) lwSpan {
	return lwSpan{p: p, f: FCAS, key: key, in: history.Ints(old, nv), out: history.Ints(old, nv), typ: typ, call: call, ret: ret}
}

func lwRegRead(p int, key string, call, ret float64, v history.Value, final bool) lwSpan {
	return lwSpan{p: p, f: FRead, key: key, out: v, typ: history.OK, call: call, ret: ret, final: final}
}

// lwBuild turns spans into a validated history, lines in time order (an
// invocation before its completion when both fall at the same time).
func lwBuild(t testing.TB, spans ...lwSpan) history.History {
	t.Helper()
	type line struct {
		seq int
		op  history.Op
	}
	ms := func(x float64) int64 { return int64(x * 1e6) }
	var lines []line
	for i, s := range spans {
		inv := history.Op{Time: ms(s.call), Process: history.Process(s.p), Type: history.Invoke, F: s.f, Key: s.key, Value: s.in, Final: s.final}
		lines = append(lines, line{2 * i, inv})
		if s.typ == history.Info && s.ret < 0 {
			continue
		}
		c := inv
		c.Type, c.Time = s.typ, ms(s.ret)
		if s.typ == history.OK {
			c.Value = s.out
		}
		if s.typ == history.Info {
			c.Error = "timeout"
		}
		lines = append(lines, line{2*i + 1, c})
	}
	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].op.Time != lines[j].op.Time {
			return lines[i].op.Time < lines[j].op.Time
		}
		return lines[i].seq < lines[j].seq
	})
	h := make(history.History, len(lines))
	for i, l := range lines {
		l.op.Index = int64(i)
		h[i] = l.op
	}
	if err := history.Validate(h); err != nil {
		t.Fatalf("test history is not valid: %v", err)
	}
	return h
}

// lwCase is one table row: a history, the verdict and anomaly kinds it must
// give, and some stats it must report.
type lwCase struct {
	name  string
	spans []lwSpan
	want  Verdict
	kinds []string
	stats map[string]float64
}

// lwCheckResult compares a result with what a case wants, and checks that
// every anomaly can be followed by hand.
func lwCheckResult(t *testing.T, res Result, want Verdict, kinds []string, stats map[string]float64) {
	t.Helper()
	if res.Verdict != want {
		t.Errorf("verdict %s, want %s; summary %q, anomalies %+v", res.Verdict, want, res.Summary, res.Anomalies)
	}
	var got []string
	for _, a := range res.Anomalies {
		got = append(got, a.Kind)
		if len(a.Ops) == 0 || a.Explanation == "" {
			t.Errorf("anomaly %s lacks ops or an explanation: %+v", a.Kind, a)
		}
	}
	if kinds != nil && !slices.Equal(got, kinds) {
		t.Errorf("anomaly kinds %v, want %v", got, kinds)
	}
	if res.AnomalyCount != len(res.Anomalies) && len(res.Anomalies) < MaxAnomalies {
		t.Errorf("anomaly count %d, but %d listed", res.AnomalyCount, len(res.Anomalies))
	}
	for name, v := range stats {
		if g, ok := res.Stats[name]; !ok || g != v {
			t.Errorf("stat %s = %v (present %v), want %v", name, g, ok, v)
		}
	}
}

func lwRunCases(t *testing.T, check Func, cases []lwCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := check(context.Background(), NewInput(lwBuild(t, c.spans...)), Options{})
			lwCheckResult(t, res, c.want, c.kinds, c.stats)
		})
	}
}

const (
	lwOK   = history.OK
	lwFail = history.Fail
	lwInfo = history.Info
)

func TestLostWritesSets(t *testing.T) {
	lwRunCases(t, LostWrites, []lwCase{
		{
			name: "sets/acknowledged-add-in-every-later-read/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3, 1),
				lwSetRead(1, "s", 4, 5, 1),
			},
			want:  Valid,
			stats: map[string]float64{"attempted": 1, "acknowledged": 1, "stable": 1, "stale": 0, "lost": 0, "never_read": 0, "stable_latency_max_ms": 0},
		},
		{
			name: "sets/acknowledged-add-missing-from-last-read/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetAdd(0, "s", 2, 1, 2, lwOK),
				lwSetRead(1, "s", 3, 4, 1, 2),
				lwSetRead(1, "s", 6, 7, 2),
			},
			want:  Invalid,
			kinds: []string{KindLost},
			stats: map[string]float64{"lost": 1, "stable": 1, "lost_latency_max_ms": 2},
		},
		{
			name: "sets/acknowledged-add-never-seen-by-later-reads/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3),
				lwSetRead(1, "s", 4, 5),
			},
			want:  Invalid,
			kinds: []string{KindLost},
			stats: map[string]float64{"lost": 1, "lost_latency_max_ms": 0},
		},
		{
			name: "sets/missing-then-present/stale-valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3),
				lwSetRead(1, "s", 4, 5, 1),
				lwSetRead(1, "s", 6, 7, 1),
			},
			want:  Valid,
			stats: map[string]float64{"stable": 1, "stale": 1, "lost": 0, "stable_latency_max_ms": 1},
		},
		{
			name: "sets/no-read-began-after-ack/never-read-valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 10, lwOK),
				lwSetRead(1, "s", 5, 12),
			},
			want:  Valid,
			stats: map[string]float64{"never_read": 1, "lost": 0, "stable": 0},
		},
		{
			name: "sets/read-concurrent-with-add-misses-it/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 10, lwOK),
				lwSetRead(1, "s", 5, 12),
				lwSetRead(1, "s", 20, 21, 1),
			},
			want:  Valid,
			stats: map[string]float64{"stable": 1, "stale": 0},
		},
		{
			name: "sets/seen-by-read-before-ack-then-gone/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 100, lwOK),
				lwSetRead(1, "s", 1, 2, 1),
				lwSetRead(1, "s", 3, 4),
			},
			want:  Invalid,
			kinds: []string{KindLost},
		},
		{
			name: "sets/element-never-added/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3, 1, 99),
			},
			want:  Invalid,
			kinds: []string{KindUnexpected},
			stats: map[string]float64{"unexpected": 1, "attempted": 1},
		},
		{
			name: "sets/element-twice-in-one-read/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3, 1, 1),
				lwSetRead(1, "s", 4, 5, 1),
			},
			want:  Invalid,
			kinds: []string{KindDuplicated},
			stats: map[string]float64{"duplicated": 1, "stable": 1},
		},
		{
			name: "sets/info-add-appears/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwInfo),
				lwSetRead(1, "s", 2, 3, 1),
				lwSetRead(1, "s", 4, 5, 1),
			},
			want:  Valid,
			stats: map[string]float64{"attempted": 1, "acknowledged": 0, "stable": 1},
		},
		{
			name: "sets/info-add-never-appears/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwInfo),
				lwSetRead(1, "s", 2, 3),
				lwSetRead(1, "s", 4, 5),
			},
			want:  Valid,
			stats: map[string]float64{"never_read": 1, "lost": 0},
		},
		{
			name: "sets/info-add-without-completion-never-appears/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, -1, lwInfo),
				lwSetRead(1, "s", 2, 3),
			},
			want:  Valid,
			stats: map[string]float64{"never_read": 1},
		},
		{
			name: "sets/info-add-seen-then-gone/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwInfo),
				lwSetRead(1, "s", 2, 3, 1),
				lwSetRead(1, "s", 4, 5),
			},
			want:  Invalid,
			kinds: []string{KindLost},
		},
		{
			name: "sets/failed-add-appears/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwFail),
				lwSetRead(1, "s", 2, 3, 1),
			},
			want:  Invalid,
			kinds: []string{KindUnexpectedAfterFail},
			stats: map[string]float64{"unexpected": 1, "unexpected_after_fail": 1},
		},
		{
			name: "sets/failed-add-never-appears/valid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwFail),
				lwSetRead(1, "s", 2, 3),
			},
			want:  Valid,
			stats: map[string]float64{"attempted": 1, "never_read": 1},
		},
		{
			name: "sets/null-read-is-empty-set/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "s", 1, 0, 1, lwOK),
				lwSetRead(1, "s", 2, 3, 1),
				lwRegRead(1, "s", 4, 5, history.Nil(), false),
			},
			want:  Invalid,
			kinds: []string{KindLost},
		},
		{
			name: "sets/keys-judged-apart/invalid",
			spans: []lwSpan{
				lwSetAdd(0, "a", 1, 0, 1, lwOK),
				lwSetAdd(0, "b", 1, 1, 2, lwOK),
				lwSetRead(1, "a", 3, 4, 1),
				lwSetRead(1, "b", 5, 6),
			},
			want:  Invalid,
			kinds: []string{KindLost},
			stats: map[string]float64{"set_keys": 2, "stable": 1, "lost": 1},
		},
		{
			name: "sets/counter-keys-ignored/valid",
			spans: []lwSpan{
				ctrAdd(0, "c", 5, 0, 1, lwOK),
				ctrRead(1, "c", 2, 3, history.Int(0)),
			},
			want: Valid,
		},
	})
}

func TestLostWritesSetExplanation(t *testing.T) {
	h := lwBuild(t,
		lwSetAdd(0, "s", 42, 1000, 1200, lwOK),
		lwSetRead(1, "s", 1500, 1501, 42),
		lwSetRead(1, "s", 9800, 9801),
	)
	res := LostWrites(context.Background(), NewInput(h), Options{})
	if len(res.Anomalies) != 1 {
		t.Fatalf("want one anomaly, got %+v", res.Anomalies)
	}
	a := res.Anomalies[0]
	want := "element 42 of s was acknowledged at 1.200 s (op 0) and seen by a read at 1.500 s (op 2), but the last read at 9.800 s (op 4) does not contain it"
	if a.Explanation != want {
		t.Errorf("explanation\n got %q\nwant %q", a.Explanation, want)
	}
	if len(a.Ops) != 3 || a.Ops[0].F != FAdd || a.Ops[2].Invoke != 4 {
		t.Errorf("ops %+v, want the add, the read that saw it, and the last read", a.Ops)
	}
}

func TestLostWritesRegisters(t *testing.T) {
	v := history.Int
	lwRunCases(t, LostWrites, []lwCase{
		{
			// A node with a clock behind stamps the later write with an
			// older timestamp; last-write-wins keeps the earlier one.
			name: "registers/clock-skew-older-write-wins/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5.1, lwOK),
				lwRegRead(2, "k1", 20, 21, v(7), true),
				lwRegRead(3, "k1", 20, 22, v(7), true),
			},
			want:  Invalid,
			kinds: []string{KindLostWrite},
			stats: map[string]float64{"keys": 1, "final_reads": 2, "lost": 1, "divergent_keys": 0},
		},
		{
			name: "registers/newest-write-wins/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 20, 21, v(9), true),
			},
			want:  Valid,
			stats: map[string]float64{"lost": 0},
		},
		{
			name: "registers/concurrent-writes-order-undecided/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 5, lwOK),
				lwRegWrite(1, "k1", 9, 1, 4, lwOK),
				lwRegRead(2, "k1", 20, 21, v(7), true),
			},
			want: Valid,
		},
		{
			name: "registers/final-reads-disagree/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 20, 21, v(7), true),
				lwRegRead(3, "k1", 20, 21, v(9), true),
			},
			want:  Invalid,
			kinds: []string{KindDivergence},
			stats: map[string]float64{"divergent_keys": 1, "lost": 0},
		},
		{
			name: "registers/initial-value-final-after-acked-writes/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 20, 21, history.Nil(), true),
			},
			want:  Invalid,
			kinds: []string{KindLostWrite, KindLostWrite},
			stats: map[string]float64{"lost": 2},
		},
		{
			name: "registers/initial-value-final-after-failed-and-info-writes/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwFail),
				lwRegWrite(1, "k1", 9, 4, 5, lwInfo),
				lwRegRead(2, "k1", 20, 21, history.Nil(), true),
			},
			want: Valid,
		},
		{
			name: "registers/unmarked-last-read-returns-older-value/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 6, 7, v(9), false),
				lwRegRead(2, "k1", 8, 9, v(7), false),
			},
			want:  Invalid,
			kinds: []string{KindLostWrite},
			stats: map[string]float64{"unmarked_keys": 1, "final_reads": 1},
		},
		{
			name: "registers/unmarked-last-read-returns-newest-value/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 6, 7, v(7), false),
				lwRegRead(2, "k1", 8, 9, v(9), false),
			},
			want:  Valid,
			stats: map[string]float64{"unmarked_keys": 1},
		},
		{
			name: "registers/marked-final-read-wins-over-later-unmarked/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 6, 7, v(9), true),
				lwRegRead(2, "k1", 8, 9, v(7), false),
			},
			want:  Valid,
			stats: map[string]float64{"unmarked_keys": 0},
		},
		{
			name: "registers/write-after-last-read-began/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegRead(2, "k1", 4, 8, v(7), false),
				lwRegWrite(1, "k1", 9, 5, 6, lwOK),
			},
			want: Valid,
		},
		{
			name: "registers/acked-cas-after-final-write-lost/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegCAS(1, "k1", 7, 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 20, 21, v(7), true),
			},
			want:  Invalid,
			kinds: []string{KindLostWrite},
		},
		{
			name: "registers/final-value-from-info-write/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwInfo),
				lwRegWrite(1, "k1", 9, 4, 5, lwOK),
				lwRegRead(2, "k1", 20, 21, v(7), true),
			},
			want: Valid,
		},
		{
			name: "registers/final-value-never-written/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegRead(2, "k1", 20, 21, v(99), true),
			},
			want:  Invalid,
			kinds: []string{KindUnknownFinalValue},
			stats: map[string]float64{"unknown_final_values": 1},
		},
		{
			name: "registers/final-value-from-failed-write/invalid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 3, lwOK),
				lwRegWrite(1, "k1", 9, 4, 5, lwFail),
				lwRegRead(2, "k1", 20, 21, v(9), true),
			},
			want:  Invalid,
			kinds: []string{KindUnknownFinalValue},
		},
		{
			name: "registers/final-value-written-twice/skipped-valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 1, lwOK),
				lwRegWrite(0, "k1", 9, 2, 3, lwOK),
				lwRegWrite(0, "k1", 7, 4, 5, lwOK),
				lwRegRead(2, "k1", 20, 21, v(7), true),
			},
			want:  Valid,
			stats: map[string]float64{"skipped_keys": 1},
		},
		{
			name: "registers/key-never-read/valid",
			spans: []lwSpan{
				lwRegWrite(0, "k1", 7, 0, 1, lwOK),
			},
			want:  Valid,
			stats: map[string]float64{"unread_keys": 1},
		},
	})
}

func TestLostWritesRegisterExplanation(t *testing.T) {
	h := lwBuild(t,
		lwRegWrite(0, "k1", 7, 0, 3, lwOK),
		lwRegWrite(1, "k1", 9, 4, 5.1, lwOK),
		lwRegRead(2, "k1", 20, 21, history.Int(7), true),
	)
	res := LostWrites(context.Background(), NewInput(h), Options{})
	if len(res.Anomalies) != 1 {
		t.Fatalf("want one anomaly, got %+v", res.Anomalies)
	}
	a := res.Anomalies[0]
	want := "write of 9 to k1 was acknowledged at 5.1 ms (op 2) and began at 4.0 ms, after the write of 7 (op 0) had finished at 3.0 ms, yet the final read (op 4) returns 7: the acknowledged write was silently lost"
	if a.Explanation != want {
		t.Errorf("explanation\n got %q\nwant %q", a.Explanation, want)
	}
	if len(a.Ops) != 3 || a.Ops[0].Invoke != 2 || a.Ops[1].Invoke != 0 || a.Ops[2].Invoke != 4 {
		t.Errorf("ops %+v, want [lost write, final value's write, final read]", a.Ops)
	}
}

func TestLostWritesEmptyAndCancelled(t *testing.T) {
	res := LostWrites(context.Background(), NewInput(nil), Options{})
	if res.Verdict != Valid || res.Reason == "" {
		t.Errorf("empty history: verdict %s, reason %q; want valid with a reason", res.Verdict, res.Reason)
	}
	h := lwBuild(t, lwSetAdd(0, "s", 1, 0, 1, lwOK), lwSetRead(1, "s", 2, 3))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = LostWrites(ctx, NewInput(h), Options{})
	if res.Verdict != Unknown {
		t.Errorf("cancelled: verdict %s, want unknown", res.Verdict)
	}
}

// lwTestdataCase is a saved history and what the checker must say of it.
type lwTestdataCase struct {
	file  string
	check Func
	want  Verdict
	kinds []string // every kind listed must occur, and no other
	gen   func() history.History
}

var lwTestdata = []lwTestdataCase{
	{"set-valid.jsonl", LostWrites, Valid, nil, func() history.History {
		return lwGenSet(1, lwSetConfig{lines: 3000, window: 4, perKey: 60, stale: 0.2})
	}},
	{"set-lost.jsonl", LostWrites, Invalid, []string{KindLost}, func() history.History {
		return lwGenSet(2, lwSetConfig{lines: 3000, window: 4, perKey: 60, stale: 0.2, lose: 0.01})
	}},
	{"set-unexpected.jsonl", LostWrites, Invalid, []string{KindUnexpected}, func() history.History {
		return lwGenSet(3, lwSetConfig{lines: 3000, window: 4, perKey: 60, stale: 0.2, phantom: 0.01})
	}},
	{"set-unexpected-after-fail.jsonl", LostWrites, Invalid, []string{KindUnexpectedAfterFail}, func() history.History {
		return lwGenSet(4, lwSetConfig{lines: 3000, window: 4, perKey: 60, stale: 0.2, applyFailed: 0.2})
	}},
	{"set-duplicated.jsonl", LostWrites, Invalid, []string{KindDuplicated}, func() history.History {
		return lwGenSet(5, lwSetConfig{lines: 3000, window: 4, perKey: 60, stale: 0.2, duplicate: 0.01})
	}},
	{"register-final-valid.jsonl", LostWrites, Valid, nil, func() history.History { return lwGenRegister(6, lwRegConfig{lines: 3000, keys: 20}) }},
	{"register-lost-write.jsonl", LostWrites, Invalid, []string{KindLostWrite}, func() history.History {
		return lwGenRegister(7, lwRegConfig{lines: 3000, keys: 20, skew: 20e6})
	}},
	{"register-divergence.jsonl", LostWrites, Invalid, []string{KindDivergence}, func() history.History {
		return lwGenRegister(8, lwRegConfig{lines: 3000, keys: 20, diverge: 2})
	}},
	{"register-unknown-final-value.jsonl", LostWrites, Invalid, []string{KindUnknownFinalValue}, func() history.History {
		return lwGenRegister(9, lwRegConfig{lines: 3000, keys: 20, phantom: 1})
	}},
	{"counter-valid.jsonl", Counter, Valid, nil, func() history.History { return ctrGen(10, ctrConfig{lines: 3000, keys: 10, negative: true}) }},
	{"counter-bad.jsonl", Counter, Invalid, []string{KindCounterOutOfBounds}, func() history.History {
		return ctrGen(11, ctrConfig{lines: 3000, keys: 10, double: 0.01})
	}},
}

// TestLostWritesAndCounterTestdata re-checks the saved histories. With
// ECCHECK_REGEN_TESTDATA=1 it first writes them again from their
// generators (deterministic from their seeds).
func TestLostWritesAndCounterTestdata(t *testing.T) {
	regen := os.Getenv("ECCHECK_REGEN_TESTDATA") == "1"
	for _, c := range lwTestdata {
		name := strings.TrimSuffix(c.file, ".jsonl") + "/" + string(c.want)
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", c.file)
			if regen {
				lwWriteHistory(t, path, c.gen())
			}
			h, warnings, err := history.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %v", warnings)
			}
			res := c.check(context.Background(), NewInput(h), Options{})
			if res.Verdict != c.want {
				t.Errorf("verdict %s, want %s (%s)", res.Verdict, c.want, res.Summary)
			}
			seen := map[string]bool{}
			for _, a := range res.Anomalies {
				seen[a.Kind] = true
			}
			for _, k := range c.kinds {
				if !seen[k] {
					t.Errorf("no %s anomaly; got %v", k, res.Anomalies)
				}
				delete(seen, k)
			}
			if len(seen) > 0 {
				t.Errorf("unexpected anomaly kinds %v", seen)
			}
			t.Logf("%s: %s", c.file, res.Summary)
		})
	}
}

func lwWriteHistory(t testing.TB, path string, h history.History) {
	t.Helper()
	var b []byte
	for _, op := range h {
		b = op.AppendJSON(b)
		b = append(b, '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lwDriver simulates concurrent clients against a model store: each client
// invokes an operation, waits 0.1 to 3 ms, completes it, thinks up to 0.5 ms,
// and so on. A client whose operation ends in info continues under a fresh
// process id. Lines come out in time order.
type lwDriver struct {
	rng      *rand.Rand
	h        history.History
	now      int64
	nextProc history.Process
}

// run drives clients until the history holds about lines lines. invoke
// returns the next invocation (f, key, value); complete applies it to the
// model at the given time and returns how it ended and the completion value.
func (d *lwDriver) run(clients, lines int,
	invoke func(t int64) (f, key string, v history.Value),
	complete func(inv history.Op, t int64) (history.Type, history.Value)) {
	type client struct {
		next int64
		proc history.Process
		busy bool
		inv  history.Op
	}
	cs := make([]client, clients)
	for i := range cs {
		cs[i] = client{next: d.now + d.rng.Int64N(500_000), proc: d.nextProc}
		d.nextProc++
	}
	emit := func(op history.Op) {
		op.Index = int64(len(d.h))
		d.h = append(d.h, op)
	}
	for {
		c := &cs[0]
		for i := range cs {
			if cs[i].next < c.next {
				c = &cs[i]
			}
		}
		d.now = max(d.now, c.next)
		if !c.busy {
			if len(d.h) >= lines {
				c.next = 1<<63 - 1
				if !slices.ContainsFunc(cs, func(c client) bool { return c.busy }) {
					return
				}
				continue
			}
			f, key, v := invoke(d.now)
			c.inv = history.Op{Time: d.now, Process: c.proc, Type: history.Invoke, F: f, Key: key, Value: v}
			emit(c.inv)
			c.busy = true
			c.next = d.now + 100_000 + d.rng.Int64N(2_900_000)
			continue
		}
		typ, v := complete(c.inv, d.now)
		done := c.inv
		done.Time, done.Type, done.Value = d.now, typ, v
		if typ == history.Info {
			done.Error = "timeout"
		}
		emit(done)
		c.busy = false
		if typ == history.Info {
			c.proc += history.Process(clients) // a fresh id; proc % clients stays the client's number
			d.nextProc = max(d.nextProc, c.proc+1)
		}
		c.next = d.now + d.rng.Int64N(500_000)
	}
}

// lwSetConfig shapes a synthetic set history.
type lwSetConfig struct {
	clients, lines int
	window         int     // keys written at once
	perKey         int     // adds per key, on average
	reads          float64 // fraction of reads (default 0.1)
	stale          float64 // fraction of reads that miss the adds of the last 2 ms
	// Faults, each a fraction of the operations it applies to.
	lose        float64 // acknowledged adds that vanish 2 ms later
	phantom     float64 // reads that hold an element never added
	applyFailed float64 // failed adds that take effect anyway
	duplicate   float64 // reads that hold one element twice
}

// lwGenSet makes a set history: unique integer elements, many keys so each
// set stays about perKey elements, 1% info and 1% failed adds (half the info
// ones take effect), the faults cfg asks for, and a final read of every key.
func lwGenSet(seed uint64, cfg lwSetConfig) history.History {
	if cfg.clients == 0 {
		cfg.clients = 10
	}
	if cfg.reads == 0 {
		cfg.reads = 0.1
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	d := &lwDriver{rng: rng}
	type elem struct {
		v            int64
		added, death int64 // visible in [added, death)
	}
	sets := map[string][]elem{}
	var adds, nextElem int64
	keyName := func(i int64) string { return "s" + strconv.FormatInt(i, 10) }
	pick := func() string {
		base := adds / int64(cfg.perKey)
		return keyName(base + rng.Int64N(int64(cfg.window)))
	}
	const never = 1<<63 - 1
	d.run(cfg.clients, cfg.lines, func(t int64) (string, string, history.Value) {
		if rng.Float64() < cfg.reads {
			return FRead, pick(), history.Nil()
		}
		k := pick()
		adds++
		nextElem++
		return FAdd, k, history.Int(nextElem)
	}, func(inv history.Op, t int64) (history.Type, history.Value) {
		if inv.F == FAdd {
			e, _ := inv.Value.AsInt()
			typ := history.OK
			switch x := rng.Float64(); {
			case x < 0.01:
				typ = history.Info
			case x < 0.02:
				typ = history.Fail
			}
			apply := typ == history.OK ||
				(typ == history.Info && rng.IntN(2) == 0) ||
				(typ == history.Fail && rng.Float64() < cfg.applyFailed)
			if apply {
				death := int64(never)
				if typ == history.OK && rng.Float64() < cfg.lose {
					death = t + 2_000_000
				}
				sets[inv.Key] = append(sets[inv.Key], elem{v: e, added: t, death: death})
			}
			return typ, inv.Value
		}
		horizon := t
		if rng.Float64() < cfg.stale {
			horizon = t - 2_000_000
		}
		var out []int64
		for _, e := range sets[inv.Key] {
			if e.added <= horizon && t < e.death {
				out = append(out, e.v)
			}
		}
		if len(out) > 0 && rng.Float64() < cfg.duplicate {
			out = append(out, out[rng.IntN(len(out))])
		}
		if rng.Float64() < cfg.phantom {
			out = append(out, -1-rng.Int64N(1000))
		}
		return history.OK, history.Ints(out...)
	})
	// The final phase: every fault healed, one fresh client reads each key,
	// so that a stale read is not the last word on an element.
	t, p := d.now+100_000_000, d.nextProc
	for i := range adds/int64(cfg.perKey) + int64(cfg.window) {
		k := keyName(i)
		var out []int64
		for _, e := range sets[k] {
			if t < e.death {
				out = append(out, e.v)
			}
		}
		d.h = append(d.h,
			history.Op{Index: int64(len(d.h)), Time: t, Process: p, Type: history.Invoke, F: FRead, Key: k, Final: true},
			history.Op{Index: int64(len(d.h)) + 1, Time: t + 200_000, Process: p, Type: history.OK, F: FRead, Key: k, Value: history.Ints(out...), Final: true})
		t += 300_000
	}
	return d.h
}

// lwRegConfig shapes a synthetic register history.
type lwRegConfig struct {
	clients, lines, keys int
	skew                 int64 // client 0 stamps its writes this many ns in the past
	diverge              int   // keys whose second final read returns the previous value
	phantom              int   // keys whose final reads return a value never written
}

// lwGenRegister makes a register history of unique writes and reads on a
// last-write-wins store (timestamps from each client's clock), then a final
// phase in which two clients read every key, marked final.
func lwGenRegister(seed uint64, cfg lwRegConfig) history.History {
	if cfg.clients == 0 {
		cfg.clients = 10
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	d := &lwDriver{rng: rng}
	type reg struct {
		v, prev history.Value
		ts      int64
	}
	regs := make([]reg, cfg.keys)
	var next int64
	keyIdx := func(k string) int {
		n := 0
		for _, c := range k[1:] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	d.run(cfg.clients, cfg.lines, func(t int64) (string, string, history.Value) {
		k := "k" + strconv.FormatInt(rng.Int64N(int64(cfg.keys)), 10)
		if rng.IntN(2) == 0 {
			return FRead, k, history.Nil()
		}
		next++
		return FWrite, k, history.Int(next)
	}, func(inv history.Op, t int64) (history.Type, history.Value) {
		r := &regs[keyIdx(inv.Key)]
		if inv.F == FRead {
			return history.OK, r.v
		}
		typ := history.OK
		switch x := rng.Float64(); {
		case x < 0.01:
			typ = history.Info
		case x < 0.02:
			typ = history.Fail
		}
		if typ == history.Fail || (typ == history.Info && rng.IntN(2) == 0) {
			return typ, inv.Value
		}
		ts := t
		if int(inv.Process)%cfg.clients == 0 {
			ts -= cfg.skew
		}
		if ts > r.ts {
			r.prev, r.v, r.ts = r.v, inv.Value, ts
		}
		return typ, inv.Value
	})
	// The final phase: every fault healed, two fresh clients read each key.
	t := d.now + 100_000_000
	p := d.nextProc
	for i := range regs {
		k := "k" + strconv.FormatInt(int64(i), 10)
		for j := range 2 {
			v := regs[i].v
			if i < cfg.diverge && j == 1 && !regs[i].prev.IsNil() {
				v = regs[i].prev
			}
			if i < cfg.phantom {
				v = history.Int(-1 - int64(i))
			}
			proc := p + history.Process(j)
			d.h = append(d.h,
				history.Op{Index: int64(len(d.h)), Time: t, Process: proc, Type: history.Invoke, F: FRead, Key: k, Final: true},
				history.Op{Index: int64(len(d.h)) + 1, Time: t + 200_000, Process: proc, Type: history.OK, F: FRead, Key: k, Value: v, Final: true})
			t += 300_000
		}
	}
	return d.h
}

// lwBenchmark runs check once per iteration over h and reports the bytes
// allocated per history line.
func lwBenchmark(b *testing.B, h history.History, check Func) {
	in := NewInput(h)
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	var res Result
	for range b.N {
		res = check(context.Background(), in, Options{})
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(len(h)), "B/histop")
	if res.Verdict != Valid {
		b.Fatalf("synthetic history judged %s: %s", res.Verdict, res.Summary)
	}
}

// BenchmarkLostWritesSets checks a 1M-line set history: 10 clients, 10% reads,
// 10 keys written at once and about 300 elements per key.
func BenchmarkLostWritesSets(b *testing.B) {
	h := lwGenSet(42, lwSetConfig{lines: 1_000_000, window: 10, perKey: 300, stale: 0.1})
	var reads, elems int
	for _, op := range h {
		if l, ok := op.Value.AsList(); ok && op.Type == history.OK {
			reads++
			elems += len(l)
		}
	}
	b.Logf("seed 42: %d lines, %d reads of %.0f elements on average", len(h), reads, float64(elems)/float64(reads))
	lwBenchmark(b, h, LostWrites)
}

// BenchmarkLostWritesRegisters checks a 1M-line register history over 1000
// keys with a final phase.
func BenchmarkLostWritesRegisters(b *testing.B) {
	h := lwGenRegister(42, lwRegConfig{lines: 1_000_000, keys: 1000})
	b.Logf("seed 42: %d lines", len(h))
	lwBenchmark(b, h, LostWrites)
}
