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

// The kinds of zoneOp.
const (
	zRead uint8 = iota
	zWrite
	zCAS
	zInitial // the initial value's virtual write
)

// zoneOp is one operation as the engine sees it. Values are ids into
// zonesEngine.vals.
type zoneOp struct {
	call, ret int64
	pos       int32 // position in Input.Ops; -1 for the virtual write
	kind      uint8
	val       int32 // the value read or written
	old       int32 // a CAS's expected value
}

// zoneValue is what the engine knows of one value.
type zoneValue struct {
	writer     int32 // index in ops of the operation that wrote it, -1 none
	consumer   int32 // index in ops of the kept CAS that consumed it, -1 none
	block      int32 // block index, -1 until assigned
	readsStart int32 // its reads are reads[readsStart:readsEnd]
	readsEnd   int32
	failed     bool // some failed operation wrote it
	observed   bool
}

// zoneBlock is a chain of values, from root, and its zone.
type zoneBlock struct {
	root     int32 // the chain's first value
	f, s     int64 // earliest return, latest call
	fOp, sOp int32 // indexes in ops of the ops returning at f and called at s
}

// zonesEngine checks one key.
type zonesEngine struct {
	key    string
	all    []history.Operation
	ops    []zoneOp
	vals   []zoneValue
	scal   []history.Scalar // the value of each id
	ints   map[int64]int32  // value ids of integers, the common case
	others map[history.Scalar]int32
	reads  []int32 // indexes in ops of OK reads, grouped by value
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
	e := &zonesEngine{key: key, all: all, ints: make(map[int64]int32), others: make(map[history.Scalar]int32), res: &zoneOutcome{}}
	if reason := e.collect(positions); reason != "" {
		return zoneOutcome{Fallback: reason}
	}
	e.groupReads()
	e.observe()
	e.link()
	blocks := e.blocks()
	e.zones(blocks)
	for i := range e.ops {
		if e.ops[i].kind != zInitial && e.kept(int32(i)) {
			e.res.Ops++
		}
	}
	return *e.res
}

// id interns a value.
func (e *zonesEngine) id(v history.Value) int32 {
	if n, ok := v.AsInt(); ok {
		if id, ok := e.ints[n]; ok {
			return id
		}
		id := e.newValue(v)
		e.ints[n] = id
		return id
	}
	s := v.Scalar()
	if id, ok := e.others[s]; ok {
		return id
	}
	id := e.newValue(v)
	e.others[s] = id
	return id
}

func (e *zonesEngine) newValue(v history.Value) int32 {
	e.vals = append(e.vals, zoneValue{writer: -1, consumer: -1, block: -1})
	e.scal = append(e.scal, v.Scalar())
	return int32(len(e.vals) - 1)
}

// collect reads the key's operations and checks the engine's preconditions.
func (e *zonesEngine) collect(positions []int) string {
	e.ops = make([]zoneOp, 0, len(positions)+1)
	// The initial value's virtual write comes first: value id 0 is nil.
	nilID := e.id(history.Nil())
	e.ops = append(e.ops, zoneOp{pos: -1, call: zonesInit, ret: zonesInit, kind: zInitial, val: nilID})
	e.vals[nilID].writer = 0
	for _, p := range positions {
		o := &e.all[p]
		switch o.F {
		case FRead:
			if o.Type != history.OK {
				continue // a read that never returned tells nothing
			}
			e.ops = append(e.ops, zoneOp{pos: int32(p), call: o.Call, ret: o.Return, kind: zRead, val: e.id(o.Value)})
		case FWrite, FCAS:
			nv, old, kind := o.Value, history.Nil(), zWrite
			if o.F == FCAS {
				var ok bool
				if old, nv, ok = o.Value.Pair(); !ok {
					return fmt.Sprintf("cas op %d has value %s, not [old, new]", o.Invoke, o.Value)
				}
				kind = zCAS
			}
			if nv.IsNil() {
				return fmt.Sprintf("a %s of null (op %d) cannot be told apart from the initial value", o.F, o.Invoke)
			}
			id := e.id(nv)
			if o.Type == history.Fail {
				e.vals[id].failed = true
				continue
			}
			if w := e.vals[id].writer; w >= 0 {
				return fmt.Sprintf("value %s is written more than once (ops %d and %d)", nv, e.invokeOf(w), o.Invoke)
			}
			op := zoneOp{pos: int32(p), call: o.Call, ret: o.Return, kind: kind, val: id}
			if kind == zCAS {
				op.old = e.id(old)
			}
			e.ops = append(e.ops, op)
			e.vals[id].writer = int32(len(e.ops) - 1)
		default:
			return fmt.Sprintf("op %d is a %q, which the register engine does not model", o.Invoke, o.F)
		}
	}
	return ""
}

// groupReads lays out the reads of each value contiguously (a counting
// sort), so no value holds a slice of its own.
func (e *zonesEngine) groupReads() {
	counts := make([]int32, len(e.vals)+1)
	for _, op := range e.ops {
		if op.kind == zRead {
			counts[op.val+1]++
		}
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	e.reads = make([]int32, counts[len(counts)-1])
	for id := range e.vals {
		e.vals[id].readsStart, e.vals[id].readsEnd = counts[id], counts[id]
	}
	for i, op := range e.ops {
		if op.kind == zRead {
			v := &e.vals[op.val]
			e.reads[v.readsEnd] = int32(i)
			v.readsEnd++
		}
	}
}

func (e *zonesEngine) invokeOf(i int32) int {
	if p := e.ops[i].pos; p >= 0 {
		return e.all[p].Invoke
	}
	return -1
}

// text renders value id as JSON.
func (e *zonesEngine) text(id int32) string { return e.scal[id].String() }

// kept reports whether op i may have taken effect and is part of the
// problem: reads, OK writes and CASes, and indeterminate ones whose value
// was observed.
func (e *zonesEngine) kept(i int32) bool {
	op := &e.ops[i]
	if op.kind == zRead || op.kind == zInitial || op.ret != history.Open {
		return true
	}
	return e.vals[op.val].observed
}

// observe marks the values that were observed, keeping the indeterminate
// writes and CASes that must have happened.
func (e *zonesEngine) observe() {
	var work []int32
	mark := func(id int32) {
		if !e.vals[id].observed {
			e.vals[id].observed = true
			work = append(work, id)
		}
	}
	for _, op := range e.ops {
		switch {
		case op.kind == zRead:
			mark(op.val)
		case op.kind == zCAS && op.ret != history.Open:
			mark(op.old)
		}
	}
	// An observed value written by an indeterminate CAS means that CAS took
	// effect, so the value it consumed was observed too.
	for len(work) > 0 {
		id := work[len(work)-1]
		work = work[:len(work)-1]
		if w := e.vals[id].writer; w > 0 {
			if op := e.ops[w]; op.kind == zCAS && op.ret == history.Open {
				mark(op.old)
			}
		}
	}
}

// link checks rules 1 and 2 and records which CAS consumes each value.
func (e *zonesEngine) link() {
	for i := range e.ops {
		op := e.ops[i]
		i := int32(i)
		if op.kind == zRead {
			if v := e.vals[op.val]; v.writer < 0 {
				e.unwritten(i, op.val, v.failed, "read")
			}
			continue
		}
		if op.kind != zCAS || !e.kept(i) {
			continue
		}
		v := &e.vals[op.old]
		switch {
		case v.writer < 0:
			e.unwritten(i, op.old, v.failed, "CAS")
		case v.consumer >= 0:
			e.add(Anomaly{
				Kind: "double-cas", Key: e.key, Ops: e.refs(v.writer, v.consumer, i),
				Explanation: fmt.Sprintf("two successful CASes consumed value %s: op %d (%s) and op %d (%s); once one replaced it, it was never current again", e.text(op.old), e.invokeOf(v.consumer), e.describe(v.consumer), e.invokeOf(i), e.describe(i)),
			})
		default:
			v.consumer = i
		}
	}
}

func (e *zonesEngine) unwritten(i, id int32, failed bool, what string) {
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
		Explanation: fmt.Sprintf("%s op %d (%s) saw value %s of key %q, but %s", what, e.invokeOf(i), e.describe(i), e.text(id), e.key, why),
	})
}

// blocks builds the chains from each root (a plain write, or the initial
// value) and checks rule 3 inside each.
func (e *zonesEngine) blocks() []zoneBlock {
	var out []zoneBlock
	for id := range e.vals {
		v := e.vals[id]
		if v.writer < 0 || e.ops[v.writer].kind == zCAS || !e.kept(v.writer) {
			continue
		}
		b := zoneBlock{root: int32(id)}
		e.chain(&b, int32(len(out)))
		out = append(out, b)
	}
	e.cycles()
	return out
}

// chain walks a block's operations in their fixed order (the write, the
// reads of its value, the CAS that consumed it, the reads of the next
// value, ...), checks rule 3 and computes the zone: no operation may return
// before an operation in an earlier group was called.
func (e *zonesEngine) chain(b *zoneBlock, blockID int32) {
	maxCall, maxOp := zonesInit, int32(-1) // latest call in the groups before this one
	b.f, b.fOp = history.Open, -1
	b.s, b.sOp = zonesInit, -1
	visit := func(i int32, gMax *int64, gOp *int32) {
		op := &e.ops[i]
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
		if op.call > *gMax {
			*gMax, *gOp = op.call, i
		}
	}
	for id := b.root; ; {
		v := &e.vals[id]
		v.block = blockID
		// The group of the write.
		gMax, gOp := maxCall, maxOp
		visit(v.writer, &gMax, &gOp)
		maxCall, maxOp = gMax, gOp
		// The group of its reads.
		for _, r := range e.reads[v.readsStart:v.readsEnd] {
			visit(r, &gMax, &gOp)
		}
		maxCall, maxOp = gMax, gOp
		if v.consumer < 0 {
			return
		}
		next := e.ops[v.consumer].val
		if e.vals[next].block >= 0 {
			return // cannot happen with unique values; kept as a guard
		}
		id = next
	}
}

// cycles reports CAS chains that never reach a plain write or the initial
// value: values written by a kept CAS that no block reached, whose chain
// leads back to itself. (A chain that leads back to a value nobody wrote, or
// to a value two CASes consumed, was reported already.)
func (e *zonesEngine) cycles() {
	done := make(map[int32]bool)
	for id := range e.vals {
		start := int32(id)
		v := e.vals[id]
		if done[start] || v.block >= 0 || v.writer <= 0 || e.ops[v.writer].kind != zCAS || !e.kept(v.writer) {
			continue
		}
		walk := map[int32]bool{}
		for cur := start; ; {
			if walk[cur] {
				w := e.vals[cur].writer
				e.add(Anomaly{
					Kind: "cas-chain-without-start", Key: e.key, Ops: e.refs(w),
					Explanation: fmt.Sprintf("value %s came from CAS op %d, but following the CASes back from it leads in a circle, never to a plain write or the initial value; with unique values that cannot happen", e.text(cur), e.invokeOf(w)),
				})
				break
			}
			if done[cur] {
				break
			}
			walk[cur] = true
			cv := e.vals[cur]
			if cv.block >= 0 || cv.writer <= 0 || e.ops[cv.writer].kind != zCAS {
				break
			}
			cas := cv.writer
			old := e.ops[cas].old
			if ov := e.vals[old]; ov.writer < 0 || ov.consumer != cas {
				break // reported as cas-unwritten or double-cas
			}
			cur = old
		}
		for v := range walk {
			done[v] = true
		}
	}
}

// whyAfter explains why op j must take effect after op i in their chain.
func (e *zonesEngine) whyAfter(i, j int32) string {
	a, b := e.ops[i], e.ops[j]
	switch {
	case b.kind == zRead && a.kind != zRead && b.val == a.val:
		return fmt.Sprintf("it read %s, which that op wrote", e.text(b.val))
	case b.kind == zCAS && a.kind != zRead:
		return fmt.Sprintf("it replaced %s, which came from that op", e.text(b.old))
	case b.kind == zCAS:
		return fmt.Sprintf("that op read %s, which it replaced", e.text(b.old))
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

// valuesText names a block's values: "value 17", "the initial value", or
// "the CAS chain 3 -> 4 -> 9".
func (e *zonesEngine) valuesText(b zoneBlock) string {
	var names []string
	for id := b.root; ; {
		if e.scal[id].IsNil() {
			names = append(names, "the initial value")
		} else {
			names = append(names, e.text(id))
		}
		c := e.vals[id].consumer
		if c < 0 || len(names) > 8 {
			break
		}
		id = e.ops[c].val
	}
	switch {
	case len(names) == 1 && e.scal[b.root].IsNil():
		return names[0]
	case len(names) == 1:
		return "value " + names[0]
	}
	return "the CAS chain " + strings.Join(names, " -> ")
}

// endText describes a zone end: the return (isReturn) or the call of op i.
func (e *zonesEngine) endText(i int32, isReturn bool) string {
	if i < 0 || e.ops[i].pos < 0 {
		return "the start"
	}
	if isReturn {
		return fmt.Sprintf("the return of op %d (%s) at %s", e.invokeOf(i), e.describe(i), ms(e.ops[i].ret))
	}
	return fmt.Sprintf("the call of op %d (%s) at %s", e.invokeOf(i), e.describe(i), ms(e.ops[i].call))
}

// describe says what op i did, e.g. "read 7", "write 3", "cas 3->4".
func (e *zonesEngine) describe(i int32) string {
	op := e.ops[i]
	switch op.kind {
	case zInitial:
		return "initial value"
	case zRead:
		return "read " + e.text(op.val)
	case zCAS:
		return "cas " + e.text(op.old) + "->" + e.text(op.val)
	}
	return "write " + e.text(op.val)
}

func (e *zonesEngine) refs(is ...int32) []OpRef {
	out := make([]OpRef, 0, len(is))
	seen := map[int32]bool{}
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
