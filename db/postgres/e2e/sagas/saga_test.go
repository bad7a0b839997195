package sagas

import (
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/workload"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

func runSagas(t *testing.T, args ...string) (int, results.Report, *workload.SagaSummary, history.History) {
	t.Helper()
	code, rep, cfg, h := dockertest.RunSystem(t, dockertest.Run{DB: "postgres", LogMarks: []string{"database system is ready"}},
		append([]string{"--workload", "saga"}, args...)...)
	if cfg.Summary == nil || cfg.Summary.Sagas == nil {
		t.Fatalf("test.json has no saga summary: %+v", cfg.Summary)
	}
	for _, r := range rep.Results {
		t.Logf("%s %s: %s", r.Checker, r.Verdict, r.Summary)
	}
	return code, rep, cfg.Summary.Sagas, h
}

// Correct compensations pass on Postgres, every step one transaction on
// the primary, with coordinators killed mid-saga and the network
// partitioned: every saga ends applied or compensated in every node's
// final state (the replicas read after they caught up), the killed ones
// finished by another coordinator from the saga log.
func TestSagasRecoverUnderPartitions(t *testing.T) {
	code, rep, s, h := runSagas(t, "--nemesis", "partition", "--nemesis-interval", "3s", "--saga-kill-rate", "0.2",
		"--saga-failure-rate", "0.3", "--time-limit", "10s", "--seed", "3")
	t.Logf("sagas %+v", *s)
	dockertest.Window(t, h, "partition")
	if s.Killed == 0 || s.Recovered == 0 || s.Completed == 0 || s.Compensated == 0 || s.Unfinished != 0 {
		t.Fatalf("postgres/sagas/setup: want coordinators killed and their sagas recovered, sagas completed and compensated, none unfinished: %+v", *s)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameSaga: "valid"})
	if code != dockertest.ExitValid {
		t.Errorf("postgres/sagas/exit 0: exit %d, results %+v", code, rep.Results)
	}
	if n, _ := dockertest.Stat(rep, checkers.NameSaga, "final_reads"); n != 3 {
		t.Errorf("postgres/sagas/every node's final state judged: %v final reads, want 3", n)
	}
}

// A refund that does not dedupe, delivered twice, is caught: the ledger
// refunds a saga twice, and the run exits 1 naming it.
func TestDoubleRefundCaught(t *testing.T) {
	code, rep, _, h := runSagas(t, "--saga-bug", workload.SagaBugDoubleRefund, "--saga-failure-rate", "0.3", "--time-limit", "5s", "--seed", "4")
	declined := 0
	for _, op := range h {
		if op.F == checkers.FConfirm && op.Type == history.Fail && strings.Contains(op.Error, "declined") {
			declined++
		}
	}
	if declined == 0 {
		t.Fatal("postgres/double refund/setup: no confirm was declined after a charge; the seed and failure rate must make one")
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameSaga: "invalid"})
	if code != dockertest.ExitInvalid {
		t.Errorf("postgres/double refund/exit 1: exit %d", code)
	}
	for _, r := range rep.Results {
		if r.Checker != checkers.NameSaga {
			continue
		}
		for _, a := range r.Anomalies {
			if a.Kind == checkers.KindDoubleCompensation && strings.Contains(a.Explanation, "refunded 2 times") {
				t.Logf("%d confirms declined; caught: %.200s", declined, a.Explanation)
				return
			}
		}
		t.Errorf("postgres/double refund/named: no double-compensation among %d anomalies", r.AnomalyCount)
	}
}
