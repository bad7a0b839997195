package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// The raft state machine applies a transaction in one step: its reads see
// its own earlier appends, its lists survive a snapshot, and a malformed
// transaction changes nothing.
func TestRaftFSMTransactions(t *testing.T) {
	f := newRaftFSM()
	res := applyCmd(t, f, 1, raftCommand{Op: OpTxn, Value: json.RawMessage(`[["append","x",1],["r","x",null],["append","x",2],["r","x",null],["r","y",null]]`)})
	if res.Err != "" || string(res.Value) != `[["append","x",1],["r","x",[1]],["append","x",2],["r","x",[1,2]],["r","y",[]]]` {
		t.Fatalf("txn: %+v %s", res, res.Value)
	}
	if bad := applyCmd(t, f, 2, raftCommand{Op: OpTxn, Value: json.RawMessage(`[["w","x",3]]`)}); bad.Err == "" {
		t.Fatal("a w micro-operation was applied")
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newRaftFSM()
	if err := g.Restore(ioNopCloser{strings.NewReader(sink.String())}); err != nil {
		t.Fatal(err)
	}
	if res := applyCmd(t, g, 3, raftCommand{Op: OpTxn, Value: json.RawMessage(`[["r",5,null],["r","x",null]]`)}); string(res.Value) != `[["r",5,[]],["r","x",[1,2]]]` {
		t.Fatalf("after a snapshot: %s (%s)", res.Value, res.Err)
	}
}

type ioNopCloser struct{ *strings.Reader }

func (ioNopCloser) Close() error { return nil }

// The other modes run a transaction one micro-operation at a time: a
// failure before any append was written is as definite as it was; after
// one, it is indeterminate (half the transaction happened).
func TestSequentialTxn(t *testing.T) {
	lists := map[string]string{}
	failWrites := 0
	do := func(_ context.Context, r Request) Response {
		switch r.Op {
		case OpRead:
			return Response{Value: json.RawMessage(lists[r.Key])}
		case OpWrite:
			if failWrites > 0 {
				failWrites--
				return Response{Error: ErrUnavailable, Message: "no quorum"}
			}
			lists[r.Key] = string(r.Value)
			return Response{}
		}
		return Response{Error: ErrBadRequest}
	}
	req := Request{Op: OpTxn, Key: "txn", Value: json.RawMessage(`[["append","x",1],["r","x",null],["append","y",2]]`)}
	if resp := sequentialTxn(context.Background(), do, req); resp.Error != "" || string(resp.Value) != `[["append","x",1],["r","x",[1]],["append","y",2]]` {
		t.Fatalf("txn: %+v %s", resp, resp.Value)
	}
	failWrites = 1
	if resp := sequentialTxn(context.Background(), do, Request{Op: OpTxn, Value: json.RawMessage(`[["append","z",1]]`)}); resp.Error != ErrUnavailable {
		t.Fatalf("first write refused: %+v, want the refusal as it was (definite)", resp)
	}
	failWrites = 1
	req = Request{Op: OpTxn, Value: json.RawMessage(`[["append","x",3],["append","y",4],["append","x",5]]`)}
	lists["x"], lists["y"] = "", ""
	calls := 0
	half := func(ctx context.Context, r Request) Response {
		if r.Op == OpWrite {
			calls++
			if calls == 2 {
				return Response{Error: ErrUnavailable, Message: "no quorum"}
			}
		}
		return do(ctx, r)
	}
	failWrites = 0
	if resp := sequentialTxn(context.Background(), half, req); resp.Error != ErrIndeterminate {
		t.Fatalf("second write refused after the first was written: %+v, want indeterminate", resp)
	}
	if resp := sequentialTxn(context.Background(), do, Request{Op: OpTxn, Value: json.RawMessage(`[["cas","x",1]]`)}); resp.Error != ErrBadRequest {
		t.Fatalf("a cas micro-operation: %+v, want a bad request", resp)
	}
}

// rw-register transactions in the raft state machine: one step, reads of
// never-written keys null, reads after the transaction's own writes their
// values; a list-append micro-operation is refused and changes nothing;
// lists and rw-register registers are separate objects even on one key;
// the registers survive a snapshot.
func TestRaftFSMRWRegisterTransactions(t *testing.T) {
	f := newRaftFSM()
	for _, tc := range []struct {
		name, op, value, want string // want "" means refused (Err)
	}{
		{"rw/never written/null, then own writes", string(OpRWTxn), `[["r","x",null],["w","x",1],["r","x",null],["w","x",2],["r","x",null],["w",5,"s"]]`,
			`[["r","x",null],["w","x",1],["r","x",1],["w","x",2],["r","x",2],["w",5,"s"]]`},
		{"rw/append/refused", string(OpRWTxn), `[["w","x",3],["append","x",4]]`, ""},
		{"rw/write of null/refused", string(OpRWTxn), `[["w","x",null]]`, ""},
		{"rw/write of a list/refused", string(OpRWTxn), `[["w","x",[1]]]`, ""},
		{"list-append/same key/its own empty list", string(OpTxn), `[["r","x",null],["append","x",7],["r","x",null]]`,
			`[["r","x",[]],["append","x",7],["r","x",[7]]]`},
		{"rw/after both/the last committed write, not the list", string(OpRWTxn), `[["r","x",null],["r",5,null]]`,
			`[["r","x",2],["r",5,"s"]]`},
	} {
		res := applyCmd(t, f, f.applied()+1, raftCommand{Op: Op(tc.op), Value: json.RawMessage(tc.value)})
		switch {
		case tc.want == "" && res.Err == "":
			t.Errorf("%s: applied: %s", tc.name, res.Value)
		case tc.want != "" && (res.Err != "" || string(res.Value) != tc.want):
			t.Errorf("%s: %s (%s), want %s", tc.name, res.Value, res.Err, tc.want)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newRaftFSM()
	if err := g.Restore(ioNopCloser{strings.NewReader(sink.String())}); err != nil {
		t.Fatal(err)
	}
	if res := applyCmd(t, g, 10, raftCommand{Op: OpRWTxn, Value: json.RawMessage(`[["r","x",null],["r","y",null]]`)}); string(res.Value) != `[["r","x",2],["r","y",null]]` {
		t.Fatalf("rw/after a snapshot/registers kept: %s (%s)", res.Value, res.Err)
	}
	if res := applyCmd(t, g, 11, raftCommand{Op: OpTxn, Value: json.RawMessage(`[["r","x",null]]`)}); string(res.Value) != `[["r","x",[7]]]` {
		t.Fatalf("list-append/after a snapshot/list kept: %s (%s)", res.Value, res.Err)
	}
}

// The other modes run an rw-register transaction one micro-operation at a
// time on registers of their own ("rw:" keys, apart from the lists' and
// the register workload's): a failure before any write is as definite as
// it was, after one indeterminate; a register that holds something other
// than a number or a string is a clear error.
func TestSequentialRWTxn(t *testing.T) {
	regs := map[string]string{}
	var writes, failAt int
	do := func(_ context.Context, r Request) Response {
		switch r.Op {
		case OpRead:
			return Response{Value: json.RawMessage(regs[r.Key])}
		case OpWrite:
			writes++
			if writes == failAt {
				return Response{Error: ErrUnavailable, Message: "no quorum"}
			}
			regs[r.Key] = string(r.Value)
			return Response{}
		}
		return Response{Error: ErrBadRequest}
	}
	run := func(value string) Response {
		return sequentialTxn(context.Background(), do, Request{Op: OpRWTxn, Key: "txn", Value: json.RawMessage(value)})
	}
	if resp := run(`[["r","x",null],["w","x",1],["r","x",null],["w","y",2]]`); resp.Error != "" || string(resp.Value) != `[["r","x",null],["w","x",1],["r","x",1],["w","y",2]]` {
		t.Fatalf("rw/one by one/reads see the writes before them: %+v %s", resp, resp.Value)
	}
	if regs["rw:x"] != "1" || regs["rw:y"] != "2" || regs["x"] != "" || regs["list:x"] != "" {
		t.Fatalf("rw/storage/rw: keys only: %v", regs)
	}
	writes, failAt = 0, 1
	if resp := run(`[["w","z",3]]`); resp.Error != ErrUnavailable {
		t.Fatalf("rw/first write refused/definite: %+v", resp)
	}
	writes, failAt = 0, 2
	if resp := run(`[["w","z",4],["w","x",5]]`); resp.Error != ErrIndeterminate {
		t.Fatalf("rw/second write refused after the first was made/indeterminate: %+v", resp)
	}
	writes, failAt = 0, 0
	if resp := run(`[["append","x",1]]`); resp.Error != ErrBadRequest {
		t.Fatalf("rw/append/a bad request: %+v", resp)
	}
	regs["rw:q"] = `[1,2]`
	if resp := run(`[["r","q",null]]`); resp.Error != ErrBadRequest || !strings.Contains(resp.Message, "not a number or a string") {
		t.Fatalf("rw/a register holding a list/a clear error: %+v", resp)
	}
	// A list-append transaction on the same key sees its own list.
	if resp := sequentialTxn(context.Background(), do, Request{Op: OpTxn, Value: json.RawMessage(`[["r","x",null]]`)}); resp.Error != "" || string(resp.Value) != `[["r","x",[]]]` {
		t.Fatalf("list-append/same key as an rw register/its own empty list: %+v %s", resp, resp.Value)
	}
}
