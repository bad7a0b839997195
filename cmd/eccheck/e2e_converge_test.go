package main

import (
	"testing"

	"github.com/eccheck/eccheck/checkers"
)

// --converge measures how long after the heal every node agrees on a
// sample of keys: lww under partitions converges (anti-entropy) well
// within 5 s; a re-check of the run gives the same convergence verdict
// (test.json carries what the phase found, the history does not).
func TestE2EConvergencePhase(t *testing.T) {
	_, rep, dir := runE2E(t, "--mode", "lww", "--workload", "register,set", "--nemesis", "partition", "--time-limit", "3s", "--converge", "5s", "--seed", "6")
	if v := verdictOf(t, rep, checkers.NameConvergence); v != "valid" {
		t.Fatalf("convergence %s, want valid: %+v", v, rep.Results)
	}
	var keys, max float64
	for _, r := range rep.Results {
		if r.Checker == checkers.NameConvergence {
			keys, max = r.Stats["keys"], r.Stats["converge_max_ms"]
		}
	}
	if keys < 2 || max <= 0 || max > 5000 {
		t.Fatalf("convergence over %v keys, max %v ms: want several keys, each within the bound", keys, max)
	}
	code, out, stderr := runCLI(t, "check", dir)
	if code == exitUsage || contains(out, "convergence") != nil || contains(stderr, "convergence: valid") != nil {
		t.Fatalf("re-check: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("%v keys converged, the slowest %.1f ms after the heal", keys, max)
}
