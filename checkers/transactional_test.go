package checkers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// tx is a transaction of a test history: its outcome, its times and its
// micro-operations as completed, written "append x 1; r x [1 2]; r y nil".
type tx struct {
	typ       history.Type
	call, ret int64
	mops      string
}

// ok is a transaction that completed ok, all of them invoked at 0 and
// returning at 100 (concurrent: no real-time order) unless timed.
func ok(mops string) tx              { return tx{history.OK, 0, 100, mops} }
func failed(mops string) tx          { return tx{history.Fail, 0, 100, mops} }
func indefinite(mops string) tx      { return tx{history.Info, 0, 100, mops} }
func timed(t tx, call, ret int64) tx { t.call, t.ret = call, ret; return t }

// mopValue parses "append x 1; r x [1 2]" into micro-operations; the
// invocation's reads are null.
func mopValue(t *testing.T, s string, invoke bool) history.Value {
	t.Helper()
	var out []history.Value
	for _, part := range strings.Split(s, ";") {
		f := strings.Fields(strings.TrimSpace(part))
		if len(f) < 3 {
			t.Fatalf("micro-operation %q: want f key value", part)
		}
		val := strings.Join(f[2:], ",")
		if f[0] == MopRead && invoke || val == "nil" {
			val = "null"
		}
		v, err := history.ParseValue(val)
		if err != nil {
			t.Fatalf("micro-operation %q: %v", part, err)
		}
		out = append(out, history.List(history.String(f[0]), history.String(f[1]), v))
	}
	return history.List(out...)
}

// txnHistory builds a history, each transaction on a process of its own.
func txnHistory(t *testing.T, txs ...tx) history.History {
	t.Helper()
	type line struct {
		at int64
		op history.Op
	}
	var lines []line
	for i, x := range txs {
		inv := history.Op{Process: history.Process(i), Type: history.Invoke, F: FTxn, Value: mopValue(t, x.mops, true)}
		done := history.Op{Process: history.Process(i), Type: x.typ, F: FTxn, Value: mopValue(t, x.mops, x.typ != history.OK)}
		lines = append(lines, line{x.call*2 + 0, inv}, line{x.ret*2 + 1, done})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return int(a.at - b.at) })
	var h history.History
	for i, l := range lines {
		l.op.Index = int64(i)
		l.op.Time = l.at / 2
		h = append(h, l.op)
	}
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	return h
}

func checkTxns(t *testing.T, model string, txs ...tx) Result {
	t.Helper()
	return Transactional(context.Background(), NewInput(txnHistory(t, txs...)), Options{ConsistencyModel: model})
}

// kindsOf lists the anomaly kinds of r.
func kindsOf(r Result) []string {
	var out []string
	for _, a := range r.Anomalies {
		if !slices.Contains(out, a.Kind) {
			out = append(out, a.Kind)
		}
	}
	return out
}

// Each anomaly has a history that must show it, and a neighbour that
// must not, under the model named.
func TestTransactionalAnomalies(t *testing.T) {
	for _, c := range []struct {
		name  string
		model string
		txs   []tx
		want  string // the anomaly kind; "" for valid
	}{
		{"G0/write cycle", ModelReadUncommitted, []tx{
			ok("append x 1; append y 1"), ok("append x 2; append y 2"), ok("r x [1 2]; r y [2 1]")}, AnomalyG0},
		{"G0/none when both keys agree", ModelReadUncommitted, []tx{
			ok("append x 1; append y 1"), ok("append x 2; append y 2"), ok("r x [1 2]; r y [1 2]")}, ""},
		{"G1c/each read the other's write", ModelReadCommitted, []tx{
			ok("append x 1; r y [1]"), ok("append y 1; r x [1]")}, AnomalyG1c},
		{"G1c/none when the information flows one way", ModelReadCommitted, []tx{
			ok("append x 1"), ok("r x [1]; append y 1"), ok("r y [1]")}, ""},
		{"G-single/read skew", ModelSnapshotIsolation, []tx{
			ok("append x 1; append y 1"), ok("r x []; r y [1]")}, AnomalyGSingle},
		{"G-single/none when both reads see the writer", ModelSnapshotIsolation, []tx{
			ok("append x 1; append y 1"), ok("r x [1]; r y [1]")}, ""},
		{"G2-item/write skew under serializable", ModelSerializable, []tx{
			ok("r x []; r y []; append x 1"), ok("r x []; r y []; append y 1"), ok("r x [1]; r y [1]")}, AnomalyG2Item},
		{"G2-item/write skew is allowed under snapshot isolation", ModelSnapshotIsolation, []tx{
			ok("r x []; r y []; append x 1"), ok("r x []; r y []; append y 1"), ok("r x [1]; r y [1]")}, ""},
		{"G2-item/none when one saw the other", ModelSerializable, []tx{
			ok("r x []; r y []; append x 1"), ok("r x [1]; r y []; append y 1"), ok("r x [1]; r y [1]")}, ""},
		{"G-nonadjacent/not snapshot isolation", ModelSnapshotIsolation, []tx{
			ok("r a []; r d [1]"), ok("append a 1; append b 1"), ok("r b [1]; r c []"), ok("append c 1; append d 1")}, AnomalyGNonadjacent},
		{"G-nonadjacent/allowed under read committed", ModelReadCommitted, []tx{
			ok("r a []; r d [1]"), ok("append a 1; append b 1"), ok("r b [1]; r c []"), ok("append c 1; append d 1")}, ""},
		{"realtime/a read after the append returned misses it", ModelStrictSerializable, []tx{
			timed(ok("append x 1"), 0, 10), timed(ok("r x []"), 20, 30)}, AnomalyGSingle + realtimeSuffix},
		{"realtime/the same is serializable", ModelSerializable, []tx{
			timed(ok("append x 1"), 0, 10), timed(ok("r x []"), 20, 30)}, ""},
		{"realtime/none when the read sees it", ModelStrictSerializable, []tx{
			timed(ok("append x 1"), 0, 10), timed(ok("r x [1]"), 20, 30)}, ""},
		{"G1a/aborted read", ModelReadCommitted, []tx{
			failed("append x 1"), ok("r x [1]")}, AnomalyG1a},
		{"G1a/none when the writer's fate was open", ModelReadCommitted, []tx{
			indefinite("append x 1"), ok("r x [1]")}, ""},
		{"G1b/intermediate read", ModelReadCommitted, []tx{
			ok("append x 1; append x 2"), ok("r x [1]")}, AnomalyG1b},
		{"G1b/none when it read the final state", ModelReadCommitted, []tx{
			ok("append x 1; append x 2"), ok("r x [1 2]")}, ""},
		{"internal/a read that forgot the transaction's append", ModelReadUncommitted, []tx{
			ok("r x []; append x 1; r x []")}, AnomalyInternal},
		{"internal/none when it reads its own append", ModelReadUncommitted, []tx{
			ok("r x []; append x 1; r x [1]")}, ""},
		{"internal/a non-repeatable read breaks snapshot isolation", ModelSnapshotIsolation, []tx{
			ok("append x 2"), ok("r x []; append x 1; r x [2 1]")}, AnomalyInternal},
		{"internal/a non-repeatable read is allowed under read committed", ModelReadCommitted, []tx{
			ok("append x 2"), ok("r x []; append x 1; r x [2 1]")}, ""},
		{"internal/read committed still wants the earlier read extended", ModelReadCommitted, []tx{
			ok("append x 2"), ok("append x 3"), ok("r x [2]; r x [3 2]")}, AnomalyInternal},
		{"duplicate-elements", ModelReadUncommitted, []tx{
			ok("append x 1"), ok("r x [1 1]")}, AnomalyDuplicate},
		{"garbage-read", ModelReadUncommitted, []tx{
			ok("append x 1"), ok("r x [9]")}, AnomalyGarbage},
		{"incompatible-order", ModelReadUncommitted, []tx{
			ok("append x 1"), ok("append x 2"), ok("r x [1 2]"), ok("r x [2 1]")}, AnomalyIncompatible},
		{"incompatible-order/none when one is a prefix", ModelReadUncommitted, []tx{
			ok("append x 1"), ok("append x 2"), ok("r x [1]"), ok("r x [1 2]")}, ""},
		{"lost-update/both read one version and appended", ModelSnapshotIsolation, []tx{
			ok("r x []; append x 1"), ok("r x []; append x 2"), ok("r x [1 2]")}, AnomalyLostUpdate},
		{"lost-update/none when the second saw the first", ModelSnapshotIsolation, []tx{
			ok("r x []; append x 1"), ok("r x [1]; append x 2"), ok("r x [1 2]")}, ""},
		{"info/an append whose fate is open and nobody saw is no anomaly", ModelStrictSerializable, []tx{
			indefinite("append x 1"), timed(ok("r x []"), 200, 300)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) { expectAnomaly(t, c.model, c.want, c.txs...) })
	}
}

// expectAnomaly checks txs under model: valid when want is "", else
// invalid with an anomaly of kind want; every anomaly explained. It
// returns the result.
func expectAnomaly(t *testing.T, model, want string, txs ...tx) Result {
	t.Helper()
	r := checkTxns(t, model, txs...)
	switch {
	case want == "" && r.Verdict != Valid:
		t.Fatalf("%s: %s (%s), want valid; anomalies %+v", model, r.Verdict, r.Reason, r.Anomalies)
	case want != "" && (r.Verdict != Invalid || !slices.Contains(kindsOf(r), want)):
		t.Fatalf("%s: %s %v (%s), want invalid with %s", model, r.Verdict, kindsOf(r), r.Reason, want)
	}
	for _, a := range r.Anomalies {
		if a.Explanation == "" || len(a.Ops) == 0 {
			t.Errorf("anomaly %s without its transactions or explanation: %+v", a.Kind, a)
		}
	}
	t.Logf("%s", r.Summary)
	if len(r.Anomalies) > 0 {
		t.Logf("%s", r.Anomalies[0].Explanation)
	}
	return r
}

// A search past its budget is unknown, saying what it could not decide,
// never valid.
func TestTransactionalBudget(t *testing.T) {
	h := txnHistory(t, ok("r x []; r y []; append x 1"), ok("r x []; r y []; append y 1"), ok("r x [1]; r y [1]"))
	r := Transactional(context.Background(), NewInput(h), Options{ConsistencyModel: ModelSerializable, CycleBudget: 1})
	if r.Verdict != Unknown || !strings.Contains(r.Reason, "budget") {
		t.Fatalf("%s (%s), want unknown naming the budget", r.Verdict, r.Reason)
	}
}

// Bad input is unknown with a reason naming the operation, never valid.
func TestTransactionalBadInput(t *testing.T) {
	for name, c := range map[string]struct {
		v    string
		want string
	}{
		"not a list":            {`5`, "list of micro-operations"},
		"short micro-op":        {`[["append","x"]]`, "[f, key, value]"},
		"unknown f":             {`[["delete","x",1]]`, "append, r or w"},
		"element not a scalar":  {`[["append","x",[1]]]`, "integer or a string"},
		"append and write":      {`[["append","x",1],["w","y",1]]`, "list-append or rw-register, not both"},
		"rw-register list read": {`[["w","x",1],["r","y",[1]]]`, "one value"},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := history.ParseValue(c.v)
			if err != nil {
				t.Fatal(err)
			}
			h := history.History{
				{Index: 0, Process: 0, Type: history.Invoke, F: FTxn, Value: v},
				{Index: 1, Process: 0, Type: history.OK, F: FTxn, Value: v, Time: 1},
			}
			r := Transactional(context.Background(), NewInput(h), Options{})
			if r.Verdict != Unknown || !strings.Contains(r.Reason, c.want) {
				t.Fatalf("%s (%s), want unknown naming %q", r.Verdict, r.Reason, c.want)
			}
		})
	}
	dup := txnHistory(t, ok("append x 1"), ok("append x 1"))
	if r := Transactional(context.Background(), NewInput(dup), Options{}); r.Verdict != Unknown || !strings.Contains(r.Reason, "unique") {
		t.Fatalf("an element appended twice: %s (%s), want unknown", r.Verdict, r.Reason)
	}
	if r := Transactional(context.Background(), NewInput(dup), Options{ConsistencyModel: "linearizable"}); r.Verdict != Unknown || !strings.Contains(r.Reason, "consistency model") {
		t.Fatalf("an unknown model: %s (%s)", r.Verdict, r.Reason)
	}
	_ = fmt.Sprint
}

// A history that mixes transactions with single-key operations is split:
// the transactions go to list-append, the rest by key.
func TestSplitRoutesTransactions(t *testing.T) {
	h := txnHistory(t, ok("append x 1"), ok("r x [1]"))
	h = append(h,
		history.Op{Index: int64(len(h)), Time: 1000, Process: 7, Type: history.Invoke, F: FWrite, Key: "k", Value: history.Int(1)},
		history.Op{Index: int64(len(h)) + 1, Time: 1001, Process: 7, Type: history.OK, F: FWrite, Key: "k", Value: history.Int(1)})
	split, order := SplitByWorkload(history.Pair(h))
	if !slices.Equal(order, []Workload{WorkloadRegister, WorkloadListAppend}) || len(split[WorkloadListAppend]) != 2 || len(split[WorkloadRegister]) != 1 {
		t.Fatalf("split %v: %d list-append, %d register ops", order, len(split[WorkloadListAppend]), len(split[WorkloadRegister]))
	}
	if _, err := InferWorkload(history.Pair(h)); err == nil {
		t.Fatal("a mixed history inferred as one workload")
	}
}
