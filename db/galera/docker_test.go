package galera

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/workload"
)

// upCluster builds the galera and base images (once per machine) and
// brings up three nodes that the test removes.
func upCluster(t *testing.T, o Options) (*docker.Client, *Cluster) {
	t.Helper()
	c := dockertest.Engine(t)
	dockertest.Images(t, c, Image, docker.Base)
	o.Name = dockertest.ClusterName(t, c, "galeratest")
	o.Progress = dockertest.Writer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	gc, err := Up(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gc.closeDBs)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	return c, gc
}

// worker is a test's client.
type worker struct {
	t *testing.T
	c *Client
}

// worker makes a client writing on node and reading on read ("" for the
// same node).
func (gc *Cluster) worker(t *testing.T, kind, node, read string, session map[string]string) worker {
	t.Helper()
	o := ClientOptions{Workload: kind, Write: gc.Addr(node), WriteNode: node, Timeout: 2 * time.Second, Session: session}
	if read != "" {
		o.Read, o.ReadNode = gc.Addr(read), read
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return worker{t, c}
}

func (w worker) do(f, key string, v history.Value) history.Op {
	return w.c.Invoke(w.t.Context(), history.Op{Process: 1, Type: history.Invoke, F: f, Key: key, Value: v})
}

func (w worker) expect(f, key string, v history.Value, want history.Type, read history.Value) history.Op {
	w.t.Helper()
	got := w.do(f, key, v)
	if got.Type != want || want == history.OK && f == "read" && !got.Value.Equal(read) {
		w.t.Fatalf("%s %s %s: %v %s (%s), want %v %s", f, key, v, got.Type, got.Value, got.Error, want, read)
	}
	return got
}

// eventually reads key through w until it returns want.
func (w worker) eventually(key string, want history.Value) {
	w.t.Helper()
	if err := dockertest.Eventually(30*time.Second, func() error {
		if got := w.do("read", key, history.Nil()); got.Type != history.OK || !got.Value.Equal(want) {
			return &readErr{got}
		}
		return nil
	}); err != nil {
		w.t.Fatalf("read %s never returned %s: %v", key, want, err)
	}
}

type readErr struct{ op history.Op }

func (e *readErr) Error() string {
	return e.op.Type.String() + " " + e.op.Value.String() + " " + e.op.Error
}

// TestCluster brings up three nodes and drives the client through every
// workload on every node, then through each fault by construction: a
// node whose applier is stopped (lag) serves a read that misses a write
// acknowledged before it (stale), unless the session waits for causality
// (wsrep_sync_wait 1: the read times out, fail); a node cut off from the
// others refuses writes (fail) once it knows it is outside the primary
// component, and catches up after the heal; a node killed and started
// rejoins with what it missed; and after every node is killed at once,
// the cluster comes back from the most advanced node with every write
// it acknowledged (innodb_flush_log_at_trx_commit 1).
func TestCluster(t *testing.T) {
	_, gc := upCluster(t, Options{Nodes: 3, FlushLog: 1})
	ctx := t.Context()
	for node, role := range gc.Roles(ctx) {
		if role != "synced" {
			t.Fatalf("%s is %s, want synced", node, role)
		}
	}

	// Every workload, written on n1, read on n2 after it caught up.
	n1 := gc.worker(t, workload.Register, "n1", "", nil)
	n1.expect("read", "r", history.Nil(), history.OK, history.Nil())
	n1.expect("cas", "r", history.List(history.Nil(), history.Int(1)), history.OK, history.Nil())
	n1.expect("cas", "r", history.List(history.Nil(), history.Int(9)), history.Fail, history.Nil())
	n1.expect("cas", "r", history.List(history.Int(5), history.Int(9)), history.Fail, history.Nil())
	n1.expect("cas", "r", history.List(history.Int(1), history.Int(2)), history.OK, history.Nil())
	n1.expect("write", "r", history.Int(3), history.OK, history.Nil())
	n1.expect("read", "r", history.Nil(), history.OK, history.Int(3))
	sets := gc.worker(t, workload.Set, "n1", "", nil)
	for _, e := range []int64{3, 1, 2} {
		sets.expect("add", "s", history.Int(e), history.OK, history.Nil())
	}
	counter := gc.worker(t, workload.Counter, "n1", "", nil)
	counter.expect("read", "c", history.Nil(), history.OK, history.Int(0))
	counter.expect("add", "c", history.Int(5), history.OK, history.Nil())
	counter.expect("add", "c", history.Int(-2), history.OK, history.Nil())
	causal := map[string]string{"wsrep_sync_wait": "1"}
	gc.worker(t, workload.Register, "n2", "", causal).expect("read", "r", history.Nil(), history.OK, history.Int(3))
	gc.worker(t, workload.Set, "n2", "", causal).expect("read", "s", history.Nil(), history.OK, history.List(history.Int(1), history.Int(2), history.Int(3)))
	gc.worker(t, workload.Counter, "n2", "", causal).expect("read", "c", history.Nil(), history.OK, history.Int(3))

	// Lag: n2's applier stops under FLUSH TABLES WITH READ LOCK.
	sys := &System{Cluster: gc, logf: t.Logf}
	if err := sys.Lag("n2", true); err != nil {
		t.Fatal(err)
	}
	n1.expect("write", "r", history.Int(4), history.OK, history.Nil())
	other := gc.worker(t, workload.Register, "n1", "n2", nil)
	if got := other.expect("read", "r", history.Nil(), history.OK, history.Int(3)); got.Node != "n2" {
		t.Fatalf("read on %q, want n2", got.Node)
	}
	if got := gc.worker(t, workload.Register, "n1", "n2", causal).do("read", "r", history.Nil()); got.Type != history.Fail {
		t.Fatalf("causal read on the lagging node: %v %s (%s), want fail (it waits for the write)", got.Type, got.Value, got.Error)
	}
	if got := gc.worker(t, workload.Register, "n2", "", nil).do("write", "r2", history.Int(1)); got.Type != history.Info {
		t.Fatalf("write on the lagging node: %v (%s), want info (it waits for the read lock)", got.Type, got.Error)
	}
	if err := sys.Lag("n2", false); err != nil {
		t.Fatal(err)
	}
	other.eventually("r", history.Int(4))

	// A partition: n3 cut off refuses writes once it knows.
	if err := gc.Partition(map[string][]string{"n3": {"n1", "n2"}, "n1": {"n3"}, "n2": {"n3"}}); err != nil {
		t.Fatal(err)
	}
	if err := gc.Poll(ctx, "n3", 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		st, err := gc.Status(ctx, "n3")
		if err != nil {
			return false, err.Error()
		}
		return st.ClusterStatus == "non-Primary", st.ClusterStatus
	}); err != nil {
		t.Fatal(err)
	}
	n3 := gc.worker(t, workload.Register, "n3", "", nil)
	got := n3.do("write", "r", history.Int(5))
	if got.Type != history.Fail || !strings.Contains(got.Error, "WSREP") {
		t.Fatalf("write on the cut-off node: %v (%s), want fail with WSREP's refusal", got.Type, got.Error)
	}
	n1.expect("write", "r", history.Int(6), history.OK, history.Nil())
	if err := gc.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := gc.WaitSynced(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	n3.eventually("r", history.Int(6))

	// Kill and start one node: it rejoins with what it missed.
	if err := gc.Kill("n2"); err != nil {
		t.Fatal(err)
	}
	// The others stall their commits until they declare it gone
	// (evs.suspect_timeout, 5 s).
	if err := gc.Poll(ctx, "n1", 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		st, err := gc.Status(ctx, "n1")
		if err != nil {
			return false, err.Error()
		}
		return st.ClusterSize == 2, fmt.Sprintf("cluster of %d", st.ClusterSize)
	}); err != nil {
		t.Fatal(err)
	}
	n1.expect("write", "r", history.Int(7), history.OK, history.Nil())
	if err := gc.Start("n2"); err != nil {
		t.Fatal(err)
	}
	gc.worker(t, workload.Register, "n2", "", nil).eventually("r", history.Int(7))

	// The whole cluster crashed at once, and restarted.
	n1.expect("write", "r", history.Int(8), history.OK, history.Nil())
	var wg sync.WaitGroup
	for _, node := range gc.Nodes() {
		wg.Go(func() {
			if err := gc.Kill(node); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	start := time.Now()
	res, err := gc.Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v: %+v", time.Since(start).Round(time.Millisecond), res)
	if len(res.Positions) != 3 || res.Bootstrapped == "" {
		t.Fatalf("restart %+v: want three positions and a node bootstrapped", res)
	}
	for node, pos := range res.Positions {
		if pos.Seqno > res.Positions[res.Bootstrapped].Seqno {
			t.Fatalf("bootstrapped from %s at %v, but %s was at %v", res.Bootstrapped, res.Positions[res.Bootstrapped], node, pos)
		}
	}
	for _, node := range gc.Nodes() {
		gc.worker(t, workload.Register, node, "", causal).expect("read", "r", history.Nil(), history.OK, history.Int(8))
	}
	gc.worker(t, workload.Register, "n3", "", nil).expect("write", "r", history.Int(9), history.OK, history.Nil())
}

// TestTransactions runs transactions on one Galera node: the client's
// whole transactions (list-append and rw-register), and two list-append
// transactions interleaved step by step at repeatable read, MariaDB's
// default: T1 reads x, T2 reads x, appends to it and commits, then T1
// appends to x and reads it. InnoDB's repeatable read lets T1's append
// act on the row T2 committed (a locking write reads the latest version,
// not T1's snapshot), so T1 commits having read x empty and then x
// holding T2's element before its own: what snapshot isolation forbids.
// The checker names it (lost update, and T1's reads disagree with its own
// append: internal), and finds the same steps at read committed allowed
// there (a non-repeatable read).
func TestTransactions(t *testing.T) {
	_, gc := upCluster(t, Options{Nodes: 1, FlushLog: 1})
	ctx := t.Context()
	w := gc.worker(t, "list-append", "n1", "", nil)
	op := history.Op{Process: 1, Type: history.Invoke, F: "txn", Value: mopsOf(t, `[["append","c",1],["r","c",null],["append","c","two"],["r","c",null]]`)}
	done := w.c.Invoke(ctx, op)
	if want := mopsOf(t, `[["append","c",1],["r","c",[1]],["append","c","two"],["r","c",[1,"two"]]]`); done.Type != history.OK || !done.Value.Equal(want) {
		t.Fatalf("client txn: %v %s (%s), want ok %s", done.Type, done.Value, done.Error, want)
	}
	if bad := w.c.Invoke(ctx, history.Op{Process: 1, Type: history.Invoke, F: "txn", Value: mopsOf(t, `[["append","c",3],["w","c",4]]`)}); bad.Type != history.Fail {
		t.Fatalf("a txn with a w micro-operation: %v (%s), want fail", bad.Type, bad.Error)
	}
	// rw-register: null before any write, the transaction's own writes,
	// then the committed ones; an append fails and leaves nothing; the
	// key's list is apart from its register.
	rw := gc.worker(t, workload.RWRegister, "n1", "", nil)
	for _, step := range []struct {
		name, mops string
		typ        history.Type
		want       string
	}{
		{"own writes", `[["r","c",null],["w","c",5],["r","c",null],["w","c",6],["r","c",null]]`, history.OK, `[["r","c",null],["w","c",5],["r","c",5],["w","c",6],["r","c",6]]`},
		{"an append", `[["w","c",7],["append","c",8]]`, history.Fail, ""},
		{"committed", `[["r","c",null]]`, history.OK, `[["r","c",6]]`},
	} {
		done := rw.c.Invoke(ctx, history.Op{Process: 2, Type: history.Invoke, F: "txn", Value: mopsOf(t, step.mops)})
		if done.Type != step.typ || step.want != "" && !done.Value.Equal(mopsOf(t, step.want)) {
			t.Fatalf("rw-register client/%s: %v %s (%s), want %v %s", step.name, done.Type, done.Value, done.Error, step.typ, step.want)
		}
	}
	if after := w.c.Invoke(ctx, history.Op{Process: 1, Type: history.Invoke, F: "txn", Value: mopsOf(t, `[["r","c",null]]`)}); !after.Value.Equal(mopsOf(t, `[["r","c",[1,"two"]]]`)) {
		t.Fatalf("list-append after rw-register writes of the key: %s, want the list as it was", after.Value)
	}
	d, err := gc.db("n1")
	if err != nil {
		t.Fatal(err)
	}
	interleave := func(level sql.IsolationLevel, x string) (history.History, error) {
		c1, err := d.Conn(ctx)
		if err != nil {
			return nil, err
		}
		defer c1.Close()
		c2, err := d.Conn(ctx)
		if err != nil {
			return nil, err
		}
		defer c2.Close()
		t1, err := c1.BeginTx(ctx, &sql.TxOptions{Isolation: level})
		if err != nil {
			return nil, err
		}
		r1, err := ReadList(ctx, t1, x)
		if err != nil {
			return nil, err
		}
		t2, err := c2.BeginTx(ctx, &sql.TxOptions{Isolation: level})
		if err != nil {
			return nil, err
		}
		r2, err := ReadList(ctx, t2, x)
		if err != nil {
			return nil, err
		}
		if err := AppendList(ctx, t2, x, history.Int(2)); err != nil {
			return nil, err
		}
		if err := t2.Commit(); err != nil {
			return nil, err
		}
		if err := AppendList(ctx, t1, x, history.Int(1)); err != nil {
			return nil, err
		}
		r1b, err := ReadList(ctx, t1, x)
		if err != nil {
			return nil, err
		}
		cerr := t1.Commit()
		mop := func(f, v string) history.Value { return mopsOf(t, `["`+f+`","`+x+`",`+v+`]`) }
		h := history.History{
			{Process: 1, Type: history.Invoke, F: "txn", Value: history.List(mop("r", "null"), mop("append", "1"), mop("r", "null"))},
			{Process: 2, Type: history.Invoke, F: "txn", Value: history.List(mop("r", "null"), mop("append", "2"))},
			{Process: 2, Type: history.OK, F: "txn", Value: history.List(mop("r", r2.String()), mop("append", "2"))},
		}
		if cerr != nil {
			t.Logf("T1's COMMIT: %v", cerr)
			h = append(h, history.Op{Process: 1, Type: history.Fail, F: "txn", Value: h[0].Value})
		} else {
			h = append(h, history.Op{Process: 1, Type: history.OK, F: "txn", Value: history.List(mop("r", r1.String()), mop("append", "1"), mop("r", r1b.String()))})
		}
		for i := range h {
			h[i].Index, h[i].Time = int64(i), int64(i+1)*1000
		}
		return h, nil
	}
	rr, err := interleave(sql.LevelRepeatableRead, "rr-x")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repeatable read: %s", rr[3].Value)
	if rr[3].Type != history.OK {
		t.Fatalf("repeatable read: T1 %v, want it committed (InnoDB does not refuse it)", rr[3].Type)
	}
	res := checkers.Transactional(ctx, checkers.NewInput(rr), checkers.Options{ConsistencyModel: checkers.ModelSnapshotIsolation})
	var kinds []string
	for _, a := range res.Anomalies {
		kinds = append(kinds, a.Kind)
	}
	if res.Verdict != checkers.Invalid || !slices.Contains(kinds, checkers.AnomalyLostUpdate) {
		t.Fatalf("repeatable read, checked for snapshot isolation: %s %v, want a lost update", res.Verdict, kinds)
	}
	rc, err := interleave(sql.LevelReadCommitted, "rc-x")
	if err != nil {
		t.Fatal(err)
	}
	if res := checkers.Transactional(ctx, checkers.NewInput(rc), checkers.Options{ConsistencyModel: checkers.ModelReadCommitted}); res.Verdict != checkers.Valid {
		t.Fatalf("read committed, checked for read committed: %s %v", res.Verdict, res.Anomalies)
	}
}

// mopsOf parses micro-operations written as JSON.
func mopsOf(t *testing.T, js string) history.Value {
	t.Helper()
	v, err := history.ParseValue(js)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
