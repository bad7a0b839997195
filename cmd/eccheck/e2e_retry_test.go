package main

import (
	"path/filepath"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// retriedTwice lists the requests of a run's counter adds with two
// attempts or more that may each have been applied.
func retriedTwice(t *testing.T, dir string) []string {
	t.Helper()
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return dockertest.RetriedAfterApply(h)
}

// Retries of counter adds under a partition apply them twice without
// idempotency keys, and once with them. The construction: lww with W=2
// applies an add on the node the client talks to at once and waits for a
// second replica; the partition isolates one node, so every add there
// times out (info) after it was applied, and its retry, to the same node,
// applies it again. The history must show such retried requests first;
// the duplicates checker must then find the excess (exit 1). With
// --idempotency-keys the node records each request with its add and
// applies a retry's add no more: every checker passes (exit 0).
func TestE2ERetriesApplyTwiceWithoutIdempotencyKeys(t *testing.T) {
	args := []string{"--mode", "lww", "--w", "2", "--r", "2", "--workload", "counter", "--nemesis", "partition",
		"--partition-shapes", "isolate", "--nemesis-interval", "2s", "--retry", "2", "--op-timeout", "500ms",
		"--time-limit", "8s", "--seed", "5"}

	code, rep, dir := runE2E(t, args...)
	twice := retriedTwice(t, dir)
	if len(twice) == 0 {
		t.Fatalf("no request was retried after an attempt that may have been applied: the partition did not make adds time out (exit %d, %+v)", code, rep.Results)
	}
	if code != exitInvalid || verdictOf(t, rep, checkers.NameDuplicates) != "invalid" {
		t.Fatalf("without idempotency keys: exit %d, duplicates %s, want 1 and invalid (%d requests retried with two possible applications: %v)", code, verdictOf(t, rep, checkers.NameDuplicates), len(twice), twice[:min(len(twice), 5)])
	}
	t.Logf("without keys: %d requests retried with two possible applications; duplicates invalid", len(twice))

	code, rep, dir = runE2E(t, append(args, "--idempotency-keys")...)
	twice = retriedTwice(t, dir)
	if len(twice) == 0 {
		t.Fatalf("with keys: no request was retried after an attempt that may have been applied (exit %d)", code)
	}
	if code != exitValid || verdictOf(t, rep, checkers.NameDuplicates) != "valid" {
		t.Fatalf("with idempotency keys: exit %d, duplicates %s, want 0 and valid; results %+v", code, verdictOf(t, rep, checkers.NameDuplicates), rep.Results)
	}
	t.Logf("with keys: %d requests retried with two possible applications; every checker valid", len(twice))
}

// --retry and --idempotency-keys refuse what cannot work, before anything
// starts.
func TestRetryFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--retry", "-1"}, "--retry -1"},
		{[]string{"--idempotency-keys", "--workload", "register"}, "--idempotency-keys applies to the counter"},
		{[]string{"--idempotency-keys", "--db", "etcd", "--cluster", "docker", "--workload", "counter"}, "etcd does not dedupe"},
		{[]string{"--idempotency-keys", "--workload", "counter", "--nemesis", "kill"}, "a killed node restarts without them"},
	} {
		code, _, stderr := runCLI(t, append([]string{"test", "--time-limit", "1s"}, c.args...)...)
		if code != exitUsage || contains(stderr, c.want) != nil {
			t.Errorf("%v: exit %d, stderr %q; want usage error naming %q", c.args, code, stderr, c.want)
		}
	}
}
