package main

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
)

// A run exported as OTLP JSON decodes with the OTLP types and holds a span
// for each of its operations and faults, and the run's.
func TestExportOTLP(t *testing.T) {
	_, _, dir := runE2E(t, "--time-limit", "3s", "--nemesis", "partition", "--workload", "register,counter", "--seed", "3")
	code, _, stderr := runCLI(t, "export", dir)
	if code != exitValid {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ops, faults := len(history.Pair(h)), len(results.FaultPeriods(h))
	if faults == 0 {
		t.Fatalf("the run had no fault: the test needs one (nemesis interval 1 s, 3 s)")
	}
	f, err := os.Open(filepath.Join(dir, "traces.otlp.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ju ptrace.JSONUnmarshaler
	spans, faultSpans := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		td, err := ju.UnmarshalTraces(sc.Bytes())
		if err != nil {
			t.Fatalf("line does not decode as OTLP JSON: %v", err)
		}
		spans += td.SpanCount()
		rs := td.ResourceSpans()
		for i := 0; i < rs.Len(); i++ {
			ss := rs.At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				sp := ss.At(j).Spans()
				for k := 0; k < sp.Len(); k++ {
					if _, ok := sp.At(k).Attributes().Get("eccheck.fault"); ok {
						faultSpans++
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if spans != ops+faults+1 || faultSpans != faults {
		t.Fatalf("%d spans (%d faults) for %d operations and %d faults: want %d", spans, faultSpans, ops, faults, ops+faults+1)
	}
	t.Logf("%d operations and %d faults exported as %d spans; %s", ops, faults, spans, stderr)

	if code, _, stderr := runCLI(t, "export", dir, "--format", "zipkin"); code != exitUsage {
		t.Errorf("--format zipkin: exit %d, want usage error\n%s", code, stderr)
	}
	if code, _, _ := runCLI(t, "export", filepath.Join(dir, "nothing-here")); code == exitValid {
		t.Errorf("export of a missing path succeeded")
	}
}
