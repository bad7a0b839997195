package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func applyCmd(t *testing.T, f *raftFSM, index uint64, cmd raftCommand) raftResult {
	t.Helper()
	data, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(raftResult)
	if !ok {
		t.Fatalf("Apply(%+v) did not answer a raftResult", cmd)
	}
	return res
}

func TestRaftFSM(t *testing.T) {
	f := newRaftFSM()
	steps := []struct {
		name  string
		cmd   raftCommand
		want  raftResult
		index uint64
	}{
		{"write/first/stored at its index", raftCommand{Op: OpWrite, Key: "r", Value: json.RawMessage(`1`)}, raftResult{Index: 3, Swapped: true}, 3},
		{"cas/matching/swaps", raftCommand{Op: OpCAS, Key: "r", Old: json.RawMessage(`1`), Value: json.RawMessage(`2`)}, raftResult{Index: 4, Swapped: true}, 4},
		{"cas/stale/reports current value and its index", raftCommand{Op: OpCAS, Key: "r", Old: json.RawMessage(`1`), Value: json.RawMessage(`9`)}, raftResult{Index: 4, Value: json.RawMessage(`2`)}, 5},
		{"cas/never written expects null/swaps", raftCommand{Op: OpCAS, Key: "q", Old: json.RawMessage(`null`), Value: json.RawMessage(`"x"`)}, raftResult{Index: 6, Swapped: true}, 6},
		{"set add/first/ok", raftCommand{Op: OpSetAdd, Key: "s", Value: json.RawMessage(`[1,2]`)}, raftResult{Index: 7}, 7},
		{"set add/second/ok", raftCommand{Op: OpSetAdd, Key: "s", Value: json.RawMessage(`0`)}, raftResult{Index: 8}, 8},
		{"counter add/5/ok", raftCommand{Op: OpCounterAdd, Key: "c", Delta: 5}, raftResult{Index: 9}, 9},
		{"counter add/-2/ok", raftCommand{Op: OpCounterAdd, Key: "c", Delta: -2}, raftResult{Index: 10}, 10},
		{"unknown command/nothing changes/error", raftCommand{Op: "drop", Key: "r"}, raftResult{Err: `unknown command "drop"`}, 11},
	}
	for _, s := range steps {
		got := applyCmd(t, f, s.index, s.cmd)
		if got.Index != s.want.Index || got.Swapped != s.want.Swapped || string(got.Value) != string(s.want.Value) || got.Err != s.want.Err {
			t.Errorf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	reads := func(f *raftFSM) string {
		var b bytes.Buffer
		for _, r := range []struct {
			op  Op
			key string
		}{{OpRead, "r"}, {OpRead, "q"}, {OpRead, "none"}, {OpSetRead, "s"}, {OpSetRead, "none"}, {OpCounterRead, "c"}, {OpCounterRead, "none"}} {
			v, idx := f.read(r.op, r.key)
			fmt.Fprintf(&b, "%s@%d ", v, idx)
		}
		return b.String()
	}
	const want = `2@4 "x"@6 null@0 [0,[1,2]]@8 []@0 3@10 0@0 `
	if got := reads(f); got != want {
		t.Fatalf("reads: got %s, want %s", got, want)
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	applyCmd(t, f, 12, raftCommand{Op: OpWrite, Key: "r", Value: json.RawMessage(`100`)}) // after the snapshot: not in it
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	g := newRaftFSM()
	applyCmd(t, g, 1, raftCommand{Op: OpWrite, Key: "stale", Value: json.RawMessage(`1`)}) // Restore discards it
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if got := reads(g); got != want {
		t.Errorf("reads after restore: got %s, want %s", got, want)
	}
	if v, _ := g.read(OpRead, "stale"); string(v) != "null" {
		t.Errorf("restore kept a key that was not in the snapshot: %s", v)
	}
	if g.applied() != 11 {
		t.Errorf("restored applied index %d, want 11", g.applied())
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte(`{"registers":{}}`)))); err == nil {
		t.Error("restore of a partial snapshot: no error")
	}
}

func TestRaftFSMWaitLevel(t *testing.T) {
	f := newRaftFSM()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if f.waitLevel(ctx, 5) {
		t.Fatal("waitLevel(5) on an empty state machine: true, want false at the deadline")
	}
	done := make(chan bool)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- f.waitLevel(ctx, 5)
	}()
	applyCmd(t, f, 3, raftCommand{Op: OpWrite, Key: "k", Value: json.RawMessage(`1`)})
	f.raiseFloor(5) // a barrier at 5 passed
	if !<-done {
		t.Fatal("waitLevel(5) after a barrier at 5: false, want true")
	}
}
