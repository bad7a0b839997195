package checkers

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// attempt is one operation of a test history, possibly an attempt of a
// request: run by its own process from call to ret.
type attempt struct {
	f, key    string
	value     string // JSON; the invocation's, and the completion's unless done is set
	done      string
	typ       history.Type
	call, ret int64
	request   string
	n         int
}

func attemptHistory(t *testing.T, as ...attempt) history.History {
	t.Helper()
	type line struct {
		at int64
		op history.Op
	}
	var lines []line
	for i, a := range as {
		v, err := history.ParseValue(a.value)
		if err != nil {
			t.Fatal(err)
		}
		d := v
		if a.done != "" {
			if d, err = history.ParseValue(a.done); err != nil {
				t.Fatal(err)
			}
		}
		inv := history.Op{Process: history.Process(i), Type: history.Invoke, F: a.f, Key: a.key, Value: v, Request: a.request, Attempt: a.n}
		done := history.Op{Process: history.Process(i), Type: a.typ, F: a.f, Key: a.key, Value: d}
		lines = append(lines, line{a.call*2 + 0, inv}, line{a.ret*2 + 1, done})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return int(a.at - b.at) })
	var h history.History
	for i, l := range lines {
		l.op.Index, l.op.Time = int64(i), l.at/2
		h = append(h, l.op)
	}
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	return h
}

// Each kind of double application has a history that shows it and a
// neighbour that does not.
func TestDuplicates(t *testing.T) {
	add := func(delta string, typ history.Type, call, ret int64, req string, n int) attempt {
		return attempt{f: FAdd, key: "c", value: delta, typ: typ, call: call, ret: ret, request: req, n: n}
	}
	read := func(v string, call, ret int64) attempt {
		return attempt{f: FRead, key: "c", value: "null", done: v, typ: history.OK, call: call, ret: ret}
	}
	appendTxn := func(elem string, typ history.Type, call, ret int64, req string, n int) attempt {
		v := `[["append","x",` + elem + `]]`
		return attempt{f: FTxn, value: v, typ: typ, call: call, ret: ret, request: req, n: n}
	}
	readTxn := func(list string, call, ret int64) attempt {
		return attempt{f: FTxn, value: `[["r","x",null]]`, done: `[["r","x",` + list + `]]`, typ: history.OK, call: call, ret: ret}
	}
	for _, c := range []struct {
		name  string
		as    []attempt
		want  string // a phrase of the anomaly; "" for valid
		words []string
	}{
		{"counter/a retried add applied twice", []attempt{
			add("3", history.Info, 0, 10, "p0.1", 1), add("3", history.OK, 20, 30, "p0.1", 2), read("6", 40, 50)}, "p0.1", []string{"3 too many", "attempt 1 info", "attempt 2 ok"}},
		{"counter/a retried add applied once", []attempt{
			add("3", history.Info, 0, 10, "p0.1", 1), add("3", history.OK, 20, 30, "p0.1", 2), read("3", 40, 50)}, "", nil},
		{"counter/two requests, each once", []attempt{
			add("3", history.OK, 0, 10, "p0.1", 1), add("3", history.OK, 20, 30, "p0.2", 1), read("6", 40, 50)}, "", nil},
		{"counter/a retry that failed cannot have applied", []attempt{
			add("3", history.Info, 0, 10, "p0.1", 1), add("3", history.Fail, 20, 30, "p0.1", 2), read("6", 40, 50)}, "no request before it was retried", nil},
		{"counter/an add twice with no retry at all", []attempt{
			add("2", history.OK, 0, 10, "", 0), read("4", 40, 50)}, "no request before it was retried", nil},
		{"counter/a read before the retry cannot show it", []attempt{
			add("3", history.Info, 0, 10, "p0.1", 1), read("3", 12, 15), add("3", history.OK, 20, 30, "p0.1", 2)}, "", nil},
		{"list-append/a retried append applied twice", []attempt{
			appendTxn("1", history.Info, 0, 10, "p0.1", 1), appendTxn("1", history.OK, 20, 30, "p0.1", 2), readTxn("[1,1]", 40, 50)}, "p0.1", []string{"with 1 twice", "attempt 2 ok"}},
		{"list-append/a retried append applied once", []attempt{
			appendTxn("1", history.Info, 0, 10, "p0.1", 1), appendTxn("1", history.OK, 20, 30, "p0.1", 2), readTxn("[1]", 40, 50)}, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := attemptHistory(t, c.as...)
			r := Duplicates(context.Background(), NewInput(h), Options{})
			switch {
			case c.want == "" && r.Verdict != Valid:
				t.Fatalf("%s (%s): %v", r.Verdict, r.Reason, r.Anomalies)
			case c.want != "" && (r.Verdict != Invalid || len(r.Anomalies) == 0 || !strings.Contains(r.Anomalies[0].Explanation, c.want)):
				t.Fatalf("%s (%s): %v, want invalid naming %q", r.Verdict, r.Reason, r.Anomalies, c.want)
			}
			for _, w := range c.words {
				if !strings.Contains(r.Anomalies[0].Explanation, w) {
					t.Errorf("explanation %q lacks %q", r.Anomalies[0].Explanation, w)
				}
			}
			if len(r.Anomalies) > 0 {
				t.Logf("%s", r.Anomalies[0].Explanation)
			}
		})
	}
}

// What the checker cannot judge is unknown, saying why.
func TestDuplicatesUnknown(t *testing.T) {
	mismatch := attemptHistory(t,
		attempt{f: FAdd, key: "c", value: "3", typ: history.Info, call: 0, ret: 10, request: "p0.1", n: 1},
		attempt{f: FAdd, key: "c", value: "4", typ: history.OK, call: 20, ret: 30, request: "p0.1", n: 2})
	if r := Duplicates(context.Background(), NewInput(mismatch), Options{}); r.Verdict != Unknown || !strings.Contains(r.Reason, "attempts of a request repeat it") {
		t.Fatalf("attempts that add different deltas: %s (%s)", r.Verdict, r.Reason)
	}
	adds := attemptHistory(t, attempt{f: FAdd, key: "c", value: "3", typ: history.OK, call: 0, ret: 10, request: "p0.1", n: 1})
	if r := Duplicates(context.Background(), NewInput(adds), Options{}); r.Verdict != Unknown {
		t.Fatalf("adds and no read: %s (%s), want unknown: no read could show a double application", r.Verdict, r.Reason)
	}
	reads := attemptHistory(t, attempt{f: FRead, key: "c", value: "null", done: "0", typ: history.OK, call: 0, ret: 10})
	if r := Duplicates(context.Background(), NewInput(reads), Options{}); r.Verdict != Unknown || !strings.Contains(r.Reason, "nothing") {
		t.Fatalf("reads only: %s (%s)", r.Verdict, r.Reason)
	}
}

// The transactional checker takes a retried transaction's attempts as one
// logical transaction: its appends shared by the attempts are not
// "appended twice" (which would leave the verdict unknown), and the
// attempt that succeeded stands for it.
func TestTransactionalRetriedAttempts(t *testing.T) {
	h := attemptHistory(t,
		attempt{f: FTxn, value: `[["append","x",1]]`, typ: history.Info, call: 0, ret: 10, request: "p0.1", n: 1},
		attempt{f: FTxn, value: `[["append","x",1]]`, typ: history.OK, call: 20, ret: 30, request: "p0.1", n: 2},
		attempt{f: FTxn, value: `[["r","x",null]]`, done: `[["r","x",[1]]]`, typ: history.OK, call: 40, ret: 50})
	if r := Transactional(context.Background(), NewInput(h), Options{}); r.Verdict != Valid || r.Stats["transactions"] != 2 {
		t.Fatalf("%s (%s), %v transactions: want valid over 2", r.Verdict, r.Reason, r.Stats["transactions"])
	}
}

// A retried transaction counts from its first attempt's invocation: an
// earlier attempt that ended info may have been applied then, so a read
// of its write before the last attempt began is no real-time cycle; nor
// is the last attempt's read of what an earlier one wrote a future read.
func TestTransactionalRetriedAttemptsTime(t *testing.T) {
	h := attemptHistory(t,
		attempt{f: FTxn, value: `[["w","k",5]]`, typ: history.Info, call: 0, ret: 10, request: "p0.1", n: 1},
		attempt{f: FTxn, value: `[["r","k",null]]`, done: `[["r","k",5]]`, typ: history.OK, call: 20, ret: 30},
		attempt{f: FTxn, value: `[["w","k",5]]`, typ: history.OK, call: 40, ret: 50, request: "p0.1", n: 2})
	if r := Transactional(context.Background(), NewInput(h), Options{}); r.Verdict != Valid {
		t.Fatalf("a read of an earlier attempt's write: %s %v", r.Verdict, r.Anomalies)
	}
	h = attemptHistory(t,
		attempt{f: FTxn, value: `[["r","k",null],["w","k",5]]`, typ: history.Info, call: 0, ret: 10, request: "p0.1", n: 1},
		attempt{f: FTxn, value: `[["r","k",null],["w","k",5]]`, done: `[["r","k",5],["w","k",5]]`, typ: history.OK, call: 40, ret: 50, request: "p0.1", n: 2})
	if r := Transactional(context.Background(), NewInput(h), Options{ConsistencyModel: ModelReadCommitted}); r.Verdict != Valid || r.Stats["found_"+AnomalyFutureRead] != 0 {
		t.Fatalf("the last attempt read what the first wrote: %s %v", r.Verdict, r.Anomalies)
	}
}

// Under read committed a later read of a key is checked too: an aborted
// write or a value nobody wrote is found there as in a first read.
func TestTransactionalRWRegisterLaterReads(t *testing.T) {
	r := expectAnomaly(t, ModelReadCommitted, AnomalyG1a,
		failed("w k 7"), ok("r k nil; r k 7; r j nil; r j 99"))
	if !slices.Contains(kindsOf(r), AnomalyGarbage) {
		t.Fatalf("the read of 99, which nobody wrote: %v", kindsOf(r))
	}
	expectAnomaly(t, ModelReadCommitted, "", ok("w k 7"), ok("r k nil; r k 7"))
}
