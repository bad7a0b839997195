package checkers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/eccheck/eccheck/history"
)

// NameCounter is the name of the [Counter] checker.
const NameCounter = "counter"

// KindCounterOutOfBounds is the anomaly of a counter read that no order of
// the adds around it can explain.
const KindCounterOutOfBounds = "counter-out-of-bounds"

// Counter checks counters: per key, "add" operations whose value is an
// integer delta (negative deltas allowed) and "read" operations whose value
// is the total. Every counter starts at 0; a null read counts as 0. Keys
// with list-valued reads (sets) or with writes (registers) are ignored.
//
// For each successful read r, the definite sum is that of the acknowledged
// adds that returned before r was invoked; the possible adds are the other
// adds, acknowledged or indeterminate (failed adds never count), invoked
// before r returned. r must return a value in [lower, upper], where lower is
// the definite sum plus every negative possible delta and upper the definite
// sum plus every positive one; anything else is a [KindCounterOutOfBounds]
// anomaly. The check sorts each key's adds once and answers every read with
// binary searches over prefix sums: O(n log n) per key.
//
// A key with an add whose delta is not an integer cannot be bounded: it is
// skipped (Stats "skipped_keys") and, unless another key is invalid, the
// verdict is unknown. Reads whose value is neither an integer nor null are
// skipped too (Stats "skipped_reads"). Other stats: keys, reads, adds,
// adds_ok, adds_info, adds_fail, out_of_bounds, and max_error, the largest
// distance of a read outside its bounds.
func Counter(ctx context.Context, in Input, opt Options) Result {
	res := Result{Checker: NameCounter, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	if ops == nil && len(in.History) > 0 {
		ops = history.Pair(in.History)
	}
	_, _, keys := lwClassify(ops)
	var (
		nKeys, nReads, addsOK, addsInfo, addsFail int
		skippedKeys, skippedReads                 int
		maxErr                                    int64
		badKey                                    string
		byCall, byRet                             []counterAdd
		posCall, negCall, posRet, negRet          []int64
	)
	for _, k := range keys {
		if ctx.Err() != nil {
			return lwStopped(res, ctx.Err())
		}
		nKeys++
		byCall, byRet = byCall[:0], byRet[:0]
		malformed := false
		for _, ai := range k.adds {
			a := ops[ai]
			switch a.Type {
			case history.OK:
				addsOK++
			case history.Info:
				addsInfo++
			default:
				addsFail++
				continue
			}
			d, ok := a.Value.AsInt()
			if !ok {
				malformed = true
				continue
			}
			ca := counterAdd{call: a.Call, ret: a.Return, delta: d}
			byCall = append(byCall, ca)
			if a.Type == history.OK {
				byRet = append(byRet, ca)
			}
		}
		if malformed {
			skippedKeys++
			if badKey == "" {
				badKey = lwKeyText(k.key)
			}
			nReads += len(k.reads)
			continue
		}
		// byCall is in invocation order already; byRet needs sorting.
		slices.SortFunc(byRet, func(a, b counterAdd) int { return cmp.Compare(a.ret, b.ret) })
		posCall, negCall = counterPrefix(posCall, negCall, byCall)
		posRet, negRet = counterPrefix(posRet, negRet, byRet)
		for n, ri := range k.reads {
			if n%1024 == 0 && ctx.Err() != nil {
				return lwStopped(res, ctx.Err())
			}
			r := ops[ri]
			nReads++
			var got int64
			if !r.Value.IsNil() {
				var ok bool
				if got, ok = r.Value.AsInt(); !ok {
					skippedReads++
					continue
				}
			}
			// Adds invoked before r returned may have taken effect.
			i := sort.Search(len(byCall), func(i int) bool { return byCall[i].call >= r.Return })
			// Acknowledged adds that returned before r began have.
			j := sort.Search(len(byRet), func(j int) bool { return byRet[j].ret >= r.Call })
			// The definite adds are among the possible ones, so
			// lower = definite + (possible negatives - definite negatives)
			//       = definite positives + possible negatives, and likewise upper.
			lower := posRet[j] + negCall[i]
			upper := negRet[j] + posCall[i]
			if got >= lower && got <= upper {
				continue
			}
			e := max(lower-got, got-upper)
			maxErr = max(maxErr, e)
			definite := posRet[j] + negRet[j]
			lwAdd(&res, func() Anomaly {
				return Anomaly{
					Kind: KindCounterOutOfBounds, Key: k.key, Ops: []OpRef{Ref(r)},
					Explanation: fmt.Sprintf("the read of %s that began at %s (op %d) returned %d, outside the possible range [%d, %d]: the adds acknowledged before it began sum to %d, and the adds that may have taken effect before it returned at %s could change that by %+d to %+d",
						counterKeyText(k.key), lwAt(r.Call), r.Invoke, got, lower, upper, definite, lwAt(r.Return), lower-definite, upper-definite),
				}
			})
		}
	}
	s := res.Stats
	s["keys"] = float64(nKeys)
	s["reads"] = float64(nReads)
	s["adds"] = float64(addsOK + addsInfo + addsFail)
	s["adds_ok"] = float64(addsOK)
	s["adds_info"] = float64(addsInfo)
	s["adds_fail"] = float64(addsFail)
	s["out_of_bounds"] = float64(res.AnomalyCount)
	s["max_error"] = float64(maxErr)
	s["skipped_keys"] = float64(skippedKeys)
	s["skipped_reads"] = float64(skippedReads)
	switch {
	case nKeys == 0:
		res.Reason = "no counter operations"
		res.Summary = "no counter operations"
		return res
	case skippedKeys > 0 && res.Verdict == Valid:
		res.Verdict = Unknown
		res.Reason = fmt.Sprintf("%d counter keys have adds whose delta is not an integer (first: %s), so their reads cannot be bounded", skippedKeys, badKey)
	}
	res.Summary = fmt.Sprintf("%d of %d reads out of bounds", res.AnomalyCount, nReads)
	if maxErr > 0 {
		res.Summary += fmt.Sprintf(" (worst by %d)", maxErr)
	}
	return res
}

// counterAdd is one add that may have taken effect.
type counterAdd struct {
	call, ret, delta int64
}

// counterPrefix fills pos and neg with the prefix sums of the positive and
// negative deltas of adds: pos[i] sums the positive deltas of adds[:i].
func counterPrefix(pos, neg []int64, adds []counterAdd) ([]int64, []int64) {
	pos = append(pos[:0], 0)
	neg = append(neg[:0], 0)
	var p, n int64
	for _, a := range adds {
		if a.delta > 0 {
			p += a.delta
		} else {
			n += a.delta
		}
		pos = append(pos, p)
		neg = append(neg, n)
	}
	return pos, neg
}

// counterKeyText names a counter key in an explanation.
func counterKeyText(k string) string {
	if k == "" {
		return "the counter"
	}
	return k
}
