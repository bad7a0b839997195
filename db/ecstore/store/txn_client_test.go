package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// Through the HTTP API and the adapter's client, in every mode: an
// rw-register transaction's reads come back with the registers' values
// (null when never written) and see its own writes; a later transaction
// sees them; a list-append transaction on the same key reads its own
// list, not the register; an append in an rw-register transaction is a
// fail, and changes nothing.
func TestRWRegisterTransactionsThroughTheClient(t *testing.T) {
	for _, tc := range []struct {
		mode string
		cfg  store.Config
	}{
		{store.ModeRaft, raftTestConfig()},
		{store.ModeLWW, lwwConfig(store.ModeLWW, 3, 3)},
		{store.ModeHLC, lwwConfig(store.ModeHLC, 3, 3)},
		{store.ModePrimary, primaryConfig("primary", time.Second)},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c := startCluster(t, 3, tc.cfg)
			// do runs a transaction on the first node that takes it (the
			// leader, the primary), trying for 10 s at most.
			do := func(w, value string) history.Op {
				t.Helper()
				v, err := history.ParseValue(value)
				if err != nil {
					t.Fatal(err)
				}
				var done history.Op
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					for _, n := range c.Nodes() {
						cl := ecstore.New(c.Addr(n), ecstore.Options{Workload: w, Timeout: 2 * time.Second})
						done = cl.Invoke(context.Background(), history.Op{Type: history.Invoke, F: "txn", Value: v})
						if done.Type != history.Fail || done.Error == "" || !retryable(done.Error) {
							return done
						}
					}
				}
				return done
			}
			for _, step := range []struct {
				name, workload, value string
				typ                   history.Type
				want                  string
			}{
				{"rw/reads see own writes, null before", ecstore.RWRegister, `[["r","x",null],["w","x",1],["r","x",null],["w",7,2]]`, history.OK,
					`[["r","x",null],["w","x",1],["r","x",1],["w",7,2]]`},
				{"rw/append/fail", ecstore.RWRegister, `[["w","x",9],["append","x",3]]`, history.Fail, ""},
				{"list-append/same key/its own list", ecstore.ListAppend, `[["r","x",null],["append","x",5],["r","x",null]]`, history.OK,
					`[["r","x",[]],["append","x",5],["r","x",[5]]]`},
				{"rw/later/the committed writes, not the failed one", ecstore.RWRegister, `[["r","x",null],["r",7,null]]`, history.OK,
					`[["r","x",1],["r",7,2]]`},
			} {
				done := do(step.workload, step.value)
				if done.Type != step.typ || step.want != "" && done.Value.String() != step.want {
					t.Errorf("%s/%s: %v %s (%s), want %v %s", tc.mode, step.name, done.Type, done.Value, done.Error, step.typ, step.want)
				}
			}
		})
	}
}

// retryable says whether a failed operation's error is a node that could
// not serve it (not the leader or the primary, no quorum yet).
func retryable(msg string) bool {
	for _, k := range []store.ErrorKind{store.ErrNotLeader, store.ErrUnavailable} {
		if strings.HasPrefix(msg, string(k)) {
			return true
		}
	}
	return false
}
