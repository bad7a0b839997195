package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// A counter add's idempotency key makes a retried add apply once, in every
// mode; without keys (the client does not send them) it applies twice.
func TestCounterAddIdempotencyKeys(t *testing.T) {
	for _, mode := range store.Modes {
		t.Run(mode, func(t *testing.T) {
			c := startCluster(t, 3, store.Config{Mode: mode})
			node := c.Nodes()[0]
			for _, keys := range []bool{true, false} {
				cl := ecstore.New(c.Addr(node), ecstore.Options{Workload: ecstore.Counter, IdempotencyKeys: keys, Timeout: 5 * time.Second})
				key := map[bool]string{true: "keyed", false: "unkeyed"}[keys]
				add := func(delta int64, request string, attempt int) {
					t.Helper()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					var done history.Op
					// The cluster may still be choosing its leader or primary.
					for try := 0; try < 50; try++ {
						done = cl.Invoke(ctx, history.Op{Type: history.Invoke, F: "add", Key: key, Value: history.Int(delta), Request: request, Attempt: attempt})
						if done.Type == history.OK {
							return
						}
						if done.Type == history.Info {
							t.Fatalf("add %d (%s attempt %d): info (%s): the test needs a certain outcome", delta, request, attempt, done.Error)
						}
						time.Sleep(100 * time.Millisecond)
					}
					t.Fatalf("add %d: %s (%s)", delta, done.Type, done.Error)
				}
				add(5, "p0.1", 1)
				add(5, "p0.1", 2) // the retry of an add that was applied
				add(3, "p0.2", 1)
				want := int64(8)
				if !keys {
					want = 13
				}
				deadline := time.Now().Add(10 * time.Second)
				var got int64
				for time.Now().Before(deadline) {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					r := cl.Invoke(ctx, history.Op{Type: history.Invoke, F: "read", Key: key})
					cancel()
					got, _ = r.Value.AsInt()
					if r.Type == history.OK && got == want {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if got != want {
					t.Fatalf("keys %v: counter %d after adds 5, 5 (a retry of the same request) and 3; want %d", keys, got, want)
				}
			}
		})
	}
}
