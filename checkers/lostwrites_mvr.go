package checkers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// Multi-value registers (ecstore --mode mvr): concurrent writes are kept
// side by side as siblings instead of one overwriting the other. Their
// operations are the register workload's read and write, with what the
// store's version vectors say of them in the completions:
//
//   - a write's ok completion is {"value": v, "dot": "n1:7", "context":
//     {"n1": 6}}: the value it wrote, its dot (the event, node n1's 7th
//     write of the key, that names it) and the causal context it carried
//     (what the client had read of the key: the siblings it supersedes);
//   - a read's ok completion is {"siblings": [{"value": v, "dot": "n1:7"},
//     ...], "context": {"n1": 7, "n2": 3}}: every sibling the node holds
//     (sorted by dot, so that equal states read the same) and the causal
//     context, the version vector of every write the node has seen, kept
//     or superseded. A key never written reads {"siblings": [],
//     "context": {}}.
//
// A write carries the context of the client's last read of its key: it
// supersedes the siblings that context covers, and stays beside the
// others. The checker takes a sibling as superseded only when a write of
// the history carried a context that covers it, never on the final read's
// word alone (a store that applied a write with its own context instead
// of the client's would drop a concurrent write and still cover it).

// MVSibling is one value of a multi-value register with its dot.
type MVSibling struct {
	Value json.RawMessage `json:"value"`
	Dot   string          `json:"dot"`
}

// MVRead is what a read of a multi-value register returns.
type MVRead struct {
	Siblings []MVSibling      `json:"siblings"`
	Context  map[string]int64 `json:"context"`
}

// MVWrite is what a write to a multi-value register returns: the value,
// its dot, and the causal context the write carried.
type MVWrite struct {
	Value   json.RawMessage  `json:"value"`
	Dot     string           `json:"dot"`
	Context map[string]int64 `json:"context"`
}

// covers reports whether the context ctx has seen the write of dot.
func covers(ctx map[string]int64, dot string) bool {
	node, n, err := ParseDot(dot)
	return err == nil && ctx[node] >= n
}

// ParseDot splits a dot "n1:7" into its node and counter.
func ParseDot(dot string) (node string, n int64, err error) {
	i := strings.LastIndexByte(dot, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("dot %q is not node:counter", dot)
	}
	n, err = strconv.ParseInt(dot[i+1:], 10, 64)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("dot %q: the counter must be a positive integer", dot)
	}
	return dot[:i], n, nil
}

// isMVRead reports whether v is a multi-value register's read: an object
// with siblings and a context, in any key order.
func isMVRead(v history.Value) bool {
	if v.Kind() != history.KindOther {
		return false
	}
	b := []byte(v.String())
	if !bytes.Contains(b, []byte(`"siblings"`)) || !bytes.Contains(b, []byte(`"context"`)) {
		return false
	}
	var probe struct {
		Siblings *[]json.RawMessage `json:"siblings"`
		Context  *map[string]int64  `json:"context"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.Siblings != nil && probe.Context != nil
}

// ParseMVRead decodes a read of a multi-value register.
func ParseMVRead(v history.Value) (MVRead, error) {
	var r MVRead
	if err := json.Unmarshal([]byte(v.String()), &r); err != nil {
		return r, fmt.Errorf("a multi-value read must be {\"siblings\": [...], \"context\": {...}}, not %.80s: %w", v.String(), err)
	}
	for _, s := range r.Siblings {
		if _, _, err := ParseDot(s.Dot); err != nil {
			return r, err
		}
	}
	return r, nil
}

// siblingText lists siblings as "v@dot, ...".
func siblingText(ss []MVSibling) string {
	if len(ss) == 0 {
		return "none"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s.Value) + "@" + s.Dot
	}
	return strings.Join(parts, ", ")
}

// lwCheckMV checks the multi-value registers: an acknowledged write is
// lost when a final read holds neither it among its siblings nor a
// causal successor of it (its dot is not in the read's context); final
// reads that disagree are a divergence; a sibling no write that may have
// taken effect wrote is an unknown final value. It counts siblings. It
// returns the writes lost, and false when ctx ended.
func lwCheckMV(ctx context.Context, ops []history.Operation, keys []*lwKey, res *Result) (int, bool) {
	lost, divergent, unknown, unread := 0, 0, 0, 0
	var readsWithSiblings, reads, maxSiblings, maxFinal int
	for _, k := range keys {
		if ctx.Err() != nil {
			return lost, false
		}
		type write struct {
			op         int
			dot, value string
			context    map[string]int64 // the context it carried
		}
		var acked []write
		var infoCalls []int64        // when the writes that ended info were invoked
		written := map[string]bool{} // values of writes that may have taken effect
		for i := range ops {
			o := &ops[i]
			if o.Key != k.key || o.F != FWrite || o.Type == history.Fail {
				continue
			}
			if o.Type == history.OK {
				var w MVWrite
				if err := json.Unmarshal([]byte(o.Value.String()), &w); err != nil || w.Dot == "" {
					lwUndecided(res, fmt.Sprintf("write at op %d of multi-value register %s: its completion is not {\"value\", \"dot\"}: %.80s", o.Invoke, k.key, o.Value.String()))
					continue
				}
				acked = append(acked, write{i, w.Dot, string(w.Value), w.Context})
				written[string(w.Value)] = true
			} else {
				written[o.Value.String()] = true
				infoCalls = append(infoCalls, o.Call)
			}
		}
		var finals []int
		for _, ri := range k.reads {
			r, err := ParseMVRead(ops[ri].Value)
			if err != nil {
				lwUndecided(res, fmt.Sprintf("read at op %d of %s: %v", ops[ri].Invoke, k.key, err))
				continue
			}
			reads++
			if len(r.Siblings) > 1 {
				readsWithSiblings++
			}
			maxSiblings = max(maxSiblings, len(r.Siblings))
			if ops[ri].Final {
				finals = append(finals, ri)
			}
		}
		if len(finals) == 0 && len(k.reads) > 0 {
			finals = []int{k.reads[len(k.reads)-1]}
			res.Stats["unmarked_keys"]++
		}
		if len(finals) == 0 {
			unread++
			continue
		}
		var first string
		reportedLost := map[int]bool{}
		for fi, ri := range finals {
			r, err := ParseMVRead(ops[ri].Value)
			if err != nil {
				continue
			}
			maxFinal = max(maxFinal, len(r.Siblings))
			dots := make([]string, len(r.Siblings))
			for i, s := range r.Siblings {
				dots[i] = s.Dot
				if !written[string(s.Value)] {
					unknown++
					res.Add(Anomaly{Kind: KindUnknownFinalValue, Key: k.key, Ops: []OpRef{Ref(ops[ri])},
						Explanation: fmt.Sprintf("the final read of %s on %s (op %d) holds the sibling %s@%s, which no write that may have taken effect wrote", k.key, ops[ri].Node, ops[ri].Invoke, s.Value, s.Dot)})
				}
			}
			slices.Sort(dots)
			state := strings.Join(dots, ",")
			if fi == 0 {
				first = state
			} else if state != first {
				divergent++
				res.Add(Anomaly{Kind: KindDivergence, Key: k.key, Ops: []OpRef{Ref(ops[finals[0]]), Ref(ops[ri])},
					Explanation: fmt.Sprintf("the final reads of %s disagree: op %d on %s holds dots [%s], op %d on %s holds [%s]", k.key, ops[finals[0]].Invoke, ops[finals[0]].Node, first, ops[ri].Invoke, ops[ri].Node, state)})
			}
			// A write's sibling is superseded only by a write that carried
			// a context covering it: an acknowledged one that says so, or
			// one that ended info (its context is unknown) invoked after
			// it.
			superseded := func(w write) bool {
				for _, o := range acked {
					if covers(o.context, w.dot) {
						return true
					}
				}
				return slices.ContainsFunc(infoCalls, func(c int64) bool { return c > ops[w.op].Call })
			}
			for _, w := range acked {
				if reportedLost[w.op] || slices.Contains(dots, w.dot) || superseded(w) {
					continue
				}
				reportedLost[w.op] = true
				lost++
				wo := &ops[w.op]
				vv, _ := json.Marshal(r.Context)
				res.Add(Anomaly{Kind: KindLostWrite, Key: k.key, Ops: []OpRef{Ref(*wo), Ref(ops[ri])},
					Explanation: fmt.Sprintf("the write of %s to %s (op %d, dot %s) was acknowledged, but the final read on %s (op %d) holds it not among its siblings (%s), and no write of the history carried a context covering %s (the read's context %s says it was seen): silently lost", w.value, k.key, wo.Invoke, w.dot, ops[ri].Node, ops[ri].Invoke, siblingText(r.Siblings), w.dot, vv)})
			}
		}
	}
	res.Stats["mv_keys"] = float64(len(keys))
	res.Stats["mv_reads"] = float64(reads)
	res.Stats["reads_with_siblings"] = float64(readsWithSiblings)
	res.Stats["siblings_max"] = float64(maxSiblings)
	res.Stats["final_siblings_max"] = float64(maxFinal)
	res.Stats["divergent_keys"] += float64(divergent)
	res.Stats["unknown_final_values"] += float64(unknown)
	res.Stats["unread_keys"] += float64(unread)
	res.Summary = fmt.Sprintf("%d multi-value keys: %d acknowledged writes lost; %d of %d reads returned siblings (at most %d)", len(keys), lost, readsWithSiblings, reads, maxSiblings)
	return lost, true
}

// lwUndecided makes a valid result unknown, saying why (an invalid one
// stays invalid).
func lwUndecided(res *Result, why string) {
	if res.Verdict == Valid {
		res.Verdict = Unknown
	}
	if res.Reason == "" {
		res.Reason = why
	}
}
