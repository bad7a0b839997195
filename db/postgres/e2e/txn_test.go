package e2e

import (
	"path/filepath"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/run"
)

// The list-append workload at serializable isolation: the transactional
// checker finds the history strict-serializable (exit 0), having checked
// transactions of several micro-operations, and test.json records the
// isolation level.
func TestListAppendSerializable(t *testing.T) {
	code, rep, dir := runPostgresDir(t, "primary", "--workload", "list-append", "--pg-isolation", "serializable", "--time-limit", "8s", "--seed", "3")
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/list-append serializable/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameTransactional: "valid"})
	if n, ok := dockertest.Stat(rep, checkers.NameTransactional, "ok"); !ok || n < 100 {
		t.Errorf("postgres/list-append serializable/transactions checked: %v", n)
	}
	cfg, err := run.ReadConfig(dir)
	if err != nil || cfg.Settings["pg_isolation"] != "serializable" {
		t.Errorf("postgres/list-append/test.json records pg_isolation: %v, %+v", err, cfg.Settings)
	}
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	multi, failed := 0, 0
	for _, op := range history.Pair(h) {
		if op.F != "txn" {
			t.Fatalf("postgres/list-append/only transactions: op %d is %s", op.Invoke, op.F)
		}
		if items, _ := op.Value.AsList(); len(items) > 1 && op.Type == history.OK {
			multi++
		}
		if op.Type == history.Fail {
			failed++
		}
	}
	t.Logf("%d transactions of several micro-operations committed, %d failed (serialization failures)", multi, failed)
	if multi == 0 {
		t.Errorf("postgres/list-append/no transaction of several micro-operations committed")
	}
}

// Read committed, checked for read committed: Postgres never shows G0,
// G1a, G1b or G1c (exit 0), whatever else the run shows.
func TestListAppendReadCommitted(t *testing.T) {
	code, rep, dir := runPostgresDir(t, "primary", "--workload", "list-append", "--pg-isolation", "read-committed", "--consistency-model", "read-committed", "--time-limit", "8s", "--seed", "4")
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/list-append read committed/exit 0: exit %d, results %+v", code, rep.Results)
	}
	// The run recorded its model, and a re-check holds it to the same.
	if cfg, err := run.ReadConfig(dir); err != nil || cfg.ConsistencyModel != "read-committed" {
		t.Errorf("postgres/list-append/test.json records consistency_model: %v, %q", err, cfg.ConsistencyModel)
	}
	if again, out, errOut := dockertest.CLI(t, "check", dir, "-q"); again != code {
		t.Errorf("postgres/list-append/re-check exit %d, want the run's %d: %s %s", again, code, out, errOut)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameTransactional: "valid"})
	for _, r := range rep.Results {
		t.Logf("%s: %s", r.Checker, r.Summary)
	}
}

// Repeatable read is snapshot isolation in Postgres: checked for snapshot
// isolation the run is valid (write skew, G2-item, would be allowed;
// TestPostgresTransactionsByConstruction in db/postgres causes one).
func TestListAppendRepeatableReadIsSnapshotIsolation(t *testing.T) {
	code, rep, _ := runPostgresDir(t, "primary", "--workload", "list-append", "--pg-isolation", "repeatable-read", "--consistency-model", "snapshot-isolation", "--time-limit", "8s", "--seed", "5")
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/list-append repeatable read/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameTransactional: "valid"})
	for _, r := range rep.Results {
		t.Logf("%s: %s", r.Checker, r.Summary)
	}
}

// The rw-register workload at serializable isolation: strict-serializable
// (exit 0), transactions of several micro-operations checked, reads of
// registers never written null, and reads of written ones values some
// transaction of the run wrote to that key.
func TestRWRegisterSerializable(t *testing.T) {
	code, rep, dir := runPostgresDir(t, "primary", "--workload", "rw-register", "--pg-isolation", "serializable", "--time-limit", "8s", "--seed", "6")
	if code != dockertest.ExitValid {
		t.Fatalf("postgres/rw-register serializable/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{checkers.NameTransactional: "valid"})
	if n, ok := dockertest.Stat(rep, checkers.NameTransactional, "ok"); !ok || n < 100 {
		t.Errorf("postgres/rw-register serializable/transactions checked: %v", n)
	}
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{} // key/value of every write invoked
	ops := history.Pair(h)
	for _, op := range ops {
		items, _ := op.Value.AsList()
		for _, it := range items {
			if parts, _ := it.AsList(); len(parts) == 3 && mopF(parts) == "w" {
				written[parts[1].String()+"/"+parts[2].String()] = true
			}
		}
	}
	multi, reads, null := 0, 0, 0
	for _, op := range ops {
		if op.F != "txn" {
			t.Fatalf("postgres/rw-register/only transactions: op %d is %s", op.Invoke, op.F)
		}
		if op.Type != history.OK {
			continue
		}
		items, _ := op.Value.AsList()
		if len(items) > 1 {
			multi++
		}
		for _, it := range items {
			parts, _ := it.AsList()
			if mopF(parts) != "r" {
				continue
			}
			reads++
			switch {
			case parts[2].IsNil():
				null++
			case !written[parts[1].String()+"/"+parts[2].String()]:
				t.Errorf("postgres/rw-register/reads return written values: %s read in op %d, which no transaction wrote", it, op.Invoke)
			}
		}
	}
	t.Logf("%d transactions of several micro-operations committed; %d reads, %d of never-written keys", multi, reads, null)
	if multi == 0 || reads == 0 {
		t.Errorf("postgres/rw-register/no transaction of several micro-operations, or no read, committed")
	}
}

// mopF is a micro-operation's f.
func mopF(parts []history.Value) string {
	f, _ := parts[0].AsString()
	return f
}
