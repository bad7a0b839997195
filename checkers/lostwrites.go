package checkers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// NameLostWrites is the name of the [LostWrites] checker.
const NameLostWrites = "lost-writes"

// Anomaly kinds of the [LostWrites] checker.
const (
	// KindLost: an element whose add was acknowledged (or that a read
	// showed) is missing from the last read of its set.
	KindLost = "lost"
	// KindUnexpected: a set read holds an element no add ever tried to add.
	KindUnexpected = "unexpected"
	// KindUnexpectedAfterFail: a set read holds an element whose every add
	// failed, so it certainly was never added.
	KindUnexpectedAfterFail = "unexpected-after-fail"
	// KindDuplicated: one set read holds the same element more than once.
	KindDuplicated = "duplicated"
	// KindLostWrite: an acknowledged register write that began after the
	// final value's write had finished, yet the final value won.
	KindLostWrite = "lost-write"
	// KindDivergence: the final reads of one register disagree.
	KindDivergence = "divergence"
	// KindUnknownFinalValue: the final value of a register was never written
	// by a write that may have taken effect.
	KindUnknownFinalValue = "unknown-final-value"
)

// LostWrites checks that acknowledged writes survive: on sets, that every
// acknowledged add stays in the set; on registers, that no acknowledged write
// is silently overwritten by an older one. It decides per key: a key with
// "add" operations and list-valued reads is a set, a key with "write" or
// "cas" operations is a register. Other keys (counters) are ignored.
//
// # Sets
//
// Sets follow the meanings of Jepsen's set-full checker. For each element
// (elements are unique: one add each), its known time is the earlier of the
// add's acknowledgement and the completion of the first read that contains
// it. Only reads that began after the known time count:
//
//   - never-read: no read began after the known time (or the element was
//     never known: its add was not acknowledged and no read showed it);
//   - lost: the last read (by invocation) lacks it;
//   - stable: the last read holds it. A stable element is also stale when
//     some read that began after the known time lacked it; its stable
//     latency is then the time from the known time to the start of the last
//     read that lacked it (after which every read held it), a lower bound as
//     in Jepsen, and 0 otherwise.
//
// An element in a read that no add attempted is unexpected; one whose every
// add failed is unexpected-after-fail; an element twice in one read is
// duplicated. Elements of indeterminate (info) adds may or may not appear:
// they are never lost unless a read showed them. The history is valid iff
// nothing is lost, unexpected or duplicated. Stale elements are counted as
// stable too, as in Jepsen, so that stable + lost + never_read +
// unexpected_after_fail = attempted. Latencies are reported in ms at p50,
// p95, p99 and max (Stats "stable_latency_p50_ms", "lost_latency_max_ms",
// ...). A read with a null value in a set key counts as the empty set.
//
// # Registers
//
// The final reads of a key (the OK reads marked final by the harness's final
// phase) name its final value v. Let w_f be the one write of v (nil is the
// initial value, with no write). Every acknowledged write or CAS of the key
// that began after w_f finished (every acknowledged one, when v is the
// initial value) and finished before the last final read began is lost: it
// should have superseded v. Final reads that disagree are a divergence; a
// final value no write that may have taken effect wrote is an unknown final
// value; both are invalid. Keys whose final value several writes wrote are
// skipped (Stats "skipped_keys").
//
// # Multi-value registers
//
// A register whose reads return siblings (ecstore --mode mvr; the shape is
// in lostwrites_mvr.go) keeps concurrent writes side by side. An
// acknowledged write is lost only when a final read holds neither it
// among its siblings nor a causal successor of it: its dot is not in the
// read's causal context. Final reads with different siblings are a
// divergence; a sibling no write that may have taken effect wrote is an
// unknown final value. Stats: mv_keys, mv_reads, reads_with_siblings,
// siblings_max, final_siblings_max.
//
// When a key has no final marks, its last OK read by invocation stands in
// for the final read (Stats "unmarked_keys"). That read may be stale (a
// replica that had not caught up yet), so the losses found that way can
// overstate what the store really lost; mark final reads to be sure.
//
// Stats for sets: set_keys, attempted, acknowledged, stable, stale, lost,
// never_read, unexpected (including unexpected_after_fail), duplicated.
// For registers: keys, final_reads, lost, divergent_keys,
// unknown_final_values, skipped_keys, unmarked_keys, unread_keys. When a
// history holds both, "lost" counts both and set_lost and register_lost
// split it.
//
// In explanations, "op N" is the index of the operation's invocation line
// and times are since the start of the run.
func LostWrites(ctx context.Context, in Input, opt Options) Result {
	res := Result{Checker: NameLostWrites, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	if ops == nil && len(in.History) > 0 {
		ops = history.Pair(in.History)
	}
	sets, allRegs, _ := lwClassify(ops)
	var regKeys, mvKeys []*lwKey
	for _, k := range allRegs {
		if k.mvReads > 0 {
			mvKeys = append(mvKeys, k)
		} else {
			regKeys = append(regKeys, k)
		}
	}
	var summary []string
	var setLost, regLost int
	if len(sets) > 0 {
		var ok bool
		if setLost, ok = lwCheckSets(ctx, ops, sets, &res); !ok {
			return lwStopped(res, ctx.Err())
		}
		summary = append(summary, res.Summary)
	}
	if len(regKeys) > 0 {
		var ok bool
		if regLost, ok = lwCheckRegisters(ctx, ops, regKeys, &res); !ok {
			return lwStopped(res, ctx.Err())
		}
		summary = append(summary, res.Summary)
	}
	if len(mvKeys) > 0 {
		n, ok := lwCheckMV(ctx, ops, mvKeys, &res)
		if !ok {
			return lwStopped(res, ctx.Err())
		}
		regLost += n
		summary = append(summary, res.Summary)
	}
	res.Stats["lost"] = float64(setLost + regLost)
	if len(sets) > 0 && len(regKeys) > 0 {
		res.Stats["set_lost"] = float64(setLost)
		res.Stats["register_lost"] = float64(regLost)
	}
	if len(summary) == 0 {
		res.Reason = "no set adds or register writes in the history"
		res.Summary = "nothing to check"
		return res
	}
	res.Summary = strings.Join(summary, "; ")
	return res
}

// lwKey is what one key holds, for deciding whether it is a set, a register
// or a counter. Positions refer to the Ops slice.
type lwKey struct {
	key       string
	adds      []int // add operations of any type, in invocation order
	reads     []int // OK reads, in invocation order
	listReads int   // OK reads whose value is a list
	mvReads   int   // OK reads of a multi-value register (siblings)
	writes    bool  // the key has a write or CAS, of any type
}

// lwClassify groups ops by key, keys in order of first appearance, and
// sorts the keys into sets (adds and list-valued reads), registers (writes
// or CASes) and counters (adds without list-valued reads, no writes).
func lwClassify(ops []history.Operation) (sets, registers, counters []*lwKey) {
	byKey := make(map[string]*lwKey)
	var keys []*lwKey
	for i, o := range ops {
		k := byKey[o.Key]
		if k == nil {
			k = &lwKey{key: o.Key}
			byKey[o.Key] = k
			keys = append(keys, k)
		}
		switch o.F {
		case FAdd:
			k.adds = append(k.adds, i)
		case FRead:
			if o.Type == history.OK {
				k.reads = append(k.reads, i)
				if o.Value.Kind() == history.KindList {
					k.listReads++
				} else if isMVRead(o.Value) {
					k.mvReads++
				}
			}
		case FWrite, FCAS:
			k.writes = true
		}
	}
	for _, k := range keys {
		switch {
		case k.writes:
			registers = append(registers, k)
		case len(k.adds) > 0 && k.listReads > 0:
			sets = append(sets, k)
		case len(k.adds) > 0:
			counters = append(counters, k)
		}
	}
	return sets, registers, counters
}

// lwElem is what the set analysis knows about one element of one key.
// Read positions index the key's list of reads.
type lwElem struct {
	val history.Value
	// add is the position in ops of the add that decides the element's
	// fate (the first OK one, else the first info one, else the first
	// failed one), or -1 when no add attempted it.
	add int32
	// known is when the element was known to exist: the earlier of the
	// add's acknowledgement and the completion of the first read holding
	// it; history.Open if never.
	known int64
	// firstSeen and lastPresent are the first and last reads holding the
	// element, -1 if none; runStart begins the run of consecutive reads
	// holding it that ends at lastPresent.
	firstSeen, lastPresent, runStart int32
	// dup is the first read that held the element more than once, or -1.
	dup int32
}

// lwSetTally holds the set figures across keys.
type lwSetTally struct {
	keys, attempted, acknowledged, stable, stale, lost, neverRead int
	unexpected, afterFail, duplicated                             int
	stableLat, lostLat                                            []int64
}

// lwCheckSets analyses the set keys, records anomalies and stats in res, and
// returns the number of lost elements; ok is false when ctx ended first.
func lwCheckSets(ctx context.Context, ops []history.Operation, sets []*lwKey, res *Result) (lost int, ok bool) {
	var t lwSetTally
	// Elements are usually integers: they get a map of their own, cheaper
	// to hash than a Scalar.
	intIndex := make(map[int64]int32)
	index := make(map[history.Scalar]int32)
	var elems []lwElem
	var reads []int
	for _, k := range sets {
		if ctx.Err() != nil {
			return 0, false
		}
		t.keys++
		clear(intIndex)
		clear(index)
		elems = elems[:0]
		elem := func(v history.Value) int32 {
			n, isInt := v.AsInt()
			if isInt {
				if i, ok := intIndex[n]; ok {
					return i
				}
			} else if i, ok := index[v.Scalar()]; ok {
				return i
			}
			i := int32(len(elems))
			if isInt {
				intIndex[n] = i
			} else {
				index[v.Scalar()] = i
			}
			elems = append(elems, lwElem{val: v, add: -1, known: history.Open, firstSeen: -1, lastPresent: -1, runStart: -1, dup: -1})
			return i
		}
		for _, ai := range k.adds {
			a := ops[ai]
			ei := elem(a.Value) // may grow elems: index only after it
			e := &elems[ei]
			if e.add < 0 || lwAddRank(a) > lwAddRank(ops[e.add]) {
				e.add = int32(ai)
			}
		}
		for i := range elems {
			if e := &elems[i]; ops[e.add].Type == history.OK {
				e.known = ops[e.add].Return
			}
		}
		// Reads of the set: list values, and null as the empty set.
		reads = reads[:0]
		for _, ri := range k.reads {
			if v := ops[ri].Value; v.Kind() == history.KindList || v.IsNil() {
				reads = append(reads, ri)
			}
		}
		for n, ri := range reads {
			if n%256 == 0 && ctx.Err() != nil {
				return 0, false
			}
			r := ops[ri]
			list, _ := r.Value.AsList()
			ri32 := int32(n)
			for _, v := range list {
				ei := elem(v)
				e := &elems[ei]
				switch {
				case e.lastPresent == ri32:
					if e.dup < 0 {
						e.dup = ri32
					}
					continue
				case e.lastPresent != ri32-1 || e.lastPresent < 0:
					e.runStart = ri32
				}
				if e.firstSeen < 0 {
					e.firstSeen = ri32
				}
				e.lastPresent = ri32
				if r.Return < e.known {
					e.known = r.Return
				}
			}
		}
		t.judgeKey(ops, k.key, elems, reads, res)
	}
	lwSetStats(res, &t)
	return t.lost, true
}

// lwAddRank orders adds by how much they tell: an acknowledged add beats an
// indeterminate one, which beats a failed one.
func lwAddRank(o history.Operation) int {
	switch o.Type {
	case history.OK:
		return 2
	case history.Info:
		return 1
	}
	return 0
}

// judgeKey decides the outcome of every element of one set key.
func (t *lwSetTally) judgeKey(ops []history.Operation, key string, elems []lwElem, reads []int, res *Result) {
	n := int32(len(reads))
	readAt := func(i int32) history.Operation { return ops[reads[i]] }
	for i := range elems {
		e := &elems[i]
		if e.dup >= 0 {
			t.duplicated++
			lwAdd(res, func() Anomaly {
				r := readAt(e.dup)
				return Anomaly{
					Kind: KindDuplicated, Key: key, Ops: []OpRef{Ref(r)},
					Explanation: fmt.Sprintf("element %s %sappears %d times in the read that began at %s (op %d); a set holds each element once",
						e.val, lwOfSet(key), lwCount(r.Value, e.val), lwAt(r.Call), r.Invoke),
				}
			})
		}
		if e.add < 0 {
			t.unexpected++
			lwAdd(res, func() Anomaly {
				r := readAt(e.firstSeen)
				return Anomaly{
					Kind: KindUnexpected, Key: key, Ops: []OpRef{Ref(r)},
					Explanation: fmt.Sprintf("element %s %sappears in the read that began at %s (op %d), but no add of it was ever attempted",
						e.val, lwOfSet(key), lwAt(r.Call), r.Invoke),
				}
			})
			continue
		}
		t.attempted++
		a := ops[e.add]
		if a.Type == history.Fail {
			if e.firstSeen < 0 {
				t.neverRead++
				continue
			}
			t.unexpected++
			t.afterFail++
			lwAdd(res, func() Anomaly {
				r := readAt(e.firstSeen)
				return Anomaly{
					Kind: KindUnexpectedAfterFail, Key: key, Ops: []OpRef{Ref(a), Ref(r)},
					Explanation: fmt.Sprintf("element %s %sappears in the read that began at %s (op %d), although its add (op %d) failed at %s, so it was certainly never added",
						e.val, lwOfSet(key), lwAt(r.Call), r.Invoke, a.Invoke, lwAt(a.Return)),
				}
			})
			continue
		}
		if a.Type == history.OK {
			t.acknowledged++
		}
		if e.known == history.Open || n == 0 || readAt(n-1).Call <= e.known {
			t.neverRead++
			continue
		}
		if e.lastPresent != n-1 {
			t.lost++
			lat := int64(0)
			if e.lastPresent >= 0 {
				lat = max(0, readAt(e.lastPresent).Call-e.known)
			}
			t.lostLat = append(t.lostLat, lat)
			lwAdd(res, func() Anomaly { return lwLostAnomaly(key, e, a, readAt, n) })
			continue
		}
		t.stable++
		lat := int64(0)
		if la := e.runStart - 1; la >= 0 && readAt(la).Call > e.known {
			t.stale++
			lat = readAt(la).Call - e.known
		}
		t.stableLat = append(t.stableLat, lat)
	}
}

// lwLostAnomaly explains one lost element.
func lwLostAnomaly(key string, e *lwElem, a history.Operation, readAt func(int32) history.Operation, n int32) Anomaly {
	last := readAt(n - 1)
	var b strings.Builder
	fmt.Fprintf(&b, "element %s %s", e.val, lwOfSet(key))
	refs := []OpRef{Ref(a)}
	if a.Type == history.OK {
		fmt.Fprintf(&b, "was acknowledged at %s (op %d)", lwAt(a.Return), a.Invoke)
	} else {
		fmt.Fprintf(&b, "was added by op %d, whose outcome is unknown,", a.Invoke)
	}
	if e.lastPresent >= 0 {
		seen := readAt(e.lastPresent)
		refs = append(refs, Ref(seen))
		fmt.Fprintf(&b, " and seen by a read at %s (op %d)", lwAt(seen.Call), seen.Invoke)
	} else {
		b.WriteString(" and never seen by any read")
	}
	refs = append(refs, Ref(last))
	fmt.Fprintf(&b, ", but the last read at %s (op %d) does not contain it", lwAt(last.Call), last.Invoke)
	return Anomaly{Kind: KindLost, Key: key, Ops: refs, Explanation: b.String()}
}

// lwSetStats writes the set figures into res.
func lwSetStats(res *Result, t *lwSetTally) {
	s := res.Stats
	s["set_keys"] = float64(t.keys)
	s["attempted"] = float64(t.attempted)
	s["acknowledged"] = float64(t.acknowledged)
	s["stable"] = float64(t.stable)
	s["stale"] = float64(t.stale)
	s["never_read"] = float64(t.neverRead)
	s["unexpected"] = float64(t.unexpected)
	s["unexpected_after_fail"] = float64(t.afterFail)
	s["duplicated"] = float64(t.duplicated)
	lwQuantiles(s, "stable_latency", t.stableLat)
	lwQuantiles(s, "lost_latency", t.lostLat)
	res.Summary = fmt.Sprintf("sets: %d of %d acknowledged adds lost, %d stale", t.lost, t.acknowledged, t.stale)
	if len(t.stableLat) > 0 {
		res.Summary += fmt.Sprintf(" (worst %.0f ms)", s["stable_latency_max_ms"])
	}
	res.Summary += fmt.Sprintf(", %d never read", t.neverRead)
	if t.unexpected > 0 {
		res.Summary += fmt.Sprintf(", %d unexpected", t.unexpected)
	}
	if t.duplicated > 0 {
		res.Summary += fmt.Sprintf(", %d duplicated", t.duplicated)
	}
}

// lwQuantiles records p50, p95, p99 and max of latencies (ns) in ms, with
// Jepsen's nearest-rank rule. Nothing is recorded for no latencies.
func lwQuantiles(stats map[string]float64, name string, lat []int64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	n := len(lat)
	at := func(p float64) float64 {
		return float64(lat[min(n-1, int(float64(n)*p))]) / 1e6
	}
	stats[name+"_p50_ms"] = at(0.50)
	stats[name+"_p95_ms"] = at(0.95)
	stats[name+"_p99_ms"] = at(0.99)
	stats[name+"_max_ms"] = float64(lat[n-1]) / 1e6
}

// lwCount counts v in a list value.
func lwCount(list, v history.Value) int {
	vs, _ := list.AsList()
	c := 0
	for _, w := range vs {
		if w.Equal(v) {
			c++
		}
	}
	return c
}

// lwRegTally holds the register figures across keys.
type lwRegTally struct {
	keys, finalReads, lost, divergent, unknown, skipped, unmarked, unread int
}

// lwCheckRegisters checks the register keys, records anomalies and stats in
// res, and returns the number of lost writes; ok is false when ctx ended
// first.
func lwCheckRegisters(ctx context.Context, ops []history.Operation, regKeys []*lwKey, res *Result) (lost int, ok bool) {
	want := make(map[string]bool, len(regKeys))
	for _, k := range regKeys {
		want[k.key] = true
	}
	var t lwRegTally
	var failed map[string]map[history.Scalar]int // key -> value -> a failed write of it; built on first need
	finals := make([]int, 0, 4)
	for _, rk := range registers(ops) {
		if !want[rk.key] {
			continue
		}
		if ctx.Err() != nil {
			return 0, false
		}
		t.keys++
		finals = finals[:0]
		for _, ri := range rk.reads {
			if ops[ri].Final {
				finals = append(finals, ri)
			}
		}
		if len(finals) == 0 {
			if len(rk.reads) == 0 {
				t.unread++
				continue
			}
			t.unmarked++
			finals = append(finals, rk.reads[len(rk.reads)-1])
		}
		t.finalReads += len(finals)
		// The final reads must agree.
		var distinct []int
		for _, ri := range finals {
			if !slices.ContainsFunc(distinct, func(d int) bool { return ops[d].Value.Equal(ops[ri].Value) }) {
				distinct = append(distinct, ri)
			}
		}
		if len(distinct) > 1 {
			t.divergent++
			lwAdd(res, func() Anomaly {
				refs := make([]OpRef, len(distinct))
				parts := make([]string, len(distinct))
				for i, ri := range distinct {
					refs[i] = Ref(ops[ri])
					parts[i] = fmt.Sprintf("op %d returns %s", ops[ri].Invoke, ops[ri].Value)
				}
				return Anomaly{
					Kind: KindDivergence, Key: rk.key, Ops: refs,
					Explanation: fmt.Sprintf("the final reads of %s disagree after the cluster was given time to converge: %s",
						lwKeyText(rk.key), strings.Join(parts, ", ")),
				}
			})
			continue
		}
		// The latest-starting final read: a write that finished before it
		// began should be visible to it.
		fr := ops[finals[0]]
		for _, ri := range finals[1:] {
			if ops[ri].Call > fr.Call {
				fr = ops[ri]
			}
		}
		from, wf := rk.origin(fr.Value)
		switch from {
		case FromSeveral:
			t.skipped++
			continue
		case FromNowhere:
			t.unknown++
			lwAdd(res, func() Anomaly {
				if failed == nil {
					failed = lwFailedWrites(ops, want)
				}
				text := fmt.Sprintf("the final read of %s (op %d) returns %s, which no write that may have taken effect wrote",
					lwKeyText(rk.key), fr.Invoke, fr.Value)
				refs := []OpRef{Ref(fr)}
				if fi, ok := failed[rk.key][fr.Value.Scalar()]; ok {
					text += fmt.Sprintf(" (only op %d, which failed, tried to)", ops[fi].Invoke)
					refs = append(refs, Ref(ops[fi]))
				}
				return Anomaly{Kind: KindUnknownFinalValue, Key: rk.key, Ops: refs, Explanation: text}
			})
			continue
		}
		after := int64(-1) // writes that began after this were ordered after w_f
		if from == FromWrite {
			after = ops[wf].Return
			if after == history.Open {
				continue // w_f may have taken effect at any time: nothing is provably lost
			}
		}
		for _, wi := range rk.writes {
			w := ops[wi]
			if wi == wf || w.Type != history.OK || w.Call <= after || w.Return >= fr.Call {
				continue
			}
			t.lost++
			lwAdd(res, func() Anomaly { return lwLostWriteAnomaly(rk.key, w, fr, from, ops, wf) })
		}
	}
	s := res.Stats
	s["keys"] = float64(t.keys)
	s["final_reads"] = float64(t.finalReads)
	s["divergent_keys"] = float64(t.divergent)
	s["unknown_final_values"] = float64(t.unknown)
	s["skipped_keys"] = float64(t.skipped)
	s["unmarked_keys"] = float64(t.unmarked)
	s["unread_keys"] = float64(t.unread)
	res.Summary = fmt.Sprintf("registers: %d lost writes over %d keys", t.lost, t.keys)
	if t.divergent > 0 {
		res.Summary += fmt.Sprintf(", %d divergent", t.divergent)
	}
	if t.unknown > 0 {
		res.Summary += fmt.Sprintf(", %d unknown final values", t.unknown)
	}
	if t.unmarked > 0 {
		res.Summary += fmt.Sprintf(" (%d keys without final reads: last read used)", t.unmarked)
	}
	return t.lost, true
}

// lwLostWriteAnomaly explains one lost register write w, given the final
// read fr and where its value came from.
func lwLostWriteAnomaly(key string, w, fr history.Operation, from Origin, ops []history.Operation, wf int) Anomaly {
	what := lwWriteText(w, key)
	if from == FromInitial {
		return Anomaly{
			Kind: KindLostWrite, Key: key, Ops: []OpRef{Ref(w), Ref(fr)},
			Explanation: fmt.Sprintf("%s was acknowledged at %s (op %d), yet the final read (op %d), which began at %s, returns null, the initial value: the acknowledged write was silently lost",
				what, lwAt(w.Return), w.Invoke, fr.Invoke, lwAt(fr.Call)),
		}
	}
	f := ops[wf]
	fv, _ := writtenValue(f)
	of := "write of"
	if f.F == FCAS {
		of = "cas to"
	}
	return Anomaly{
		Kind: KindLostWrite, Key: key, Ops: []OpRef{Ref(w), Ref(f), Ref(fr)},
		Explanation: fmt.Sprintf("%s was acknowledged at %s (op %d) and began at %s, after the %s %s (op %d) had finished at %s, yet the final read (op %d) returns %s: the acknowledged write was silently lost",
			what, lwAt(w.Return), w.Invoke, lwAt(w.Call), of, fv, f.Invoke, lwAt(f.Return), fr.Invoke, fv),
	}
}

// lwWriteText describes a write or CAS for an explanation.
func lwWriteText(w history.Operation, key string) string {
	if w.F == FCAS {
		if old, nv, ok := w.Value.Pair(); ok {
			return fmt.Sprintf("cas of %s from %s to %s", lwKeyText(key), old, nv)
		}
	}
	return fmt.Sprintf("write of %s to %s", w.Value, lwKeyText(key))
}

// lwFailedWrites indexes, per wanted key, the values written by failed
// writes and CASes.
func lwFailedWrites(ops []history.Operation, want map[string]bool) map[string]map[history.Scalar]int {
	out := make(map[string]map[history.Scalar]int)
	for i, o := range ops {
		if o.Type != history.Fail || !want[o.Key] {
			continue
		}
		v, ok := writtenValue(o)
		if !ok {
			continue
		}
		m := out[o.Key]
		if m == nil {
			m = make(map[history.Scalar]int)
			out[o.Key] = m
		}
		if _, dup := m[v.Scalar()]; !dup {
			m[v.Scalar()] = i
		}
	}
	return out
}

// lwAdd records an anomaly, building it only while the list has room.
func lwAdd(res *Result, mk func() Anomaly) {
	if len(res.Anomalies) >= MaxAnomalies {
		res.Add(Anomaly{}) // counted, not listed
		return
	}
	res.Add(mk())
}

// lwStopped turns a result into an unknown one because ctx ended.
func lwStopped(res Result, err error) Result {
	res.Verdict = Compose(res.Verdict, Unknown)
	res.Reason = fmt.Sprintf("stopped before the end: %v", err)
	res.Summary = "stopped: " + err.Error()
	return res
}

// lwKeyText names a key in an explanation.
func lwKeyText(k string) string {
	if k == "" {
		return "the register"
	}
	return k
}

// lwOfSet names a set key in an explanation ("of s1 "), or nothing for the
// single object.
func lwOfSet(k string) string {
	if k == "" {
		return ""
	}
	return "of " + k + " "
}

// lwAt formats a time since the run started: milliseconds below a second,
// seconds above.
func lwAt(ns int64) string {
	if ns < 1e9 {
		return fmt.Sprintf("%.1f ms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.3f s", float64(ns)/1e9)
}
