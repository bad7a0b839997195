package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// pgSession records one process's operations through an adapter client.
type pgSession struct {
	t   *testing.T
	rec *history.Recorder
	p   history.Process
	c   *Client
}

func (s pgSession) do(f string, v history.Value) history.Op {
	s.t.Helper()
	inv := history.Op{Process: s.p, Type: history.Invoke, F: f, Key: "k", Value: v}
	s.rec.Record(inv)
	return s.rec.Record(s.c.Invoke(context.Background(), inv))
}

// pgQuery runs one query on dsn and scans its single row into dst.
func pgQuery(t *testing.T, dsn, q string, dst ...any) {
	t.Helper()
	if err := pgQueryErr(dsn, q, dst...); err != nil {
		t.Fatalf("%s on %s: %v", q, dsn, err)
	}
}

// pgQueryErr is pgQuery that returns its error.
func pgQueryErr(dsn, q string, dst ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect %s: %w", dsn, err)
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, q).Scan(dst...)
}

// waitRead polls a read through c until it returns want.
func waitRead(t *testing.T, c *Client, want history.Value) {
	t.Helper()
	var got history.Op
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = c.Invoke(context.Background(), history.Op{Process: 99, Type: history.Invoke, F: "read", Key: "k"})
		if got.Type == history.OK && got.Value.Equal(want) {
			return
		}
	}
	t.Fatalf("read on %s never returned %s (last: %v %s %s)", got.Node, want, got.Type, got.Value, got.Error)
}

func newRecorder(t *testing.T, name string) *history.Recorder {
	t.Helper()
	rec, err := history.Create(filepath.Join(t.TempDir(), name+".jsonl"), history.KeepInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	return rec
}

// TestCluster brings up a primary and two streaming replicas and
// drives the adapter against them: writes read back on the primary and, a
// moment later, on a replica; a CAS mismatch fails; with WAL replay paused
// on a replica, a client that writes on the primary and reads there does
// not read its own write, which the read-your-writes checker reports, while
// the same steps reading the primary are valid.
func TestCluster(t *testing.T) {
	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.Build(ctx, Image, docker.BuildOptions{Progress: dockertest.Writer(t)}); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("pgtest%d", os.Getpid()%100000)
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Down(dctx, name); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	start := time.Now()
	pc, err := Up(ctx, c, Options{Name: name, Nodes: 3, Progress: dockertest.Writer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	if pc.Primary() != "n1" || strings.Join(pc.Replicas(), ",") != "n2,n3" || len(pc.ReplicaDSNs()) != 2 {
		t.Fatalf("primary %s, replicas %v, replica DSNs %v: want n1 and n2,n3", pc.Primary(), pc.Replicas(), pc.ReplicaDSNs())
	}
	labelled, err := c.API().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: dockertest.ClusterFilter(name).Add("label", docker.LabelDB+"=postgres")})
	if err != nil {
		t.Fatal(err)
	}
	if len(labelled.Items) != 3 {
		t.Fatalf("%d containers labelled %s=%s, want 3", len(labelled.Items), docker.LabelCluster, name)
	}
	for _, r := range pc.Replicas() {
		var rec bool
		pgQuery(t, pc.DSN(r), "SELECT pg_is_in_recovery()", &rec)
		if !rec {
			t.Fatalf("replica %s: pg_is_in_recovery() is false", r)
		}
	}
	var slots int
	pgQuery(t, pc.PrimaryDSN(), "SELECT count(*) FROM pg_replication_slots WHERE active", &slots)
	if slots != 2 {
		t.Fatalf("%d active replication slots on the primary, want 2", slots)
	}
	if err := Setup(ctx, pc.PrimaryDSN()); err != nil {
		t.Fatal(err)
	}
	if err := Setup(ctx, pc.PrimaryDSN()); err != nil {
		t.Fatalf("second setup: %v", err)
	}

	// Process 0 reads on the primary: its own writes, and a CAS whose old
	// value does not match fails.
	recP := newRecorder(t, "primary")
	onPrimary := NewClient(pc.PrimaryDSN(), ClientOptions{Node: "n1"})
	defer onPrimary.Close(context.Background())
	p0 := pgSession{t, recP, 0, onPrimary}
	steps := []struct {
		f      string
		v      history.Value
		want   history.Type
		wantRV history.Value
	}{
		{"write", history.Int(1), history.OK, history.Value{}},
		{"read", history.Value{}, history.OK, history.Int(1)},
		{"cas", history.Ints(5, 6), history.Fail, history.Value{}},
		{"cas", history.Ints(1, 2), history.OK, history.Value{}},
		{"read", history.Value{}, history.OK, history.Int(2)},
	}
	for _, s := range steps {
		got := p0.do(s.f, s.v)
		if got.Type != s.want || (s.f == "read" && !got.Value.Equal(s.wantRV)) {
			t.Fatalf("%s %s on the primary: got %v %s %q, want %v %s", s.f, s.v, got.Type, got.Value, got.Error, s.want, s.wantRV)
		}
	}
	onN3 := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n3"), ReadNode: "n3"})
	defer onN3.Close(context.Background())
	waitRead(t, onN3, history.Int(2)) // replicated a moment later
	if r := checkers.ReadYourWrites(ctx, checkers.NewInput(recP.History()), checkers.Options{}); r.Verdict != checkers.Valid {
		t.Fatalf("read-your-writes reading the primary: %v %v, want valid", r.Verdict, r.Anomalies)
	}

	// Process 1 writes on the primary and reads on n2, whose replay is
	// paused after its first write arrived.
	recR := newRecorder(t, "replica")
	onN2 := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n2"), ReadNode: "n2"})
	defer onN2.Close(context.Background())
	p1 := pgSession{t, recR, 1, onN2}
	if got := p1.do("write", history.Int(10)); got.Type != history.OK {
		t.Fatalf("write 10: %v %q", got.Type, got.Error)
	}
	waitRead(t, onN2, history.Int(10))
	var state string
	pgQuery(t, pc.DSN("n2"), "SELECT pg_wal_replay_pause()::text", &state)
	for deadline := time.Now().Add(10 * time.Second); state != "paused"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replay on n2 never paused (state %q)", state)
		}
		pgQuery(t, pc.DSN("n2"), "SELECT pg_get_wal_replay_pause_state()", &state)
	}
	if got := p1.do("write", history.Int(11)); got.Type != history.OK {
		t.Fatalf("write 11: %v %q", got.Type, got.Error)
	}
	got := p1.do("read", history.Value{})
	if got.Type != history.OK || !got.Value.Equal(history.Int(10)) || got.Node != "n2" {
		t.Fatalf("read on paused n2: %v %s on %s %q, want ok 10 on n2 (the stale value)", got.Type, got.Value, got.Node, got.Error)
	}
	waitRead(t, onN3, history.Int(11)) // the unpaused replica has it
	r := checkers.ReadYourWrites(ctx, checkers.NewInput(recR.History()), checkers.Options{})
	if r.Verdict != checkers.Invalid || len(r.Anomalies) != 1 {
		t.Fatalf("read-your-writes reading paused n2: %v with %d anomalies, want invalid with 1", r.Verdict, len(r.Anomalies))
	}
	t.Logf("anomaly: %s", r.Anomalies[0].Explanation)

	// Set and counter on the primary.
	sets := NewClient(pc.PrimaryDSN(), ClientOptions{Workload: Set})
	defer sets.Close(context.Background())
	counters := NewClient(pc.PrimaryDSN(), ClientOptions{Workload: Counter})
	defer counters.Close(context.Background())
	for _, tc := range []struct {
		c    *Client
		adds []int64
		want history.Value
	}{
		{sets, nil, history.List()},
		{sets, []int64{2, 1}, history.Ints(1, 2)},
		{counters, []int64{3, 4}, history.Int(7)},
	} {
		for _, a := range tc.adds {
			if got := tc.c.Invoke(ctx, history.Op{Process: 2, Type: history.Invoke, F: "add", Key: "k", Value: history.Int(a)}); got.Type != history.OK {
				t.Fatalf("add %d: %v %q", a, got.Type, got.Error)
			}
		}
		if got := tc.c.Invoke(ctx, history.Op{Process: 2, Type: history.Invoke, F: "read", Key: "k"}); got.Type != history.OK || !got.Value.Equal(tc.want) {
			t.Fatalf("read after adds %v: %v %s %q, want %s", tc.adds, got.Type, got.Value, got.Error, tc.want)
		}
	}

	if err := pc.Down(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := c.API().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: dockertest.ClusterFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 0 {
		t.Fatalf("%d containers left after Down", len(left.Items))
	}
}
