package checkers

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// NameConvergence is the name of the convergence result.
const NameConvergence = "convergence"

// KindNeverConverged is the anomaly of a key whose nodes still disagreed
// when the convergence phase's bound passed.
const KindNeverConverged = "never-converged"

// Convergence is what the harness's convergence phase measured (eccheck
// test --converge): after every fault was healed it read a sample of keys
// from every node, again and again, until the nodes agreed on each key or
// the bound passed.
type Convergence struct {
	// BoundMS is how long the phase polled at most, from the heal.
	BoundMS float64 `json:"bound_ms"`
	// Keys are the keys polled, in order.
	Keys []KeyConvergence `json:"keys"`
	// Excluded are the nodes left out of the phase, with why: a node a
	// failover fenced off is no longer a replica to agree with.
	Excluded map[string]string `json:"excluded,omitempty"`
}

// KeyConvergence is one key's convergence.
type KeyConvergence struct {
	Key string `json:"key"`
	// Converged is set when a round of reads found every node answering
	// with the same value; MS is then how long after the heal that
	// round ended.
	Converged bool    `json:"converged"`
	MS        float64 `json:"ms,omitempty"`
	// Polls counts the rounds of reads.
	Polls int `json:"polls"`
	// Values are each node's last answer (its value as JSON, or the
	// error), for a key that never converged.
	Values map[string]string `json:"values,omitempty"`
}

// ConvergenceResult judges a convergence phase: valid when every key
// polled converged within the bound, invalid naming each key that did not
// with what each node last returned; the times to converge (p50, p99,
// max in ms) are its figures.
func ConvergenceResult(c Convergence) Result {
	r := Result{Checker: NameConvergence, Verdict: Valid, Stats: map[string]float64{}}
	if len(c.Keys) == 0 {
		r.Verdict, r.Reason = Unknown, "the convergence phase polled no key (no register, set or counter key, or fewer than two nodes)"
		return r
	}
	var times []float64
	never := 0
	for _, k := range c.Keys {
		if k.Converged {
			times = append(times, k.MS)
			continue
		}
		never++
		var parts []string
		for _, n := range slices.Sorted(maps.Keys(k.Values)) {
			parts = append(parts, n+": "+k.Values[n])
		}
		r.Add(Anomaly{Kind: KindNeverConverged, Key: k.Key,
			Explanation: fmt.Sprintf("key %s: the nodes still disagreed %.0f ms after the heal, after %d rounds of reads: %s", k.Key, c.BoundMS, k.Polls, strings.Join(parts, "; "))})
	}
	sort.Float64s(times)
	q := func(p float64) float64 {
		if len(times) == 0 {
			return 0
		}
		return times[min(len(times)-1, int(p*float64(len(times))))]
	}
	r.Stats["keys"], r.Stats["converged"], r.Stats["never_converged"] = float64(len(c.Keys)), float64(len(times)), float64(never)
	r.Stats["bound_ms"] = c.BoundMS
	if len(times) > 0 {
		r.Stats["converge_p50_ms"], r.Stats["converge_p99_ms"], r.Stats["converge_max_ms"] = q(0.5), q(0.99), times[len(times)-1]
	}
	r.Summary = fmt.Sprintf("%d of %d keys agreed on every node: p50 %.1f ms, p99 %.1f ms, max %.1f ms after the heal", len(times), len(c.Keys), q(0.5), q(0.99), q(1))
	if len(c.Excluded) > 0 {
		var parts []string
		for _, n := range slices.Sorted(maps.Keys(c.Excluded)) {
			parts = append(parts, n+" ("+c.Excluded[n]+")")
		}
		r.Stats["excluded_nodes"] = float64(len(c.Excluded))
		r.Summary += "; left out: " + strings.Join(parts, ", ")
	}
	if never > 0 {
		r.Summary += fmt.Sprintf("; %d still disagreed at %.0f ms", never, c.BoundMS)
	}
	return r
}
