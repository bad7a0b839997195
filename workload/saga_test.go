package workload_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/sagatest"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// runSagas runs the saga workload against the protocol in memory, where
// every 9th operation applies and then loses its answer; it returns the
// summary and the saga checker's result.
func runSagas(t *testing.T, bug string, killRate float64) (workload.Summary, checkers.Result, history.History) {
	t.Helper()
	m := sagatest.NewMemory()
	var n atomic.Int64
	m.Lost = func(op history.Op) bool {
		return op.F != checkers.FSagaInit && op.F != checkers.FSagaRead && n.Add(1)%9 == 0
	}
	g, err := workload.NewGenerator(workload.Saga, 4)
	if err != nil {
		t.Fatal(err)
	}
	g.Saga.Bug, g.Saga.KillRate, g.Saga.FailureRate, g.Saga.Lease = bug, killRate, 0.3, 100*time.Millisecond
	rec, err := history.Create(filepath.Join(t.TempDir(), "h.jsonl"), history.KeepInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	sum, err := workload.Run(context.Background(), workload.Options{
		Parts: []workload.Part{{Gen: g, Workers: 4}}, Nodes: []string{"n1", "n2"},
		NewClient: func(w, node string) (workload.Client, error) { return m, nil },
		Seed:      7, TimeLimit: 3 * time.Second, MaxOps: 3000, OpTimeout: time.Second, Recorder: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := rec.History()
	if err := history.Validate(h); err != nil {
		t.Fatalf("recorded history is invalid: %v", err)
	}
	return sum, checkers.Saga(context.Background(), checkers.NewInput(h), checkers.Options{}), h
}

// Correct compensations, with coordinators killed and answers lost, leave
// every saga applied or compensated; the recovery worker and the final
// pass finished the killed ones.
func TestSagaWorkloadValid(t *testing.T) {
	sum, r, _ := runSagas(t, "", 0.2)
	s := sum.Sagas
	if s == nil {
		t.Fatal("no saga summary")
	}
	t.Logf("sagas %+v; checker %s", *s, r.Summary)
	if r.Verdict != checkers.Valid {
		t.Fatalf("verdict %s: %+v", r.Verdict, r.Anomalies)
	}
	if s.Killed == 0 || s.Recovered == 0 || s.Declined == 0 || s.Completed == 0 || s.Compensated == 0 || s.Unfinished != 0 {
		t.Errorf("want kills, recoveries, declines, completions, compensations and nothing unfinished: %+v", *s)
	}
	if r.Stats["final_reads"] != 2 || r.Stats["completed"] == 0 || r.Stats["compensated"] == 0 {
		t.Errorf("checker stats %v", r.Stats)
	}
}

// Each planted bug is caught, for its reason.
func TestSagaWorkloadBugs(t *testing.T) {
	for _, tc := range []struct{ bug, kind, says string }{
		{workload.SagaBugSkipRefund, checkers.KindHalfFinishedSaga, "charged and never refunded"},
		{workload.SagaBugDoubleRefund, checkers.KindDoubleCompensation, "refunded 2 times"},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			_, r, h := runSagas(t, tc.bug, 0)
			// The precondition: a saga declined after its charge.
			declinedAfterCharge := false
			for _, op := range h {
				declinedAfterCharge = declinedAfterCharge || op.F == checkers.FConfirm && op.Type == history.Fail && op.Error == "declined"
			}
			if !declinedAfterCharge {
				t.Fatal("no confirm was declined: the seed must make one")
			}
			if r.Verdict != checkers.Invalid {
				t.Fatalf("verdict %s, want invalid", r.Verdict)
			}
			found := false
			for _, a := range r.Anomalies {
				found = found || a.Kind == tc.kind && strings.Contains(a.Explanation, tc.says)
			}
			if !found {
				t.Fatalf("no %s saying %q among %d anomalies, first %+v", tc.kind, tc.says, r.AnomalyCount, r.Anomalies[0])
			}
		})
	}
}
