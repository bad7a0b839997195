package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// These end-to-end tests run `eccheck test` on the in-process cluster and
// assert what each configuration must show. Each runs a few seconds.

type e2eReport struct {
	Verdict     string `json:"verdict"`
	FaultErrors []struct {
		F     string `json:"f"`
		Error string `json:"error"`
	} `json:"fault_errors"`
	Results []struct {
		Checker      string             `json:"checker"`
		Verdict      string             `json:"verdict"`
		AnomalyCount int                `json:"anomaly_count"`
		Summary      string             `json:"summary"`
		Reason       string             `json:"reason"`
		Stats        map[string]float64 `json:"stats"`
	} `json:"results"`
}

func runE2E(t *testing.T, args ...string) (int, e2eReport, string) {
	t.Helper()
	code, rep, dir := runE2EAnyVerdict(t, args...)
	if code == exitUnknown {
		t.Fatalf("eccheck test %v: exit %d (unknown); results %+v", args, code, rep.Results)
	}
	return code, rep, dir
}

func verdictOf(t *testing.T, rep e2eReport, checker string) string {
	t.Helper()
	for _, r := range rep.Results {
		if r.Checker == checker {
			return r.Verdict
		}
	}
	t.Fatalf("no result for %s in %+v", checker, rep.Results)
	return ""
}

func expectVerdicts(t *testing.T, rep e2eReport, want map[string]string) {
	t.Helper()
	for checker, v := range want {
		if got := verdictOf(t, rep, checker); got != v {
			t.Errorf("%s: %s, want %s; results %+v", checker, got, v, rep.Results)
		}
	}
}

func TestE2ELWWPartitionsBreakSessions(t *testing.T) {
	code, rep, _ := runE2E(t, "--mode", "lww", "--w", "1", "--r", "1", "--workload", "session", "--nemesis", "partition", "--nemesis-cycles", "2", "--seed", "11")
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d", code, exitInvalid)
	}
	expectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid", "monotonic-reads": "invalid", "linearizable": "invalid"})
}

func TestE2ELWWClockSkewLosesWrites(t *testing.T) {
	_, rep, _ := runE2E(t, "--mode", "lww", "--workload", "register", "--nemesis", "clock", "--clock-max", "5s", "--nemesis-cycles", "3", "--seed", "12")
	expectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
}

func TestE2ESetsLWWBlobLosesAddsORSetDoesNot(t *testing.T) {
	_, blob, _ := runE2E(t, "--mode", "lww", "--workload", "set", "--set-impl", "lww-blob", "--nemesis", "partition", "--nemesis-cycles", "2", "--seed", "13")
	expectVerdicts(t, blob, map[string]string{"lost-writes": "invalid"})
	_, orset, _ := runE2E(t, "--mode", "lww", "--workload", "set", "--set-impl", "orset", "--nemesis", "partition", "--nemesis-cycles", "2", "--seed", "13")
	expectVerdicts(t, orset, map[string]string{"lost-writes": "valid"})
}

func TestE2EPrimaryFailoverLosesWrites(t *testing.T) {
	_, rep, _ := runE2E(t, "--mode", "primary", "--workload", "register", "--nemesis", "partition", "--nemesis-interval", "3s", "--nemesis-cycles", "1", "--seed", "14")
	expectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
}

func TestE2ERaftIsLinearizableUnderFaults(t *testing.T) {
	for _, seed := range []string{"21", "22"} {
		t.Run("raft/seed-"+seed+"/valid", func(t *testing.T) {
			code, rep, dir := runE2E(t, "--mode", "raft", "--workload", "register,set", "--nemesis", "partition,kill,clock", "--nemesis-cycles", "3", "--seed", seed)
			if code != exitValid {
				t.Fatalf("exit %d, want 0; results %+v (run dir %s)", code, rep.Results, dir)
			}
		})
	}
}

// TestE2ESeedFixesTheFaultSchedule runs twice with one seed: the faults
// (not their exact times) must be the same.
func TestE2ESeedFixesTheFaultSchedule(t *testing.T) {
	faults := func() []string {
		_, _, dir := runE2E(t, "--mode", "lww", "--workload", "register", "--nemesis", "partition,clock,pause", "--nemesis-cycles", "2", "--seed", "99")
		h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, op := range history.Faults(h) {
			out = append(out, op.F+" "+op.Value.String())
		}
		return out
	}
	a, b := faults(), faults()
	if len(a) < 2 || strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("seed 99 gave different fault schedules:\n%s\n--\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
}

func TestE2ERunDirectoryIsComplete(t *testing.T) {
	code, rep, dir := runE2E(t, "--mode", "lww", "--w", "2", "--r", "2", "--workload", "register", "--nemesis", "none", "--time-limit", "2s", "--seed", "5")
	for _, f := range []string{"test.json", "history.jsonl", "results.json", "report.txt", "nodes/n1.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	var cfg struct {
		Seed    uint64 `json:"seed"`
		Version string `json:"version"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "test.json"))
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Seed != 5 || !strings.HasPrefix(cfg.Version, "eccheck ") {
		t.Errorf("test.json %s: want seed 5 and the version (%v)", b, err)
	}
	// `eccheck check RUN_DIR` gives the same verdict.
	code2, out, _ := runCLI(t, "check", dir, "-o", "json", "-q")
	var rep2 e2eReport
	json.Unmarshal([]byte(out), &rep2)
	if code2 != code || rep2.Verdict != rep.Verdict {
		t.Fatalf("re-check: exit %d verdict %s; the run gave exit %d verdict %s", code2, rep2.Verdict, code, rep.Verdict)
	}
}

// Raft applies each list-append transaction as one log entry: under
// partitions and kills the history is strict-serializable.
func TestE2ERaftTransactionsStrictSerializable(t *testing.T) {
	code, rep, dir := runE2E(t, "--mode", "raft", "--workload", "list-append", "--nemesis", "partition,kill", "--nemesis-cycles", "2", "--seed", "31")
	expectTransactionsValid(t, code, rep, dir)
}

// expectTransactionsValid holds a run to exit 0 with the transactional
// checker valid over at least 100 committed transactions.
func expectTransactionsValid(t *testing.T, code int, rep e2eReport, dir string) {
	t.Helper()
	if code != exitValid {
		t.Fatalf("exit %d, want 0; results %+v (run dir %s)", code, rep.Results, dir)
	}
	expectVerdicts(t, rep, map[string]string{"transactional": "valid"})
	for _, r := range rep.Results {
		if n := r.Stats["ok"]; r.Checker == "transactional" && n < 100 {
			t.Fatalf("%v transactions checked", n)
		}
	}
}

// Last-write-wins with W=1 R=1 runs a transaction's micro-operations one
// by one, each append a read and a write of the key's list. With one node
// cut off, both sides append to the same key and read their own lists;
// after the heal one list wins, so the loser's reads are of an order the
// final lists do not extend: by construction, once the history shows both
// sides appending to one key and reading their own appends during the
// cut, which the test finds first.
func TestE2ELWWTransactionsDiverge(t *testing.T) {
	code, rep, dir := runE2E(t, "--mode", "lww", "--w", "1", "--r", "1", "--workload", "list-append", "--nemesis", "partition", "--partition-shapes", "isolate",
		"--nemesis-interval", "3s", "--nemesis-cycles", "1", "--seed", "32")
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var start, stop history.Op
	for _, op := range history.Faults(h) {
		switch {
		case op.F == "start-partition" && start.F == "":
			start = op
		case op.F == "stop-partition" && stop.F == "":
			stop = op
		}
	}
	var g map[string][]string
	if err := json.Unmarshal([]byte(start.Value.String()), &g); err != nil || stop.F == "" {
		t.Fatalf("setup: no partition carried out: %s, %v", start.Value, err)
	}
	cut := ""
	for n, drops := range g {
		if len(drops) == 2 {
			cut = n
		}
	}
	// Per key and side (the cut-off node or not): the elements read
	// back on that side that it appended during the cut.
	type side struct {
		key string
		cut bool
	}
	appended := map[string]side{} // key/element -> side
	seenOwn := map[side]bool{}
	ops := history.Pair(h)
	for _, op := range ops {
		if op.F != "txn" || op.Type != history.OK || op.Call < start.Time || op.Return > stop.Time {
			continue
		}
		items, _ := op.Value.AsList()
		for _, it := range items {
			parts, _ := it.AsList()
			if f, _ := parts[0].AsString(); f == "append" {
				k, _ := parts[1].AsString()
				appended[k+"/"+parts[2].String()] = side{k, op.Node == cut}
			}
		}
	}
	for _, op := range ops {
		if op.F != "txn" || op.Type != history.OK || op.Call < start.Time || op.Return > stop.Time {
			continue
		}
		items, _ := op.Value.AsList()
		for _, it := range items {
			parts, _ := it.AsList()
			if f, _ := parts[0].AsString(); f != "r" {
				continue
			}
			k, _ := parts[1].AsString()
			elems, _ := parts[2].AsList()
			for _, e := range elems {
				if s, ok := appended[k+"/"+e.String()]; ok && s.cut == (op.Node == cut) {
					seenOwn[s] = true
				}
			}
		}
	}
	both := 0
	for s := range seenOwn {
		if s.cut && seenOwn[side{s.key, false}] {
			both++
		}
	}
	if both == 0 {
		t.Fatalf("setup: no key on which both sides of the cut appended and read their own appends; the divergence cannot be shown (run dir %s)", dir)
	}
	t.Logf("%d keys appended and read on both sides of the cut", both)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1; results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"transactional": "invalid"})
}
