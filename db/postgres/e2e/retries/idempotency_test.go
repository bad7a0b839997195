package retries

import (
	"slices"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
)

// Retried counter adds apply twice without idempotency keys, and once
// with them. The construction: with --pg-sync remote_apply the primary
// waits, at every COMMIT that writes, until both replicas (every replica
// is a synchronous standby by default) have applied it; the lag fault
// pauses WAL replay on one of them, so every add's COMMIT commits on the
// primary and waits until the client's timeout cancels the wait, with
// Postgres's warning that it committed locally: info, although applied.
// Its retry (--retry 2) runs the add again, which commits again. The
// history must show such retries (two attempts or more of one request
// that did not fail) before the verdicts are asserted: the duplicates
// checker is invalid (exit 1). With --idempotency-keys the retry finds
// its request recorded and applies nothing: every checker is valid
// (exit 0).
func TestRetriesApplyTwiceWithoutIdempotencyKeys(t *testing.T) {
	// The timeout is 1 s, not less: a cancelled statement costs the
	// client its connection, and under CI's load (other packages' clusters
	// beside this one) a new connection took longer than 300 ms, so one
	// keyed run failed every operation, reads included, and showed
	// nothing. The fault holds 3 s, room for two attempts under it.
	args := []string{"--pg-sync", "remote_apply", "--workload", "counter", "--nemesis", "lag", "--nemesis-interval", "3s",
		"--retry", "2", "--op-timeout", "1s", "--time-limit", "12s", "--seed", "3"}
	run := func(keys bool) (int, results.Report, []string) {
		t.Helper()
		a := args
		if keys {
			a = append(a, "--idempotency-keys")
		}
		start := time.Now()
		code, rep, _, h := dockertest.RunSystem(t, dockertest.Run{DB: "postgres", Settings: []string{"pg_sync"}, LogMarks: []string{"database system is ready"}}, a...)
		dockertest.Window(t, h, "lag")
		retried := dockertest.RetriedAfterApply(h)
		n, _ := dockertest.Stat(rep, checkers.NameDuplicates, "retried")
		t.Logf("keys %v: exit %d in %v; %d requests retried after an attempt that may have applied (the checker counts %v retried): %v",
			keys, code, time.Since(start).Round(time.Millisecond), len(retried), n, retried[:min(len(retried), 5)])
		for _, r := range rep.Results {
			t.Logf("keys %v: %s %s: %s", keys, r.Checker, r.Verdict, r.Summary)
		}
		if len(retried) == 0 {
			var errs []string // what the operations failed with, for the log
			for _, o := range history.Pair(h) {
				if o.Type == history.Fail && len(errs) < 5 && !slices.Contains(errs, o.Error) {
					errs = append(errs, o.Error)
				}
			}
			t.Logf("keys %v: failed operations' errors: %q", keys, errs)
			t.Fatalf("keys %v/setup: no add retried after an attempt that may have applied: the lag did not hold the commits (exit %d, %+v)", keys, code, rep.Results)
		}
		return code, rep, retried
	}

	code, rep, _ := run(false)
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameDuplicates: "invalid"})
	if code != dockertest.ExitInvalid {
		t.Errorf("postgres/retries without keys/exit 1: exit %d", code)
	}

	code, rep, _ = run(true)
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameDuplicates: "valid"})
	if code != dockertest.ExitValid {
		t.Errorf("postgres/retries with keys/exit 0: exit %d, results %+v", code, rep.Results)
	}
}
