// Package sagatest is the conformance suite of the saga workload's
// operations (checkers/saga_protocol.go): a system's test calls [Run] with
// clients of a fresh cluster, and the suite drives every operation and
// asserts what the protocol says it must do, on both sides (what must be
// ok and what must fail).
package sagatest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// Run drives the protocol through clients newClient makes (of one
// cluster, which must hold no saga state yet). Each call of newClient
// may return a client of another node; writes must reach the same state.
func Run(t *testing.T, newClient func(t *testing.T) workload.Client) {
	t.Helper()
	c := &conn{t: t, cl: newClient(t)}

	// init: ok once, with the stock it was given; then it fails.
	c.ok(checkers.FSagaInit, "", `{"stock":[3,5]}`)
	c.fail(checkers.FSagaInit, "", `{"stock":[3,5]}`)

	// A saga that goes forward: begin, reserve, charge, confirm, logged.
	c.ok(checkers.FSagaBegin, "a", `{"item":0,"qty":2,"price":20,"owner":"p0"}`)
	c.ok(checkers.FSagaBegin, "a", `{"item":0,"qty":2,"price":20,"owner":"p0"}`) // a retried begin
	c.fail(checkers.FSagaBegin, "a", `{"item":0,"qty":2,"price":20,"owner":"p1"}`)
	c.ok(checkers.FReserve, "a", `{"item":0,"qty":2}`)
	c.ok(checkers.FReserve, "a", `{"item":0,"qty":2}`) // idempotent: stock goes down once
	c.ok(checkers.FSagaLog, "a", `{"epoch":1,"step":"reserve","status":"running"}`)
	c.fail(checkers.FSagaLog, "a", `{"epoch":2,"step":"reserve","status":"running"}`) // not its epoch
	c.ok(checkers.FCharge, "a", `{"amount":20}`)
	c.ok(checkers.FCharge, "a", `{"amount":20}`) // one ledger entry
	c.ok(checkers.FConfirm, "a", `{}`)
	c.ok(checkers.FConfirm, "a", `{}`)
	if v := c.ok(checkers.FCancel, "a", `null`); v.String() != `"confirmed"` {
		t.Errorf("cancel of a confirmed shipment = %s, want \"confirmed\"", v)
	}
	c.ok(checkers.FSagaLog, "a", `{"epoch":1,"step":"done","status":"done"}`)
	c.fail(checkers.FSagaClaim, "a", `{"epoch":2,"owner":"p9"}`) // done: nothing to recover

	// Declines record nothing.
	c.ok(checkers.FSagaBegin, "b", `{"item":1,"qty":1,"price":10,"owner":"p0"}`)
	c.fail(checkers.FReserve, "b", `{"item":1,"qty":1,"decline":true}`)
	c.fail(checkers.FReserve, "b2", `{"item":0,"qty":2}`) // 1 left of item 0: out of stock
	c.ok(checkers.FReserve, "b", `{"item":1,"qty":1}`)
	c.fail(checkers.FCharge, "b", `{"amount":10,"decline":true}`)
	c.ok(checkers.FCharge, "b", `{"amount":10}`)
	c.fail(checkers.FConfirm, "b", `{"decline":true}`)
	// Compensation, in reverse: cancel fences the shipment off, refund,
	// release; each idempotent.
	c.ok(checkers.FSagaLog, "b", `{"epoch":1,"step":"compensate","status":"compensating"}`)
	if v := c.ok(checkers.FCancel, "b", `null`); v.String() != `"cancelled"` {
		t.Errorf("cancel of no shipment = %s, want \"cancelled\"", v)
	}
	c.ok(checkers.FCancel, "b", `null`)
	c.fail(checkers.FConfirm, "b", `{}`) // cancelled: a late confirm cannot land
	c.ok(checkers.FRefund, "b", `{"amount":10}`)
	c.ok(checkers.FRefund, "b", `{"amount":10}`)   // no second ledger entry
	c.fail(checkers.FCharge, "b", `{"amount":10}`) // refunded
	c.ok(checkers.FRelease, "b", `{"item":1,"qty":1}`)
	c.ok(checkers.FRelease, "b", `{"item":1,"qty":1}`)   // stock back once
	c.fail(checkers.FReserve, "b", `{"item":1,"qty":1}`) // released
	c.ok(checkers.FSagaLog, "b", `{"epoch":1,"step":"compensated","status":"compensated"}`)

	// Tombstones: compensations of steps that never ran.
	c.ok(checkers.FSagaBegin, "c", `{"item":1,"qty":2,"price":30,"owner":"p2"}`)
	c.ok(checkers.FRefund, "c", `{"amount":30}`)
	c.fail(checkers.FCharge, "c", `{"amount":30}`)
	c.ok(checkers.FRelease, "c", `{"item":1,"qty":2}`)
	c.fail(checkers.FReserve, "c", `{"item":1,"qty":2}`)

	// Recovery: pending lists the unfinished records; a claim moves the
	// epoch on and fences the first owner's log.
	c.ok(checkers.FSagaBegin, "d", `{"item":1,"qty":1,"price":5,"owner":"p3"}`)
	c.ok(checkers.FSagaLog, "d", `{"epoch":1,"step":"reserve","status":"running"}`)
	pending := c.records(c.ok(checkers.FSagaPending, "", `null`))
	var ids []string
	for _, r := range pending {
		ids = append(ids, r.Saga)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"c", "d"}) {
		t.Errorf("pending sagas = %v, want [c d] (a and b are final)", ids)
	}
	c.fail(checkers.FSagaClaim, "d", `{"epoch":3,"owner":"p9"}`) // skips an epoch
	var rec checkers.SagaRecord
	c.decode(c.ok(checkers.FSagaClaim, "d", `{"epoch":2,"owner":"p9"}`), &rec)
	if rec.Saga != "d" || rec.Epoch != 2 || rec.Owner != "p9" || rec.Item != 1 || rec.Qty != 1 || rec.Price != 5 || !slices.Contains(rec.Steps, "reserve") {
		t.Errorf("claimed record = %+v, want saga d at epoch 2 owned by p9, item 1, qty 1, price 5, with its reserve step", rec)
	}
	c.fail(checkers.FSagaClaim, "d", `{"epoch":2,"owner":"p8"}`) // claimed already
	c.fail(checkers.FSagaLog, "d", `{"epoch":1,"step":"charge","status":"running"}`)
	c.ok(checkers.FSagaLog, "d", `{"epoch":2,"step":"compensate","status":"compensating"}`)

	// The bug of --saga-bug double-refund: a refund that does not dedupe
	// adds a ledger entry for a payment already refunded.
	c.ok(checkers.FSagaBegin, "e", `{"item":1,"qty":1,"price":7,"owner":"p4"}`)
	c.ok(checkers.FCharge, "e", `{"amount":7}`)
	c.ok(checkers.FRefund, "e", `{"amount":7,"dedupe":false}`)
	c.ok(checkers.FRefund, "e", `{"amount":7,"dedupe":false}`)

	// The state, from a client that may be of another node.
	r := &conn{t: t, cl: newClient(t)}
	var st checkers.SagaState
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = checkers.SagaState{}
		r.decode(r.ok(checkers.FSagaRead, "", `null`), &st)
		if len(st.Log) == 5 && countKind(st.Ledger, "e", "refund") == 2 || time.Now().After(deadline) {
			break // a replica may lag a moment
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(st.Stock, []int64{1, 5}) {
		t.Errorf("stock = %v, want [1 5] (item 0: 3, less 2 for a; item 1: 5, b's 1 released, c tombstoned)", st.Stock)
	}
	want := map[string]checkers.Reservation{
		"a": {Item: 0, Qty: 2, State: "reserved"},
		"b": {Item: 1, Qty: 1, State: "released"},
		"c": {Item: 1, Qty: 0, State: "released"},
	}
	for id, w := range want {
		if got := st.Reservations[id]; got != w {
			t.Errorf("reservation %s = %+v, want %+v", id, got, w)
		}
	}
	if len(st.Reservations) != len(want) {
		t.Errorf("reservations = %v, want those of a, b, c only", st.Reservations)
	}
	wantPay := map[string]checkers.Payment{
		"a": {Amount: 20, State: "charged"},
		"b": {Amount: 10, State: "refunded"},
		"c": {Amount: 0, State: "refunded"},
		"e": {Amount: 7, State: "refunded"},
	}
	for id, w := range wantPay {
		if got := st.Payments[id]; got != w {
			t.Errorf("payment %s = %+v, want %+v", id, got, w)
		}
	}
	for _, w := range []struct {
		saga, kind string
		n          int
	}{{"a", "charge", 1}, {"a", "refund", 0}, {"b", "charge", 1}, {"b", "refund", 1}, {"c", "charge", 0}, {"c", "refund", 0}, {"e", "charge", 1}, {"e", "refund", 2}} {
		if n := countKind(st.Ledger, w.saga, w.kind); n != w.n {
			t.Errorf("ledger: %d %s entries of %s, want %d (ledger %+v)", n, w.kind, w.saga, w.n, st.Ledger)
		}
	}
	if st.Shipments["a"] != "confirmed" || st.Shipments["b"] != "cancelled" || len(st.Shipments) != 2 {
		t.Errorf("shipments = %v, want a confirmed, b cancelled", st.Shipments)
	}
	if len(st.Log) != 5 {
		t.Errorf("log has %d records, want 5 (a, b, c, d, e)", len(st.Log))
	}
	if a := st.Log["a"]; a.Status != checkers.SagaDone || a.Epoch != 1 || a.Owner != "p0" || a.Price != 20 {
		t.Errorf("log of a = %+v, want done at epoch 1, owner p0, price 20", a)
	}
	if d := st.Log["d"]; d.Status != checkers.SagaCompensating || d.Epoch != 2 || d.Owner != "p9" {
		t.Errorf("log of d = %+v, want compensating at epoch 2, owner p9", d)
	}
	if b := st.Log["b"]; b.Status != checkers.SagaCompensated || !slices.Equal(b.Steps, []string{"compensate", "compensated"}) {
		t.Errorf("log of b = %+v, want compensated with steps [compensate compensated]", b)
	}
}

func countKind(ledger []checkers.LedgerEntry, saga, kind string) int {
	n := 0
	for _, e := range ledger {
		if e.Saga == saga && e.Kind == kind {
			n++
		}
	}
	return n
}

type conn struct {
	t  *testing.T
	cl workload.Client
	p  history.Process
}

// do invokes f on key with the JSON value js.
func (c *conn) do(f, key, js string) history.Op {
	c.t.Helper()
	v, err := history.Raw([]byte(js))
	if err != nil {
		c.t.Fatalf("bad test value %s: %v", js, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.cl.Invoke(ctx, history.Op{Type: history.Invoke, Process: c.p, F: f, Key: key, Value: v})
}

// ok invokes and requires an ok completion; it returns its value.
func (c *conn) ok(f, key, js string) history.Value {
	c.t.Helper()
	done := c.do(f, key, js)
	if done.Type != history.OK {
		c.t.Fatalf("%s %s %s: %s (%s), want ok", f, key, js, done.Type, done.Error)
	}
	return done.Value
}

// fail invokes and requires a fail completion (it certainly did not
// apply).
func (c *conn) fail(f, key, js string) {
	c.t.Helper()
	done := c.do(f, key, js)
	if done.Type != history.Fail {
		c.t.Fatalf("%s %s %s: %s %s, want fail", f, key, js, done.Type, done.Value)
	}
	if done.Error == "" {
		c.t.Errorf("%s %s %s failed with no error text: say why", f, key, js)
	}
}

func (c *conn) decode(v history.Value, into any) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(v.String()), into); err != nil {
		c.t.Fatalf("decode %s: %v", v, err)
	}
}

func (c *conn) records(v history.Value) []checkers.SagaRecord {
	c.t.Helper()
	var rs []checkers.SagaRecord
	c.decode(v, &rs)
	return rs
}
