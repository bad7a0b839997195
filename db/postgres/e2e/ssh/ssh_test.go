package ssh

import (
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runPostgres runs `eccheck test --db postgres --cluster ssh` on three
// fresh hosts (see sshtest.Hosts.Test: every node's log saved, nothing
// left on the hosts) and returns the exit code, the report and the
// history.
func runPostgres(t *testing.T, args ...string) (int, results.Report, history.History) {
	t.Helper()
	code, rep, h, dir := sshtest.Start(t, 3).Test(t, func(string) string { return "ready to accept" }, append([]string{"--db", "postgres"}, args...)...)
	if cfg, err := run.ReadConfig(dir); err != nil || cfg.DB != "postgres" {
		t.Errorf("postgres ssh/test.json/db postgres recorded: %v, %q", err, cfg.DB)
	}
	return code, rep, h
}

// Every replica replays each commit a whole second after the primary
// made it (recovery_min_apply_delay), and each session reads its replica
// right after its own write is acknowledged: the read misses the write
// by construction, however fast or slow the machine, as in Docker
// (db/postgres/e2e).
func TestReplicaLagBreaksReadYourWrites(t *testing.T) {
	code, rep, h := runPostgres(t, "--pg-read", "replica", "--pg-apply-delay", "1s", "--workload", "session", "--time-limit", "6s", "--seed", "3")
	replicaReads := 0
	for _, op := range h {
		if op.F == "read" && op.Type == history.OK && op.Node != "n1" {
			replicaReads++
		}
	}
	if replicaReads == 0 {
		t.Fatalf("postgres ssh/replica reads/precondition: no read was answered by a replica")
	}
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres ssh/replica reads with lag/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid"})
}

// The other side: with remote_apply the primary acknowledges a commit
// only once every replica has applied it, apply delay and all, so the
// same sessions read their own writes from their replicas, and each
// its replica's reads never go back (linearizability is not asserted:
// the standbys apply a commit a few ms apart, as in Docker).
func TestRemoteApplyReplicaReadsKeepReadYourWrites(t *testing.T) {
	_, rep, _ := runPostgres(t, "--pg-read", "replica", "--pg-sync", "remote_apply", "--pg-apply-delay", "200ms", "--workload", "session", "--time-limit", "6s", "--seed", "3")
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid", "lost-writes": "valid"})
}

// Reads and writes on the primary stay linearizable and lose nothing
// while the hosts are cut off from each other, the nodes are killed
// (SIGKILL to the postmaster's process group; committed data is on
// disk) and started again, and their clocks move under libfaketime.
func TestPrimaryUnderFaultsValid(t *testing.T) {
	code, rep, h := runPostgres(t, "--pg-read", "primary", "--workload", "register", "--nemesis", "partition,kill,clock",
		"--nemesis-cycles", "3", "--nemesis-interval", "2s", "--recovery", "3s", "--seed", "5")
	for _, f := range []string{"partition", "kill", "clock"} {
		dockertest.Window(t, h, f)
	}
	if code != dockertest.ExitValid {
		t.Fatalf("postgres ssh/primary reads under faults/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"linearizable": "valid", "lost-writes": "valid"})
}
