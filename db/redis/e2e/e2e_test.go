package e2e

import (
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runRedis runs eccheck test --db redis (see [dockertest.RunSystem]): the
// node logs hold Redis's and its Sentinel's lines.
func runRedis(t *testing.T, args ...string) (int, results.Report, history.History) {
	t.Helper()
	code, rep, _, h := dockertest.RunSystem(t, dockertest.Run{DB: "redis", Settings: []string{"redis_read"},
		LogMarks: []string{"Ready to accept connections", "Sentinel ID"}}, args...)
	return code, rep, h
}

// allValid fails the test for each result that is not valid.
func allValid(t *testing.T, what string, rep results.Report) {
	t.Helper()
	for _, r := range rep.Results {
		if r.Verdict != "valid" {
			t.Errorf("%s/%s: %s: %s", what, r.Checker, r.Verdict, r.Summary)
		}
	}
}

// Every read on the primary, no faults: linearizable, nothing lost, the
// counter within bounds, exit 0.
func TestPrimaryReadsValid(t *testing.T) {
	code, rep, _ := runRedis(t, "--redis-read", "primary", "--workload", "register,set,counter", "--time-limit", "6s", "--seed", "3")
	if code != dockertest.ExitValid {
		t.Fatalf("redis/primary reads/exit 0: exit %d, results %+v", code, rep.Results)
	}
	allValid(t, "redis/primary reads", rep)
}

// Replica reads, each on the next replica in turn, while one replica is
// cut off from the primary (it still serves reads): a session that wrote
// to the primary reads the old value there (read-your-writes), after
// reading the new one on the other replica (monotonic reads). The test
// finds such reads in the history before asserting the verdicts.
func TestReplicaReadsStale(t *testing.T) {
	code, rep, h := runRedis(t, "--redis-read", "replica", "--workload", "session", "--nemesis", "lag", "--nemesis-cycles", "1",
		"--nemesis-interval", "3s", "--time-limit", "5m", "--rate", "2000", "--seed", "3")
	start, stop := dockertest.Window(t, h, "lag")
	lagged := start.Value.String()
	ops := history.Pair(h)
	stale := 0
	for _, r := range ops {
		if r.F != "read" || r.Type != history.OK || !strings.Contains(lagged, `"`+r.Node+`"`) || r.Call < start.Time || r.Call > stop.Time {
			continue
		}
		for _, w := range ops {
			if w.F == "write" && w.Type == history.OK && w.Process == r.Process && w.Key == r.Key && w.Call > start.Time && w.Return < r.Call && !w.Value.Equal(r.Value) {
				stale++
				break
			}
		}
	}
	if stale == 0 {
		t.Fatalf("redis/replica reads/setup: no read on the cut-off replica %s after its own session's write during the cut; the violation cannot be shown", lagged)
	}
	t.Logf("%d reads on the cut-off replica missed their session's own write", stale)
	if code != dockertest.ExitInvalid {
		t.Fatalf("redis/replica reads/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid", "monotonic-reads": "invalid"})
	if p, ok := dockertest.Stat(rep, "staleness", "stale_p99_ms"); !ok || p <= 0 {
		t.Errorf("redis/replica reads/stale p99 above 0: %v (%v)", p, ok)
	}
}

// failoverAdds runs the set workload while the nemesis cuts the primary
// off for 3 s, after which Sentinel promotes a replica and the old primary
// rejoins as its replica. It returns the exit code, the report, and the
// adds acknowledged and left open (info) while the old primary was cut
// off: the clients went on writing to it until Sentinel named the new
// one, at least for Sentinel's 2 s down-after period.
func failoverAdds(t *testing.T, args ...string) (code int, rep results.Report, acked, open int) {
	t.Helper()
	code, rep, h := runRedis(t, append([]string{"--redis-read", "primary", "--workload", "set", "--nemesis", "failover", "--nemesis-cycles", "1",
		"--nemesis-interval", "3s", "--time-limit", "5m", "--rate", "2000", "--seed", "3"}, args...)...)
	cut, failover := dockertest.Window(t, h, "failover")
	if !strings.Contains(failover.Value.String(), `"promoted":`) || !strings.Contains(failover.Value.String(), `"rejoined":`) {
		t.Fatalf("redis/failover/setup: no promotion and rejoin: %s", failover.Value)
	}
	for _, op := range history.Pair(h) {
		if op.F == "add" && op.Call > cut.Time && op.Call < cut.Time+2e9 {
			switch op.Type {
			case history.OK:
				acked++
			case history.Info:
				open++
			}
		}
	}
	t.Logf("adds invoked in the first 2 s of the cut: %d acknowledged, %d info", acked, open)
	return code, rep, acked, open
}

// Asynchronous replication: the old primary, cut off, acknowledges adds
// that no replica receives; the failover loses them.
func TestFailoverLosesWrites(t *testing.T) {
	code, rep, acked, _ := failoverAdds(t)
	if acked == 0 {
		t.Fatalf("redis/failover/setup: no add acknowledged while the primary was cut off; the loss cannot be shown")
	}
	if code != dockertest.ExitInvalid {
		t.Fatalf("redis/failover/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
	if ok, _ := lostAdds(rep); ok == 0 {
		t.Errorf("redis/failover/an acknowledged add among the lost: none (%+v)", rep.Results)
	}
}

// lostAdds counts the lost-writes anomalies of kind lost whose add was
// acknowledged, and those whose add was left open (info): an element a
// read saw, then gone.
func lostAdds(rep results.Report) (ok, info int) {
	for _, r := range rep.Results {
		if r.Checker != "lost-writes" {
			continue
		}
		for _, a := range r.Anomalies {
			if a.Kind != "lost" || len(a.Ops) == 0 {
				continue
			}
			switch a.Ops[0].Type {
			case history.OK.String():
				ok++
			case history.Info.String():
				info++
			}
		}
	}
	return ok, info
}

// With WAIT 1 after each add, the adds the cut-off primary took are info
// (WAIT saw no replica): the client was told they may not have been
// replicated, and no acknowledged add is lost, since Sentinel promotes the
// replica with the most data, which has every add a replica acknowledged.
// The adds still happen on the old primary, where readers see them, and
// are lost with it: when a read saw one, the lost-writes checker reports
// it as lost (seen, then gone), citing an info add. WAIT changes what the
// client is told, not what other clients read.
func TestFailoverWithWaitLosesNoAcknowledgedWrite(t *testing.T) {
	code, rep, acked, open := failoverAdds(t, "--redis-wait", "1")
	if open == 0 {
		t.Fatalf("redis/failover with WAIT 1/setup: no add left open while the primary was cut off")
	}
	if acked != 0 {
		t.Errorf("redis/failover with WAIT 1/no add acknowledged by the cut-off primary: %d", acked)
	}
	ok, info := lostAdds(rep)
	t.Logf("lost adds: %d acknowledged, %d left open by WAIT but seen by a read; exit %d", ok, info, code)
	if ok != 0 {
		t.Errorf("redis/failover with WAIT 1/no acknowledged add lost: %d (%+v)", ok, rep.Results)
	}
	if lost, _ := dockertest.Stat(rep, "lost-writes", "lost"); int(lost) != info {
		t.Errorf("redis/failover with WAIT 1/every lost add was info: %v lost, %d info among them", lost, info)
	}
	if want := dockertest.ExitValid; info > 0 {
		want = dockertest.ExitInvalid
		if code != want {
			t.Errorf("redis/failover with WAIT 1/exit %d with %d seen-then-lost adds, want %d", code, info, want)
		}
	} else if code != want {
		t.Errorf("redis/failover with WAIT 1/exit %d with nothing lost, want %d", code, want)
	}
}
