package failover

import (
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

// runPG runs eccheck test --db postgres --pg-read read with args, checks
// what test.json recorded, the node logs and that nothing was left
// behind, and returns the exit code, the report and the history.
func runPG(t *testing.T, read string, args ...string) (int, results.Report, history.History) {
	t.Helper()
	code, rep, cfg, h := dockertest.RunSystem(t, dockertest.Run{DB: "postgres", Settings: []string{"pg_sync", "pg_read"}, LogMarks: []string{"database system is ready"}},
		append([]string{"--pg-read", read}, args...)...)
	if cfg.Settings["pg_read"] != read {
		t.Errorf("postgres/test.json/pg_read %q recorded: %v", read, cfg.Settings["pg_read"])
	}
	return code, rep, h
}

// Cut off from its replicas, an asynchronous primary goes on acknowledging
// adds that no replica receives; the failover then loses them, though
// every read went to the primary. The loss is made, not hoped for: the
// nemesis cuts the primary off before the adds it acknowledges during the
// cut, so no replica can have them, and the run lasts until the failover
// is done (one fault cycle), however slow the machine.
func TestAsyncFailoverLosesWrites(t *testing.T) {
	code, rep, h := runPG(t, "primary", "--workload", "set", "--nemesis", "failover", "--nemesis-cycles", "1", "--nemesis-interval", "3s", "--time-limit", "5m", "--seed", "3")
	cut, failover := failoverWindow(t, h)
	acked := 0
	for _, op := range history.Pair(h) {
		if op.F == "add" && op.Type == history.OK && op.Call > cut.Time && op.Return < failover.Time {
			acked++
		}
	}
	if acked == 0 {
		t.Fatalf("postgres/async failover/setup: no add was acknowledged while the primary was cut off (%s to %s); the loss cannot be shown", seconds(cut.Time), seconds(failover.Time))
	}
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres/async failover/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
	for _, r := range rep.Results {
		if r.Checker == "lost-writes" && r.Stats["lost"] < 1 {
			t.Errorf("postgres/async failover/lost adds counted: %v (%d acknowledged during the cut)", r.Stats, acked)
		}
	}
}

// failoverWindow returns the first start-failover (the primary cut off)
// and the stop-failover after it (the failover carried out), failing the
// test when either is missing or carries an error.
func failoverWindow(t *testing.T, h history.History) (cut, failover history.Op) {
	t.Helper()
	for _, op := range history.Faults(h) {
		switch {
		case op.F == "start-failover" && cut.F == "":
			cut = op
		case op.F == "stop-failover" && cut.F != "" && failover.F == "":
			failover = op
		}
	}
	if cut.F == "" || failover.F == "" || cut.Error != "" || failover.Error != "" || !strings.Contains(failover.Value.String(), `"promoted":`) {
		t.Fatalf("postgres/failover/setup: the history has no cut-off and promotion carried out: %+v, %+v", cut, failover)
	}
	return cut, failover
}

func seconds(ns int64) string { return time.Duration(ns).Round(time.Millisecond).String() }

// With remote_apply and every replica a synchronous standby, the cut-off
// primary acknowledges no add: each waits for the standbys until its
// timeout (1 s, within the 3 s cut by construction) cancels the wait, and
// Postgres's committed-locally warning makes it info. The failover loses
// no acknowledged add.
func TestSyncFailoverKeepsWrites(t *testing.T) {
	code, rep, h := runPG(t, "replica", "--pg-sync", "remote_apply", "--op-timeout", "1s", "--workload", "set", "--nemesis", "failover", "--nemesis-cycles", "1", "--nemesis-interval", "3s", "--time-limit", "5m", "--seed", "3")
	failoverWindow(t, h)
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/sync failover/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "valid"})
	warned, promoted := false, false
	for _, op := range h {
		warned = warned || op.Type == history.Info && strings.Contains(op.Error, "committed locally, might not be replicated")
		promoted = promoted || op.F == "stop-failover" && strings.HasPrefix(op.Value.String(), `{"killed":"n1","promoted":`)
	}
	if !warned || !promoted {
		t.Fatalf("postgres/sync failover/history has the failover (%v) and info adds with the committed-locally warning (%v)", promoted, warned)
	}
}

// With --pg-rejoin each old primary comes back as a replica (pg_rewind),
// so three nodes take three failovers (the third promotes a rejoined
// node; without the rejoins it would find no replica left). The run lasts
// until the three are done (three fault cycles), however long each
// failover and rejoin take on this machine. The adds each old primary
// acknowledged while cut off stay lost (pg_rewind throws them away), and
// the rejoined nodes' final reads show nothing that was not added.
func TestFailoverRejoin(t *testing.T) {
	code, rep, h := runPG(t, "primary", "--workload", "set", "--nemesis", "failover", "--pg-rejoin", "--nemesis-interval", "1s", "--nemesis-cycles", "3", "--time-limit", "10m", "--seed", "3")
	if code != dockertest.ExitInvalid {
		t.Fatalf("postgres/failover with rejoin/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
	rejoined := 0
	for _, op := range h {
		if op.F == "stop-failover" && strings.Contains(op.Value.String(), `"rejoined":`) {
			rejoined++
		}
	}
	if rejoined < 3 {
		t.Fatalf("postgres/failover with rejoin/three stop-failovers with a rejoined node: %d", rejoined)
	}
	for _, r := range rep.Results {
		if r.Checker == "lost-writes" && (r.Stats["unexpected"] > 0 || r.Stats["duplicated"] > 0) {
			t.Errorf("postgres/failover with rejoin/no unexpected or duplicated elements: %v", r.Stats)
		}
	}
}
