package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/docker"
)

// These end-to-end tests run `eccheck test --cluster docker --db postgres`:
// a primary and two streaming replicas. They skip when no Docker engine
// answers (or with -short), and fail instead with ECCHECK_REQUIRE_DOCKER=1.

// postgresImage makes sure the postgres image exists, building it when
// missing.
func postgresImage(t *testing.T, c *docker.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := c.ImageFor(ctx, docker.RolePostgres); err == nil {
		return
	}
	if _, err := c.BuildPostgres(ctx, docker.BuildOptions{}); err != nil {
		t.Fatalf("postgres image: %v", err)
	}
}

// runPostgresE2E runs eccheck test --db postgres under a cluster name of
// its own and checks test.json, the saved node logs and that nothing was
// left behind.
func runPostgresE2E(t *testing.T, read string, args ...string) (int, e2eReport) {
	t.Helper()
	c := dockerEngine(t)
	postgresImage(t, c)
	name := "e2e-pg-" + shortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	code, rep, dir := runE2E(t, append([]string{"--cluster", "docker", "--cluster-name", name, "--db", "postgres", "--pg-read", read}, args...)...)
	if dir == "" {
		t.Fatalf("postgres/run directory/exists: exit %d", code)
	}
	sync := "async"
	for i, a := range args {
		if a == "--pg-sync" && i+1 < len(args) {
			sync = args[i+1]
		}
	}
	var cfg testConfig
	b, err := os.ReadFile(filepath.Join(dir, "test.json"))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil || cfg.DB != "postgres" || cfg.PGSync != sync || cfg.PGRead != read || len(cfg.Nemesis) != 0 {
		t.Errorf("postgres/test.json/db, pg_sync, pg_read recorded, no nemesis: %v, %+v", err, cfg)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		b, err := os.ReadFile(filepath.Join(dir, "nodes", n+".log"))
		if err != nil || !strings.Contains(string(b), "database system is ready") {
			t.Errorf("postgres/node log %s/saved: %v, %q", n, err, b)
		}
	}
	if left := leftovers(t, c, name); len(left) > 0 {
		t.Errorf("postgres/teardown/nothing left: %s", strings.Join(left, "; "))
	}
	return code, rep
}

func TestE2EPostgresPrimaryReadsValid(t *testing.T) {
	code, rep := runPostgresE2E(t, "primary", "--workload", "session", "--time-limit", "6s", "--seed", "3")
	if code != exitValid {
		t.Fatalf("postgres/primary reads/exit 0: exit %d, results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid"})
}

// With every replica replaying commits 50 ms late, a session that reads
// its own write from its replica right after the acknowledgement misses
// it; LSN fencing waits for the replica and never does.
func TestE2EPostgresReplicaLagBreaksReadYourWrites(t *testing.T) {
	code, rep := runPostgresE2E(t, "replica", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "50ms")
	if code != exitInvalid {
		t.Fatalf("postgres/replica reads with lag/exit 1: exit %d, results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid"})
}

// Fencing guards a session's own writes only: other sessions' writes still
// arrive 50 ms late on a replica, so the history stays not linearizable
// (exit 1) while read-your-writes and monotonic reads hold.
func TestE2EPostgresLSNFenceRestoresReadYourWrites(t *testing.T) {
	code, rep := runPostgresE2E(t, "lsn-fence", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "50ms")
	if code != exitInvalid {
		t.Fatalf("postgres/lsn-fence with lag/exit 1 (not linearizable): exit %d, results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid", "linearizable": "invalid"})
}

// With remote_apply the primary acknowledges a commit only once every
// replica (all synchronous standbys here) has applied it, 50 ms delay
// included, so replica reads are never stale: the whole history is
// linearizable.
func TestE2EPostgresRemoteApplyReplicaReadsValid(t *testing.T) {
	code, rep := runPostgresE2E(t, "replica", "--pg-sync", "remote_apply", "--workload", "session", "--time-limit", "6s", "--seed", "3", "--pg-apply-delay", "50ms")
	if code != exitValid {
		t.Fatalf("postgres/remote_apply replica reads with lag/exit 0: exit %d, results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid", "linearizable": "valid"})
}

func TestPostgresFlagsUsage(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"--db postgres --cluster docker --nemesis partition", "faults on Postgres nodes are not built yet"},
		{"--db postgres", "add --cluster docker"},
		{"--db postgres --cluster docker --pg-read nearest", "--pg-read"},
		{"--db postgres --cluster docker --pg-sync quorum", "--pg-sync"},
		{"--db postgres --cluster docker --nodes 1 --pg-read replica", "needs a replica"},
	} {
		code, _, stderr := runCLI(t, append([]string{"test", "--out", t.TempDir()}, strings.Fields(tc.name)...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("flags/%s/usage error naming %q: exit %d, %s", tc.name, tc.want, code, stderr)
		}
	}
}
