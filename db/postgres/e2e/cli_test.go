package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
)

// TestMatrix runs a matrix over Postgres in Docker, replicas replaying
// 50 ms late: asynchronous replica reads break read-your-writes, LSN
// fencing keeps it, remote_apply is valid. The expectations say so.
func TestMatrix(t *testing.T) {
	dockertest.Engine(t)
	out := t.TempDir()
	expect := filepath.Join(out, "expect.txt")
	os.WriteFile(expect, []byte("async:replica x none read-your-writes invalid\nasync:lsn-fence x none read-your-writes valid\nremote_apply:replica x none valid\n"), 0o644)
	code, stdout, stderr := dockertest.CLI(t, "matrix", "--out", out, "--workload", "session", "--nemesis-interval", "1s", "--recovery", "1s", "--seed", "11",
		"--db", "postgres", "--cluster", "docker", "--modes", "async:replica,async:lsn-fence,remote_apply:replica", "--nemesis", "none", "--pg-apply-delay", "50ms", "--time-limit", "4s", "-o", "json", "-q", "--expect", expect)
	var card results.Card
	if err := json.Unmarshal([]byte(stdout), &card); err != nil {
		t.Fatalf("exit %d; stdout is not JSON: %v\n%s\n%s", code, err, stdout, stderr)
	}
	if code != dockertest.ExitValid || len(card.Cells) != 3 || len(card.Expectations) != 3 {
		t.Fatalf("matrix/postgres/exit 0 with 3 cells, 3 expectations holding: exit %d, %+v\n%s", code, card, stderr)
	}
	for _, cell := range card.Cells {
		p99, ok := cell.Stats["staleness"]
		if !ok || (cell.Config == "async:replica" && p99 <= 0) || (cell.Config == "remote_apply:replica" && p99 != 0) {
			t.Errorf("matrix/postgres/%s stale p99 (above 0 with async replica reads, 0 with remote_apply): %v, %v", cell.Config, p99, ok)
		}
	}
}

// TestNemesis starts a Postgres cluster with 'cluster up --db
// postgres --fake-time' and drives it by hand: a clock offset shows in
// clock_timestamp() on that node, and 'nemesis failover' promotes a
// replica, which then takes writes while the old primary stays down.
func TestNemesis(t *testing.T) {
	dockertest.Engine(t)
	name := "nempg-" + dockertest.ShortID()
	t.Cleanup(func() {
		if code, _, stderr := dockertest.CLI(t, "cluster", "down", "--cluster-name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
	})
	code, stdout, stderr := dockertest.CLI(t, "cluster", "up", "--cluster-name", name, "--db", "postgres", "--fake-time")
	if code != 0 || !strings.Contains(stdout, "n2: postgres://postgres@") {
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
		return dockertest.CLI(t, append([]string{"nemesis", args[0], "--cluster-name", name}, args[1:]...)...)
	}
	if code, out, errOut := nem("clock", "--node", "n2", "--offset", "1h"); code != 0 || !strings.Contains(out, "set the clock of n2") {
		t.Fatalf("nemesis clock: exit %d %q %s", code, out, errOut)
	}
	var ts time.Time
	if err := query("n2", "SELECT clock_timestamp()", &ts); err != nil || time.Until(ts) < 59*time.Minute {
		t.Fatalf("n2's clock after nemesis clock 1h: %v ahead (%v)", time.Until(ts), err)
	}
	if code, _, errOut := nem("failover", "--to", "n9"); code != dockertest.ExitUsage || !strings.Contains(errOut, "--to n9: not a replica") {
		t.Errorf("nemesis failover --to n9: exit %d %s, want a usage error", code, errOut)
	}
	code, out, errOut := nem("failover", "--to", "n3")
	if code != 0 || !strings.Contains(out, "failover: n1 killed for good, n3 promoted; replicas now n2") {
		t.Fatalf("nemesis failover --to n3: exit %d %q %s", code, out, errOut)
	}
	if err := query("n3", "CREATE TABLE after_failover (x int)"); err != nil {
		t.Fatalf("write on the promoted n3: %v", err)
	}
	if code, out, _ := dockertest.CLI(t, "cluster", "status", "--cluster-name", name); code != 0 || !regexp.MustCompile(`n1\s+exited`).MatchString(out) || !regexp.MustCompile(`n3\s+primary`).MatchString(out) || !regexp.MustCompile(`n2\s+replica`).MatchString(out) {
		t.Errorf("cluster status after the failover: exit %d, want n1 exited, n2 replica, n3 primary:\n%s", code, out)
	}
	if code, _, errOut := nem("failover", "--to", "n1"); code != dockertest.ExitUsage {
		t.Errorf("nemesis failover --to n1 (the old primary): exit %d %s, want a usage error", code, errOut)
	}
	if code, out, errOut := nem("rejoin", "--node", "n1"); code != 0 || !strings.Contains(out, "n1 rejoined as a replica of n3 (pg_rewind)") {
		t.Fatalf("nemesis rejoin --node n1: exit %d %q %s", code, out, errOut)
	}
	var n int
	if err := query("n1", "SELECT count(*) FROM pg_class WHERE relname = 'after_failover'", &n); err != nil || n != 1 {
		t.Errorf("n1 after the rejoin has the table made on n3: %d, %v", n, err)
	}
	code, out, errOut = nem("failover")
	m := regexp.MustCompile(`n3 killed for good, (n\d) promoted`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("a second failover after the rejoin: exit %d %q %s", code, out, errOut)
	}
	primary := m[1]

	// The primary killed by hand: status, logs and faults still work;
	// a failover says there is no primary; the primary comes back.
	if code, out, errOut := nem("kill", "--node", primary); code != 0 {
		t.Fatalf("nemesis kill --node %s (the primary): exit %d %q %s", primary, code, out, errOut)
	}
	if code, out, errOut := dockertest.CLI(t, "cluster", "status", "--cluster-name", name); code != 0 || !regexp.MustCompile(primary+`\s+exited`).MatchString(out) {
		t.Errorf("cluster status with the primary down: exit %d, want %s exited:\n%s%s", code, primary, out, errOut)
	}
	if code, out, errOut := dockertest.CLI(t, "cluster", "logs", "--cluster-name", name, primary); code != 0 || !strings.Contains(out, "database system") {
		t.Errorf("cluster logs %s with it down: exit %d %s", primary, code, errOut)
	}
	if code, _, errOut := nem("failover"); code == 0 || !strings.Contains(errOut, "no running node is a primary") {
		t.Errorf("nemesis failover with no primary: exit %d %s, want an error saying there is none", code, errOut)
	}
	if code, out, errOut := nem("start", "--node", primary); code != 0 || !strings.Contains(out, "started "+primary) {
		t.Fatalf("nemesis start --node %s: exit %d %q %s", primary, code, out, errOut)
	}
	if code, out, _ := dockertest.CLI(t, "cluster", "status", "--cluster-name", name); code != 0 || !regexp.MustCompile(primary+`\s+primary`).MatchString(out) {
		t.Errorf("cluster status after the primary's restart: exit %d, want %s primary:\n%s", code, primary, out)
	}
}
