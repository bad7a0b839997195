package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/etcd"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/workload"
)

// TestClusterAndNemesis starts three members with 'cluster up --db
// etcd' and drives them by hand: status names one leader; the leader cut
// off loses it to one of the others while it keeps answering as "no
// leader"; after the heal a write through any member is read back on
// every member; a killed member shows as exited and rejoins on start;
// clock faults are refused before anything runs.
func TestClusterAndNemesis(t *testing.T) {
	dockertest.Engine(t)
	name := "nemetcd-" + dockertest.ShortID()
	t.Cleanup(func() {
		if code, _, stderr := dockertest.CLI(t, "cluster", "down", "--cluster-name", name); code != 0 {
			t.Errorf("cleanup: cluster down exit %d: %s", code, stderr)
		}
	})
	code, stdout, stderr := dockertest.CLI(t, "cluster", "up", "--cluster-name", name, "--db", "etcd")
	endpoint := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if n, u, ok := strings.Cut(line, ": http://"); ok {
			endpoint[n] = u
		}
	}
	if code != 0 || len(endpoint) != 3 {
		t.Fatalf("cluster up --db etcd: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	status := func() map[string]string {
		t.Helper()
		code, out, errOut := dockertest.CLI(t, "cluster", "status", "--cluster-name", name)
		if code != 0 {
			t.Fatalf("cluster status: exit %d %s", code, errOut)
		}
		roles := map[string]string{}
		for _, m := range regexp.MustCompile(`(?m)^(n\d)\s+(leader|follower|no leader|no answer|exited|paused)\s`).FindAllStringSubmatch(out, -1) {
			roles[m[1]] = m[2]
		}
		return roles
	}
	leaderOf := func(roles map[string]string) []string {
		var out []string
		for n, r := range roles {
			if r == "leader" {
				out = append(out, n)
			}
		}
		return out
	}
	roles := status()
	leaders := leaderOf(roles)
	if len(roles) != 3 || len(leaders) != 1 {
		t.Fatalf("cluster status: roles %v, want three members and one leader", roles)
	}
	old := leaders[0]
	nem := func(args ...string) {
		t.Helper()
		if code, out, errOut := dockertest.CLI(t, append([]string{"nemesis", args[0], "--cluster-name", name}, args[1:]...)...); code != 0 {
			t.Fatalf("nemesis %s: exit %d %q %s", strings.Join(args, " "), code, out, errOut)
		}
	}
	nem("partition", "--shape", "isolate", "--node", old)
	if err := dockertest.Eventually(30*time.Second, func() error {
		roles := status()
		if l := leaderOf(roles); len(l) != 1 || l[0] == old || roles[old] != "no leader" {
			return fmt.Errorf("roles %v", roles)
		}
		return nil
	}); err != nil {
		t.Fatalf("the leader %s cut off: want another leader and %s with no leader: %v", old, old, err)
	}
	nem("heal")

	client := func(node string) *etcd.Client {
		c, err := etcd.NewClient([]string{endpoint[node]}, etcd.ClientOptions{Workload: workload.Register, Timeout: 2 * time.Second, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	do := func(node, f string, v history.Value) history.Op {
		return client(node).Invoke(t.Context(), history.Op{Process: 0, Type: history.Invoke, F: f, Key: "k", Value: v})
	}
	if err := dockertest.Eventually(30*time.Second, func() error {
		if got := do(old, "write", history.Int(1)); got.Type != history.OK {
			return fmt.Errorf("write through %s after the heal: %v %s", old, got.Type, got.Error)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for n := range endpoint {
		if got := do(n, "read", history.Nil()); got.Type != history.OK || !got.Value.Equal(history.Int(1)) {
			t.Errorf("read on %s after the heal: %v %s %s, want 1", n, got.Type, got.Value, got.Error)
		}
	}

	nem("kill", "--node", "n2")
	if roles := status(); roles["n2"] != "exited" {
		t.Errorf("cluster status with n2 killed: %v, want n2 exited", roles)
	}
	// n2 may have been the leader: the others elect one first.
	if err := dockertest.Eventually(30*time.Second, func() error {
		if got := do("n1", "write", history.Int(2)); got.Type != history.OK {
			return fmt.Errorf("write with n2 down (a majority is up): %v %s", got.Type, got.Error)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nem("start", "--node", "n2")
	if err := dockertest.Eventually(30*time.Second, func() error {
		if got := do("n2", "read", history.Nil()); got.Type != history.OK || !got.Value.Equal(history.Int(2)) {
			return fmt.Errorf("read on n2 after its start: %v %s %s", got.Type, got.Value, got.Error)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if code, _, errOut := dockertest.CLI(t, "test", "--cluster", "docker", "--db", "etcd", "--nemesis", "clock"); code != dockertest.ExitUsage || !strings.Contains(errOut, "libfaketime") {
		t.Errorf("test --db etcd --nemesis clock: exit %d %s, want a usage error saying why", code, errOut)
	}
}

// TestMatrix runs the etcd card's two read settings under partitions
// that cut one member off, with expectations: linearizable reads hold,
// and serializable reads lose no write. The matrix exits 0 only if both
// expectations hold. (It asserted that serializable reads are not
// linearizable too, and a CI run found them linearizable once: whether a
// read on the cut-off member returns a value older than one the majority
// wrote meanwhile depends on the timing of one machine. That anomaly is
// TestSerializableReadsStale's, which checks its precondition first.)
func TestMatrix(t *testing.T) {
	dockertest.Engine(t)
	out := t.TempDir()
	expect := filepath.Join(out, "expect.txt")
	os.WriteFile(expect, []byte("linearizable x partition valid\nserializable x partition lost-writes valid\n"), 0o644)
	code, stdout, stderr := dockertest.CLI(t, "matrix", "--out", out, "--db", "etcd", "--cluster", "docker", "--workload", "register",
		"--modes", "linearizable,serializable", "--nemesis", "partition", "--partition-shapes", "isolate", "--nemesis-interval", "3s",
		"--time-limit", "8s", "--concurrency", "9", "--rate", "45", "--op-timeout", "300ms", "--recovery", "1s", "--seed", "7", "-o", "json", "-q", "--expect", expect)
	var card results.Card
	if err := json.Unmarshal([]byte(stdout), &card); err != nil {
		t.Fatalf("exit %d; stdout is not JSON: %v\n%s\n%s", code, err, stdout, stderr)
	}
	if code != dockertest.ExitValid || len(card.Cells) != 2 || len(card.Expectations) != 2 {
		t.Fatalf("matrix/etcd/exit 0 with 2 cells, 2 expectations holding: exit %d, %+v\n%s", code, card, stderr)
	}
}
