package ssh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runSSH runs `eccheck test --cluster ssh` on three fresh hosts, checks
// that the node logs were saved and that nothing was left on the hosts,
// and returns the exit code, the report and the history.
func runSSH(t *testing.T, args ...string) (int, results.Report, history.History) {
	t.Helper()
	hs := sshtest.Start(t, 3)
	start := time.Now()
	code, rep, dir := dockertest.Test(t, append(hs.Args(), args...)...)
	t.Logf("eccheck test on SSH hosts: exit %d in %v", code, time.Since(start).Round(time.Second))
	cfg, err := run.ReadConfig(dir)
	if err != nil || cfg.Cluster != "ssh" {
		t.Errorf("ssh/test.json/cluster ssh recorded: %v, %q", err, cfg.Cluster)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		b, err := os.ReadFile(filepath.Join(dir, "nodes", n+".log"))
		if err != nil || !strings.Contains(string(b), "ecstore "+n) {
			t.Errorf("ssh/node log %s/saved: %v, %d bytes", n, err, len(b))
		}
	}
	hs.NoLeftovers(t, "after the run")
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
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
