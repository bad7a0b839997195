package dockertest

import "github.com/eccheck/eccheck/history"

// RetriedAfterApply lists, in the order of their first attempts, the
// requests of h's adds that were attempted again after an attempt that
// may have been applied: two or more attempts that did not fail (ok or
// info). Without idempotency keys each of them may have been applied
// twice; a run that means to show duplicates must have some.
func RetriedAfterApply(h history.History) []string {
	possible := map[string]int{}
	var order []string
	for _, o := range history.Pair(h) {
		if o.F != "add" || o.Request == "" || o.Type == history.Fail {
			continue
		}
		if possible[o.Request] == 0 {
			order = append(order, o.Request)
		}
		possible[o.Request]++
	}
	var out []string
	for _, r := range order {
		if possible[r] > 1 {
			out = append(out, r)
		}
	}
	return out
}
