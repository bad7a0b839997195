package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runPostgres runs eccheck test --db postgres under a cluster name of its
// own and checks test.json, the saved node logs and that nothing was left
// behind.
func runPostgres(t *testing.T, read string, args ...string) (int, results.Report) {
	t.Helper()
	code, rep, _ := runPostgresDir(t, read, args...)
	return code, rep
}

// runPostgresDir is runPostgres that also returns the run directory.
func runPostgresDir(t *testing.T, read string, args ...string) (int, results.Report, string) {
	t.Helper()
	c := dockertest.Engine(t)
	name := "e2e-pg-" + dockertest.ShortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	code, rep, dir := dockertest.Test(t, append([]string{"--cluster", "docker", "--cluster-name", name, "--db", "postgres", "--pg-read", read}, args...)...)
	sync, faults := "async", ""
	for i, a := range args {
		if a == "--pg-sync" && i+1 < len(args) {
			sync = args[i+1]
		}
		if a == "--nemesis" && i+1 < len(args) {
			faults = args[i+1]
		}
	}
	cfg, err := run.ReadConfig(dir)
	if err != nil || cfg.DB != "postgres" || cfg.Settings["pg_sync"] != sync || cfg.Settings["pg_read"] != read || strings.Join(cfg.Nemesis, ",") != faults {
		t.Errorf("postgres/test.json/db, pg_sync, pg_read, nemesis %q recorded: %v, %+v", faults, err, cfg)
	}
	dockertest.CheckEngineRecorded(t, cfg)
	for _, n := range []string{"n1", "n2", "n3"} {
		b, err := os.ReadFile(filepath.Join(dir, "nodes", n+".log"))
		if err != nil || !strings.Contains(string(b), "database system is ready") {
			t.Errorf("postgres/node log %s/saved: %v, %q", n, err, b)
		}
	}
	if left := dockertest.Leftovers(t, c, name); len(left) > 0 {
		t.Errorf("postgres/teardown/nothing left: %s", strings.Join(left, "; "))
	}
	return code, rep, dir
}

func TestPrimaryReadsValid(t *testing.T) {
	code, rep := runPostgres(t, "primary", "--workload", "session", "--time-limit", "6s", "--seed", "3")
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/primary reads/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid"})
}

// With every replica replaying commits 50 ms late, a session that reads
// its own write from its replica right after the acknowledgement misses
// it; LSN fencing waits for the replica and never does.
func TestReplicaLagBreaksReadYourWrites(t *testing.T) {
	code, rep := runPostgres(t, "replica", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "50ms")
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres/replica reads with lag/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid"})
	// Stale reads, measured: their 99th percentile is about the delay.
	for _, r := range rep.Results {
		if r.Checker == "staleness" {
			if p := r.Stats["stale_p99_ms"]; p < 10 || p > 1000 {
				t.Errorf("postgres/replica reads with 50 ms lag/stale p99 between 10 and 1000 ms: %v", p)
			}
			return
		}
	}
	t.Errorf("postgres/replica reads with 50 ms lag/a staleness result: %+v", rep.Results)
}

// Fencing guards a session's own writes only: other sessions' writes still
// arrive 50 ms late on a replica, so the history stays not linearizable
// (exit 1) while read-your-writes and monotonic reads hold.
func TestLSNFenceRestoresReadYourWrites(t *testing.T) {
	code, rep := runPostgres(t, "lsn-fence", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "50ms")
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres/lsn-fence with lag/exit 1 (not linearizable): exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid", "linearizable": "invalid"})
}

// Reads that take turns on a fresh replica (n2) and one 200 ms behind (n3),
// as behind a load balancer, go back in time: monotonic reads and
// read-your-writes both break.
func TestRoundRobinBreaksMonotonicReads(t *testing.T) {
	code, rep := runPostgres(t, "round-robin", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "n2=0s,n3=200ms")
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres/round-robin replica reads/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"monotonic-reads": "invalid", "read-your-writes": "invalid"})
}

// With remote_apply the primary acknowledges a commit only once every
// replica (all synchronous standbys here) has applied it, 50 ms delay
// included, so replica reads are never stale: no read misses an
// acknowledged write, and read-your-writes and monotonic reads hold.
// Linearizable they are not always: the standbys apply a commit a few ms
// apart, before it is acknowledged, so a reader on the first can see the
// new value and a later reader on the second the old one (one CI run in
// many showed it); the test asserts what remote_apply guarantees.
func TestRemoteApplyReplicaReadsValid(t *testing.T) {
	code, rep := runPostgres(t, "replica", "--pg-sync", "remote_apply", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "50ms")
	if code != dockertest.ExitValid && code != dockertest.ExitInvalid {
		t.Fatalf("postgres/remote_apply replica reads: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid", "lost-writes": "valid"})
	if n, ok := dockertest.Stat(rep, "staleness", "stale_reads"); !ok || n != 0 {
		t.Fatalf("postgres/remote_apply replica reads: %v stale reads (found %v), want none", n, ok)
	}
	for _, r := range rep.Results {
		if r.Checker == "linearizable" {
			t.Logf("linearizable: %s (%s)", r.Verdict, r.Summary)
		}
	}
}

// The lag fault pauses WAL replay on one replica for an interval at a
// time; sessions reading their replica miss their own writes meanwhile.
func TestLagBreaksReadYourWrites(t *testing.T) {
	code, rep, dir := runPostgresDir(t, "replica", "--workload", "session", "--nemesis", "lag", "--nemesis-interval", "1s", "--time-limit", "6s", "--seed", "3")
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres/lag/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid"})
	b, err := os.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil || !strings.Contains(string(b), `"f":"start-lag","value":{"node":"n`) || !strings.Contains(string(b), `"f":"stop-lag"`) {
		t.Fatalf("postgres/lag/history has start-lag and stop-lag: %v", err)
	}
}

// A kill and restart, a clock bump (libfaketime), a pause, each of the
// primary (seed 14's schedule), then a partition ring, with asynchronous
// replicas: with every read on the primary the history stays linearizable.
// A fault the engine refuses even on a second try (a pause that cannot
// freeze, seen on cgroup v1) is recorded with the engine's error and
// listed in the report, and the run goes on: the test accepts that, and
// still wants every other fault carried out.
func TestPrimaryUnderFaultsValid(t *testing.T) {
	code, rep, dir := runPostgresDir(t, "primary", "--workload", "register", "--nemesis", "kill,clock,pause,partition", "--nemesis-interval", "1500ms", "--nemesis-cycles", "4", "--time-limit", "5m", "--op-timeout", "1s", "--seed", "14")
	h := readHistory(t, dir)
	for _, want := range []struct{ f, value string }{{"stop-kill", `["n1"]`}, {"stop-clock", ""}, {"stop-pause", `["n1"]`}, {"start-partition", ""}} {
		found := false
		for _, op := range history.Faults(h) {
			if op.F != want.f || want.value != "" && op.Value.String() != want.value {
				continue
			}
			found = true
		}
		refused := ""
		for _, fe := range rep.FaultErrors {
			if strings.TrimPrefix(strings.TrimPrefix(fe.F, "start-"), "stop-") == strings.TrimPrefix(strings.TrimPrefix(want.f, "start-"), "stop-") {
				refused = fe.Error
			}
		}
		switch {
		case refused != "":
			t.Logf("postgres/primary under faults/%s refused by the engine, recorded and reported: %s", want.f, refused)
		case !found:
			t.Errorf("postgres/primary under faults/history has %s %s", want.f, want.value)
		}
	}
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/primary under faults/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"linearizable": "valid"})
}

// readHistory reads a run directory's history.
func readHistory(t *testing.T, dir string) history.History {
	t.Helper()
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
