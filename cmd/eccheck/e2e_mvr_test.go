package main

import "testing"

// statsOf returns a checker's stats from a run's report.
func statsOf(t *testing.T, rep e2eReport, checker string) map[string]float64 {
	t.Helper()
	for _, r := range rep.Results {
		if r.Checker == checker {
			return r.Stats
		}
	}
	t.Fatalf("no result for %s in %+v", checker, rep.Results)
	return nil
}

// TestE2EMVRKeepsWhatLWWLosesToClockSkew runs the register workload under
// clock skew twice with one seed: lww lets a write stamped by a slow clock
// silently lose to an older one, mvr keeps concurrent writes as siblings
// and decides nothing by the clock, so it loses none.
func TestE2EMVRKeepsWhatLWWLosesToClockSkew(t *testing.T) {
	flags := []string{"--workload", "register", "--nemesis", "clock", "--clock-max", "5s", "--nemesis-cycles", "3", "--seed", "12"}
	_, lww, _ := runE2E(t, append([]string{"--mode", "lww"}, flags...)...)
	expectVerdicts(t, lww, map[string]string{"lost-writes": "invalid"})
	lwwLost := statsOf(t, lww, "lost-writes")["lost"]
	if lwwLost == 0 {
		t.Errorf("lww: lost-writes invalid with no lost write counted")
	}

	code, mvr, dir := runE2E(t, append([]string{"--mode", "mvr"}, flags...)...)
	if code != exitValid {
		t.Fatalf("mvr: exit %d, want %d; results %+v (run dir %s)", code, exitValid, mvr.Results, dir)
	}
	expectVerdicts(t, mvr, map[string]string{"lost-writes": "valid"})
	st := statsOf(t, mvr, "lost-writes")
	if st["lost"] != 0 {
		t.Errorf("mvr: %v writes lost, want 0", st["lost"])
	}
	if st["reads_with_siblings"] == 0 {
		t.Errorf("mvr: no read returned siblings (stats %v): the run made no concurrent writes", st)
	}
	t.Logf("seed 12: lww lost %v acknowledged writes; mvr lost %v, %v of %v reads returned siblings (at most %v)",
		lwwLost, st["lost"], st["reads_with_siblings"], st["mv_reads"], st["siblings_max"])
}
