package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/internal/porcupinedata"
)

// TestCheckPorcupineTestData runs `eccheck check` on every history in
// Porcupine's test data, as a user would: the 102 Jepsen etcd text logs
// and the six kv files (EDN with a .txt name). Each must get the verdict
// Porcupine's own tests expect, or, for the one empty log, an error that
// says it is empty.
func TestCheckPorcupineTestData(t *testing.T) {
	dir := porcupinedata.Dir(t)
	code := map[bool]int{true: exitValid, false: exitInvalid}
	expect := map[string]int{}
	for name, ok := range porcupinedata.JepsenVerdicts(t, dir) {
		expect[name] = code[ok]
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "test_data", "jepsen", "*.log"))
	kvFiles := porcupinedata.KVFiles(t, dir)
	if len(logs) != 103 || len(kvFiles) != 6 || len(expect) != 102 {
		t.Fatalf("%d logs, %d kv files, %d expectations: want 103, 6, 102", len(logs), len(kvFiles), len(expect))
	}
	var kvs []string
	for path, ok := range kvFiles {
		kvs = append(kvs, path)
		expect[filepath.Base(path)] = code[ok]
	}
	slices.Sort(kvs)
	// Check is read-only: nothing may appear beside the histories (the
	// module cache must stay as downloaded, or go mod verify fails).
	listing := func() []string {
		var names []string
		for _, sub := range []string{"jepsen", "kv"} {
			entries, _ := os.ReadDir(filepath.Join(dir, "test_data", sub))
			for _, e := range entries {
				names = append(names, sub+"/"+e.Name())
			}
		}
		return names
	}
	before := listing()
	defer func() {
		if after := listing(); !slices.Equal(before, after) {
			t.Errorf("porcupine data/check/writes nothing beside its input: %d files before, %d after", len(before), len(after))
		}
	}()
	for _, path := range append(logs, kvs...) {
		name := filepath.Base(path)
		want, ok := expect[name]
		code, stdout, stderr := runCLI(t, "check", path, "-q", "-o", "json", "--timeout", "1m")
		if !ok {
			// etcd_095.log is empty ("etcd cluster failed to start up"), and
			// Porcupine's tests skip it: eccheck says so.
			if code != exitInfra || !strings.Contains(stderr, "is empty") {
				t.Errorf("porcupine data/%s/error saying empty: exit %d, %s", name, code, stderr)
			}
			continue
		}
		if code != want {
			t.Errorf("porcupine data/%s/exit %d: exit %d, %s", name, want, code, stderr)
			continue
		}
		var rep struct {
			Workload  string         `json:"workload"`
			Unchecked map[string]int `json:"unchecked_ops"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Unchecked) > 0 {
			t.Errorf("porcupine data/%s/every operation checked: %v, unchecked %v", name, err, rep.Unchecked)
		}
	}
}

// TestCheckNeverValidForWhatItDidNotCheck: a history whose operations no
// checker understands is unknown (exit 2), never valid, and the report
// names what was left out; a stale read beside them is still found.
func TestCheckNeverValidForWhatItDidNotCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	op := func(time int, proc any, typ, f, value string) string {
		p, _ := json.Marshal(proc)
		return fmt.Sprintf(`{"time":%d,"process":%s,"type":%q,"f":%q,"key":"k","value":%s}`, time, p, typ, f, value)
	}
	stale := []string{op(1, 0, "invoke", "write", "1"), op(2, 0, "ok", "write", "1"), op(3, 1, "invoke", "read", "null"), op(4, 1, "ok", "read", "null")}
	for _, tc := range []struct {
		name  string
		file  string
		args  []string
		code  int
		words []string
	}{
		{"unchecked/only unknown f/unknown, naming them", write("get.jsonl", op(1, 0, "invoke", "fetch", "null"), op(2, 0, "ok", "fetch", "3"), op(3, 1, "invoke", "store", "4"), op(4, 1, "ok", "store", "4")),
			nil, exitUnknown, []string{"2 operation(s) that no checker understands were not checked: fetch ×1, store ×1", "verdict is unknown"}},
		{"txn/Elle list-append history/checked by transactional, valid", filepath.Join("..", "..", "history", "testdata", "jepsen", "elle-append.edn"),
			nil, exitValid, []string{"transactional", "2 list-append transactions over 2 keys", "verdict: valid"}},
		{"txn/Elle list-append with read skew/invalid, G-single named", write("skew.edn",
			`{:type :invoke, :f :txn, :value [[:append 1 1] [:append 2 1]], :time 100, :process 0}`,
			`{:type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]], :time 110, :process 1}`,
			`{:type :ok, :f :txn, :value [[:append 1 1] [:append 2 1]], :time 200, :process 0}`,
			`{:type :ok, :f :txn, :value [[:r 1 []] [:r 2 [1]]], :time 210, :process 1}`),
			nil, exitInvalid, []string{"G-single"}},
		{"txn/the same allowed by --consistency-model read-committed/valid", filepath.Join(dir, "skew.edn"),
			[]string{"--consistency-model", "read-committed"}, exitValid, []string{"G-single ×1, allowed"}},
		{"txn/an unknown consistency model/usage error", filepath.Join(dir, "skew.edn"),
			[]string{"--consistency-model", "linearizable"}, exitUsage, []string{"--consistency-model", "strict-serializable"}},
		{"txn/rw-register transactions/checked by transactional, valid", write("rw.jsonl",
			`{"time":1,"process":0,"type":"invoke","f":"txn","value":[["w","x",1]]}`, `{"time":2,"process":0,"type":"ok","f":"txn","value":[["w","x",1]]}`,
			`{"time":3,"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}`, `{"time":4,"process":1,"type":"ok","f":"txn","value":[["r","x",1]]}`),
			nil, exitValid, []string{"2 rw-register transactions over 1 key,", "verdict: valid"}},
		{"txn/Elle rw-register with read skew/invalid, G-single named", write("rwskew.edn",
			`{:type :invoke, :f :txn, :value [[:w 1 1] [:w 2 1]], :time 100, :process 0}`,
			`{:type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]], :time 110, :process 1}`,
			`{:type :ok, :f :txn, :value [[:w 1 1] [:w 2 1]], :time 200, :process 0}`,
			`{:type :ok, :f :txn, :value [[:r 1 nil] [:r 2 1]], :time 210, :process 1}`),
			nil, exitInvalid, []string{"G-single", "rw-register"}},
		{"unchecked/a transaction that appends and writes/unknown, naming it", write("both.jsonl",
			`{"time":1,"process":0,"type":"invoke","f":"txn","value":[["w","x",1],["append","y",1]]}`, `{"time":2,"process":0,"type":"ok","f":"txn","value":[["w","x",1],["append","y",1]]}`),
			nil, exitUnknown, []string{"1 transaction(s) that both append and write"}},
		{"unchecked/stale read beside unknown f/invalid, and the unknown ones named", write("mixed.jsonl", append(stale, op(5, 2, "invoke", "fetch", "null"), op(6, 2, "ok", "fetch", "1"))...),
			nil, exitInvalid, []string{"fetch ×1"}},
		{"unchecked/only nemesis ops with a checker named/unknown, saying no client operations", write("nemesis.jsonl", op(1, "nemesis", "info", "start-partition", "null"), op(2, "nemesis", "info", "stop-partition", "null")),
			[]string{"--checkers", "linearizable"}, exitUnknown, []string{"no client operations, only 2 nemesis operation(s)"}},
		{"unchecked/--checkers that skip a workload/its operations named as not checked", write("regset.jsonl", op(1, 0, "invoke", "write", "1"), op(2, 0, "ok", "write", "1"),
			strings.Replace(op(3, 1, "invoke", "add", "5"), `"key":"k"`, `"key":"s"`, 1), strings.Replace(op(4, 1, "ok", "add", "5"), `"key":"k"`, `"key":"s"`, 1),
			strings.Replace(op(5, 1, "invoke", "read", "null"), `"key":"k"`, `"key":"s"`, 1), strings.Replace(op(6, 1, "ok", "read", "[]"), `"key":"k"`, `"key":"s"`, 1)),
			[]string{"--checkers", "linearizable"}, exitValid, []string{"--checkers linearizable checks nothing of the set workload: 2 operation(s) were not checked (add ×1, read ×1)"}},
		{"unchecked/forced set on a register history/usage error", write("reg.jsonl", stale...),
			[]string{"--workload", "set"}, exitUsage, []string{"--workload set: the history has write ×1"}},
		{"unchecked/forced counter on a set history/usage error", write("set.jsonl", op(1, 0, "invoke", "add", "1"), op(2, 0, "ok", "add", "1"), op(3, 0, "invoke", "read", "null"), op(4, 0, "ok", "read", "[1]")),
			[]string{"--workload", "counter"}, exitUsage, []string{"reads return lists"}},
		{"unchecked/unknown checker/usage error before reading", filepath.Join(dir, "missing.jsonl"),
			[]string{"--checkers", "foo"}, exitUsage, []string{`unknown checker "foo"`}},
		{"unchecked/unknown workload/usage error before reading", filepath.Join(dir, "missing.jsonl"),
			[]string{"--workload", "bag"}, exitUsage, []string{`unknown workload "bag"`}},
		{"unchecked/empty file/error saying empty", write("empty.jsonl"),
			nil, exitInfra, []string{"is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"check", tc.file}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.words {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output lacks %q:\n%s%s", w, stdout, stderr)
				}
			}
		})
	}
}
