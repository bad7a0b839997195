package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/history"
)

// The raft mode's saga state is part of the replicated state: after every
// node was killed and restarted, a saga-read through a follower returns
// what it returned before, and the tombstones and fences still hold.
func TestRaftSagaWholeClusterRestart(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	leader := raftLeaderOf(t, c)
	follower := "n1"
	if follower == leader {
		follower = "n2"
	}
	cl := ecstore.New(c.Addr(follower), ecstore.Options{Workload: ecstore.Saga, Timeout: 5 * time.Second})
	// do invokes f, retrying while the cluster has no leader to take it.
	do := func(f, key, js string) history.Op {
		t.Helper()
		v, err := history.Raw([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		var done history.Op
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			done = cl.Invoke(context.Background(), history.Op{Type: history.Invoke, F: f, Key: key, Value: v})
			if done.Type != history.Fail || !retryable(done.Error) {
				break
			}
		}
		return done
	}
	for _, s := range []struct {
		f, key, args string
		want         history.Type
	}{
		{checkers.FSagaInit, "", `{"stock":[4]}`, history.OK},
		{checkers.FSagaBegin, "a", `{"item":0,"qty":3,"price":9,"owner":"p0"}`, history.OK},
		{checkers.FReserve, "a", `{"item":0,"qty":3}`, history.OK},
		{checkers.FRefund, "a", `{"amount":9}`, history.OK}, // a tombstone
		{checkers.FSagaClaim, "a", `{"epoch":2,"owner":"p1"}`, history.OK},
	} {
		if done := do(s.f, s.key, s.args); done.Type != s.want {
			t.Fatalf("%s %s %s: %s %s, want %s", s.f, s.key, s.args, done.Type, done.Error, s.want)
		}
	}
	before := do(checkers.FSagaRead, "", `null`)
	if before.Type != history.OK {
		t.Fatalf("saga-read: %s %s", before.Type, before.Error)
	}
	for _, id := range c.Nodes() {
		must(t, c.Kill(id))
	}
	for _, id := range c.Nodes() {
		must(t, c.Start(id))
	}
	raftLeaderOf(t, c)
	after := do(checkers.FSagaRead, "", `null`)
	if after.Type != history.OK || after.Value.String() != before.Value.String() {
		t.Fatalf("saga-read after a restart of every node: %s %s %s, want ok %s", after.Type, after.Error, after.Value, before.Value)
	}
	for _, s := range []struct{ f, key, args, why string }{
		{checkers.FCharge, "a", `{"amount":9}`, "refunded"},
		{checkers.FSagaLog, "a", `{"epoch":1,"step":"charge"}`, "fenced: epoch 2"},
		{checkers.FSagaInit, "", `{"stock":[4]}`, "exists: the store holds saga state"},
	} {
		if done := do(s.f, s.key, s.args); done.Type != history.Fail || done.Error != s.why {
			t.Errorf("%s %s after the restart: %s %q, want fail %q", s.f, s.key, done.Type, done.Error, s.why)
		}
	}
}
