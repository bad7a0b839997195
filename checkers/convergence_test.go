package checkers

import (
	"strings"
	"testing"
)

// Every key that converged within the bound is valid with its times as
// figures; a key whose nodes still disagreed is invalid, naming the values.
func TestConvergenceResult(t *testing.T) {
	ok := ConvergenceResult(Convergence{BoundMS: 5000, Keys: []KeyConvergence{
		{Key: "a", Converged: true, MS: 10, Polls: 1}, {Key: "b", Converged: true, MS: 30, Polls: 2}, {Key: "c", Converged: true, MS: 250, Polls: 5}}})
	if ok.Verdict != Valid || ok.Stats["converge_max_ms"] != 250 || ok.Stats["converge_p50_ms"] != 30 || ok.Stats["never_converged"] != 0 {
		t.Fatalf("all converged: %s %v", ok.Verdict, ok.Stats)
	}
	bad := ConvergenceResult(Convergence{BoundMS: 5000, Keys: []KeyConvergence{
		{Key: "a", Converged: true, MS: 10, Polls: 1},
		{Key: "b", Polls: 100, Values: map[string]string{"n1": "3", "n2": "4", "n3": "error: timeout"}}}})
	if bad.Verdict != Invalid || len(bad.Anomalies) != 1 || bad.Anomalies[0].Kind != KindNeverConverged {
		t.Fatalf("one never converged: %s %+v", bad.Verdict, bad.Anomalies)
	}
	if e := bad.Anomalies[0].Explanation; !strings.Contains(e, "n1: 3; n2: 4; n3: error: timeout") || !strings.Contains(e, "5000 ms") {
		t.Errorf("explanation %q", e)
	}
	if none := ConvergenceResult(Convergence{BoundMS: 5000}); none.Verdict != Unknown {
		t.Errorf("no key polled: %s, want unknown", none.Verdict)
	}
}
