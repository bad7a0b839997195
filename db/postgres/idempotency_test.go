package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

// TestPostgresIdempotentAdd drives counter adds with idempotency keys
// against a primary whose one synchronous standby (remote_apply) has its
// replay paused, so that every commit that writes waits and is cancelled
// at the client's timeout, committed locally (info). By construction:
//
//   - a keyed add's repeated attempt applies nothing, but is acknowledged
//     only as its first attempt could be (info while the standby is
//     paused: its COMMIT waits too; ok once the standby applies again);
//   - an add without a key applies again on each attempt;
//   - an add with no request (an operation not retried) is applied as it
//     is.
//
// The requests table counts the attempts that reached the primary.
func TestPostgresIdempotentAdd(t *testing.T) {
	pc := upPG(t, "idem", Options{Nodes: 2, Sync: SyncRemoteApply})
	opts := ClientOptions{Workload: Counter, Node: "n1", Timeout: 500 * time.Millisecond}
	plain := NewClient(pc.PrimaryDSN(), opts)
	defer plain.Close(context.Background())
	opts.IdempotencyKeys = true
	keyedC := NewClient(pc.PrimaryDSN(), opts)
	defer keyedC.Close(context.Background())

	add := func(c *Client, request string, attempt int, d int64, want history.Type) {
		t.Helper()
		inv := history.Op{Process: 1, Type: history.Invoke, F: "add", Key: "k", Value: history.Int(d), Request: request, Attempt: attempt}
		got := c.Invoke(context.Background(), inv)
		if got.Type != want {
			t.Fatalf("add %d of request %q attempt %d: %v %q, want %v", d, request, attempt, got.Type, got.Error, want)
		}
		if want == history.Info && !strings.Contains(got.Error, "committed locally") {
			t.Fatalf("add %d of request %q attempt %d: info %q, want the committed-locally warning", d, request, attempt, got.Error)
		}
	}
	add(keyedC, "p1.1", 1, 1, history.OK)
	add(keyedC, "p1.1", 2, 1, history.OK) // a dup: applies nothing
	add(keyedC, "", 0, 10, history.OK)    // no request: applied

	pauseReplay(t, pc, "n2")
	add(keyedC, "p1.2", 1, 2, history.Info) // applied, committed locally
	add(keyedC, "p1.2", 2, 2, history.Info) // a dup whose COMMIT waits too
	add(plain, "p2.1", 1, 100, history.Info)
	add(plain, "p2.1", 2, 100, history.Info) // applied again
	var s string
	pgQuery(t, pc.DSN("n2"), "SELECT pg_wal_replay_resume()::text", &s)

	add(keyedC, "p1.2", 3, 2, history.OK) // a dup, acknowledged once the standby has the first
	var n int64
	pgQuery(t, pc.PrimaryDSN(), "SELECT n FROM counters WHERE k = 'k'", &n)
	if want := int64(1 + 10 + 2 + 2*100); n != want {
		t.Fatalf("counter: %d, want %d (keyed requests once, the plain one twice)", n, want)
	}
	var attempts string
	pgQuery(t, pc.PrimaryDSN(), "SELECT string_agg(id || '=' || attempts, ',' ORDER BY id) FROM requests", &attempts)
	if attempts != "p1.1=2,p1.2=3" {
		t.Fatalf("requests table: %q, want p1.1=2,p1.2=3", attempts)
	}
}
