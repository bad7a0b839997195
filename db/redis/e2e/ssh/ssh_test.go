package ssh

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// The primary cut off from the other hosts goes on acknowledging the
// adds of the clients still connected to it (eccheck's machine is not
// cut off) until the Sentinels that see each other promote a replica,
// 2 s later at the least: those adds reach no replica, and the failover
// loses them (exit 1), as in Docker (db/redis/e2e). Every node's log
// holds its server's start and nothing is left on the hosts.
func TestFailoverLosesWrites(t *testing.T) {
	hs := sshtest.Start(t, 3)
	code, rep, h, _ := hs.Test(t, func(string) string { return "Ready to accept connections" }, "--db", "redis", "--redis-read", "primary",
		"--workload", "set", "--nemesis", "failover", "--nemesis-cycles", "1", "--nemesis-interval", "3s", "--time-limit", "5m", "--rate", "2000", "--seed", "3")
	cut, failover := dockertest.Window(t, h, "failover")
	if !strings.Contains(failover.Value.String(), `"promoted":`) || !strings.Contains(failover.Value.String(), `"rejoined":`) {
		t.Fatalf("redis ssh/failover/setup: no promotion and rejoin: %s", failover.Value)
	}
	acked := 0
	for _, op := range history.Pair(h) {
		if op.F == "add" && op.Type == history.OK && op.Call > cut.Time && op.Call < cut.Time+2e9 {
			acked++
		}
	}
	if acked == 0 {
		t.Fatalf("redis ssh/failover/setup: no add acknowledged while the primary was cut off; the loss cannot be shown")
	}
	if code != dockertest.ExitInvalid {
		t.Fatalf("redis ssh/failover/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
}

// TestClusterNemesisDown brings a Redis cluster up with `eccheck cluster
// up --db redis --cluster ssh`, checks that its servers and Sentinels
// refuse commands without the cluster's password, takes it over with
// `eccheck nemesis` and `cluster status`, and checks that `cluster down`
// leaves nothing of eccheck's on the hosts.
func TestClusterNemesisDown(t *testing.T) {
	hs := sshtest.Start(t, 3)
	args := hs.Args()
	out := dockertest.MustCLI(t, append([]string{"cluster", "up", "--db", "redis"}, args...)...)
	password := hs.Secret(t, "default", out)
	ping := func(addr, pw string) error {
		c := goredis.NewClient(&goredis.Options{Addr: addr, Password: pw, MaxRetries: -1, DialTimeout: 2 * time.Second})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	for _, port := range []string{"16379", "16380"} {
		addr := hs.Hosts[0].IP.String() + ":" + port
		if err := ping(addr, ""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("redis ssh/auth/%s refuses a command without the password: %v", addr, err)
		}
		if err := ping(addr, password); err != nil {
			t.Errorf("redis ssh/auth/%s answers with the password: %v", addr, err)
		}
	}
	status := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...)
	if strings.Count(status, "running") != 3 || strings.Count(status, "primary") != 1 || strings.Count(status, "replica") != 2 {
		t.Errorf("redis ssh/cluster status/three nodes running, one primary, two replicas: %s", status)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "kill", "--node", "n3"}, args...)...)
	// Server and Sentinel are one process tree: both gone (once the
	// host's init has reaped them).
	n3 := hs.Dial(t, 2)
	if err := dockertest.Eventually(10*time.Second, func() error {
		if ps, _, err := n3.Run(context.Background(), "pgrep -u redis -l || true"); err != nil || strings.TrimSpace(ps) != "" {
			return fmt.Errorf("redis ssh/nemesis kill/no redis process left on n3's host: %q, %v", ps, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "start", "--node", "n3"}, args...)...)
	// n3 comes back as a replica, from its rewritten configuration, and
	// its Sentinel wants the password again.
	if err := dockertest.Eventually(30*time.Second, func() error {
		out := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...)
		if strings.Count(out, "running") != 3 || strings.Count(out, "primary") != 1 || strings.Count(out, "replica") != 2 {
			return fmt.Errorf("redis ssh/nemesis start/n3 back as a replica: %s", out)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := ping(hs.Hosts[2].IP.String()+":16380", password); err != nil {
		t.Errorf("redis ssh/nemesis start/n3's Sentinel answers with the password: %v", err)
	}
	if mode, _, err := n3.Sudo(context.Background(), "stat -c %a /var/lib/eccheck/default/n3/sentinel.conf /var/lib/eccheck/default/n3/redis.conf"); err != nil || strings.Fields(mode)[0] != "600" || strings.Fields(mode)[1] != "600" {
		t.Errorf("redis ssh/config files/0600 after Sentinel and the server rewrote them: %q, %v", mode, err)
	}
	dockertest.MustCLI(t, append([]string{"cluster", "down"}, args...)...)
	hs.NoLeftovers(t, "after cluster down")
}
