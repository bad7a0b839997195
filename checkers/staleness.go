package checkers

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/eccheck/eccheck/history"
)

// NameStaleness is the staleness checker's name.
const NameStaleness = "staleness"

// StalenessDetails is the structured output of [Staleness], found in
// [Result.Details].
type StalenessDetails struct {
	// Curve is the probability that a read is fresh, by time since the
	// latest acknowledged write of its key finished, after Bailis et al.,
	// Probabilistically Bounded Staleness (VLDB 2012). Buckets with no reads
	// are left out.
	Curve []FreshnessPoint `json:"curve"`
}

// FreshnessPoint is one bucket of the freshness curve: the reads that began
// between FromMS and ToMS milliseconds after the latest acknowledged write
// of their key finished, and how many of them were fresh.
type FreshnessPoint struct {
	FromMS float64 `json:"from_ms"`
	// ToMS is the exclusive upper bound; 0 (absent in JSON) means none.
	ToMS   float64 `json:"to_ms,omitempty"`
	Reads  int     `json:"reads"`
	Fresh  int     `json:"fresh"`
	PFresh float64 `json:"p_fresh"`
}

// freshnessEdges are the lower bounds of the freshness buckets, in ms.
var freshnessEdges = []int64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}

// Staleness measures how long reads kept returning values older than an
// acknowledged write after it finished.
//
// A read's value is certainly older than a write w when it is the initial
// nil, or when it had certainly taken effect before w began: its write
// finished before then, or a read that returned it did (written values are
// unique, so a read that returned a value saw its write's effect). A value
// written by an info operation (which never finished) is certainly older
// only when such a read proves it; otherwise it may take effect after w. For each
// acknowledged write w of a key, its lag is the longest time from w's
// completion to the invocation of a read of the key, invoked after w
// finished, that returned a value certainly older than w; 0 when there is
// none. Stats give the p50, p95, p99 and maximum lag in ms over all
// acknowledged writes, the number of stale reads (reads certainly older than
// some acknowledged write that finished before they began) and of writes
// with a lag. [StalenessDetails] holds the freshness curve: each read is
// measured against the acknowledged write of its key that finished last
// before the read began, and is fresh unless its value is certainly older
// than that write; reads that began before any acknowledged write of their
// key finished are not on the curve.
//
// The verdict is valid: staleness is a measurement. With opt.MaxStaleness
// set, a read stale for longer than that is an anomaly and the verdict is
// invalid; each such read is an anomaly of kind "stale-read" citing the
// write it is stale against (the earliest finishing one), the read, and the
// write of the value it returned (absent for nil). Reads of values written
// by several operations or by none are skipped and counted in
// Stats["skipped_reads"].
func Staleness(ctx context.Context, in Input, opt Options) Result {
	res := Result{Checker: NameStaleness, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	keys := registers(ops)
	limit := int64(opt.MaxStaleness)

	var (
		lags                []int64 // one per acknowledged write, in ns
		reads, skipped      int
		staleReads, beyond  int
		curveReads, curveOK = make([]int, len(freshnessEdges)), make([]int, len(freshnessEdges))
		// Buffers reused from key to key.
		ack    []int           // acknowledged writes, by Call
		byRet  []int           // acknowledged writes, by Return
		sufMin []int           // position in ack of the least Return among ack[j:]
		rs     []staleRead     // reads with the time their value had taken effect
		seen   = map[int]int{} // a write's first read to return, by the write's position
	)
	for _, rk := range keys {
		if err := ctx.Err(); err != nil {
			return regStopped(res, err)
		}
		ack = ack[:0]
		for _, wi := range rk.writes {
			if ops[wi].Type == history.OK {
				ack = append(ack, wi)
			}
		}
		rs = rs[:0]
		for _, ri := range rk.reads {
			reads++
			from, vi := rk.origin(ops[ri].Value)
			switch from {
			case FromInitial:
				rs = append(rs, staleRead{read: ri, write: -1, ret: math.MinInt64, seenBy: -1})
			case FromWrite:
				rs = append(rs, staleRead{read: ri, write: vi, ret: ops[vi].Return, seenBy: -1})
				if first, ok := seen[vi]; !ok || ops[ri].Return < ops[first].Return {
					seen[vi] = ri
				}
			default:
				skipped++
			}
		}
		// A value had taken effect by the time a read returned it, even
		// when its write never finished (info) or finished later.
		for i, rv := range rs {
			if rv.write < 0 {
				continue
			}
			if first := seen[rv.write]; ops[first].Return < rv.ret {
				rs[i].ret, rs[i].seenBy = ops[first].Return, first
			}
		}
		clear(seen)
		if len(ack) == 0 {
			continue
		}

		// Per read: the write that makes it stale longest is the earliest
		// finishing acknowledged write that began after the read's value's
		// write finished. ack is in Call order; sufMin[j] is the one with the
		// least Return among ack[j:].
		sufMin = slices.Grow(sufMin[:0], len(ack))[:len(ack)]
		for j := len(ack) - 1; j >= 0; j-- {
			sufMin[j] = j
			if j+1 < len(ack) && ops[ack[sufMin[j+1]]].Return < ops[ack[j]].Return {
				sufMin[j] = sufMin[j+1]
			}
		}
		for _, rv := range rs {
			r := ops[rv.read]
			j := sort.Search(len(ack), func(j int) bool { return ops[ack[j]].Call > rv.ret })
			if j == len(ack) {
				continue
			}
			w := ops[ack[sufMin[j]]]
			if w.Return >= r.Call {
				continue
			}
			staleReads++
			if limit > 0 && r.Call-w.Return > limit {
				beyond++
				res.Add(staleAnomaly(ops, rk.key, w, r, rv, opt.MaxStaleness))
			}
		}

		// Per write: sweep the writes by Call, taking in the reads whose
		// value's write finished before the write began, keeping the latest
		// invocation among them.
		slices.SortFunc(rs, func(a, b staleRead) int { return cmp.Compare(a.ret, b.ret) })
		latest, k := int64(math.MinInt64), 0
		for _, wi := range ack {
			w := ops[wi]
			for ; k < len(rs) && rs[k].ret < w.Call; k++ {
				latest = max(latest, ops[rs[k].read].Call)
			}
			lag := int64(0)
			if latest > w.Return {
				lag = latest - w.Return
			}
			lags = append(lags, lag)
		}

		// Freshness: each read against the acknowledged write that finished
		// last before it began. rk.reads is in Call order.
		byRet = append(byRet[:0], ack...)
		slices.SortFunc(byRet, func(a, b int) int {
			return cmp.Or(cmp.Compare(ops[a].Return, ops[b].Return), cmp.Compare(ops[a].Call, ops[b].Call))
		})
		slices.SortFunc(rs, func(a, b staleRead) int { return cmp.Compare(a.read, b.read) })
		k = 0
		for _, rv := range rs {
			r := ops[rv.read]
			for k < len(byRet) && ops[byRet[k]].Return < r.Call {
				k++
			}
			if k == 0 {
				continue // no acknowledged write had finished
			}
			w := ops[byRet[k-1]]
			b := freshnessBucket(r.Call - w.Return)
			curveReads[b]++
			if rv.ret >= w.Call {
				curveOK[b]++
			}
		}
	}

	slices.Sort(lags)
	staleWrites := len(lags) - sort.Search(len(lags), func(i int) bool { return lags[i] > 0 })
	res.Stats["keys"] = float64(len(keys))
	res.Stats["reads"] = float64(reads)
	res.Stats["skipped_reads"] = float64(skipped)
	res.Stats["writes"] = float64(len(lags))
	res.Stats["stale_writes"] = float64(staleWrites)
	res.Stats["stale_reads"] = float64(staleReads)
	res.Stats["stale_p50_ms"] = staleMS(stalePercentile(lags, 0.50))
	res.Stats["stale_p95_ms"] = staleMS(stalePercentile(lags, 0.95))
	res.Stats["stale_p99_ms"] = staleMS(stalePercentile(lags, 0.99))
	res.Stats["stale_max_ms"] = staleMS(stalePercentile(lags, 1))
	if limit > 0 {
		res.Stats["max_staleness_ms"] = staleMS(limit)
		res.Stats["reads_beyond_max"] = float64(beyond)
	}

	var details StalenessDetails
	for b, n := range curveReads {
		if n == 0 {
			continue
		}
		p := FreshnessPoint{FromMS: float64(freshnessEdges[b]), Reads: n, Fresh: curveOK[b], PFresh: float64(curveOK[b]) / float64(n)}
		if b+1 < len(freshnessEdges) {
			p.ToMS = float64(freshnessEdges[b+1])
		}
		details.Curve = append(details.Curve, p)
	}
	res.Details = details

	switch {
	case len(keys) == 0:
		res.Reason = "no register operations"
		res.Summary = "no register operations"
	case len(lags) == 0:
		res.Summary = "no acknowledged writes"
	default:
		res.Summary = fmt.Sprintf("stale p99 %.1f ms, max %.1f ms, %d stale reads", res.Stats["stale_p99_ms"], res.Stats["stale_max_ms"], staleReads)
	}
	if beyond > 0 {
		res.Summary += fmt.Sprintf(", %d beyond %v", beyond, opt.MaxStaleness)
	}
	return res
}

// staleRead is a read and the write of the value it returned: -1 and
// math.MinInt64 for the initial nil, which is older than every write;
// otherwise ret is when the value had certainly taken effect: the write's
// Return (history.Open for an info write), or the Return of seenBy, the
// first read that returned it, when that came first (-1 when not).
type staleRead struct {
	read, write int
	ret         int64
	seenBy      int
}

// staleAnomaly explains a read that returned a value certainly older than
// write w, longer than limit after w finished.
func staleAnomaly(ops []history.Operation, key string, w, r history.Operation, rv staleRead, limit time.Duration) Anomaly {
	refs := []OpRef{Ref(w), Ref(r)}
	why := "the initial value"
	switch {
	case rv.write >= 0 && rv.seenBy >= 0:
		wv, seen := ops[rv.write], ops[rv.seenBy]
		refs = append(refs, Ref(wv), Ref(seen))
		why = fmt.Sprintf("a value whose write (op %d, %s) had taken effect by %s, when op %d returned it, before that write began at %s", wv.Invoke, wv.Type, regMS(seen.Return), seen.Invoke, regMS(w.Call))
	case rv.write >= 0:
		wv := ops[rv.write]
		refs = append(refs, Ref(wv))
		why = fmt.Sprintf("a value whose write (op %d) had finished at %s, before that write began at %s", wv.Invoke, regMS(wv.Return), regMS(w.Call))
	}
	return Anomaly{
		Kind: "stale-read", Key: key, Ops: refs,
		Explanation: fmt.Sprintf("the write of %s to %s (op %d) was acknowledged at %s, yet a read invoked %s later (op %d, at %s) returned %s, %s: stale for longer than the %v allowed",
			regWrittenText(w), regKeyText(key), w.Invoke, regMS(w.Return), regMS(r.Call-w.Return), r.Invoke, regMS(r.Call), r.Value, why, limit),
	}
}

// freshnessBucket returns the bucket of a time since a write, in ns.
func freshnessBucket(ns int64) int {
	b, _ := slices.BinarySearch(freshnessEdges, ns/int64(time.Millisecond)+1)
	return b - 1
}

// stalePercentile returns the nearest-rank p-quantile of sorted xs, 0 when empty.
func stalePercentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// staleMS converts ns to ms.
func staleMS(ns int64) float64 { return float64(ns) / 1e6 }
