package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runDocker runs eccheck test in Docker under a cluster name of its own
// and checks that test.json describes the engine, that the node logs were
// saved and that nothing was left behind.
func runDocker(t *testing.T, args ...string) (int, results.Report) {
	t.Helper()
	c := dockertest.Engine(t)
	name := "e2e-" + dockertest.ShortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	code, rep, dir := dockertest.Test(t, append([]string{"--cluster", "docker", "--cluster-name", name}, args...)...)
	cfg, err := run.ReadConfig(dir)
	if err != nil {
		t.Fatalf("docker/test.json: %v", err)
	}
	dockertest.CheckEngineRecorded(t, cfg)
	b, err := os.ReadFile(filepath.Join(dir, "nodes", "n1.log"))
	if err != nil || !strings.Contains(string(b), "ecstore n1") {
		t.Errorf("docker/node log/saved: nodes/n1.log: %v, %q", err, b)
	}
	if left := dockertest.Leftovers(t, c, name); len(left) > 0 {
		t.Errorf("docker/teardown/nothing left: %s", strings.Join(left, "; "))
	}
	return code, rep
}

func TestLWWPartitionsBreakSessions(t *testing.T) {
	code, rep := runDocker(t, "--mode", "lww", "--w", "1", "--r", "1", "--workload", "session", "--nemesis", "partition", "--nemesis-cycles", "1", "--nemesis-interval", "5s", "--seed", "11")
	if code != dockertest.ExitInvalid {
		t.Fatalf("docker/lww w1r1 partition/exit 1: exit %d", code)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid"})
}

func TestRaftPartitionKillValid(t *testing.T) {
	code, rep := runDocker(t, "--mode", "raft", "--nemesis", "partition,kill", "--nemesis-cycles", "2", "--nemesis-interval", "2s", "--recovery", "3s", "--seed", "5")
	if code != dockertest.ExitValid {
		t.Fatalf("docker/raft partition,kill/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"linearizable (register)": "valid", "lost-writes (register)": "valid", "lost-writes (set)": "valid"})
}

// Seeds 12, 21 and 22 all gave lost-writes invalid here (1870, 1315 and 927
// lost writes), so the verdict does not hang on one schedule.
func TestLWWClockSkewLosesWrites(t *testing.T) {
	code, rep := runDocker(t, "--mode", "lww", "--workload", "register", "--nemesis", "clock", "--clock-max", "5s", "--nemesis-interval", "2s", "--nemesis-cycles", "2", "--seed", "12")
	if code != dockertest.ExitInvalid {
		t.Fatalf("docker/lww clock skew/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
}

// TestClusterDownAfterSIGKILL kills a running `eccheck test --cluster
// docker` with SIGKILL, so it cannot remove its cluster, and checks that
// `eccheck cluster down` removes everything it left behind.
func TestClusterDownAfterSIGKILL(t *testing.T) {
	c := dockertest.Engine(t)
	name := "e2e-kill-" + dockertest.ShortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	var stderr strings.Builder
	cmd := exec.Command(dockertest.Eccheck(t), "test", "--cluster", "docker", "--cluster-name", name, "--mode", "lww", "--nemesis", "none", "--time-limit", "60s", "--out", filepath.Join(t.TempDir(), "runs"), "-q")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	// Wait until the harness has its three node containers running (an
	// image build first may take a while on a fresh machine).
	ctx := t.Context()
	f := make(client.Filters).Add("label", docker.LabelCluster+"="+name).Add("label", docker.LabelRole+"=node").Add("status", "running")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		cs, err := c.API().ContainerList(ctx, client.ContainerListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs.Items) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker/harness/three running nodes within 5m: %d running; stderr:\n%s", len(cs.Items), stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	waited = true
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("harness ended with %v, want killed by SIGKILL", err)
	}
	left := dockertest.Leftovers(t, c, name)
	if len(left) < 4 {
		t.Errorf("docker/SIGKILL/cluster left behind: %v, want 3 containers and the network", left)
	}

	// --name: the hidden older spelling of --cluster-name still works.
	code, out, errs := dockertest.CLI(t, "cluster", "down", "--name", name)
	if code != 0 {
		t.Fatalf("cluster down: exit %d\n%s%s", code, out, errs)
	}
	if left := dockertest.Leftovers(t, c, name); len(left) > 0 {
		t.Errorf("docker/cluster down after SIGKILL/nothing left: %s", strings.Join(left, "; "))
	}
}

// TestNemesis runs the nemesis subcommands against a 3-node cluster in
// containers made with `eccheck cluster up`.
func TestNemesis(t *testing.T) {
	c := dockertest.Engine(t)
	name := "nem-" + dockertest.ShortID()
	t.Cleanup(func() {
		if code, _, stderr := dockertest.CLI(t, "cluster", "down", "--cluster-name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
		if left := dockertest.Leftovers(t, c, name); len(left) > 0 {
			t.Errorf("cluster down/nothing left: %s", strings.Join(left, "; "))
		}
	})
	if code, _, stderr := dockertest.CLI(t, "cluster", "up", "--cluster-name", name, "--nodes", "3", "--mode", "lww"); code != 0 {
		t.Fatalf("cluster up: exit %d: %s", code, stderr)
	}
	steps := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"partition/isolate n1/one line", []string{"partition", "--shape", "isolate", "--node", "n1"}, 0, "isolated n1 from n2, n3", ""},
		{"status/after isolate/n1 drops n2,n3", []string{"status"}, 0, "n2,n3", ""},
		{"partition/unknown node/exit 3", []string{"partition", "--shape", "isolate", "--node", "n9"}, dockertest.ExitUsage, "", "no node \"n9\""},
		{"partition/grudge with unknown node/exit 3", []string{"partition", "--grudge", "n1=n7"}, dockertest.ExitUsage, "", "no node \"n7\""},
		{"heal/after isolate/one line", []string{"heal"}, 0, "healed", ""},
		{"kill/n2/one line", []string{"kill", "--node", "n2"}, 0, "killed n2", ""},
		{"status/after kill/n2 stopped", []string{"status"}, 0, "stopped", ""},
		{"start/n2/one line", []string{"start", "--node", "n2"}, 0, "started n2", ""},
		{"kill/no node/exit 3", []string{"kill"}, dockertest.ExitUsage, "", "--node is required"},
		{"clock/n3 -5s/one line", []string{"clock", "--node", "n3", "--offset", "-5s"}, 0, "set the clock of n3 -5s off", ""},
		{"clock/n3 0/reset", []string{"clock", "--node", "n3", "--offset", "0"}, 0, "reset the clock of n3", ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := dockertest.CLI(t, append([]string{"nemesis", s.args[0], "--cluster-name", name}, s.args[1:]...)...)
			if code != s.code || !strings.Contains(stdout, s.out) || !strings.Contains(stderr, s.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, stdout, stderr, s.code, s.out, s.err)
			}
			if s.code == 0 && s.args[0] != "status" && strings.Count(stdout, "\n") != 1 {
				t.Errorf("stdout %q: want one line", stdout)
			}
		})
	}
}
