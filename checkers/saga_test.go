package checkers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// sagaStep is one operation of a test saga history, run alone (each
// operation completes before the next begins).
type sagaStep struct {
	f, key, args string // args: the invocation's JSON
	typ          history.Type
	done, err    string // the completion's JSON value (default null) and error
	final        bool
	node         string
}

func sagaHistory(t *testing.T, steps ...sagaStep) history.History {
	t.Helper()
	var h history.History
	for i, s := range steps {
		args := s.args
		if args == "" {
			args = "null"
		}
		v, err := history.Raw([]byte(args))
		if err != nil {
			t.Fatal(err)
		}
		d := history.Nil()
		if s.done != "" {
			if d, err = history.Raw([]byte(s.done)); err != nil {
				t.Fatal(err)
			}
		}
		p := history.Process(i)
		h = append(h,
			history.Op{Index: int64(len(h)), Time: int64(2 * i), Process: p, Type: history.Invoke, F: s.f, Key: s.key, Value: v, Final: s.final, Node: s.node},
			history.Op{Index: int64(len(h) + 1), Time: int64(2*i + 1), Process: p, Type: s.typ, F: s.f, Key: s.key, Value: d, Error: s.err, Final: s.final, Node: s.node})
	}
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	return h
}

func sagaJSON(t *testing.T, st SagaState) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goodSagas is a history of two sagas on stock [5 5]: a went forward, b
// was declined at its charge and compensated; and the final state they
// leave.
func goodSagas() ([]sagaStep, SagaState) {
	ok, fail := history.OK, history.Fail
	steps := []sagaStep{
		{f: FSagaInit, args: `{"stock":[5,5]}`, typ: ok, done: `{"stock":[5,5]}`},
		{f: FSagaBegin, key: "a", args: `{"item":0,"qty":2,"price":20,"owner":"p1"}`, typ: ok},
		{f: FReserve, key: "a", args: `{"item":0,"qty":2}`, typ: ok},
		{f: FSagaLog, key: "a", args: `{"epoch":1,"step":"reserve","status":"running"}`, typ: ok},
		{f: FCharge, key: "a", args: `{"amount":20}`, typ: ok},
		{f: FConfirm, key: "a", args: `{}`, typ: ok},
		{f: FSagaLog, key: "a", args: `{"epoch":1,"step":"done","status":"done"}`, typ: ok},
		{f: FSagaBegin, key: "b", args: `{"item":1,"qty":1,"price":10,"owner":"p2"}`, typ: ok},
		{f: FReserve, key: "b", args: `{"item":1,"qty":1}`, typ: ok},
		{f: FCharge, key: "b", args: `{"amount":10,"decline":true}`, typ: fail, err: "declined"},
		{f: FCancel, key: "b", typ: ok, done: `"cancelled"`},
		{f: FRefund, key: "b", args: `{"amount":10}`, typ: ok},
		{f: FRelease, key: "b", args: `{"item":1,"qty":1}`, typ: ok},
		{f: FSagaLog, key: "b", args: `{"epoch":1,"step":"compensated","status":"compensated"}`, typ: ok},
	}
	st := SagaState{
		Stock:        []int64{3, 5},
		Reservations: map[string]Reservation{"a": {Item: 0, Qty: 2, State: "reserved"}, "b": {Item: 1, Qty: 1, State: "released"}},
		Payments:     map[string]Payment{"a": {Amount: 20, State: "charged"}, "b": {Amount: 0, State: "refunded"}},
		Ledger:       []LedgerEntry{{Saga: "a", Kind: "charge", Amount: 20}},
		Shipments:    map[string]string{"a": "confirmed", "b": "cancelled"},
		Log: map[string]SagaRecord{
			"a": {Saga: "a", Owner: "p1", Epoch: 1, Status: SagaDone, Item: 0, Qty: 2, Price: 20, Steps: []string{"reserve", "done"}},
			"b": {Saga: "b", Owner: "p2", Epoch: 1, Status: SagaCompensated, Item: 1, Qty: 1, Price: 10, Steps: []string{"compensated"}},
		},
	}
	return steps, st
}

func runSaga(t *testing.T, steps []sagaStep, finals ...SagaState) Result {
	t.Helper()
	for i, st := range finals {
		steps = append(steps, sagaStep{f: FSagaRead, typ: history.OK, done: sagaJSON(t, st), final: true, node: "n" + string(rune('1'+i))})
	}
	return Saga(context.Background(), NewInput(sagaHistory(t, steps...)), Options{})
}

func TestSagaValid(t *testing.T) {
	steps, st := goodSagas()
	r := runSaga(t, steps, st, st)
	if r.Verdict != Valid {
		t.Fatalf("verdict %s, want valid: %+v", r.Verdict, r.Anomalies)
	}
	if r.Stats["completed"] != 1 || r.Stats["compensated"] != 1 || r.Stats["sagas"] != 2 || r.Stats["final_reads"] != 2 {
		t.Errorf("stats %v, want 1 completed, 1 compensated of 2 sagas, 2 final reads", r.Stats)
	}
}

// Each broken final state is caught, for the reason it is broken, naming
// the saga.
func TestSagaInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(st *SagaState, steps *[]sagaStep)
		kind   string
		saga   string
		says   string
	}{
		{"skip-refund", func(st *SagaState, steps *[]sagaStep) {
			// b was charged, then its confirm declined; the compensation
			// released the stock but never refunded.
			(*steps)[9] = sagaStep{f: FCharge, key: "b", args: `{"amount":10}`, typ: history.OK}
			(*steps)[11] = sagaStep{f: FConfirm, key: "b", args: `{"decline":true}`, typ: history.Fail, err: "declined"}
			st.Payments["b"] = Payment{Amount: 10, State: "charged"}
			st.Ledger = append(st.Ledger, LedgerEntry{Saga: "b", Kind: "charge", Amount: 10})
		}, KindHalfFinishedSaga, "b", "charged and never refunded"},
		{"double-refund", func(st *SagaState, _ *[]sagaStep) {
			st.Payments["b"] = Payment{Amount: 10, State: "refunded"}
			st.Ledger = append(st.Ledger, LedgerEntry{"b", "charge", 10}, LedgerEntry{"b", "refund", 10}, LedgerEntry{"b", "refund", 10})
		}, KindDoubleCompensation, "b", "refunded 2 times"},
		{"reservation left held", func(st *SagaState, _ *[]sagaStep) {
			st.Reservations["b"] = Reservation{Item: 1, Qty: 1, State: "reserved"}
			st.Stock[1] = 4
		}, KindHalfFinishedSaga, "b", "holds its reservation without a confirmed shipment"},
		{"confirmed but refunded", func(st *SagaState, _ *[]sagaStep) {
			st.Payments["a"] = Payment{Amount: 20, State: "refunded"}
			st.Ledger = append(st.Ledger, LedgerEntry{"a", "refund", 20})
		}, KindHalfFinishedSaga, "a", "confirmed but no charge standing"},
		{"lost reservation", func(st *SagaState, _ *[]sagaStep) {
			delete(st.Reservations, "b")
		}, KindLostStep, "b", "reserve was acknowledged ok"},
		{"stock not conserved", func(st *SagaState, _ *[]sagaStep) {
			st.Stock[0] = 2
		}, KindBrokenInvariant, "", "item 0: stock 2 plus 2 reserved"},
		{"negative stock", func(st *SagaState, _ *[]sagaStep) {
			st.Stock[1] = -1
		}, KindBrokenInvariant, "", "item 1's stock is -1: negative"},
		{"money not conserved", func(st *SagaState, _ *[]sagaStep) {
			st.Ledger[0].Amount = 25
		}, KindBrokenInvariant, "", "money charged (25) less refunded (0) is 25, not 20"},
		{"lost reservation under a release's tombstone", func(st *SagaState, _ *[]sagaStep) {
			// b's reserve was acknowledged, then lost (a failover); its
			// release found nothing and left a tombstone; stock adds up.
			st.Reservations["b"] = Reservation{Item: 1, Qty: 0, State: "released"}
		}, KindLostStep, "b", "reserve was acknowledged ok"},
		{"state of a saga never begun", func(st *SagaState, _ *[]sagaStep) {
			st.Shipments["z"] = "cancelled"
		}, KindUnknownSaga, "z", "no operation of the history began it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, st := goodSagas()
			tc.change(&st, &steps)
			_, good := goodSagas()
			r := runSaga(t, steps, st, good)
			if r.Verdict != Invalid {
				t.Fatalf("verdict %s, want invalid", r.Verdict)
			}
			found := false
			for _, a := range r.Anomalies {
				if a.Kind == tc.kind && a.Key == tc.saga && strings.Contains(a.Explanation, tc.says) {
					found = true
					if !strings.HasSuffix(a.Explanation, "(final state on n1)") {
						t.Errorf("%q: want it on n1 alone (n2's state is sound)", a.Explanation)
					}
					if tc.saga != "" && tc.kind != KindUnknownSaga && !strings.Contains(a.Explanation, "history: ") {
						t.Errorf("%q does not give the saga's steps", a.Explanation)
					}
				}
			}
			if !found {
				t.Fatalf("no %s anomaly of saga %q saying %q among %+v", tc.kind, tc.saga, tc.says, r.Anomalies)
			}
		})
	}
}

// An anomaly in every node's state is reported once, naming the nodes.
func TestSagaMergesNodes(t *testing.T) {
	steps, st := goodSagas()
	st.Stock[1] = -1
	r := runSaga(t, steps, st, st)
	if r.Verdict != Invalid || r.AnomalyCount != 2 {
		t.Fatalf("verdict %s with %d anomalies, want invalid with 2 (negative, not conserved): %+v", r.Verdict, r.AnomalyCount, r.Anomalies)
	}
	if !strings.HasSuffix(r.Anomalies[0].Explanation, "(final state on n1, n2)") {
		t.Errorf("%q does not name both nodes", r.Anomalies[0].Explanation)
	}
}

// With nothing to judge the verdict is unknown, never valid.
func TestSagaUnknown(t *testing.T) {
	steps, st := goodSagas()
	if r := runSaga(t, steps); r.Verdict != Unknown || !strings.Contains(r.Reason, "no final saga-read") {
		t.Errorf("no final read: %s %q, want unknown", r.Verdict, r.Reason)
	}
	if r := runSaga(t, steps[1:], st); r.Verdict != Unknown || !strings.Contains(r.Reason, "no saga-init") {
		t.Errorf("no init: %s %q, want unknown", r.Verdict, r.Reason)
	}
	// A final read that failed is not a state.
	steps = append(steps, sagaStep{f: FSagaRead, typ: history.Info, err: "timeout", final: true, node: "n1"})
	if r := Saga(context.Background(), NewInput(sagaHistory(t, steps...)), Options{}); r.Verdict != Unknown {
		t.Errorf("final read info: %s, want unknown", r.Verdict)
	}
}

func TestSagaInferred(t *testing.T) {
	steps, st := goodSagas()
	steps = append(steps, sagaStep{f: FSagaRead, typ: history.OK, done: sagaJSON(t, st), final: true, node: "n1"})
	in := NewInput(sagaHistory(t, steps...))
	w, err := InferWorkload(in.Ops)
	if err != nil || w != WorkloadSaga {
		t.Fatalf("inferred %q, %v; want saga", w, err)
	}
	cs := ForWorkload(w)
	if len(cs) != 1 || cs[0].Name != NameSaga {
		t.Fatalf("checkers of saga: %v", cs)
	}
	if rs := Run(context.Background(), in, cs, Options{}); rs[0].Verdict != Valid {
		t.Errorf("registry run: %s %s", rs[0].Verdict, rs[0].Reason)
	}
}

// A saga left half-finished while its log says it is still running was
// not finished by the harness's recovery: the verdict is unknown, naming
// it, not an anomaly of the store.
func TestSagaUnfinishedIsUndecided(t *testing.T) {
	steps, st := goodSagas()
	st.Reservations["b"] = Reservation{Item: 1, Qty: 1, State: "reserved"}
	st.Stock[1] = 4
	rec := st.Log["b"]
	rec.Status = SagaCompensating
	st.Log["b"] = rec
	r := runSaga(t, steps, st)
	if r.Verdict != Unknown || !strings.Contains(r.Reason, "1 sagas were left half-finished with their log unfinished") || !strings.Contains(r.Reason, ": b") {
		t.Fatalf("verdict %s (%q), want unknown naming b: %+v", r.Verdict, r.Reason, r.Anomalies)
	}
	// The same state with the log saying compensated is the store's.
	rec.Status = SagaCompensated
	st.Log["b"] = rec
	if r := runSaga(t, steps, st); r.Verdict != Invalid {
		t.Errorf("log compensated: verdict %s, want invalid", r.Verdict)
	}
}

// The fences, from the history: a recovery that claims a saga and goes on
// at its epoch passes, and a log write of the old epoch that failed after
// the claim is the fence working; two acknowledged claims of one epoch,
// or an old epoch's log write acknowledged after the claim, are broken
// fences. A log that contradicts the final state is caught too.
func TestSagaFences(t *testing.T) {
	ok, fail := history.OK, history.Fail
	recovered := func(extra ...sagaStep) ([]sagaStep, SagaState) {
		steps, st := goodSagas()
		steps = append(steps,
			sagaStep{f: FSagaBegin, key: "c", args: `{"item":0,"qty":1,"price":10,"owner":"p3"}`, typ: ok},
			sagaStep{f: FSagaClaim, key: "c", args: `{"epoch":2,"owner":"p9"}`, typ: ok, done: `{"saga":"c","owner":"p9","epoch":2,"status":"running","item":0,"qty":1,"price":10,"steps":[]}`},
			sagaStep{f: FSagaLog, key: "c", args: `{"epoch":1,"step":"reserve","status":"running"}`, typ: fail, err: "fenced: epoch 2"},
			sagaStep{f: FCancel, key: "c", typ: ok, done: `"cancelled"`},
			sagaStep{f: FSagaLog, key: "c", args: `{"epoch":2,"step":"compensated","status":"compensated"}`, typ: ok})
		steps = append(steps, extra...)
		st.Shipments["c"] = "cancelled"
		st.Log["c"] = SagaRecord{Saga: "c", Owner: "p9", Epoch: 2, Status: SagaCompensated, Item: 0, Qty: 1, Price: 10, Steps: []string{"compensated"}}
		return steps, st
	}
	steps, st := recovered()
	if r := runSaga(t, steps, st); r.Verdict != Valid {
		t.Fatalf("a recovery behind its fence: %s %+v", r.Verdict, r.Anomalies)
	}
	for _, tc := range []struct {
		name  string
		extra sagaStep
		says  string
	}{
		{"two claims of one epoch", sagaStep{f: FSagaClaim, key: "c", args: `{"epoch":2,"owner":"p8"}`, typ: ok, done: `{"saga":"c","owner":"p8","epoch":2}`},
			"claimed at epoch 2 twice"},
		{"an old epoch's log write acknowledged", sagaStep{f: FSagaLog, key: "c", args: `{"epoch":1,"step":"charge","status":"running"}`, typ: ok},
			"log write at epoch 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, st := recovered(tc.extra)
			r := runSaga(t, steps, st)
			for _, a := range r.Anomalies {
				if a.Kind == KindBrokenFence && a.Key == "c" && strings.Contains(a.Explanation, tc.says) {
					return
				}
			}
			t.Fatalf("verdict %s, no broken fence saying %q: %+v", r.Verdict, tc.says, r.Anomalies)
		})
	}
	t.Run("log done, shipment cancelled", func(t *testing.T) {
		steps, st := goodSagas()
		rec := st.Log["b"]
		rec.Status = SagaDone
		st.Log["b"] = rec
		r := runSaga(t, steps, st)
		if r.Verdict != Invalid || r.Anomalies[0].Kind != KindLogContradiction || !strings.Contains(r.Anomalies[0].Explanation, "done by its log, but its shipment is not confirmed") {
			t.Fatalf("verdict %s: %+v", r.Verdict, r.Anomalies)
		}
	})
}
