package ssh

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	out := dockertest.MustCLI(t, append([]string{"cluster", "up", "--db", "postgres", "--fake-time", "--pg-apply-delay", "n2=700ms"}, args...)...)
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, n) {
			t.Errorf("postgres ssh/cluster up/lists %s: %s", n, out)
		}
	}
	password := hs.Secret(t, "default", out)
	dsn := func(i int) string {
		return "postgres://postgres:" + password + "@" + hs.Hosts[i].IP.String() + ":15432/postgres?sslmode=disable&connect_timeout=5"
	}
	ctx := context.Background()
	n2, err := pgx.Connect(ctx, dsn(1))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close(ctx)
	var delay string
	if err := n2.QueryRow(ctx, "SHOW recovery_min_apply_delay").Scan(&delay); err != nil || delay != "700ms" {
		t.Errorf("postgres ssh/--pg-apply-delay n2=700ms/set on n2: %q, %v", delay, err)
	}
	// Pause stops every process of the node, the backend of a connection
	// open before it too (each calls setsid, leaving the postmaster's
	// group): a query on that connection gets no answer until resume.
	dockertest.MustCLI(t, append([]string{"nemesis", "pause", "--node", "n2"}, args...)...)
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = n2.QueryRow(qctx, "SELECT 1").Scan(new(int))
	cancel()
	if err == nil {
		t.Errorf("postgres ssh/nemesis pause/a backend of n2 answered while paused")
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "resume", "--node", "n2"}, args...)...)
	if n2b, err := pgx.Connect(ctx, dsn(1)); err != nil {
		t.Errorf("postgres ssh/nemesis resume/n2 answers again: %v", err)
	} else {
		n2b.Close(ctx)
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
	// Every process of n1 is gone, not only its postmaster (once the
	// host's init has reaped them).
	n1 := hs.Dial(t, 0)
	if err := dockertest.Eventually(10*time.Second, func() error {
		if ps, _, err := n1.Run(ctx, "pgrep -u postgres -l || true"); err != nil || strings.TrimSpace(ps) != "" {
			return fmt.Errorf("postgres ssh/nemesis kill/no postgres process left on n1's host: %q, %v", ps, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
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
