package run

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/results"
)

func checklistRun(settings map[string]any, nemesis []string, retry int, keys bool, traces bool, rs ...checkers.Result) ChecklistRun {
	return ChecklistRun{Dir: "runs/x", Traces: traces,
		Config: Config{DB: "ecstore", Settings: settings, Nemesis: nemesis, Retry: retry, IdempotencyKeys: keys},
		Report: results.NewReport("h", "register", 10, rs, nil)}
}

func res(name string, v checkers.Verdict, anomalies int, stats map[string]float64) checkers.Result {
	return checkers.Result{Checker: name, Verdict: v, AnomalyCount: anomalies, Stats: stats}
}

// Each question is answered from the runs that can answer it, and says
// which run would when none can.
func TestChecklist(t *testing.T) {
	lww := checklistRun(map[string]any{"mode": "lww", "sessions": false}, []string{"partition"}, 0, false, false,
		res(checkers.NameReadYourWrites, checkers.Invalid, 12, nil),
		res(checkers.NameStaleness+" (register)", checkers.Invalid, 3, map[string]float64{"stale_p99_ms": 210, "stale_max_ms": 730, "max_staleness_ms": 500, "reads_beyond_max": 3}),
		res(checkers.NameLostWrites, checkers.Valid, 0, map[string]float64{"lost": 0}))
	sessions := checklistRun(map[string]any{"mode": "lww", "sessions": true}, []string{"partition"}, 0, false, true,
		res(checkers.NameReadYourWrites, checkers.Valid, 0, nil))
	retried := checklistRun(map[string]any{"mode": "lww"}, nil, 2, false, false,
		res(checkers.NameDuplicates, checkers.Invalid, 2, map[string]float64{"retried": 14}))

	byQ := func(as []Answer) map[string]Answer {
		m := map[string]Answer{}
		for _, a := range as {
			m[a.Question] = a
		}
		return m
	}
	sagas := checklistRun(map[string]any{"mode": "raft"}, []string{"partition", "kill"}, 0, false, false,
		res(checkers.NameSaga, checkers.Invalid, 4, map[string]float64{"sagas": 340, "completed": 251, "compensated": 85}))
	mvr := checklistRun(map[string]any{"mode": "mvr"}, []string{"partition", "clock"}, 0, false, false,
		res(checkers.NameLostWrites, checkers.Valid, 0, map[string]float64{"lost": 0, "reads_with_siblings": 57, "siblings_max": 3}))
	all := byQ(Checklist([]ChecklistRun{lww, sessions, retried, sagas, mvr}))
	if a := all[QStaleness]; !a.Answered || !strings.Contains(a.Answer, "730.0 ms") || !strings.Contains(strings.Join(a.Lines, "\n"), "--max-staleness 500 ms: 3 reads beyond it") {
		t.Errorf("staleness: %+v", a)
	}
	if a := all[QReadYourWrites]; !a.Answered || !strings.Contains(a.Answer, "sessions=true") {
		t.Errorf("read-your-writes: the answer should name the setting that fixed it: %+v", a)
	}
	if a := all[QIdempotency]; !a.Answered || !strings.Contains(strings.Join(a.Lines, "\n"), "--retry 2 without idempotency keys: 14 requests retried, 2 reads show a request applied twice") ||
		!strings.Contains(strings.Join(a.Lines, "\n"), "sagas: 340, 251 completed, 85 compensated; 4 anomalies") {
		t.Errorf("idempotency: %+v", a)
	}
	if a := all[QTracing]; !a.Answered || len(a.Lines) != 1 {
		t.Errorf("tracing: %+v", a)
	}
	if a := all[QConflicts]; !a.Answered || !strings.Contains(a.Lines[0], "last write wins") ||
		!strings.Contains(strings.Join(a.Lines, "\n"), "siblings (dotted version vectors) until a write that saw them supersedes them; sets and counters are CRDTs; 0 acknowledged writes lost; 57 reads returned siblings (at most 3)") {
		t.Errorf("conflicts: %+v", a)
	}

	// One run without retries, staleness or traces: those say which run
	// would answer them.
	some := byQ(Checklist([]ChecklistRun{sessions}))
	for _, q := range []string{QStaleness, QIdempotency, QReconciliation} {
		if a := some[q]; a.Answered || a.Next == "" {
			t.Errorf("%s: answered %v with %q, next %q: want the run that would answer it", q, a.Answered, a.Answer, a.Next)
		}
	}
	var b bytes.Buffer
	if err := WriteChecklist(&b, Checklist([]ChecklistRun{sessions}), 1, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not answered by these runs; a run with retries measures it") {
		t.Errorf("markdown:\n%s", b.String())
	}
}

// FindRuns takes a run directory, or the cells below a matrix's, and
// refuses a directory with no run.
func TestFindRuns(t *testing.T) {
	root := t.TempDir()
	for _, cell := range []string{"raft-x-none/t1", "lww-x-none/t1"} {
		dir := filepath.Join(root, cell)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := (Dir{Path: dir}).WriteConfig(Config{DB: "ecstore"}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, FileResults), []byte(`{"schema":1,"source":"h","workload":"register","ops":1,"verdict":"valid","results":[]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := FindRuns([]string{root})
	if err != nil || len(runs) != 2 {
		t.Fatalf("found %d runs, %v; want the 2 cells", len(runs), err)
	}
	if _, err := FindRuns([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "holds no run") {
		t.Fatalf("an empty directory: %v", err)
	}
}
