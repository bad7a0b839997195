package checkers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// NameDuplicates is the name of the [Duplicates] checker.
const NameDuplicates = "duplicates"

// KindDuplicateApplication is the anomaly of a logical request applied
// more than once, as the data shows it.
const KindDuplicateApplication = "duplicate-application"

// request is a logical request: its attempts (operations with the same
// Request; an operation without one is a request of its own).
type request struct {
	name     string
	attempts []int // indexes into the checker's ops, in invocation order
}

// groupRequests groups ops (all of one function) into requests, in the
// order of their first invocation.
func groupRequests(ops []history.Operation, idx []int) []request {
	var out []request
	byName := map[string]int{}
	for _, i := range idx {
		o := &ops[i]
		if o.Request == "" {
			out = append(out, request{attempts: []int{i}}) // named when needed, see label
			continue
		}
		j, ok := byName[o.Request]
		if !ok {
			j = len(out)
			byName[o.Request] = j
			out = append(out, request{name: o.Request})
		}
		out[j].attempts = append(out[j].attempts, i)
	}
	return out
}

// label names a request: by its Request, or "op N" for an operation
// that is a request of its own.
func (r request) label(ops []history.Operation) string {
	if r.name != "" {
		return r.name
	}
	return fmt.Sprintf("op %d", ops[r.attempts[0]].Invoke)
}

// possible counts the attempts of r that may have been applied (ok or
// info), and reports whether one certainly was.
func (r request) possible(ops []history.Operation) (n int, certain bool) {
	for _, i := range r.attempts {
		switch ops[i].Type {
		case history.OK:
			n++
			certain = true
		case history.Info:
			n++
		}
	}
	return n, certain
}

// attemptsText lists a request's attempts: "attempt 1 info (op 12), attempt
// 2 ok (op 20)".
func attemptsText(ops []history.Operation, r request) string {
	parts := make([]string, len(r.attempts))
	for i, a := range r.attempts {
		o := &ops[a]
		n := o.Attempt
		if n == 0 {
			n = i + 1
		}
		parts[i] = fmt.Sprintf("attempt %d %s (op %d)", n, o.Type, o.Invoke)
	}
	return strings.Join(parts, ", ")
}

// Duplicates checks that every logical request was applied at most once,
// as the data itself shows it: a request is the attempts of one Request
// (eccheck test --retry records each attempt as an operation naming its
// request; an operation without one is a request of its own).
//
//   - Counters: a read may not exceed what the requests invoked before it
//     returned add up to, each request counted once (if any attempt may
//     have been applied). The counter checker counts every attempt, so a
//     request retried after a timeout and applied twice passes it; this
//     checker names the retried requests that explain the excess.
//   - list-append: an element appended by a request appears at most once
//     in any read.
//
// Each anomaly names the request, its attempts and the read that shows
// the double application.
func Duplicates(ctx context.Context, in Input, opt Options) Result {
	r := Result{Checker: NameDuplicates, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	if ops == nil && len(in.History) > 0 {
		ops = history.Pair(in.History)
	}
	var adds, reads, txns []int
	for i := range ops {
		switch o := &ops[i]; {
		case o.F == FTxn:
			txns = append(txns, i)
		case o.F == FAdd:
			adds = append(adds, i)
		case o.F == FRead && o.Type == history.OK && o.Value.Kind() == history.KindInt:
			reads = append(reads, i)
		}
	}
	var checked int
	var err error
	switch {
	case len(txns) > 0:
		checked, err = duplicateElements(ctx, ops, txns, &r)
	case len(adds) > 0:
		checked, err = duplicateAdds(ctx, ops, adds, reads, &r)
	}
	if err != nil {
		r.Verdict, r.Reason = Unknown, err.Error()
		return r
	}
	if checked == 0 {
		r.Verdict, r.Reason = Unknown, "no counter adds and reads, or list-append appends and reads: nothing whose double application the data would show"
		return r
	}
	if r.Verdict == Valid {
		r.Summary = fmt.Sprintf("%d requests (%d retried): none applied twice", int(r.Stats["requests"]), int(r.Stats["retried"]))
	} else {
		r.Summary = fmt.Sprintf("%d requests (%d retried): %d reads show one applied more than once", int(r.Stats["requests"]), int(r.Stats["retried"]), r.AnomalyCount)
	}
	return r
}

// duplicateAdds checks counter reads against the requests invoked before
// them, each counted once.
func duplicateAdds(ctx context.Context, ops []history.Operation, adds, reads []int, r *Result) (int, error) {
	byKey := map[string][]int{}
	var keys []string
	for _, i := range adds {
		k := ops[i].Key
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	readsOf := map[string][]int{}
	for _, i := range reads {
		readsOf[ops[i].Key] = append(readsOf[ops[i].Key], i)
	}
	var requests, retried int
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		type req struct {
			request
			delta int64
			call  int64 // the first attempt's invocation
			twice bool  // two attempts or more may have been applied
		}
		var rs []req
		for _, g := range groupRequests(ops, byKey[k]) {
			first := &ops[g.attempts[0]]
			d, ok := first.Value.AsInt()
			if !ok {
				return 0, fmt.Errorf("key %s: add %s (op %d) is not an integer delta", k, first.Value, first.Invoke)
			}
			for _, a := range g.attempts[1:] {
				if v, _ := ops[a].Value.AsInt(); v != d || ops[a].Value.Kind() != history.KindInt {
					return 0, fmt.Errorf("key %s: request %s adds %d in one attempt and %s in another (op %d): the attempts of a request repeat it", k, g.label(ops), d, ops[a].Value, ops[a].Invoke)
				}
			}
			n, _ := g.possible(ops)
			if n == 0 {
				continue
			}
			rs = append(rs, req{request: g, delta: d, call: first.Call, twice: n > 1})
			if len(g.attempts) > 1 {
				retried++
			}
		}
		requests += len(rs)
		slices.SortFunc(rs, func(a, b req) int { return cmp.Compare(a.call, b.call) })
		rd := readsOf[k]
		slices.SortFunc(rd, func(a, b int) int { return cmp.Compare(ops[a].Return, ops[b].Return) })
		// Sweep the reads by return time: the positive deltas of the
		// requests invoked before each read bound it from above.
		var upper int64
		j := 0
		reported := false
		for _, ri := range rd {
			o := &ops[ri]
			for j < len(rs) && rs[j].call < o.Return {
				if rs[j].delta > 0 {
					upper += rs[j].delta
				}
				j++
			}
			v, _ := o.Value.AsInt()
			if v <= upper || reported {
				continue
			}
			reported = true // one anomaly per key: the first read past the bound
			excess := v - upper
			var cands []string
			refs := []OpRef{Ref(*o)}
			for _, q := range rs[:j] {
				if q.twice && q.delta > 0 {
					cands = append(cands, fmt.Sprintf("%s (+%d: %s)", q.label(ops), q.delta, attemptsText(ops, q.request)))
					for _, a := range q.attempts {
						refs = append(refs, Ref(ops[a]))
					}
				}
			}
			var why string
			switch {
			case len(cands) == 0:
				why = "no request before it was retried, so the system applied some add twice on its own (or counted wrong)"
			case len(cands) == 1:
				why = "the one request that was retried with two attempts that may have been applied is " + cands[0] + ": it was applied more than once"
			default:
				if len(cands) > 10 {
					cands = append(cands[:10], fmt.Sprintf("and %d more", len(cands)-10))
				}
				why = "requests retried with two attempts or more that may have been applied: " + strings.Join(cands, "; ") + "; some of them were applied more than once"
			}
			if len(refs) > 21 {
				refs = refs[:21]
			}
			r.Add(Anomaly{Kind: KindDuplicateApplication, Key: k, Ops: refs,
				Explanation: fmt.Sprintf("read of key %s returned %d (op %d), but the %d add %s invoked before it returned, each applied once, add up to at most %d: %d too many; %s", k, v, o.Invoke, j, plural(j, "request"), upper, excess, why)})
		}
	}
	r.Stats["requests"], r.Stats["retried"], r.Stats["reads"] = float64(requests), float64(retried), float64(len(reads))
	if len(reads) == 0 {
		return 0, nil // no read to see a double application in
	}
	return len(adds), nil
}

// duplicateElements checks list-append reads for an element twice, naming
// the request that appended it. A read is scanned in place (no element is
// rendered or hashed unless it repeats); who appended a repeated element
// is looked up only then.
func duplicateElements(ctx context.Context, ops []history.Operation, txns []int, r *Result) (int, error) {
	groups := groupRequests(ops, txns)
	var retried int
	for _, g := range groups {
		if len(g.attempts) > 1 {
			retried++
		}
	}
	// appender finds the request that appended x to key (built once, at
	// the first repeated element).
	var byElem map[[2]string]int
	appender := func(key string, x history.Value) (request, bool) {
		if byElem == nil {
			byElem = map[[2]string]int{}
			for gi, g := range groups {
				for _, a := range g.attempts {
					items, _ := ops[a].Value.AsList()
					for _, it := range items {
						if parts, _ := it.AsList(); len(parts) == 3 {
							if f, _ := parts[0].AsString(); f == MopAppend {
								byElem[[2]string{parts[1].String(), parts[2].String()}] = gi
							}
						}
					}
				}
			}
		}
		gi, ok := byElem[[2]string{key, x.String()}]
		if !ok {
			return request{}, false
		}
		return groups[gi], true
	}
	reported := map[[2]string]bool{}
	reads := 0
	for n, i := range txns {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		o := &ops[i]
		if o.Type != history.OK {
			continue
		}
		items, _ := o.Value.AsList()
		for _, it := range items {
			parts, _ := it.AsList()
			if len(parts) != 3 {
				continue
			}
			if f, _ := parts[0].AsString(); f != MopRead {
				continue
			}
			reads++
			list, _ := parts[2].AsList()
			var seen map[history.Scalar]bool // for long lists
			if len(list) > 64 {
				seen = make(map[history.Scalar]bool, len(list))
			}
			for j := range list {
				x := &list[j]
				if seen != nil {
					sc := x.Scalar()
					if !seen[sc] {
						seen[sc] = true
						continue
					}
				} else if !slices.ContainsFunc(list[:j], func(y history.Value) bool { return sameScalar(&y, x) }) {
					continue
				}
				key := parts[1].String()
				e := [2]string{key, x.String()}
				if reported[e] {
					continue
				}
				reported[e] = true
				refs := []OpRef{Ref(*o)}
				why := "which no transaction appended"
				if g, ok := appender(key, *x); ok {
					for _, a := range g.attempts {
						refs = append(refs, Ref(ops[a]))
					}
					if len(g.attempts) > 1 {
						why = fmt.Sprintf("which request %s appended (%s): it was applied more than once", g.label(ops), attemptsText(ops, g))
					} else {
						why = fmt.Sprintf("which %s appended in one attempt: the system applied it twice on its own", g.label(ops))
					}
				}
				r.Add(Anomaly{Kind: KindDuplicateApplication, Key: key, Ops: refs,
					Explanation: fmt.Sprintf("op %d read key %s as %s, with %s twice, %s", o.Invoke, key, listText(parts[2]), x, why)})
			}
		}
	}
	r.Stats["requests"], r.Stats["retried"] = float64(len(groups)), float64(retried)
	if reads == 0 {
		return 0, nil // no list read to see a double application in
	}
	return len(txns), nil
}
