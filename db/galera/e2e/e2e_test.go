package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runGalera runs eccheck test --db galera (see [dockertest.RunSystem]).
func runGalera(t *testing.T, args ...string) (int, results.Report, history.History) {
	t.Helper()
	code, rep, _, h := dockertest.RunSystem(t, dockertest.Run{DB: "galera", Settings: []string{"galera_read", "galera_sync_wait", "galera_flush_log"},
		LogMarks: []string{"WSREP", "ready for connections"}}, args...)
	return code, rep, h
}

// lagRun runs the session workload with reads on the next node while the
// nemesis stops one node's applier (FLUSH TABLES WITH READ LOCK) for one
// interval (which the lag certainly holds half of after its start was
// recorded). It returns what runGalera does, the reads that asked the
// lagging node, while it certainly applied nothing, for a key their
// process had written (acknowledged) after the lag began (invoked within
// half the interval after the lag's start was recorded), and the end of
// that half interval.
func lagRun(t *testing.T, interval time.Duration, args ...string) (int, results.Report, []history.Operation, int64) {
	t.Helper()
	code, rep, h := runGalera(t, append([]string{"--galera-read", "other", "--workload", "session", "--nemesis", "lag", "--nemesis-cycles", "1",
		"--nemesis-interval", interval.String(), "--time-limit", "5m", "--rate", "300", "--seed", "3"}, args...)...)
	start, _ := dockertest.Window(t, h, "lag")
	var lagged string
	if err := json.Unmarshal([]byte(start.Value.String()), &struct{ Node *string }{&lagged}); err != nil || lagged == "" {
		t.Fatalf("galera/lag/setup: start-lag value %s names no node: %v", start.Value, err)
	}
	held := start.Time + int64(interval/2)
	ops := history.Pair(h)
	var blind []history.Operation
	for _, r := range ops {
		if r.F != "read" || r.Node != lagged || r.Call < start.Time || r.Call > held {
			continue
		}
		for _, w := range ops {
			if (w.F == "write" || w.F == "cas") && w.Type == history.OK && w.Process == r.Process && w.Key == r.Key && w.Call > start.Time && w.Return < r.Call {
				blind = append(blind, r)
				break
			}
		}
	}
	if len(blind) == 0 {
		t.Fatalf("galera/lag/setup: no read asked the lagging node %s after its own session's write during the lag; the property cannot be shown", lagged)
	}
	t.Logf("%d reads asked the lagging node %s after their session's own write during the lag", len(blind), lagged)
	return code, rep, blind, held
}

// wsrep_sync_wait 0 (as MariaDB ships) with reads on another node: the
// node whose applier is stopped serves reads that miss the write their
// own session had acknowledged (read-your-writes), and reads are stale.
func TestOtherReadsMissOwnWrites(t *testing.T) {
	code, rep, blind, held := lagRun(t, 4*time.Second, "--galera-sync-wait", "0")
	served := 0
	for _, r := range blind {
		if r.Type == history.OK && r.Return < held {
			served++
		}
	}
	if served == 0 {
		t.Fatalf("galera/sync-wait 0/setup: none of the %d reads was served while the node applied nothing", len(blind))
	}
	if code != dockertest.ExitInvalid {
		t.Fatalf("galera/sync-wait 0/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid", "linearizable": "invalid"})
	if p, ok := dockertest.Stat(rep, "staleness", "stale_p99_ms"); !ok || p <= 0 {
		t.Errorf("galera/sync-wait 0/stale p99 above 0: %v (%v)", p, ok)
	}
}

// wsrep_sync_wait 1 (causal reads) with reads on another node, under the
// same lag: each read waits until its node has applied what the cluster
// committed before it (none returns while the node applies nothing), so
// every session reads its own writes. Those reads wait until the
// operation timeout, short here so that each session asks the lagging
// node several times during the lag.
func TestCausalReadsSeeOwnWrites(t *testing.T) {
	_, rep, blind, held := lagRun(t, 10*time.Second, "--galera-sync-wait", "1", "--op-timeout", "500ms")
	for _, r := range blind {
		if r.Type == history.OK && r.Return < held {
			t.Errorf("galera/sync-wait 1/read %d on the lagging node returned %s while the node applied nothing", r.Invoke, r.Value)
		}
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "valid", "monotonic-reads": "valid"})
}

// A partition that cuts one node off: once it knows it is outside the
// primary component it refuses reads and writes (fail, WSREP's "not yet
// prepared node for application use"), nothing it refused is taken for
// done, and no acknowledged add is lost.
func TestPartitionedNodeRefuses(t *testing.T) {
	code, rep, h := runGalera(t, "--workload", "set", "--nemesis", "partition", "--partition-shapes", "isolate", "--nemesis-cycles", "1",
		"--nemesis-interval", "12s", "--time-limit", "5m", "--rate", "300", "--seed", "3")
	start, stop := dockertest.Window(t, h, "partition")
	var cut string
	for node, drops := range grudge(t, start) {
		if len(drops) == 2 {
			cut = node
		}
	}
	if cut == "" {
		t.Fatalf("galera/partition/setup: start-partition %s isolates no node", start.Value)
	}
	refused := 0
	for _, op := range history.Pair(h) {
		if op.Node == cut && op.Call > start.Time && op.Return < stop.Time && strings.Contains(op.Error, "WSREP has not yet prepared node") {
			if op.Type != history.Fail {
				t.Errorf("galera/partition/refusals are fail: op %d is %v", op.Invoke, op.Type)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("galera/partition/the cut-off node %s refused operations: none in the history", cut)
	}
	t.Logf("the cut-off node %s refused %d operations", cut, refused)
	if code != dockertest.ExitValid {
		t.Fatalf("galera/partition/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "valid"})
}

// grudge decodes a start-partition's value.
func grudge(t *testing.T, op history.Op) map[string][]string {
	t.Helper()
	var g map[string][]string
	if err := json.Unmarshal([]byte(op.Value.String()), &g); err != nil {
		t.Fatalf("galera/partition/setup: start-partition value %s: %v", op.Value, err)
	}
	return g
}

// crashed is what a stop-crash recorded: each node's recovered position
// and the node the cluster restarted from.
type crashed struct {
	Positions map[string]struct {
		Seqno int64 `json:"seqno"`
	} `json:"positions"`
	Bootstrapped string `json:"bootstrapped"`
}

// crashRun runs the set workload while the nemesis kills every node at
// once and, one interval later, restarts the cluster from its most
// advanced node. It checks the restart and returns the exit code, the
// report and when the crash was recorded (every node killed).
func crashRun(t *testing.T, flush string) (int, results.Report, int64) {
	t.Helper()
	code, rep, h := runGalera(t, "--workload", "set", "--galera-flush-log", flush, "--nemesis", "crash", "--nemesis-cycles", "1",
		"--nemesis-interval", "5s", "--time-limit", "5m", "--rate", "500", "--seed", "5")
	start, stop := dockertest.Window(t, h, "crash")
	var c crashed
	if err := json.Unmarshal([]byte(stop.Value.String()), &c); err != nil || len(c.Positions) != 3 || c.Bootstrapped == "" {
		t.Fatalf("galera/crash/restart recorded: %s: %v", stop.Value, err)
	}
	for node, p := range c.Positions {
		if p.Seqno > c.Positions[c.Bootstrapped].Seqno {
			t.Errorf("galera/crash/restarted from the most advanced node: from %s at %d, but %s was at %d", c.Bootstrapped, c.Positions[c.Bootstrapped].Seqno, node, p.Seqno)
		}
	}
	t.Logf("restart after the crash: %s", stop.Value)
	return code, rep, start.Time
}

// innodb_flush_log_at_trx_commit 1 (MariaDB's default): every node
// flushes each commit before it acknowledges it, so after every node is
// killed at once and the cluster restarts from its most advanced node,
// no acknowledged add is lost.
func TestCrashKeepsWritesWithFlushAtCommit(t *testing.T) {
	code, rep, _ := crashRun(t, "1")
	if code != dockertest.ExitValid {
		t.Fatalf("galera/crash flush 1/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "valid"})
}

// innodb_flush_log_at_trx_commit 0: InnoDB writes and flushes its log
// about once a second, so a crash of every node at once may lose the
// adds of the last second before it; what it loses (the test prints how
// many) must be no older than that.
func TestCrashLosesAtMostTheLastSecondWithoutFlush(t *testing.T) {
	_, rep, crash := crashRun(t, "0")
	lost, oldest := 0, int64(0)
	for _, r := range rep.Results {
		if r.Checker != "lost-writes" {
			continue
		}
		for _, a := range r.Anomalies {
			if a.Kind != "lost" || len(a.Ops) == 0 || a.Ops[0].Type != history.OK.String() {
				continue
			}
			lost++
			oldest = max(oldest, crash-a.Ops[0].Return)
		}
	}
	t.Logf("%d acknowledged adds lost, the oldest acknowledged %v before the crash was recorded", lost, time.Duration(oldest))
	if oldest > int64(2*time.Second) {
		t.Errorf("galera/crash flush 0/lost only the last second: an add acknowledged %v before the crash is lost", time.Duration(oldest))
	}
}
