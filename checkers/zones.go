package checkers

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// This file is eccheck's exact O(n log n) linearizability engine for
// registers whose written values are unique (Gibbons and Korach, "Testing
// Shared Memories", SIAM J. Comput. 1997, in the "zones" form of Golab, Li
// and Shah, PODC 2011), extended to compare-and-set. No Go library does
// this; Porcupine's search is exponential, so where the preconditions hold
// this engine decides and Porcupine is the fallback.
//
// Times. Every comparison the engine makes is between a return and a call,
// so no ranks are needed: with calls ordered before returns at equal times
// (Porcupine's closed intervals), a return precedes a call exactly when its
// time is strictly smaller. An open return (history.Open) precedes nothing.
//
// Blocks. A value's write together with the reads that returned it is a
// cluster. A successful CAS(a->b) consumes a and makes b current at one
// instant, so a chain of values a, b, c, ... linked by CASes is current
// without a gap: its operations form one block, with a fixed order (the
// write, the reads of a, the CAS a->b, the reads of b, ...). In any
// linearization a block occupies one contiguous stretch: an operation of
// another block in between would overwrite the current value, which unique
// values forbid from ever coming back.
//
// The rule, per block: f is the earliest return in the block and s the
// latest call. If f < s, [f, s] is a forward zone: the block was certainly
// in progress throughout. Otherwise [s, f] is a backward zone: the whole
// block fits at one instant. The key is linearizable exactly when
//
//  1. every read returns the initial value or a value some operation that
//     may have taken effect wrote, and every successful CAS consumes one;
//  2. no value is consumed by two successful CASes, and every chain starts
//     at a plain write or at the initial value;
//  3. inside each block, no operation returns before an operation earlier in
//     the block's order was called;
//  4. no two forward zones overlap, and no backward zone lies inside a
//     forward zone.
//
// Why it suffices: a block's operations can all be placed inside its zone
// (each one's interval meets it, and rule 3 lets them be placed in order);
// forward zones are disjoint, and a backward zone not inside any forward
// zone has a point outside all of them, where its whole block goes. Why it
// is needed: a block's first operation is placed no later than f and its
// last no earlier than s, so a forward block covers [f, s]; two such
// stretches cannot overlap, and a block that must sit inside [s, f] cannot
// sit inside another block's stretch.
//
// Indeterminate operations: a read that never returned is dropped; a write
// or CAS that never returned is kept, with an open return, only when its
// value was observed (read, or consumed by a kept CAS), and dropped
// otherwise, since it can always be placed last. Failed operations are
// dropped. A failed CAS reports only "false", so it is dropped: no false
// alarm, possibly a missed one.

// zonesInit is the time of the initial value's virtual write: before every
// event.
const zonesInit int64 = math.MinInt64

// zoneOp is one operation as the engine sees it.
type zoneOp struct {
	pos          int // position in Input.Ops; -1 for the initial value's virtual write
	call, ret    int64
	f            string
	value, old   history.Value
	readOfValue  bool
	initialWrite bool
}

// zoneValue is what the engine knows of one value.
type zoneValue struct {
	v        history.Value
	writer   int   // index in ops of the operation that wrote it, -1 none
	failed   bool  // some failed operation wrote it
	reads    []int // indexes in ops of the OK reads that returned it
	consumer int   // index in ops of the kept CAS that consumed it, -1 none
	observed bool
	block    int // block index, -1 until assigned
}

// zoneBlock is a chain of values and its operations in their fixed order.
type zoneBlock struct {
	values []history.Scalar
	groups [][]int // indexes in ops, group by group
	f, s   int64   // earliest return, latest call
	fOp    int     // index in ops of the op returning at f (-1: initial)
	sOp    int     // index in ops of the op called at s (-1: initial)
}

// zonesEngine checks one key.
type zonesEngine struct {
	key    string
	all    []history.Operation
	ops    []zoneOp
	values map[history.Scalar]*zoneValue
	order  []history.Scalar // values in order of first appearance
	res    *zoneOutcome
}

// zoneOutcome is the engine's answer for one key.
type zoneOutcome struct {
	// Fallback is non-empty when the preconditions do not hold; it says
	// why, and the other fields are unset.
	Fallback  string
	Anomalies []Anomaly
	Ops       int // operations kept
}

// checkZones decides linearizability of one key's register operations,
// given as positions in all. It returns a Fallback reason when the history
// is outside the engine's domain (repeated written values, a written null,
// functions other than read, write and cas, a malformed CAS).
func checkZones(key string, all []history.Operation, positions []int) zoneOutcome {
	e := &zonesEngine{key: key, all: all, values: make(map[history.Scalar]*zoneValue), res: &zoneOutcome{}}
	if reason := e.collect(positions); reason != "" {
		return zoneOutcome{Fallback: reason}
	}
	e.observe()
	e.link()
	blocks := e.blocks()
	e.zones(blocks)
	kept := 0
	for _, op := range e.ops {
		if op.pos >= 0 {
			kept++
		}
	}
	e.res.Ops = kept
	return *e.res
}

func (e *zonesEngine) value(v history.Value) *zoneValue {
	s := v.Scalar()
	zv := e.values[s]
	if zv == nil {
		zv = &zoneValue{v: v, writer: -1, consumer: -1, block: -1}
		e.values[s] = zv
		e.order = append(e.order, s)
	}
	return zv
}

// collect reads the key's operations and checks the engine's preconditions.
func (e *zonesEngine) collect(positions []int) string {
	// The initial value's virtual write comes first.
	e.ops = append(e.ops, zoneOp{pos: -1, call: zonesInit, ret: zonesInit, f: FWrite, initialWrite: true})
	e.value(history.Nil()).writer = 0
	for _, p := range positions {
		o := e.all[p]
		switch o.F {
		case FRead:
			if o.Type != history.OK {
				continue // a read that never returned tells nothing
			}
			e.ops = append(e.ops, zoneOp{pos: p, call: o.Call, ret: o.Return, f: FRead, value: o.Value, readOfValue: true})
		case FWrite:
			if o.Value.IsNil() {
				return fmt.Sprintf("a write of null (op %d) cannot be told apart from the initial value", o.Invoke)
			}
			if o.Type == history.Fail {
				e.value(o.Value).failed = true
				continue
			}
			zv := e.value(o.Value)
			if zv.writer >= 0 {
				return fmt.Sprintf("value %s is written more than once (ops %d and %d)", o.Value, e.invokeOf(zv.writer), o.Invoke)
			}
			e.ops = append(e.ops, zoneOp{pos: p, call: o.Call, ret: o.Return, f: FWrite, value: o.Value})
			zv.writer = len(e.ops) - 1
		case FCAS:
			old, nv, ok := o.Value.Pair()
			if !ok {
				return fmt.Sprintf("cas op %d has value %s, not [old, new]", o.Invoke, o.Value)
			}
			if nv.IsNil() {
				return fmt.Sprintf("a CAS to null (op %d) cannot be told apart from the initial value", o.Invoke)
			}
			if o.Type == history.Fail {
				e.value(nv).failed = true
				continue
			}
			zv := e.value(nv)
			if zv.writer >= 0 {
				return fmt.Sprintf("value %s is written more than once (ops %d and %d)", nv, e.invokeOf(zv.writer), o.Invoke)
			}
			e.ops = append(e.ops, zoneOp{pos: p, call: o.Call, ret: o.Return, f: FCAS, value: nv, old: old})
			zv.writer = len(e.ops) - 1
		default:
			return fmt.Sprintf("op %d is a %q, which the register engine does not model", o.Invoke, o.F)
		}
	}
	return ""
}

func (e *zonesEngine) invokeOf(i int) int {
	if p := e.ops[i].pos; p >= 0 {
		return e.all[p].Invoke
	}
	return -1
}

// kept reports whether op i may have taken effect and is part of the
// problem: reads, OK writes and CASes, and indeterminate ones whose value
// was observed.
func (e *zonesEngine) kept(i int) bool {
	op := e.ops[i]
	if op.readOfValue || op.initialWrite || op.ret != history.Open {
		return true
	}
	return e.values[op.value.Scalar()].observed
}

// observe marks the values that were observed, keeping the indeterminate
// writes and CASes that must have happened.
func (e *zonesEngine) observe() {
	var work []history.Scalar
	mark := func(v history.Value) {
		zv := e.value(v)
		if !zv.observed {
			zv.observed = true
			work = append(work, v.Scalar())
		}
	}
	for i, op := range e.ops {
		switch {
		case op.readOfValue:
			mark(op.value)
			zv := e.values[op.value.Scalar()]
			zv.reads = append(zv.reads, i)
		case op.f == FCAS && op.ret != history.Open:
			mark(op.old)
		}
	}
	// An observed value written by an indeterminate CAS means that CAS took
	// effect, so the value it consumed was observed too.
	for len(work) > 0 {
		s := work[len(work)-1]
		work = work[:len(work)-1]
		zv := e.values[s]
		if zv.writer > 0 {
			if op := e.ops[zv.writer]; op.f == FCAS && op.ret == history.Open {
				mark(op.old)
			}
		}
	}
}

// link checks rules 1 and 2 and records which CAS consumes each value.
func (e *zonesEngine) link() {
	for i, op := range e.ops {
		if op.readOfValue {
			zv := e.values[op.value.Scalar()]
			if zv.writer < 0 {
				e.unwritten(i, op.value, zv.failed, "read")
			}
			continue
		}
		if op.f != FCAS || !e.kept(i) {
			continue
		}
		zv := e.value(op.old)
		switch {
		case zv.writer < 0:
			e.unwritten(i, op.old, zv.failed, "CAS")
		case zv.consumer >= 0:
			e.add(Anomaly{
				Kind: "double-cas", Key: e.key, Ops: e.refs(zv.writer, zv.consumer, i),
				Explanation: fmt.Sprintf("two successful CASes consumed value %s: op %d (%s) and op %d (%s); once one replaced it, it was never current again", op.old, e.invokeOf(zv.consumer), e.describe(zv.consumer), e.invokeOf(i), e.describe(i)),
			})
		default:
			zv.consumer = i
		}
	}
}

func (e *zonesEngine) unwritten(i int, v history.Value, failed bool, what string) {
	why := "no operation wrote it"
	if failed {
		why = "the only write of it failed, so it certainly did not happen"
	}
	kind := "read-unwritten"
	if what == "CAS" {
		kind = "cas-unwritten"
	}
	e.add(Anomaly{
		Kind: kind, Key: e.key, Ops: e.refs(i),
		Explanation: fmt.Sprintf("%s op %d (%s) saw value %s of key %q, but %s", what, e.invokeOf(i), e.describe(i), v, e.key, why),
	})
}

// blocks builds the chains from each root (a plain write, or the initial
// value) and checks rule 3 inside each.
func (e *zonesEngine) blocks() []zoneBlock {
	var out []zoneBlock
	for _, s := range e.order {
		zv := e.values[s]
		if zv.writer < 0 || e.ops[zv.writer].f == FCAS || !e.kept(zv.writer) {
			continue
		}
		b := zoneBlock{}
		cur := zv
		for {
			cur.block = len(out)
			b.values = append(b.values, cur.v.Scalar())
			b.groups = append(b.groups, []int{cur.writer}, cur.reads)
			if cur.consumer < 0 {
				break
			}
			next := e.values[e.ops[cur.consumer].value.Scalar()]
			if next.block >= 0 {
				break // a cycle back into this chain; reported below
			}
			cur = next
		}
		e.order3(&b)
		out = append(out, b)
	}
	e.cycles()
	return out
}

// cycles reports CAS chains that never reach a plain write or the initial
// value: values written by a kept CAS that no block reached, whose chain
// leads back to itself. (A chain that leads back to a value nobody wrote, or
// to a value two CASes consumed, was reported already.)
func (e *zonesEngine) cycles() {
	done := map[history.Scalar]bool{}
	for _, s := range e.order {
		zv := e.values[s]
		if done[s] || zv.block >= 0 || zv.writer <= 0 || e.ops[zv.writer].f != FCAS || !e.kept(zv.writer) {
			continue
		}
		walk := map[history.Scalar]bool{}
		cur := s
		for {
			if walk[cur] {
				w := e.values[cur].writer
				e.add(Anomaly{
					Kind: "cas-chain-without-start", Key: e.key, Ops: e.refs(w),
					Explanation: fmt.Sprintf("value %s came from CAS op %d, but following the CASes back from it leads in a circle, never to a plain write or the initial value; with unique values that cannot happen", e.values[cur].v, e.invokeOf(w)),
				})
				break
			}
			if done[cur] {
				break
			}
			walk[cur] = true
			cv := e.values[cur]
			if cv.block >= 0 || cv.writer <= 0 || e.ops[cv.writer].f != FCAS {
				break
			}
			cas := cv.writer
			old := e.values[e.ops[cas].old.Scalar()]
			if old == nil || old.writer < 0 || old.consumer != cas {
				break // reported as cas-unwritten or double-cas
			}
			cur = e.ops[cas].old.Scalar()
		}
		for v := range walk {
			done[v] = true
		}
	}
}

// order3 checks rule 3 for one block and computes its zone: no operation
// may return before an operation in an earlier group was called.
func (e *zonesEngine) order3(b *zoneBlock) {
	maxCall, maxOp := zonesInit, -1 // latest call in the groups before this one
	b.f, b.fOp = history.Open, -1
	b.s, b.sOp = zonesInit, -1
	for _, g := range b.groups {
		gMax, gOp := maxCall, maxOp
		for _, i := range g {
			if !e.kept(i) {
				continue
			}
			op := e.ops[i]
			if op.ret < maxCall && maxOp >= 0 {
				e.add(Anomaly{
					Kind: "order", Key: e.key, Ops: e.refs(maxOp, i),
					Explanation: fmt.Sprintf("op %d (%s) returned at %s, before op %d (%s) was invoked at %s, yet it must take effect after it: %s", e.invokeOf(i), e.describe(i), ms(op.ret), e.invokeOf(maxOp), e.describe(maxOp), ms(e.ops[maxOp].call), e.whyAfter(maxOp, i)),
				})
			}
			if op.ret < b.f {
				b.f, b.fOp = op.ret, i
			}
			if op.call > b.s || b.sOp < 0 {
				b.s, b.sOp = op.call, i
			}
			if op.call > gMax {
				gMax, gOp = op.call, i
			}
		}
		maxCall, maxOp = gMax, gOp
	}
}

// whyAfter explains why op j must take effect after op i in their chain.
func (e *zonesEngine) whyAfter(i, j int) string {
	a, b := e.ops[i], e.ops[j]
	switch {
	case b.readOfValue && (a.f == FWrite || a.f == FCAS) && b.value.Equal(a.value):
		return fmt.Sprintf("it read %s, which that op wrote", b.value)
	case b.f == FCAS && !a.readOfValue:
		return fmt.Sprintf("it replaced %s, which came from that op", b.old)
	case b.f == FCAS:
		return fmt.Sprintf("that op read %s, which it replaced", b.old)
	default:
		return "the CAS chain fixes their order"
	}
}

// zones checks rule 4.
func (e *zonesEngine) zones(blocks []zoneBlock) {
	var fwd []int // blocks with a forward zone
	var back []int
	for i, b := range blocks {
		if b.f < b.s {
			fwd = append(fwd, i)
		} else {
			back = append(back, i)
		}
	}
	sort.SliceStable(fwd, func(i, j int) bool { return blocks[fwd[i]].f < blocks[fwd[j]].f })
	// prefix[k] is the index in fwd, among fwd[0..k], of the zone ending latest.
	prefix := make([]int, len(fwd))
	for k := range fwd {
		cur := blocks[fwd[k]]
		prefix[k] = k
		if k == 0 {
			continue
		}
		if prev := blocks[fwd[prefix[k-1]]]; cur.f < prev.s {
			e.overlap(prev, cur)
		}
		if blocks[fwd[prefix[k-1]]].s > cur.s {
			prefix[k] = prefix[k-1]
		}
	}
	for _, bi := range back {
		b := blocks[bi]
		// Forward zones that start before the backward zone does.
		k := sort.Search(len(fwd), func(k int) bool { return blocks[fwd[k]].f >= b.s }) - 1
		if k < 0 {
			continue
		}
		outer := blocks[fwd[prefix[k]]]
		if b.f < outer.s {
			e.inside(b, outer)
		}
	}
}

func (e *zonesEngine) overlap(a, b zoneBlock) {
	e.add(Anomaly{
		Kind: "overlapping-zones", Key: e.key, Ops: e.refs(a.fOp, a.sOp, b.fOp, b.sOp),
		Explanation: fmt.Sprintf("%s was certainly current from %s to %s, and so was %s from %s to %s; a register holds one value at a time",
			e.valuesText(a), e.endText(a.fOp, true), e.endText(a.sOp, false), e.valuesText(b), e.endText(b.fOp, true), e.endText(b.sOp, false)),
	})
}

func (e *zonesEngine) inside(b, outer zoneBlock) {
	e.add(Anomaly{
		Kind: "zone-inside-zone", Key: e.key, Ops: e.refs(outer.fOp, outer.sOp, b.sOp, b.fOp),
		Explanation: fmt.Sprintf("the write of %s and all its reads were in progress together from %s to %s, so it had to take effect then, but that lies inside the window where %s was certainly current (%s to %s)",
			e.valuesText(b), e.endText(b.sOp, false), e.endText(b.fOp, true), e.valuesText(outer), e.endText(outer.fOp, true), e.endText(outer.sOp, false)),
	})
}

// valuesText names a block's values: "value 17", "the initial value", or "the CAS chain 3 -> 4 -> 9".
func (e *zonesEngine) valuesText(b zoneBlock) string {
	names := make([]string, len(b.values))
	for i, s := range b.values {
		if s.IsNil() {
			names[i] = "the initial value"
		} else {
			names[i] = s.String()
		}
	}
	if len(names) == 1 {
		if b.values[0].IsNil() {
			return names[0]
		}
		return "value " + names[0]
	}
	return "the CAS chain " + strings.Join(names, " -> ")
}

// endText describes a zone end: the return (isReturn) or the call of op i.
func (e *zonesEngine) endText(i int, isReturn bool) string {
	if i < 0 || e.ops[i].pos < 0 {
		return "the start"
	}
	if isReturn {
		return fmt.Sprintf("the return of op %d (%s) at %s", e.invokeOf(i), e.describe(i), ms(e.ops[i].ret))
	}
	return fmt.Sprintf("the call of op %d (%s) at %s", e.invokeOf(i), e.describe(i), ms(e.ops[i].call))
}

// describe says what op i did, e.g. "read 7", "write 3", "cas 3->4".
func (e *zonesEngine) describe(i int) string {
	op := e.ops[i]
	switch {
	case op.initialWrite:
		return "initial value"
	case op.readOfValue:
		return "read " + op.value.String()
	case op.f == FCAS:
		return "cas " + op.old.String() + "->" + op.value.String()
	}
	return "write " + op.value.String()
}

func (e *zonesEngine) refs(is ...int) []OpRef {
	out := make([]OpRef, 0, len(is))
	seen := map[int]bool{}
	for _, i := range is {
		if i < 0 || e.ops[i].pos < 0 || seen[i] {
			continue
		}
		seen[i] = true
		out = append(out, Ref(e.all[e.ops[i].pos]))
	}
	return out
}

func (e *zonesEngine) add(a Anomaly) { e.res.Anomalies = append(e.res.Anomalies, a) }

// ms renders a time in nanoseconds as milliseconds.
func ms(t int64) string {
	switch t {
	case history.Open:
		return "never (indeterminate)"
	case zonesInit:
		return "the start"
	}
	return fmt.Sprintf("%.3f ms", float64(t)/1e6)
}
