package e2e

import (
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
)

// Retried counter adds apply twice without idempotency keys, and once
// with them. The construction: with --redis-wait 1 each add is followed
// by WAIT for the one replica (--nodes 2); the lag fault cuts that
// replica off from the primary, so every add is applied on the primary
// and WAIT sees no replica acknowledge it: info, although applied. Its
// retry (--retry 2) runs INCRBY again, which applies again. The history
// must show such retries (two attempts or more of one request that did
// not fail) before the verdicts are asserted: the duplicates checker is
// invalid (exit 1). With --idempotency-keys the retry's script finds the
// request's key and applies nothing: every checker is valid (exit 0).
func TestRetriesApplyTwiceWithoutIdempotencyKeys(t *testing.T) {
	args := []string{"--nodes", "2", "--redis-wait", "1", "--workload", "counter", "--nemesis", "lag", "--nemesis-interval", "2s",
		"--retry", "2", "--op-timeout", "300ms", "--time-limit", "10s", "--seed", "3"}
	run := func(keys bool) (int, results.Report) {
		t.Helper()
		a := args
		if keys {
			a = append(a, "--idempotency-keys")
		}
		start := time.Now()
		code, rep, _, h := dockertest.RunSystem(t, dockertest.Run{DB: "redis", Settings: []string{"redis_wait"},
			LogMarks: []string{"Ready to accept connections"}, Nodes: []string{"n1", "n2"}}, a...)
		dockertest.Window(t, h, "lag")
		retried := dockertest.RetriedAfterApply(h)
		n, _ := dockertest.Stat(rep, checkers.NameDuplicates, "retried")
		t.Logf("keys %v: exit %d in %v; %d requests retried after an attempt that may have applied (the checker counts %v retried): %v",
			keys, code, time.Since(start).Round(time.Millisecond), len(retried), n, retried[:min(len(retried), 5)])
		for _, r := range rep.Results {
			t.Logf("keys %v: %s %s: %s", keys, r.Checker, r.Verdict, r.Summary)
		}
		if len(retried) == 0 {
			t.Fatalf("keys %v/setup: no add retried after an attempt that may have applied: the lag did not hold WAIT (exit %d, %+v)", keys, code, rep.Results)
		}
		return code, rep
	}

	code, rep := run(false)
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameDuplicates: "invalid"})
	if code != dockertest.ExitInvalid {
		t.Errorf("redis/retries without keys/exit 1: exit %d", code)
	}

	code, rep = run(true)
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameDuplicates: "valid"})
	if code != dockertest.ExitValid {
		t.Errorf("redis/retries with keys/exit 0: exit %d, results %+v", code, rep.Results)
	}
}
