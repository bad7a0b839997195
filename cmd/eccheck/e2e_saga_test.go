package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// sagaRun reads what a saga run's coordinators did (test.json) and the
// saga checker's anomalies (results.json).
func sagaRun(t *testing.T, dir string) (workload.SagaSummary, []checkers.Anomaly, history.History) {
	t.Helper()
	var cfg struct {
		Summary struct {
			Sagas *workload.SagaSummary `json:"sagas"`
		} `json:"summary"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "test.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Summary.Sagas == nil {
		t.Fatalf("test.json has no saga summary (%v): %s", err, b)
	}
	var res struct {
		Results []checkers.Result `json:"results"`
	}
	if b, err = os.ReadFile(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	var anomalies []checkers.Anomaly
	for _, r := range res.Results {
		if r.Checker == checkers.NameSaga {
			anomalies = r.Anomalies
		}
	}
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return *cfg.Summary.Sagas, anomalies, h
}

// sagaArgs runs ecstore's raft mode under partitions and node kills, with
// coordinators killed mid-saga: every fault the issue names at once.
var sagaArgs = []string{"--mode", "raft", "--workload", "saga", "--nemesis", "partition,kill", "--nemesis-interval", "2s",
	"--saga-kill-rate", "0.2", "--saga-failure-rate", "0.3", "--time-limit", "8s", "--seed", "3"}

// Correct compensations pass under coordinator kills, partitions and
// node kills: every saga ends applied or compensated, the killed ones
// finished by the recovery worker or the final pass.
func TestE2ESagasRecoverUnderFaults(t *testing.T) {
	code, rep, dir := runE2E(t, sagaArgs...)
	s, anomalies, _ := sagaRun(t, dir)
	t.Logf("sagas %+v", s)
	if code != exitValid || verdictOf(t, rep, checkers.NameSaga) != "valid" {
		t.Fatalf("exit %d, saga %s, want 0 and valid: %+v; first anomalies %+v", code, verdictOf(t, rep, checkers.NameSaga), rep.Results, anomalies[:min(len(anomalies), 3)])
	}
	if s.Killed == 0 || s.Recovered == 0 || s.Completed == 0 || s.Compensated == 0 || s.Unfinished != 0 {
		t.Fatalf("want coordinators killed and their sagas recovered, sagas completed and compensated, none unfinished: %+v", s)
	}
}

// A planted bug in the compensation is caught: the run exits 1 and the
// saga checker names what the bug did.
func TestE2ESagaBugsCaught(t *testing.T) {
	for _, tc := range []struct{ bug, kind, says string }{
		{workload.SagaBugSkipRefund, checkers.KindHalfFinishedSaga, "charged and never refunded"},
		{workload.SagaBugDoubleRefund, checkers.KindDoubleCompensation, "refunded 2 times"},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			code, rep, dir := runE2E(t, "--mode", "raft", "--workload", "saga", "--saga-bug", tc.bug, "--saga-failure-rate", "0.3", "--time-limit", "3s", "--seed", "4")
			_, anomalies, h := sagaRun(t, dir)
			// The precondition: a saga charged, then declined at its
			// confirm, so that its compensation must refund.
			declined := 0
			for _, op := range h {
				if op.F == checkers.FConfirm && op.Type == history.Fail && strings.Contains(op.Error, "declined") {
					declined++
				}
			}
			if declined == 0 {
				t.Fatalf("no confirm was declined: the seed and the failure rate must make one")
			}
			if code != exitInvalid || verdictOf(t, rep, checkers.NameSaga) != "invalid" {
				t.Fatalf("exit %d, saga %s; want 1 and invalid", code, verdictOf(t, rep, checkers.NameSaga))
			}
			for _, a := range anomalies {
				if a.Kind == tc.kind && strings.Contains(a.Explanation, tc.says) {
					t.Logf("%d confirms declined; caught: %s", declined, a.Explanation)
					return
				}
			}
			t.Fatalf("no %s anomaly saying %q among %d: %+v", tc.kind, tc.says, len(anomalies), anomalies[:min(len(anomalies), 3)])
		})
	}
}

// The saga flags refuse what cannot work, before anything starts.
func TestSagaFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "raft", "--workload", "saga", "--saga-bug", "lose-money"}, `--saga-bug "lose-money"`},
		{[]string{"--workload", "register", "--saga-bug", "skip-refund"}, "--saga-bug goes with --workload saga"},
		{[]string{"--mode", "raft", "--workload", "saga", "--saga-failure-rate", "1.5"}, "--saga-failure-rate 1.5"},
		{[]string{"--mode", "raft", "--workload", "saga", "--saga-kill-rate", "-0.1"}, "--saga-kill-rate -0.1"},
		{[]string{"--workload", "saga", "--mode", "lww"}, "saga"},
		{[]string{"--workload", "saga", "--db", "etcd", "--cluster", "docker"}, "etcd does not run the saga workload"},
	} {
		code, _, stderr := runCLI(t, append([]string{"test", "--time-limit", "1s"}, c.args...)...)
		if code != exitUsage || contains(stderr, c.want) != nil {
			t.Errorf("%v: exit %d, stderr %q; want usage error naming %q", c.args, code, stderr, c.want)
		}
	}
}
