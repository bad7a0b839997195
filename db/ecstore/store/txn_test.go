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
