package ssh

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
	"github.com/eccheck/eccheck/results"
)

// TestClusterNemesisDown brings a cluster up on SSH hosts with `eccheck
// cluster up`, injects faults by hand with `eccheck nemesis`, and checks
// that `eccheck cluster down` leaves nothing of eccheck's on the hosts.
func TestClusterNemesisDown(t *testing.T) {
	hs := sshtest.Start(t, 3)
	args := hs.Args()
	out := dockertest.MustCLI(t, append([]string{"cluster", "up", "--mode", "lww"}, args...)...)
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, n) {
			t.Errorf("ssh/cluster up/lists %s: %s", n, out)
		}
	}
	if code, _, errs := dockertest.CLI(t, append([]string{"cluster", "up", "--mode", "lww"}, args...)...); code != dockertest.ExitUsage || !strings.Contains(errs, "already exists") {
		t.Errorf("ssh/cluster up twice/refused as usage (exit 3): exit %d: %s", code, errs)
	}
	if out := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...); strings.Count(out, "running") != 3 {
		t.Errorf("ssh/cluster status/three nodes running: %s", out)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "partition", "--shape", "isolate", "--node", "n1"}, args...)...)
	if l := hs.Leftovers(t, 0); len(l.Rules) != 2 {
		t.Errorf("ssh/nemesis partition/n1 drops what its two peers send (2 rules): %s", l)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "kill", "--node", "n2"}, args...)...)
	if out := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...); !strings.Contains(out, "exited") {
		t.Errorf("ssh/nemesis kill/n2 exited: %s", out)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "start", "--node", "n2"}, args...)...)
	dockertest.MustCLI(t, append([]string{"nemesis", "clock", "--node", "n3", "--offset", "5s"}, args...)...)
	if out := dockertest.MustCLI(t, append([]string{"nemesis", "status"}, args...)...); !strings.Contains(out, "5s") || strings.Count(out, "running") != 3 {
		t.Errorf("ssh/nemesis status/n3 5s ahead, every node running: %s", out)
	}
	if out := dockertest.MustCLI(t, append([]string{"cluster", "logs", "n1"}, args...)...); !strings.Contains(out, "ecstore n1") {
		t.Errorf("ssh/cluster logs n1/its log: %q", out)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "heal"}, args...)...)
	if l := hs.Leftovers(t, 0); len(l.Rules) != 0 {
		t.Errorf("ssh/nemesis heal/no rules: %s", l)
	}
	// Delay is tc netem on n1's host: where the kernel has sch_netem it
	// is a qdisc eccheck's heal removes; where it has none (the machines
	// this was written on) the command fails saying so, and nothing was
	// changed. Either way the host is left clean.
	code, out, errs := dockertest.CLI(t, append([]string{"nemesis", "delay", "--node", "n1", "--ms", "100"}, args...)...)
	switch l := hs.Leftovers(t, 0); {
	case code == 0 && len(l.Qdiscs) == 0:
		t.Errorf("ssh/nemesis delay/a qdisc on n1's host: %s, leftovers %s", out, l)
	case code != 0 && (!strings.Contains(errs, "sch_netem") || len(l.Qdiscs) != 0):
		t.Errorf("ssh/nemesis delay without netem/says so and changes nothing: exit %d: %s, leftovers %s", code, errs, l)
	default:
		t.Logf("nemesis delay on SSH hosts: exit %d: %s%s", code, out, errs)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "heal"}, args...)...)
	if l := hs.Leftovers(t, 0); len(l.Qdiscs) != 0 || len(l.Rules) != 0 {
		t.Errorf("ssh/nemesis heal/no rules, no qdiscs: %s", l)
	}
	if code, _, errs := dockertest.CLI(t, append([]string{"nemesis", "bandwidth", "--node", "n1", "--rate", "1mbit"}, args...)...); code != dockertest.ExitUsage {
		t.Errorf("ssh/nemesis bandwidth/refused as usage (exit 3): exit %d: %s", code, errs)
	}
	dockertest.MustCLI(t, append([]string{"cluster", "down"}, args...)...)
	hs.NoLeftovers(t, "after cluster down")
}

// TestClusterDownAfterSIGKILL kills a running `eccheck test --cluster
// ssh` with SIGKILL, so that it cannot clean up, and checks that `eccheck
// cluster down --cluster ssh` removes what it left on the hosts.
func TestClusterDownAfterSIGKILL(t *testing.T) {
	hs := sshtest.Start(t, 3)
	args := hs.Args()
	var stderr strings.Builder
	cmd := exec.Command(dockertest.Eccheck(t), append([]string{"test", "--mode", "raft", "--workload", "register", "--nemesis", "partition", "--nemesis-interval", "1s",
		"--time-limit", "60s", "--out", filepath.Join(t.TempDir(), "runs"), "-q"}, args...)...)
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
	waitPartition(t, hs, &stderr)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waited = true
	if l := hs.Leftovers(t, 0); l.Empty() {
		t.Fatalf("ssh/SIGKILL/left behind on h1: nothing")
	}
	dockertest.MustCLI(t, append([]string{"cluster", "down"}, args...)...)
	hs.NoLeftovers(t, "cluster down after SIGKILL")
}

// TestInterruptCleansUp interrupts a running `eccheck test --cluster
// ssh` (SIGINT, as Ctrl-C does) while a partition is in force, and checks
// that it heals and removes everything of eccheck's from the hosts on its
// way out.
func TestInterruptCleansUp(t *testing.T) {
	hs := sshtest.Start(t, 3)
	var stderr strings.Builder
	cmd := exec.Command(dockertest.Eccheck(t), append([]string{"test", "--mode", "lww", "--workload", "register", "--nemesis", "partition", "--nemesis-interval", "1s",
		"--time-limit", "60s", "--out", filepath.Join(t.TempDir(), "runs"), "-q"}, hs.Args()...)...)
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
	waitPartition(t, hs, &stderr)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waited = true
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("ssh/SIGINT/exit 130: exit %d; stderr:\n%s", code, stderr.String())
	}
	hs.NoLeftovers(t, "after SIGINT")
}

// waitPartition waits until every host runs its node and the nemesis has
// put its rules on one.
func waitPartition(t *testing.T, hs *sshtest.Hosts, stderr *strings.Builder) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running, rules := 0, 0
		for i := range hs.Hosts {
			l := hs.Leftovers(t, i)
			running += len(l.Processes)
			rules += len(l.Rules)
		}
		if running == 3 && rules > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh/harness/three nodes and a partition within 2m: %d running, %d rules; stderr:\n%s", running, rules, stderr.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestRefusals checks that what keeps eccheck from the hosts is said
// plainly before any work, by `eccheck test` and `eccheck cluster up`:
// an unknown host key, a refused key, an unreachable host; and that bad
// combinations of flags are usage errors.
func TestRefusals(t *testing.T) {
	hs := sshtest.Start(t, 1)
	dir := t.TempDir()
	empty := filepath.Join(dir, "known_hosts")
	sshtest.WriteKnownHosts(t, empty)
	otherKey, _ := sshtest.NewKey(t, dir, "other")
	addr := hs.Hosts[0].Addr
	base := []string{"--cluster", "ssh", "--hosts", addr, "--ssh-user", sshtest.User}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"login/unknown host key/refused", []string{"--ssh-key", hs.Config.KeyFile, "--ssh-known-hosts", empty}, dockertest.ExitInfra, "host key unknown"},
		{"login/key not authorized/refused", []string{"--ssh-key", otherKey, "--ssh-known-hosts", hs.Config.KnownHosts}, dockertest.ExitInfra, "login refused"},
		{"login/no sshd/unreachable", []string{"--hosts", "127.0.0.1:1", "--ssh-key", hs.Config.KeyFile, "--ssh-known-hosts", hs.Config.KnownHosts}, dockertest.ExitInfra, "host unreachable"},
		{"flags/nodes and hosts differ/usage", []string{"--nodes", "3", "--ssh-key", hs.Config.KeyFile}, dockertest.ExitUsage, "--nodes 3 with 1 --hosts"},
		{"flags/galera/usage", []string{"--db", "galera", "--ssh-key", hs.Config.KeyFile}, dockertest.ExitUsage, "these do: ecstore, postgres, etcd, redis"},
		// A container may not set the kernel's clock (no CAP_SYS_TIME):
		// the probe says so before anything is put on the host.
		{"host clock/not allowed/refused", []string{"--ssh-host-clock", "--ssh-key", hs.Config.KeyFile, "--ssh-known-hosts", hs.Config.KnownHosts}, dockertest.ExitInfra, "CAP_SYS_TIME"},
	}
	for _, c := range cases {
		for _, verb := range [][]string{{"test", "--out", filepath.Join(dir, "runs"), "--time-limit", "5s", "--nemesis", "none"}, {"cluster", "up"}} {
			args := append(append(append([]string{}, verb...), base...), c.args...)
			code, _, stderr := dockertest.CLI(t, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("%s (%s): exit %d, want %d with %q:\n%s", c.name, verb[0], code, c.code, c.want, stderr)
			}
		}
	}
	if l := hs.Leftovers(t, 0); !l.Empty() {
		t.Errorf("refusals/nothing done on the host: %s", l)
	}
}

// TestMatrix runs a report card on the SSH hosts (`eccheck matrix
// --cluster ssh`): each cell a cluster of its own on the same hosts, one
// after another, each removed before the next; the expectation holds
// (exit 0) and nothing is left on the hosts.
func TestMatrix(t *testing.T) {
	hs := sshtest.Start(t, 3)
	out := t.TempDir()
	expect := filepath.Join(out, "expect.txt")
	if err := os.WriteFile(expect, []byte("raft x partition valid\nraft x none valid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := dockertest.CLI(t, append([]string{"matrix", "--out", out, "--workload", "register", "--modes", "raft", "--nemesis", "none,partition",
		"--nemesis-interval", "2s", "--time-limit", "5s", "--recovery", "1s", "--seed", "3", "-o", "json", "-q", "--expect", expect}, hs.Args()...)...)
	var card results.Card
	if err := json.Unmarshal([]byte(stdout), &card); err != nil {
		t.Fatalf("exit %d; stdout is not JSON: %v\n%s\n%s", code, err, stdout, stderr)
	}
	if code != dockertest.ExitValid || len(card.Cells) != 2 || len(card.Expectations) != 2 {
		t.Fatalf("ssh/matrix/exit 0 with 2 cells, 2 expectations holding: exit %d, %+v\n%s", code, card, stderr)
	}
	for _, c := range card.Cells {
		if c.Error != "" {
			t.Errorf("ssh/matrix/cell %s x %s ran: %s", c.Config, c.Nemesis, c.Error)
		}
	}
	hs.NoLeftovers(t, "after the matrix")
}
