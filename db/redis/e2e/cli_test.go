package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestClusterAndNemesis starts a cluster with 'cluster up --db redis' and
// drives it by hand: status names n1 the primary; n1 cut off, Sentinel
// promotes another node while n1, which clients still reach, also says it
// is the primary (two primaries: status shows both); after the heal n1 is
// a replica again; a failover by hand is refused, saying why.
func TestClusterAndNemesis(t *testing.T) {
	dockertest.Engine(t)
	name := "nemredis-" + dockertest.ShortID()
	t.Cleanup(func() {
		if code, _, stderr := dockertest.CLI(t, "cluster", "down", "--cluster-name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
	})
	code, stdout, stderr := dockertest.CLI(t, "cluster", "up", "--cluster-name", name, "--db", "redis")
	if code != 0 || strings.Count(stdout, "redis://") != 3 || !strings.Contains(stdout, "sentinel ") {
		t.Fatalf("cluster up --db redis: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	roles := func() map[string]string {
		t.Helper()
		code, out, errOut := dockertest.CLI(t, "cluster", "status", "--cluster-name", name)
		if code != 0 {
			t.Fatalf("cluster status: exit %d %s", code, errOut)
		}
		r := map[string]string{}
		for _, m := range regexp.MustCompile(`(?m)^(n\d)\s+(primary|replica|no answer|exited|paused)\s`).FindAllStringSubmatch(out, -1) {
			r[m[1]] = m[2]
		}
		return r
	}
	if r := roles(); r["n1"] != "primary" || r["n2"] != "replica" || r["n3"] != "replica" {
		t.Fatalf("cluster status after up: %v", r)
	}
	nem := func(args ...string) {
		t.Helper()
		if code, out, errOut := dockertest.CLI(t, append([]string{"nemesis", args[0], "--cluster-name", name}, args[1:]...)...); code != 0 {
			t.Fatalf("nemesis %s: exit %d %q %s", strings.Join(args, " "), code, out, errOut)
		}
	}
	nem("partition", "--shape", "isolate", "--node", "n1")
	if err := dockertest.Eventually(40*time.Second, func() error {
		if r := roles(); r["n1"] != "primary" || r["n2"] != "primary" && r["n3"] != "primary" {
			return fmt.Errorf("roles %v", r)
		}
		return nil
	}); err != nil {
		t.Fatalf("n1 cut off: want Sentinel to promote n2 or n3 while n1 still says primary: %v", err)
	}
	nem("heal")
	if err := dockertest.Eventually(40*time.Second, func() error {
		if r := roles(); r["n1"] != "replica" {
			return fmt.Errorf("roles %v", r)
		}
		return nil
	}); err != nil {
		t.Fatalf("after the heal, n1 a replica again: %v", err)
	}
	if code, _, errOut := dockertest.CLI(t, "nemesis", "failover", "--cluster-name", name); code != dockertest.ExitUsage || !strings.Contains(errOut, "no failover to carry out by hand") {
		t.Errorf("nemesis failover on redis: exit %d %s, want a usage error", code, errOut)
	}
}
