package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestClusterAndNemesis starts a cluster with 'cluster up --db galera'
// and drives it by hand: status says every node is synced; n3 cut off
// is non-primary, and synced again after the heal; every node killed at
// once ('nemesis crash') is exited, and 'nemesis restart' brings the
// cluster back from its most advanced node; a failover is refused,
// saying why.
func TestClusterAndNemesis(t *testing.T) {
	dockertest.Engine(t)
	name := "nemgalera-" + dockertest.ShortID()
	t.Cleanup(func() {
		if code, _, stderr := dockertest.CLI(t, "cluster", "down", "--cluster-name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
	})
	code, stdout, stderr := dockertest.CLI(t, "cluster", "up", "--cluster-name", name, "--db", "galera", "--galera-sync-wait", "1")
	if code != 0 || strings.Count(stdout, "mysql://") != 3 {
		t.Fatalf("cluster up --db galera: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	roles := func() map[string]string {
		t.Helper()
		code, out, errOut := dockertest.CLI(t, "cluster", "status", "--cluster-name", name)
		if code != 0 {
			t.Fatalf("cluster status: exit %d %s", code, errOut)
		}
		r := map[string]string{}
		for _, m := range regexp.MustCompile(`(?m)^(n\d)\s+(synced|non-primary|joining|joined|donor/desynced|no answer|exited|paused)\s`).FindAllStringSubmatch(out, -1) {
			r[m[1]] = m[2]
		}
		return r
	}
	all := func(role string) error {
		if r := roles(); r["n1"] != role || r["n2"] != role || r["n3"] != role {
			return fmt.Errorf("roles %v, want every node %s", r, role)
		}
		return nil
	}
	if err := all("synced"); err != nil {
		t.Fatalf("cluster status after up: %v", err)
	}
	nem := func(args ...string) string {
		t.Helper()
		code, out, errOut := dockertest.CLI(t, append([]string{"nemesis", args[0], "--cluster-name", name}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("nemesis %s: exit %d %q %s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	nem("partition", "--shape", "isolate", "--node", "n3")
	if err := dockertest.Eventually(60*time.Second, func() error {
		if r := roles(); r["n3"] != "non-primary" || r["n1"] != "synced" {
			return fmt.Errorf("roles %v", r)
		}
		return nil
	}); err != nil {
		t.Fatalf("n3 cut off: want it non-primary, n1 synced: %v", err)
	}
	nem("heal")
	if err := dockertest.Eventually(60*time.Second, func() error { return all("synced") }); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	if out := nem("crash"); !strings.Contains(out, "killed every node at once") {
		t.Fatalf("nemesis crash: %q", out)
	}
	if err := all("exited"); err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	if out := nem("restart"); !strings.Contains(out, `"bootstrapped":"n`) || strings.Count(out, `"seqno":`) != 3 {
		t.Fatalf("nemesis restart: %q, want the recovered positions and the node bootstrapped", out)
	}
	if err := all("synced"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if code, _, errOut := dockertest.CLI(t, "nemesis", "failover", "--cluster-name", name); code != dockertest.ExitUsage || !strings.Contains(errOut, "no failover to carry out by hand") {
		t.Errorf("nemesis failover on galera: exit %d %s, want a usage error", code, errOut)
	}
}
