package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/docker"
)

// TestNemesisUsageErrors checks the errors found before any engine is
// asked: they exit 3.
func TestNemesisUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"partition/unknown shape/exit 3", []string{"nemesis", "partition", "--shape", "star"}, "want halves, isolate, ring, bridge, one-way"},
		{"partition/no shape nor grudge/exit 3", []string{"nemesis", "partition"}, "exactly one of"},
		{"partition/shape and grudge/exit 3", []string{"nemesis", "partition", "--shape", "halves", "--grudge", "n1=n2"}, "exactly one of"},
		{"delay/negative/exit 3", []string{"nemesis", "delay", "--node", "n1", "--ms", "-1"}, "want 0 or more"},
		{"loss/over 100/exit 3", []string{"nemesis", "loss", "--node", "n1", "--percent", "101"}, "want 0 to 100"},
		{"bandwidth/bad rate/exit 3", []string{"nemesis", "bandwidth", "--node", "n1", "--rate", "fast"}, "--rate"},
		{"cluster/bad name/exit 3", []string{"nemesis", "heal", "--cluster", "Bad Name"}, "cluster name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

// nemesisEngine skips a test without a Docker engine, unless
// ECCHECK_REQUIRE_DOCKER=1.
func nemesisEngine(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := docker.Connect(ctx)
	if err != nil {
		if os.Getenv("ECCHECK_REQUIRE_DOCKER") == "1" {
			t.Fatalf("ECCHECK_REQUIRE_DOCKER=1 but: %v", err)
		}
		t.Skipf("no Docker engine (set ECCHECK_REQUIRE_DOCKER=1 to fail instead): %v", err)
	}
	c.Close()
}

// TestNemesisDocker runs the nemesis subcommands against a 3-node cluster
// in containers (the images must have been built: eccheck images build).
func TestNemesisDocker(t *testing.T) {
	nemesisEngine(t)
	name := fmt.Sprintf("nem%d", time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if code, _, stderr := runCLI(t, "cluster", "down", "--name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
	})
	if code, _, stderr := runCLI(t, "cluster", "up", "--name", name, "--nodes", "3", "--mode", "lww"); code != 0 {
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
		{"partition/unknown node/exit 3", []string{"partition", "--shape", "isolate", "--node", "n9"}, exitUsage, "", "no node \"n9\""},
		{"partition/grudge with unknown node/exit 3", []string{"partition", "--grudge", "n1=n7"}, exitUsage, "", "no node \"n7\""},
		{"heal/after isolate/one line", []string{"heal"}, 0, "healed", ""},
		{"kill/n2/one line", []string{"kill", "--node", "n2"}, 0, "killed n2", ""},
		{"status/after kill/n2 stopped", []string{"status"}, 0, "stopped", ""},
		{"start/n2/one line", []string{"start", "--node", "n2"}, 0, "started n2", ""},
		{"kill/no node/exit 3", []string{"kill"}, exitUsage, "", "--node is required"},
		{"clock/n3 -5s/one line", []string{"clock", "--node", "n3", "--offset", "-5s"}, 0, "set the clock of n3 -5s off", ""},
		{"clock/n3 0/reset", []string{"clock", "--node", "n3", "--offset", "0"}, 0, "reset the clock of n3", ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"nemesis", s.args[0], "--cluster", name}, s.args[1:]...)...)
			if code != s.code || !strings.Contains(stdout, s.out) || !strings.Contains(stderr, s.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, stdout, stderr, s.code, s.out, s.err)
			}
			if s.code == 0 && s.args[0] != "status" && strings.Count(stdout, "\n") != 1 {
				t.Errorf("stdout %q: want one line", stdout)
			}
		})
	}
}

// TestNemesisPostgresDocker starts a Postgres cluster with 'cluster up --db
// postgres --fake-time' and drives it by hand: a clock offset shows in
// clock_timestamp() on that node, and 'nemesis failover' promotes a
// replica, which then takes writes while the old primary stays down.
func TestNemesisPostgresDocker(t *testing.T) {
	nemesisEngine(t)
	c := dockerEngine(t)
	postgresImage(t, c)
	name := fmt.Sprintf("nempg%d", time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if code, _, stderr := runCLI(t, "cluster", "down", "--name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
	})
	code, stdout, stderr := runCLI(t, "cluster", "up", "--name", name, "--db", "postgres", "--fake-time")
	if code != 0 || !strings.Contains(stdout, "n2: postgres://postgres@127.0.0.1:") {
		t.Fatalf("cluster up --db postgres: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	dsn := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if n, d, ok := strings.Cut(line, ": postgres://"); ok {
			dsn[n] = "postgres://" + d
		}
	}
	query := func(node, q string, dst ...any) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn[node])
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		if len(dst) == 0 {
			_, err = conn.Exec(ctx, q)
			return err
		}
		return conn.QueryRow(ctx, q).Scan(dst...)
	}
	nem := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"nemesis", args[0], "--cluster", name}, args[1:]...)...)
	}
	if code, out, errOut := nem("clock", "--node", "n2", "--offset", "1h"); code != 0 || !strings.Contains(out, "set the clock of n2") {
		t.Fatalf("nemesis clock: exit %d %q %s", code, out, errOut)
	}
	var ts time.Time
	if err := query("n2", "SELECT clock_timestamp()", &ts); err != nil || time.Until(ts) < 59*time.Minute {
		t.Fatalf("n2's clock after nemesis clock 1h: %v ahead (%v)", time.Until(ts), err)
	}
	if code, _, errOut := nem("failover", "--to", "n9"); code != exitUsage || !strings.Contains(errOut, "--to n9: not a replica") {
		t.Errorf("nemesis failover --to n9: exit %d %s, want a usage error", code, errOut)
	}
	code, out, errOut := nem("failover", "--to", "n3")
	if code != 0 || !strings.Contains(out, "failover: n1 killed for good, n3 promoted; replicas now n2") {
		t.Fatalf("nemesis failover --to n3: exit %d %q %s", code, out, errOut)
	}
	if err := query("n3", "CREATE TABLE after_failover (x int)"); err != nil {
		t.Fatalf("write on the promoted n3: %v", err)
	}
	if code, out, _ := runCLI(t, "cluster", "status", "--name", name); code != 0 || !regexp.MustCompile(`n1\s+exited`).MatchString(out) || !regexp.MustCompile(`n3\s+primary`).MatchString(out) || !regexp.MustCompile(`n2\s+replica`).MatchString(out) {
		t.Errorf("cluster status after the failover: exit %d, want n1 exited, n2 replica, n3 primary:\n%s", code, out)
	}
	if code, _, errOut := nem("failover", "--to", "n1"); code != exitUsage {
		t.Errorf("nemesis failover --to n1 (the old primary): exit %d %s, want a usage error", code, errOut)
	}
	if code, out, errOut := nem("rejoin", "--node", "n1"); code != 0 || !strings.Contains(out, "n1 rejoined as a replica of n3 (pg_rewind)") {
		t.Fatalf("nemesis rejoin --node n1: exit %d %q %s", code, out, errOut)
	}
	var n int
	if err := query("n1", "SELECT count(*) FROM pg_class WHERE relname = 'after_failover'", &n); err != nil || n != 1 {
		t.Errorf("n1 after the rejoin has the table made on n3: %d, %v", n, err)
	}
	if code, out, errOut := nem("failover"); code != 0 || !strings.Contains(out, "n3 killed for good") {
		t.Errorf("a second failover after the rejoin: exit %d %q %s", code, out, errOut)
	}
}
