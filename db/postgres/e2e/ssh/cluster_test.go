package ssh

import (
	"strings"
	"testing"

	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
)

// TestClusterNemesisDown brings a Postgres cluster up on SSH hosts with
// `eccheck cluster up --db postgres`, takes it over with `eccheck
// nemesis` and `eccheck cluster status` (which find the system in the
// cluster's manifest), and checks that `eccheck cluster down` leaves
// nothing of eccheck's on the hosts.
func TestClusterNemesisDown(t *testing.T) {
	hs := sshtest.Start(t, 3)
	args := hs.Args()
	out := dockertest.MustCLI(t, append([]string{"cluster", "up", "--db", "postgres", "--fake-time"}, args...)...)
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, n) {
			t.Errorf("postgres ssh/cluster up/lists %s: %s", n, out)
		}
	}
	status := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...)
	if strings.Count(status, "running") != 3 || strings.Count(status, "primary") != 1 || strings.Count(status, "replica") != 2 {
		t.Errorf("postgres ssh/cluster status/three nodes running, one primary, two replicas: %s", status)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "partition", "--shape", "isolate", "--node", "n2"}, args...)...)
	if l := hs.Leftovers(t, 1); len(l.Rules) != 2 {
		t.Errorf("postgres ssh/nemesis partition/n2 drops what its two peers send (2 rules): %s", l)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "heal"}, args...)...)
	dockertest.MustCLI(t, append([]string{"nemesis", "kill", "--node", "n1"}, args...)...)
	if out := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...); !strings.Contains(out, "exited") {
		t.Errorf("postgres ssh/nemesis kill/n1 exited: %s", out)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "start", "--node", "n1"}, args...)...)
	dockertest.MustCLI(t, append([]string{"nemesis", "clock", "--node", "n3", "--offset", "30s"}, args...)...)
	if out := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...); strings.Count(out, "running") != 3 || strings.Count(out, "primary") != 1 {
		t.Errorf("postgres ssh/nemesis start/n1 running again, the primary: %s", out)
	}
	if out := dockertest.MustCLI(t, append([]string{"cluster", "logs", "n1"}, args...)...); !strings.Contains(out, "ready to accept connections") {
		t.Errorf("postgres ssh/cluster logs n1/its log: %q", out)
	}
	dockertest.MustCLI(t, append([]string{"cluster", "down"}, args...)...)
	hs.NoLeftovers(t, "after cluster down")
	if code, _, errs := dockertest.CLI(t, append([]string{"test", "--db", "postgres", "--nemesis", "failover"}, args...)...); code != dockertest.ExitUsage || !strings.Contains(errs, "not on SSH hosts yet") {
		t.Errorf("postgres ssh/failover/refused as usage (exit 3): exit %d: %s", code, errs)
	}
}
