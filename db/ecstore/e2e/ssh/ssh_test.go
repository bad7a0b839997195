package ssh

import (
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
	"github.com/eccheck/eccheck/results"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runSSH runs `eccheck test --cluster ssh` on three fresh hosts (see
// sshtest.Hosts.Test) and returns the exit code, the report and the
// history.
func runSSH(t *testing.T, args ...string) (int, results.Report, history.History) {
	t.Helper()
	code, rep, h, _ := sshtest.Start(t, 3).Test(t, func(n string) string { return "ecstore " + n }, args...)
	return code, rep, h
}

func TestRaftPartitionKillValid(t *testing.T) {
	code, rep, h := runSSH(t, "--mode", "raft", "--workload", "register", "--nemesis", "partition,kill", "--nemesis-cycles", "2", "--nemesis-interval", "2s", "--recovery", "3s", "--seed", "5")
	dockertest.Window(t, h, "partition")
	dockertest.Window(t, h, "kill")
	if code != dockertest.ExitValid {
		t.Fatalf("ssh/raft partition,kill/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"linearizable": "valid", "lost-writes": "valid"})
}

// As in Docker (db/ecstore/e2e), seed 12 skews the clocks enough for
// last-write-wins to throw writes away.
func TestLWWClockSkewLosesWrites(t *testing.T) {
	code, rep, h := runSSH(t, "--mode", "lww", "--workload", "register", "--nemesis", "clock", "--clock-max", "5s", "--nemesis-interval", "2s", "--nemesis-cycles", "2", "--seed", "12")
	dockertest.Window(t, h, "clock")
	if code != dockertest.ExitInvalid {
		t.Fatalf("ssh/lww clock skew/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
}
