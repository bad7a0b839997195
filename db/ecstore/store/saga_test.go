package store

import (
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
)

// sagaCmd is the raft command of saga operation f on saga key with the
// arguments args (JSON).
func sagaCmd(t *testing.T, f, key, args string) raftCommand {
	t.Helper()
	cmd := SagaCommand{F: f}
	if args != "" {
		cmd.Args = json.RawMessage(args)
	}
	v, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return raftCommand{Op: OpSaga, Key: key, Value: v}
}

// sagaStep is one saga operation and what the state machine must answer:
// ok (with value, when set), refused with the reason refused, or malformed
// (bad, a part of the error).
type sagaStep struct {
	name           string
	f, key, args   string
	value, refused string
	bad            string
}

// applySagaSteps applies steps in order to f from log index *index on.
func applySagaSteps(t *testing.T, f *raftFSM, index *uint64, steps []sagaStep) {
	t.Helper()
	for _, s := range steps {
		*index++
		got := applyCmd(t, f, *index, sagaCmd(t, s.f, s.key, s.args))
		switch {
		case s.bad != "":
			if !strings.Contains(got.Err, s.bad) {
				t.Errorf("%s: got %+v, want an error about %q", s.name, got, s.bad)
			}
		case s.refused != "":
			if got.Refused != s.refused || got.Err != "" {
				t.Errorf("%s: got %+v, want refused %q", s.name, got, s.refused)
			}
		default:
			if got.Refused != "" || got.Err != "" {
				t.Errorf("%s: got %+v (%s), want ok", s.name, got, got.Value)
			} else if s.value != "" && string(got.Value) != s.value {
				t.Errorf("%s: value %s, want %s", s.name, got.Value, s.value)
			}
		}
	}
}

// sagaRead is the state a saga-read of f returns.
func sagaRead(t *testing.T, f *raftFSM, index uint64) checkers.SagaState {
	t.Helper()
	res := applyCmd(t, f, index, sagaCmd(t, checkers.FSagaRead, "", ""))
	if res.Err != "" || res.Refused != "" {
		t.Fatalf("saga-read: %+v", res)
	}
	st, err := checkers.ParseSagaState(res.Value)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The raft state machine applies every saga operation by the protocol's
// rules, on both sides: what must be ok (and change the state once) and
// what must be refused (and change nothing).
func TestRaftFSMSaga(t *testing.T) {
	steps := []sagaStep{
		{name: "read/empty store/empty state", f: checkers.FSagaRead,
			value: `{"stock":[],"reservations":{},"payments":{},"ledger":[],"shipments":{},"log":{}}`},
		{name: "pending/empty store/empty list", f: checkers.FSagaPending, value: `[]`},
		{name: "init/no stock/malformed", f: checkers.FSagaInit, args: `{}`, bad: "no stock"},
		{name: "init/fresh/ok", f: checkers.FSagaInit, args: `{"stock":[3,5]}`},
		{name: "init/state exists/refused", f: checkers.FSagaInit, args: `{"stock":[9]}`, refused: "exists: the store holds saga state"},

		{name: "begin/no key/malformed", f: checkers.FSagaBegin, args: `{"item":0,"qty":1,"owner":"p0"}`, bad: "empty"},
		{name: "begin/no owner/malformed", f: checkers.FSagaBegin, key: "a", args: `{"item":0,"qty":1}`, bad: "no owner"},
		{name: "begin/new/ok", f: checkers.FSagaBegin, key: "a", args: `{"item":0,"qty":2,"price":20,"owner":"p0"}`},
		{name: "begin/same owner/ok (a retry)", f: checkers.FSagaBegin, key: "a", args: `{"item":0,"qty":2,"price":20,"owner":"p0"}`},
		{name: "begin/other owner/refused", f: checkers.FSagaBegin, key: "a", args: `{"item":0,"qty":2,"price":20,"owner":"p1"}`, refused: "exists: saga a is owned by p0"},
		{name: "log/its epoch/ok", f: checkers.FSagaLog, key: "a", args: `{"epoch":1,"step":"reserve","status":"running"}`},
		{name: "log/other epoch/fenced", f: checkers.FSagaLog, key: "a", args: `{"epoch":2,"step":"charge"}`, refused: "fenced: epoch 1"},
		{name: "log/no record/refused", f: checkers.FSagaLog, key: "zz", args: `{"epoch":1,"step":"x"}`, refused: "no saga zz"},
		{name: "log/unknown status/malformed", f: checkers.FSagaLog, key: "a", args: `{"epoch":1,"status":"sleeping"}`, bad: "unknown status"},

		{name: "reserve/stock enough/ok", f: checkers.FReserve, key: "a", args: `{"item":0,"qty":2}`},
		{name: "reserve/held/ok once", f: checkers.FReserve, key: "a", args: `{"item":0,"qty":2}`},
		{name: "reserve/declined/refused", f: checkers.FReserve, key: "b", args: `{"item":1,"qty":1,"decline":true}`, refused: "declined"},
		{name: "reserve/stock short/refused", f: checkers.FReserve, key: "b", args: `{"item":0,"qty":2}`, refused: "out of stock"},
		{name: "reserve/no such item/refused", f: checkers.FReserve, key: "b", args: `{"item":7,"qty":1}`, refused: "no item 7"},
		{name: "reserve/b/ok", f: checkers.FReserve, key: "b", args: `{"item":1,"qty":1}`},
		{name: "release/held/stock back", f: checkers.FRelease, key: "b", args: `{"item":1,"qty":1}`},
		{name: "release/released/ok once", f: checkers.FRelease, key: "b", args: `{"item":1,"qty":1}`},
		{name: "reserve/released/refused", f: checkers.FReserve, key: "b", args: `{"item":1,"qty":1}`, refused: "released"},
		{name: "release/none/tombstone", f: checkers.FRelease, key: "c", args: `{"item":1,"qty":2}`},
		{name: "reserve/tombstone/refused", f: checkers.FReserve, key: "c", args: `{"item":1,"qty":2}`, refused: "released"},

		{name: "charge/declined/refused", f: checkers.FCharge, key: "a", args: `{"amount":20,"decline":true}`, refused: "declined"},
		{name: "charge/new/ok", f: checkers.FCharge, key: "a", args: `{"amount":20}`},
		{name: "charge/charged/ok once", f: checkers.FCharge, key: "a", args: `{"amount":20}`},
		{name: "charge/b/ok", f: checkers.FCharge, key: "b", args: `{"amount":10}`},
		{name: "refund/charged/refunded", f: checkers.FRefund, key: "b", args: `{"amount":10}`},
		{name: "refund/refunded/ok once", f: checkers.FRefund, key: "b", args: `{"amount":10,"dedupe":true}`},
		{name: "charge/late after refund/refused", f: checkers.FCharge, key: "b", args: `{"amount":10}`, refused: "refunded"},
		{name: "refund/none/tombstone", f: checkers.FRefund, key: "c", args: `{"amount":30}`},
		{name: "charge/tombstone/refused", f: checkers.FCharge, key: "c", args: `{"amount":30}`, refused: "refunded"},
		{name: "charge/e/ok", f: checkers.FCharge, key: "e", args: `{"amount":7}`},
		{name: "refund/no dedupe/refunded", f: checkers.FRefund, key: "e", args: `{"amount":7,"dedupe":false}`},
		{name: "refund/no dedupe again/second ledger refund", f: checkers.FRefund, key: "e", args: `{"amount":7,"dedupe":false}`},

		{name: "confirm/declined/refused, records nothing", f: checkers.FConfirm, key: "a", args: `{"decline":true}`, refused: "declined"},
		{name: "confirm/new/ok", f: checkers.FConfirm, key: "a", args: `{}`},
		{name: "confirm/confirmed/ok", f: checkers.FConfirm, key: "a", args: `{}`},
		{name: "cancel/confirmed/stays confirmed", f: checkers.FCancel, key: "a", value: `"confirmed"`},
		{name: "cancel/none/cancelled", f: checkers.FCancel, key: "b", value: `"cancelled"`},
		{name: "cancel/cancelled/cancelled", f: checkers.FCancel, key: "b", args: `null`, value: `"cancelled"`},
		{name: "confirm/cancelled/refused", f: checkers.FConfirm, key: "b", args: `{}`, refused: "cancelled"},

		{name: "log/a done/ok", f: checkers.FSagaLog, key: "a", args: `{"epoch":1,"step":"done","status":"done"}`},
		{name: "claim/done/refused", f: checkers.FSagaClaim, key: "a", args: `{"epoch":2,"owner":"p9"}`, refused: "not claimable: epoch 1, status done"},
		{name: "begin/d/ok", f: checkers.FSagaBegin, key: "d", args: `{"item":1,"qty":1,"price":5,"owner":"p3"}`},
		{name: "log/d reserve/ok", f: checkers.FSagaLog, key: "d", args: `{"epoch":1,"step":"reserve"}`},
		{name: "pending/d running, a done/d only", f: checkers.FSagaPending,
			value: `[{"saga":"d","owner":"p3","epoch":1,"status":"running","item":1,"qty":1,"price":5,"steps":["reserve"]}]`},
		{name: "claim/skips an epoch/fenced", f: checkers.FSagaClaim, key: "d", args: `{"epoch":3,"owner":"p9"}`, refused: "not claimable: epoch 1, status running"},
		{name: "claim/no record/refused", f: checkers.FSagaClaim, key: "zz", args: `{"epoch":2,"owner":"p9"}`, refused: "no saga zz"},
		{name: "claim/next epoch/the record", f: checkers.FSagaClaim, key: "d", args: `{"epoch":2,"owner":"p9"}`,
			value: `{"saga":"d","owner":"p9","epoch":2,"status":"running","item":1,"qty":1,"price":5,"steps":["reserve"]}`},
		{name: "claim/claimed already/fenced", f: checkers.FSagaClaim, key: "d", args: `{"epoch":2,"owner":"p8"}`, refused: "not claimable: epoch 2, status running"},
		{name: "log/stale epoch after claim/fenced", f: checkers.FSagaLog, key: "d", args: `{"epoch":1,"step":"charge"}`, refused: "fenced: epoch 2"},
		{name: "log/new owner's epoch/ok", f: checkers.FSagaLog, key: "d", args: `{"epoch":2,"step":"compensate","status":"compensating"}`},

		{name: "unknown function/malformed", f: "teleport", key: "a", args: `{}`, bad: "unknown saga operation"},
		{name: "args not an object/malformed", f: checkers.FReserve, key: "a", args: `[1]`, bad: "JSON object"},
	}
	f := newRaftFSM()
	var index uint64
	applySagaSteps(t, f, &index, steps)

	want := checkers.SagaState{
		Stock: []int64{1, 5},
		Reservations: map[string]checkers.Reservation{
			"a": {Item: 0, Qty: 2, State: "reserved"},
			"b": {Item: 1, Qty: 1, State: "released"},
			"c": {Item: 1, Qty: 0, State: "released"},
		},
		Payments: map[string]checkers.Payment{
			"a": {Amount: 20, State: "charged"},
			"b": {Amount: 10, State: "refunded"},
			"c": {Amount: 0, State: "refunded"},
			"e": {Amount: 7, State: "refunded"},
		},
		Ledger: []checkers.LedgerEntry{
			{Saga: "a", Kind: "charge", Amount: 20},
			{Saga: "b", Kind: "charge", Amount: 10},
			{Saga: "b", Kind: "refund", Amount: 10},
			{Saga: "e", Kind: "charge", Amount: 7},
			{Saga: "e", Kind: "refund", Amount: 7},
			{Saga: "e", Kind: "refund", Amount: 7},
		},
		Shipments: map[string]string{"a": "confirmed", "b": "cancelled"},
		Log: map[string]checkers.SagaRecord{
			"a": {Saga: "a", Owner: "p0", Epoch: 1, Status: "done", Item: 0, Qty: 2, Price: 20, Steps: []string{"reserve", "done"}},
			"d": {Saga: "d", Owner: "p9", Epoch: 2, Status: "compensating", Item: 1, Qty: 1, Price: 5, Steps: []string{"reserve", "compensate"}},
		},
	}
	index++
	if got := sagaRead(t, f, index); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after the steps:\n got %+v\nwant %+v", got, want)
	}

	// The state survives a snapshot and its restore, and goes on by the
	// same rules: the tombstones and the fence still hold.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newRaftFSM()
	applyCmd(t, g, 1, sagaCmd(t, checkers.FSagaInit, "", `{"stock":[100]}`)) // Restore discards it
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if got := sagaRead(t, g, index+1); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after a restore:\n got %+v\nwant %+v", got, want)
	}
	after := index + 1
	applySagaSteps(t, g, &after, []sagaStep{
		{name: "restored/init/refused", f: checkers.FSagaInit, args: `{"stock":[1]}`, refused: "exists: the store holds saga state"},
		{name: "restored/reserve on a tombstone/refused", f: checkers.FReserve, key: "c", args: `{"item":1,"qty":2}`, refused: "released"},
		{name: "restored/charge after refund/refused", f: checkers.FCharge, key: "c", args: `{"amount":30}`, refused: "refunded"},
		{name: "restored/log with a stale epoch/fenced", f: checkers.FSagaLog, key: "d", args: `{"epoch":1,"step":"x"}`, refused: "fenced: epoch 2"},
		{name: "restored/log after/steps go on", f: checkers.FSagaLog, key: "a", args: `{"epoch":1,"step":"audit"}`},
	})
	if got := sagaRead(t, g, after+1).Log["a"].Steps; !reflect.DeepEqual(got, []string{"reserve", "done", "audit"}) {
		t.Errorf("steps of a after a restore and one more log: %v", got)
	}

	// A snapshot of a store that never ran a saga restores without one.
	h := newRaftFSM()
	snap, err = h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink = memSink{}
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sink.String(), "saga") {
		t.Errorf("snapshot of a store without sagas holds saga state: %s", sink.String())
	}
}

// A refused or malformed saga operation changes nothing: the state reads
// the same before and after.
func TestRaftFSMSagaRefusedChangesNothing(t *testing.T) {
	f := newRaftFSM()
	var index uint64
	applySagaSteps(t, f, &index, []sagaStep{
		{name: "init", f: checkers.FSagaInit, args: `{"stock":[1]}`},
		{name: "begin", f: checkers.FSagaBegin, key: "a", args: `{"item":0,"qty":1,"price":3,"owner":"p0"}`},
	})
	index++
	before := sagaRead(t, f, index)
	applySagaSteps(t, f, &index, []sagaStep{
		{name: "reserve/declined", f: checkers.FReserve, key: "a", args: `{"item":0,"qty":1,"decline":true}`, refused: "declined"},
		{name: "reserve/out of stock", f: checkers.FReserve, key: "a", args: `{"item":0,"qty":2}`, refused: "out of stock"},
		{name: "charge/declined", f: checkers.FCharge, key: "a", args: `{"amount":3,"decline":true}`, refused: "declined"},
		{name: "confirm/declined", f: checkers.FConfirm, key: "a", args: `{"decline":true}`, refused: "declined"},
		{name: "log/stale", f: checkers.FSagaLog, key: "a", args: `{"epoch":5,"step":"x","status":"done"}`, refused: "fenced: epoch 1"},
		{name: "claim/fenced", f: checkers.FSagaClaim, key: "a", args: `{"epoch":1,"owner":"p1"}`, refused: "not claimable: epoch 1, status running"},
		{name: "begin/other owner", f: checkers.FSagaBegin, key: "a", args: `{"owner":"p1"}`, refused: "exists: saga a is owned by p0"},
		{name: "init/again", f: checkers.FSagaInit, args: `{"stock":[5]}`, refused: "exists: the store holds saga state"},
		{name: "reserve/negative/malformed", f: checkers.FReserve, key: "a", args: `{"item":0,"qty":-1}`, bad: "below zero"},
	})
	index++
	if after := sagaRead(t, f, index); !reflect.DeepEqual(before, after) {
		t.Errorf("refused operations changed the state:\nbefore %+v\n after %+v", before, after)
	}
}

// The primary mode applies a saga operation on the primary and logs those
// that changed the state; a follower that replays the log, and one that
// installs a full copy, hold the same state.
func TestPrimarySagaReplay(t *testing.T) {
	mk := func() *primaryEngine {
		return &primaryEngine{regs: map[string]pReg{}, sets: map[string]*pSet{}, counters: map[string]pCounter{},
			changed: make(chan struct{}), epoch: 1}
	}
	p, replica := mk(), mk()
	ops := []struct{ f, key, args, refused string }{
		{checkers.FSagaInit, "", `{"stock":[2]}`, ""},
		{checkers.FSagaBegin, "a", `{"item":0,"qty":1,"price":4,"owner":"p0"}`, ""},
		{checkers.FSagaBegin, "a", `{"item":0,"qty":1,"price":4,"owner":"p0"}`, ""}, // no change: not logged
		{checkers.FReserve, "a", `{"item":0,"qty":1}`, ""},
		{checkers.FCharge, "a", `{"amount":4}`, ""},
		{checkers.FCharge, "b", `{"amount":4,"decline":true}`, "declined"}, // refused: not logged
		{checkers.FRefund, "b", `{"amount":4}`, ""},
		{checkers.FCancel, "c", ``, ""},
		{checkers.FSagaLog, "a", `{"epoch":1,"step":"charge"}`, ""},
		{checkers.FSagaPending, "", ``, ""}, // a read: not logged
	}
	for _, o := range ops {
		op, err := parseSaga(o.key, sagaCmd(t, o.f, o.key, o.args).Value)
		if err != nil {
			t.Fatalf("%s %s: %v", o.f, o.key, err)
		}
		p.mu.Lock()
		res, _ := p.sagaLocked(op)
		p.mu.Unlock()
		if res.Refused != o.refused {
			t.Errorf("%s %s %s: refused %q, want %q", o.f, o.key, o.args, res.Refused, o.refused)
		}
	}
	if len(p.log) != 7 || p.lastIndex != 7 {
		t.Errorf("primary logged %d entries (last index %d), want 7: one per operation that changed the state", len(p.log), p.lastIndex)
	}
	replica.receive("", pAppend{Epoch: 1, Entries: p.log})
	copied := mk()
	copied.installLocked(p.snapshotLocked())
	want := string(mustJSON(p.saga))
	for name, e := range map[string]*primaryEngine{"replayed": replica, "copied": copied} {
		if e.saga == nil || string(mustJSON(e.saga)) != want {
			t.Errorf("%s follower's saga state %s, want the primary's %s", name, mustJSON(e.saga), want)
		}
	}
}
