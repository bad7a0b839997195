package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// The rw-register twins of the list-append end-to-end tests.

// runE2EAnyVerdict is runE2E that also takes an unknown verdict (exit 2)
// as a run that completed, so that a test can look at the history before
// it holds the verdict to what it should be.
func runE2EAnyVerdict(t *testing.T, args ...string) (int, e2eReport, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end run; -short skips it")
	}
	out := t.TempDir()
	base := []string{"test", "--out", out, "-o", "json", "-q", "--recovery", "1s", "--nemesis-interval", "1s"}
	code, stdout, stderr := runCLI(t, append(base, args...)...)
	if code != exitValid && code != exitInvalid && code != exitUnknown {
		t.Fatalf("eccheck test %v: exit %d\n%s", args, code, stderr)
	}
	var rep e2eReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s\n%s", err, stdout, stderr)
	}
	return code, rep, filepath.Join(out, "latest")
}

// divergentReads finds, by hand as a person would, what no
// strict-serializable store can show an rw-register history: a key with
// two committed writes of values a and b, and two committed reads (by
// transactions that did not write the key) of a and of b, each begun after
// both writes had returned. In real-time order both writes precede both
// reads, so in any serial order one write is the later and both reads
// return it; values unique per key make the writes and reads certain. It
// returns each such key, with times, in a sentence.
func divergentReads(ops []history.Operation) []string {
	type version struct {
		written  int64 // when its write returned; 0 when no ok write
		lastRead int64 // the latest invocation of a read returning it
	}
	keys := map[string]map[string]*version{}
	at := func(k, v string) *version {
		if keys[k] == nil {
			keys[k] = map[string]*version{}
		}
		if keys[k][v] == nil {
			keys[k][v] = &version{}
		}
		return keys[k][v]
	}
	for _, op := range ops {
		if op.F != "txn" || op.Type != history.OK {
			continue
		}
		items, _ := op.Value.AsList()
		wrote := map[string]bool{}
		for _, it := range items {
			if parts, _ := it.AsList(); len(parts) == 3 {
				if f, _ := parts[0].AsString(); f == "w" {
					k, _ := parts[1].AsString()
					wrote[k] = true
					at(k, parts[2].String()).written = op.Return
				}
			}
		}
		for _, it := range items {
			parts, _ := it.AsList()
			if f, _ := parts[0].AsString(); f != "r" || parts[2].IsNil() {
				continue
			}
			k, _ := parts[1].AsString()
			if v := at(k, parts[2].String()); !wrote[k] {
				v.lastRead = max(v.lastRead, op.Call)
			}
		}
	}
	var out []string
	for k, vs := range keys {
		for a, va := range vs {
			for b, vb := range vs {
				both := max(va.written, vb.written)
				if a < b && va.written > 0 && vb.written > 0 && va.lastRead > both && vb.lastRead > both {
					out = append(out, fmt.Sprintf("key %s: writes of %s and %s both returned by %d ns, and reads begun later returned %s (at %d ns) and %s (at %d ns)",
						k, a, b, both, a, va.lastRead, b, vb.lastRead))
				}
			}
		}
	}
	return out
}

// ownWriteLost finds the transactions that wrote a key and then read it
// as something else: a non-atomic effect, another write having come
// between two micro-operations of one transaction.
func ownWriteLost(ops []history.Operation) int {
	n := 0
	for _, op := range ops {
		if op.F != "txn" || op.Type != history.OK {
			continue
		}
		items, _ := op.Value.AsList()
		wrote := map[string]string{}
		for _, it := range items {
			parts, _ := it.AsList()
			f, _ := parts[0].AsString()
			k, _ := parts[1].AsString()
			w, ok := wrote[k]
			switch {
			case f == "w":
				wrote[k] = parts[2].String()
			case ok && parts[2].String() != w:
				n++
			}
		}
	}
	return n
}

func TestDivergentReads(t *testing.T) {
	txn := func(p history.Process, call, ret int64, mops string) []history.Op {
		v, err := history.ParseValue(mops)
		if err != nil {
			t.Fatal(err)
		}
		return []history.Op{{Process: p, Type: history.Invoke, F: "txn", Time: call, Value: v}, {Process: p, Type: history.OK, F: "txn", Time: ret, Value: v}}
	}
	build := func(ops ...[]history.Op) []history.Operation {
		var h history.History
		for _, o := range ops {
			h = append(h, o...)
		}
		for i := range h {
			h[i].Index = int64(i)
		}
		return history.Pair(h)
	}
	// Sequential calls: each op's lines are apart in time, in order.
	for _, tc := range []struct {
		name string
		ops  []history.Operation
		want int
	}{
		{"divergence/both reads after both writes/found", build(
			txn(1, 10, 20, `[["w","k",1]]`), txn(2, 30, 40, `[["w","k",2]]`),
			txn(1, 50, 60, `[["r","k",1]]`), txn(2, 70, 80, `[["r","k",2]]`)), 1},
		{"linearizable/a read of the older value before the later write/none", build(
			txn(1, 10, 20, `[["w","k",1]]`), txn(1, 25, 28, `[["r","k",1]]`), txn(2, 30, 40, `[["w","k",2]]`),
			txn(2, 70, 80, `[["r","k",2]]`)), 0},
		{"own write/a read in the writing transaction/none", build(
			txn(1, 10, 20, `[["w","k",1]]`), txn(2, 30, 40, `[["w","k",2]]`),
			txn(1, 50, 60, `[["w","k",1],["r","k",1]]`), txn(2, 70, 80, `[["r","k",2]]`)), 0},
	} {
		if got := divergentReads(tc.ops); len(got) != tc.want {
			t.Errorf("%s: %d found, want %d: %v", tc.name, len(got), tc.want, got)
		}
	}
	lost := build(txn(1, 10, 20, `[["w","k",1],["r","k",2],["w","k",3],["r","k",3]]`), txn(2, 30, 40, `[["r","k",1],["w","j",4]]`))
	if n := ownWriteLost(lost); n != 1 {
		t.Errorf("own write lost/read as another value after the write/1 found: %d", n)
	}
}

// Raft applies each rw-register transaction as one log entry: under
// partitions and kills the history is strict-serializable, and no key's
// reads diverge.
func TestE2ERaftRWRegisterStrictSerializable(t *testing.T) {
	code, rep, dir := runE2EAnyVerdict(t, "--mode", "raft", "--workload", "rw-register", "--nemesis", "partition,kill", "--nemesis-cycles", "2", "--seed", "33")
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if d := divergentReads(history.Pair(h)); len(d) > 0 {
		t.Errorf("raft/rw-register/no divergent reads: %d, such as %s (run dir %s)", len(d), d[0], dir)
	}
	expectTransactionsValid(t, code, rep, dir)
}

// Last-write-wins with W=1 R=1 runs an rw-register transaction's
// micro-operations one by one, each a register write or read of its own
// on one replica. Reads of one replica go on returning its value after
// another replica took a later write, the more so with one node cut off
// (both sides write a key and read their own side's value): by
// construction a history no strict-serializable store gives
// (divergentReads), which the test finds in the history first; the
// checker must call it invalid.
func TestE2ELWWRWRegisterDiverges(t *testing.T) {
	code, rep, dir := runE2EAnyVerdict(t, "--mode", "lww", "--w", "1", "--r", "1", "--workload", "rw-register", "--nemesis", "partition", "--partition-shapes", "isolate",
		"--nemesis-interval", "3s", "--nemesis-cycles", "1", "--seed", "34")
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	d := divergentReads(history.Pair(h))
	if len(d) == 0 {
		t.Fatalf("setup: no key whose reads diverged; the anomaly cannot be shown (run dir %s)", dir)
	}
	t.Logf("%d pairs of divergent reads, such as %s; %d transactions read a key they wrote as another value", len(d), d[0], ownWriteLost(history.Pair(h)))
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1; results %+v (run dir %s)", code, rep.Results, dir)
	}
	expectVerdicts(t, rep, map[string]string{"transactional": "invalid"})
}
