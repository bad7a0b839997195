package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// upPG builds the postgres image and brings up a cluster named after the
// test and the process, removed when the test ends.
func upPG(t *testing.T, suffix string, o Options) *Cluster {
	t.Helper()
	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.Build(ctx, Image, docker.BuildOptions{Progress: dockertest.Writer(t)}); err != nil {
		t.Fatal(err)
	}
	o.Name = fmt.Sprintf("pg%s%d", suffix, os.Getpid()%100000)
	o.Progress = dockertest.Writer(t)
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Down(dctx, o.Name); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	start := time.Now()
	pc, err := Up(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	if err := Setup(ctx, pc.PrimaryDSN()); err != nil {
		t.Fatal(err)
	}
	return pc
}

// keyed records one process's operations on one key through a client.
type keyed struct {
	t   *testing.T
	rec *history.Recorder
	p   history.Process
	key string
	c   *Client
}

func (s keyed) do(f string, v history.Value) history.Op {
	s.t.Helper()
	inv := history.Op{Process: s.p, Type: history.Invoke, F: f, Key: s.key, Value: v}
	s.rec.Record(inv)
	return s.rec.Record(s.c.Invoke(context.Background(), inv))
}

// pollRead reads key through c, unrecorded, until it returns want.
func pollRead(t *testing.T, c *Client, key string, want history.Value) {
	t.Helper()
	var got history.Op
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = c.Invoke(context.Background(), history.Op{Process: 99, Type: history.Invoke, F: "read", Key: key})
		if got.Type == history.OK && got.Value.Equal(want) {
			return
		}
	}
	t.Fatalf("read of %s on %s never returned %s (last: %v %s %q)", key, got.Node, want, got.Type, got.Value, got.Error)
}

// pauseReplay pauses WAL replay on node and waits until it is paused.
func pauseReplay(t *testing.T, pc *Cluster, node string) {
	t.Helper()
	var state string
	pgQuery(t, pc.DSN(node), "SELECT pg_wal_replay_pause()::text", &state)
	for deadline := time.Now().Add(10 * time.Second); state != "paused"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replay on %s never paused (state %q)", node, state)
		}
		pgQuery(t, pc.DSN(node), "SELECT pg_get_wal_replay_pause_state()", &state)
	}
}

// TestPostgresLSNFence shows that LSN fencing restores read-your-writes on
// a lagging replica. Two processes write on the primary and read on n2,
// each on a key of its own; n2's replay is paused. The unfenced one reads
// its old value back (read-your-writes invalid); the fenced one's read
// fails after the fence bound while replay is paused, never returning the
// stale value, and returns the new value once replay resumes
// (read-your-writes valid).
func TestPostgresLSNFence(t *testing.T) {
	pc := upPG(t, "fence", Options{Nodes: 3})
	plain := NewClient(pc.PrimaryDSN(), ClientOptions{Node: "n1", ReadDSN: pc.DSN("n2"), ReadNode: "n2", ReadMode: ReadReplica})
	defer plain.Close(context.Background())
	fenced := NewClient(pc.PrimaryDSN(), ClientOptions{Node: "n1", ReadDSN: pc.DSN("n2"), ReadNode: "n2", ReadMode: ReadLSNFence, FenceWait: time.Second})
	defer fenced.Close(context.Background())
	recA, recB := newRecorder(t, "plain"), newRecorder(t, "fenced")
	a := keyed{t, recA, 0, "a", plain}
	b := keyed{t, recB, 1, "b", fenced}

	if got := a.do("write", history.Int(1)); got.Type != history.OK {
		t.Fatalf("plain write 1: %v %q", got.Type, got.Error)
	}
	pollRead(t, plain, "a", history.Int(1))
	if got := b.do("write", history.Int(1)); got.Type != history.OK || fenced.LastLSN() == "" {
		t.Fatalf("fenced write 1: %v %q, LSN %q", got.Type, got.Error, fenced.LastLSN())
	}
	if got := b.do("read", history.Value{}); got.Type != history.OK || !got.Value.Equal(history.Int(1)) || got.Node != "n2" {
		t.Fatalf("fenced read right after write 1: %v %s on %s %q, want ok 1 on n2", got.Type, got.Value, got.Node, got.Error)
	}

	pauseReplay(t, pc, "n2")
	if got := a.do("write", history.Int(2)); got.Type != history.OK {
		t.Fatalf("plain write 2: %v %q", got.Type, got.Error)
	}
	if got := a.do("read", history.Value{}); got.Type != history.OK || !got.Value.Equal(history.Int(1)) {
		t.Fatalf("plain read on paused n2: %v %s %q, want ok 1 (stale)", got.Type, got.Value, got.Error)
	}
	if got := b.do("write", history.Int(2)); got.Type != history.OK {
		t.Fatalf("fenced write 2: %v %q", got.Type, got.Error)
	}
	start := time.Now()
	got := b.do("read", history.Value{})
	waited := time.Since(start)
	if got.Type != history.Fail || !strings.Contains(got.Error, "had not replayed") {
		t.Fatalf("fenced read on paused n2: %v %s %q, want fail at the fence", got.Type, got.Value, got.Error)
	}
	if waited < time.Second || waited > 3*time.Second {
		t.Fatalf("fenced read failed after %v, want about the 1s bound", waited)
	}
	t.Logf("fenced read while paused: fail after %v: %s", waited.Round(time.Millisecond), got.Error)

	var ignored string
	pgQuery(t, pc.DSN("n2"), "SELECT pg_wal_replay_resume()::text", &ignored)
	if got := b.do("read", history.Value{}); got.Type != history.OK || !got.Value.Equal(history.Int(2)) {
		t.Fatalf("fenced read after resume: %v %s %q, want ok 2", got.Type, got.Value, got.Error)
	}

	ctx := context.Background()
	rA := checkers.ReadYourWrites(ctx, checkers.NewInput(recA.History()), checkers.Options{})
	if rA.Verdict != checkers.Invalid || len(rA.Anomalies) != 1 {
		t.Fatalf("read-your-writes without fencing: %v with %d anomalies, want invalid with 1", rA.Verdict, len(rA.Anomalies))
	}
	t.Logf("without fencing: %s", rA.Anomalies[0].Explanation)
	rB := checkers.ReadYourWrites(ctx, checkers.NewInput(recB.History()), checkers.Options{})
	if rB.Verdict != checkers.Valid {
		t.Fatalf("read-your-writes with lsn-fence: %v %v, want valid", rB.Verdict, rB.Anomalies)
	}
}
