package checkers

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/eccheck/eccheck/history"
)

// zop is a hand-written operation for the zones tests: process, f, value,
// outcome, call and return in ms (ret < 0: no completion at all).
type zop struct {
	p         int
	f         string
	v         history.Value
	typ       history.Type
	call, ret int64
}

func zw(p int, v int64, typ history.Type, call, ret int64) zop {
	return zop{p, FWrite, history.Int(v), typ, call, ret}
}
func zr(p int, v history.Value, call, ret int64) zop {
	return zop{p, FRead, v, history.OK, call, ret}
}
func zc(p int, old history.Value, nv int64, typ history.Type, call, ret int64) zop {
	return zop{p, FCAS, history.List(old, history.Int(nv)), typ, call, ret}
}

var (
	i64 = history.Int
	nul = history.Nil()
)

// buildHistory turns zops into a valid history on key "k". Events are
// ordered by time; at equal times the lines keep the order the ops were
// given in, which must be possible for each process.
func buildHistory(t testing.TB, ops []zop) history.History {
	type ev struct {
		t   int64
		seq int
		op  history.Op
	}
	var evs []ev
	for i, o := range ops {
		inv := history.Op{Process: history.Process(o.p), Type: history.Invoke, F: o.f, Key: "k", Value: o.v}
		if o.f == FRead {
			inv.Value = history.Nil()
		}
		evs = append(evs, ev{o.call, 2 * i, inv})
		if o.ret >= 0 {
			comp := history.Op{Process: history.Process(o.p), Type: o.typ, F: o.f, Key: "k", Value: o.v}
			evs = append(evs, ev{o.ret, 2*i + 1, comp})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].seq < evs[j].seq
	})
	h := make(history.History, len(evs))
	for i, e := range evs {
		e.op.Index = int64(i)
		e.op.Time = e.t
		h[i] = e.op
	}
	if err := history.Validate(h); err != nil {
		t.Fatalf("test history is not valid: %v", err)
	}
	return h
}

func zonesOn(t testing.TB, h history.History) zoneOutcome {
	ops := history.Pair(h)
	pos := make([]int, len(ops))
	for i := range ops {
		pos[i] = i
	}
	return checkZones("k", ops, pos)
}

// TestZonesRules has one passing and one failing history per rule.
func TestZonesRules(t *testing.T) {
	ok, info, fail := history.OK, history.Info, history.Fail
	cases := []struct {
		name string
		ops  []zop
		kind string // "" = linearizable; else the anomaly kind expected
	}{
		// Rule 1: reads return the initial value or a written one.
		{"read-value/written/valid", []zop{zw(0, 1, ok, 0, 10), zr(1, i64(1), 20, 30)}, ""},
		{"read-value/never-written/invalid", []zop{zw(0, 1, ok, 0, 10), zr(1, i64(2), 20, 30)}, "read-unwritten"},
		{"read-value/failed-write/invalid", []zop{zw(0, 1, fail, 0, 10), zr(1, i64(1), 20, 30)}, "read-unwritten"},
		{"read-value/initial-before-write/valid", []zop{zr(1, nul, 0, 5), zw(0, 1, ok, 10, 20)}, ""},
		// No read returns before its write was called.
		{"read-before-write/overlapping/valid", []zop{zw(0, 1, ok, 10, 30), zr(1, i64(1), 0, 15)}, ""},
		{"read-before-write/returned-before-call/invalid", []zop{zr(1, i64(1), 0, 5), zw(0, 1, ok, 10, 30)}, "order"},
		{"read-before-write/equal-times/valid", []zop{zr(1, i64(1), 0, 10), zw(0, 1, ok, 10, 30)}, ""},
		// Forward zones must not overlap.
		{"forward/sequential/valid", []zop{zw(0, 1, ok, 0, 10), zr(1, i64(1), 20, 30), zw(0, 2, ok, 40, 50), zr(1, i64(2), 60, 70)}, ""},
		{"forward/stale-read/invalid", []zop{zw(0, 1, ok, 0, 10), zw(0, 2, ok, 20, 30), zr(1, i64(2), 40, 50), zr(1, i64(1), 60, 70)}, "overlapping-zones"},
		{"forward/initial-after-read-of-write/invalid", []zop{zw(0, 1, ok, 0, 100), zr(1, i64(1), 10, 20), zr(2, nul, 30, 40)}, "zone-inside-zone"},
		// Backward zones must not lie inside forward zones.
		{"backward/concurrent-write/valid", []zop{zw(0, 1, ok, 0, 10), zw(1, 2, ok, 5, 50), zr(2, i64(1), 20, 30)}, ""},
		{"backward/write-inside-window/invalid", []zop{zw(0, 1, ok, 0, 10), zw(1, 2, ok, 20, 30), zr(2, i64(1), 40, 50)}, "zone-inside-zone"},
		{"backward/initial-after-write/invalid", []zop{zw(0, 1, ok, 0, 10), zr(1, nul, 20, 30)}, "zone-inside-zone"},
		// Indeterminate operations.
		{"info/write-took-effect/valid", []zop{zw(0, 1, info, 0, 10), zr(1, i64(1), 100, 110)}, ""},
		{"info/write-never-seen/valid", []zop{zw(0, 1, ok, 0, 10), zw(1, 2, info, 20, 30), zr(2, i64(1), 40, 50)}, ""},
		{"info/never-completed-write/valid", []zop{zw(0, 1, ok, 0, 10), zw(1, 2, info, 20, -1), zr(2, i64(2), 40, 50), zr(2, i64(2), 60, 70)}, ""},
		{"info/read-before-info-write-called/invalid", []zop{zr(2, i64(2), 0, 5), zw(1, 2, info, 20, 30)}, "order"},
		{"info/flip-flop/invalid", []zop{zw(0, 1, ok, 0, 10), zw(1, 2, info, 20, 30), zr(2, i64(2), 40, 50), zr(2, i64(1), 60, 70)}, "zone-inside-zone"},
		{"info/two-seen-info-writes/invalid", []zop{zw(0, 1, info, 0, 10), zw(1, 2, info, 0, 10), zr(2, i64(1), 20, 30), zr(2, i64(2), 40, 50), zr(3, i64(1), 60, 70), zr(3, i64(2), 80, 90)}, "overlapping-zones"},
		// CAS chains.
		{"cas/chain/valid", []zop{zw(0, 1, ok, 0, 10), zc(1, i64(1), 2, ok, 20, 30), zr(2, i64(2), 40, 50)}, ""},
		{"cas/from-initial/valid", []zop{zc(1, nul, 2, ok, 0, 10), zr(2, i64(2), 20, 30)}, ""},
		{"cas/old-read-after-cas/invalid", []zop{zw(0, 1, ok, 0, 10), zc(1, i64(1), 2, ok, 20, 30), zr(2, i64(1), 40, 50)}, "order"},
		{"cas/double-consume/invalid", []zop{zw(0, 1, ok, 0, 10), zc(1, i64(1), 2, ok, 20, 30), zc(2, i64(1), 3, ok, 20, 30)}, "double-cas"},
		{"cas/unwritten-old/invalid", []zop{zw(0, 1, ok, 0, 10), zc(1, i64(7), 2, ok, 20, 30)}, "cas-unwritten"},
		{"cas/cycle/invalid", []zop{zc(0, i64(3), 2, ok, 0, 10), zc(1, i64(2), 3, ok, 20, 30)}, "cas-chain-without-start"},
		{"cas/failed-dropped/valid", []zop{zw(0, 1, ok, 0, 10), zc(1, i64(5), 2, fail, 20, 30), zr(2, i64(1), 40, 50)}, ""},
		{"cas/info-seen/valid", []zop{zw(0, 1, ok, 0, 10), zc(1, i64(1), 2, info, 20, 30), zr(2, i64(2), 40, 50)}, ""},
		{"cas/info-seen-but-old-overwritten/invalid", []zop{zw(0, 1, ok, 0, 10), zw(0, 5, ok, 15, 18), zc(1, i64(1), 2, info, 20, 30), zr(2, i64(2), 40, 50), zr(2, i64(5), 60, 70)}, "overlapping-zones"},
		{"cas/chain-zone-overlaps-write/invalid", []zop{zw(0, 1, ok, 0, 10), zw(3, 9, ok, 12, 14), zc(1, i64(1), 2, ok, 20, 30)}, "zone-inside-zone"},
	}
	for _, c := range cases {
		t.Run("zones/"+c.name, func(t *testing.T) {
			h := buildHistory(t, c.ops)
			out := zonesOn(t, h)
			if out.Fallback != "" {
				t.Fatalf("fell back: %s", out.Fallback)
			}
			if c.kind == "" {
				if len(out.Anomalies) > 0 {
					t.Fatalf("want linearizable, got %d anomalies, first: %s", len(out.Anomalies), out.Anomalies[0].Explanation)
				}
			} else {
				found := false
				for _, a := range out.Anomalies {
					found = found || a.Kind == c.kind
					if a.Explanation == "" || len(a.Ops) == 0 {
						t.Errorf("anomaly %s lacks explanation or ops: %+v", a.Kind, a)
					}
				}
				if !found {
					t.Fatalf("want a %s anomaly, got %+v", c.kind, out.Anomalies)
				}
			}
			// The reference: Porcupine must agree on every case.
			if got, want := len(out.Anomalies) == 0, refPorcupine(t, h); got != want {
				t.Fatalf("zones says linearizable=%v, Porcupine says %v", got, want)
			}
		})
	}
}

func TestZonesFallback(t *testing.T) {
	ok := history.OK
	cases := []struct {
		name string
		ops  []zop
		want string
	}{
		{"fallback/repeated-value", []zop{zw(0, 1, ok, 0, 10), zw(1, 1, ok, 20, 30)}, "written more than once"},
		{"fallback/null-write", []zop{{0, FWrite, nul, ok, 0, 10}}, "null"},
		{"fallback/cas-not-pair", []zop{{0, FCAS, i64(3), ok, 0, 10}}, "not [old, new]"},
		{"fallback/other-function", []zop{{0, "append", i64(3), ok, 0, 10}}, "does not model"},
	}
	for _, c := range cases {
		t.Run("zones/"+c.name, func(t *testing.T) {
			out := zonesOn(t, buildHistory(t, c.ops))
			if !strings.Contains(out.Fallback, c.want) {
				t.Fatalf("fallback %q, want it to mention %q", out.Fallback, c.want)
			}
		})
	}
}

func TestZonesExplanationNamesValues(t *testing.T) {
	h := buildHistory(t, []zop{zw(0, 17, history.OK, 0, 10), zw(0, 23, history.OK, 20, 30), zr(1, i64(23), 40, 50), zr(1, i64(17), 60, 70)})
	out := zonesOn(t, h)
	if len(out.Anomalies) != 1 {
		t.Fatalf("want one anomaly, got %+v", out.Anomalies)
	}
	msg := out.Anomalies[0].Explanation
	for _, want := range []string{"value 17", "value 23", "certainly current", "op 4", "op 6"} {
		if !strings.Contains(msg, want) {
			t.Errorf("explanation %q lacks %q", msg, want)
		}
	}
}

// registerRef is the reference model for the differential test: a
// register with CAS, written independently of the checker under test.
type refIn struct {
	f      string
	v, old history.Value
	ok     bool // the CAS succeeded (completed ok); false for indeterminate
	info   bool
}

var refModel = porcupine.Model{
	Init: func() any { return history.Nil().Scalar() },
	Step: func(state, input, output any) (bool, any) {
		st := state.(history.Scalar)
		in := input.(refIn)
		switch in.f {
		case FRead:
			return in.v.Scalar() == st, st
		case FWrite:
			return true, in.v.Scalar()
		default: // cas
			matches := in.old.Scalar() == st
			if in.info {
				if matches {
					return true, in.v.Scalar()
				}
				return true, st
			}
			if matches {
				return true, in.v.Scalar()
			}
			return false, st
		}
	},
	Equal: func(a, b any) bool { return a == b },
}

// refPorcupine checks one key with raw Porcupine: failed ops
// dropped, indeterminate ones open-ended, indeterminate reads dropped.
func refPorcupine(t testing.TB, h history.History) bool {
	var ops []porcupine.Operation
	for _, o := range history.Pair(h) {
		if o.Type == history.Fail || (o.Type == history.Info && o.F == FRead) {
			continue
		}
		in := refIn{f: o.F, v: o.Value, info: o.Type == history.Info}
		if o.F == FCAS {
			old, nv, _ := o.Value.Pair()
			in.old, in.v = old, nv
		}
		ret := o.Return
		if ret == history.Open {
			ret = 1 << 60
		}
		ops = append(ops, porcupine.Operation{ClientId: int(o.Process), Input: in, Call: o.Call, Output: nil, Return: ret})
	}
	res := porcupine.CheckOperationsTimeout(refModel, ops, 10*time.Second)
	if res == porcupine.Unknown {
		t.Fatalf("porcupine timed out on a small history")
	}
	return res == porcupine.Ok
}

// randomHistory makes a small single-key history. Half the time it comes
// from a simulated linearizable register (random linearization points,
// indeterminate ops applied or not), then perhaps one read is perturbed.
// mode 0: short; 1: short and CAS-heavy; 2: several reads perturbed;
// 3: longer histories.
func randomHistory(r *rand.Rand, mode int) []zop {
	procs := 2 + r.IntN(4)
	n := 3 + r.IntN(10)
	if mode == 3 {
		n = 10 + r.IntN(30)
	}
	casFrom := 8
	if mode == 1 {
		casFrom = 5
	}
	type slot struct {
		z     zop
		point float64
		apply bool
	}
	next := make([]int64, procs)
	var slots []slot
	val := int64(1)
	for i := 0; i < n; i++ {
		p := r.IntN(procs)
		call := next[p] + int64(r.IntN(3))
		ret := call + int64(r.IntN(5))
		next[p] = ret
		var z zop
		switch k := r.IntN(10); {
		case k < 4:
			z = zop{p: p, f: FRead, typ: history.OK}
		case k < casFrom:
			z = zop{p: p, f: FWrite, v: history.Int(val), typ: history.OK}
			val++
		default:
			z = zop{p: p, f: FCAS, typ: history.OK}
		}
		z.call, z.ret = call, ret
		switch k := r.IntN(10); {
		case k == 0 && z.f != FRead:
			z.typ = history.Info
		case k == 1:
			z.typ = history.Fail
		}
		slots = append(slots, slot{z: z, point: float64(call) + r.Float64()*float64(ret-call), apply: r.IntN(2) == 0})
	}
	// Simulate: apply in linearization-point order.
	order := make([]int, len(slots))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return slots[order[a]].point < slots[order[b]].point })
	state := history.Nil()
	var written []history.Value
	for _, i := range order {
		s := &slots[i]
		switch s.z.f {
		case FRead:
			s.z.v = state
		case FWrite:
			written = append(written, s.z.v)
			if s.z.typ == history.OK || (s.z.typ == history.Info && s.apply) {
				state = s.z.v
			}
		case FCAS:
			old := state
			if r.IntN(3) == 0 && len(written) > 0 {
				old = written[r.IntN(len(written))]
			}
			nv := history.Int(val)
			val++
			s.z.v = history.List(old, nv)
			if old.Equal(state) {
				if s.z.typ == history.OK || (s.z.typ == history.Info && s.apply) {
					state = nv
				}
			} else if s.z.typ == history.OK {
				s.z.typ = history.Fail
			}
		}
	}
	out := make([]zop, len(slots))
	for i, s := range slots {
		out[i] = s.z
	}
	// Perturb a read half the time; several in mode 2.
	perturb := r.IntN(2)
	if mode == 2 {
		perturb = r.IntN(4)
	}
	for ; perturb > 0; perturb-- {
		var reads []int
		for i, z := range out {
			if z.f == FRead {
				reads = append(reads, i)
			}
		}
		if len(reads) > 0 {
			i := reads[r.IntN(len(reads))]
			choices := append([]history.Value{history.Nil()}, written...)
			out[i].v = choices[r.IntN(len(choices))]
		}
	}
	// Some processes' last operation never completes.
	if r.IntN(4) == 0 {
		last := map[int]int{}
		for i, z := range out {
			last[z.p] = i
		}
		for _, i := range last {
			if out[i].f != FRead && r.IntN(2) == 0 {
				out[i].ret = -1
				out[i].typ = history.Info
			}
		}
	}
	return out
}

// TestZonesDifferential asserts zero disagreements with Porcupine over many
// small random histories with reads, writes, CAS, crashed operations and
// equal timestamps.
func TestZonesDifferential(t *testing.T) {
	const seed, rounds = 20261129, 20000
	r := rand.New(rand.NewPCG(seed, 1))
	var valid, invalid int
	for i := 0; i < rounds; i++ {
		ops := randomHistory(r, i%4)
		h := buildHistory(t, ops)
		out := zonesOn(t, h)
		if out.Fallback != "" {
			t.Fatalf("seed %d round %d: unexpected fallback %s", seed, i, out.Fallback)
		}
		got, want := len(out.Anomalies) == 0, refPorcupine(t, h)
		if got != want {
			var b strings.Builder
			for _, op := range h {
				b.Write(op.AppendJSON(nil))
				b.WriteByte('\n')
			}
			detail := ""
			if len(out.Anomalies) > 0 {
				detail = out.Anomalies[0].Explanation
			}
			t.Fatalf("seed %d round %d: zones linearizable=%v, Porcupine %v (%s)\n%s", seed, i, got, want, detail, b.String())
		}
		if want {
			valid++
		} else {
			invalid++
		}
	}
	t.Logf("seed %d: %d histories, %d linearizable, %d not; zero disagreements", seed, rounds, valid, invalid)
	if valid < rounds/10 || invalid < rounds/10 {
		t.Fatalf("generator is lopsided: %d valid, %d invalid", valid, invalid)
	}
}
