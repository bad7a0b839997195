package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// raftTestConfig is a raft node configuration with the short timeouts the
// tests use.
func raftTestConfig() store.Config {
	return store.Config{Mode: store.ModeRaft, RequestTimeout: 300 * time.Millisecond, SessionWait: 300 * time.Millisecond}
}

// raftClientOpts bounds each client operation; past it the op is info.
var raftClientOpts = ecstore.Options{Timeout: 2 * time.Second}

// raftNoLeak fails the test if, once its cleanups (closing the
// cluster) have run, more goroutines are left than when it started. Call
// it before startCluster, so that its cleanup runs last.
func raftNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			now := runtime.NumGoroutine()
			if now <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines left running (%d before the test):\n%s", now-before, before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// raftLeaderOf waits until one running node reports itself leader and every
// running node names it, and returns it.
func raftLeaderOf(t testing.TB, c *store.LocalCluster) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		leader, agreed := "", true
		for _, id := range c.Nodes() {
			n := c.Node(id)
			if n == nil {
				continue
			}
			st := n.Status()
			if st.Role == "leader" {
				leader = id
			}
			agreed = agreed && st.Leader != "" && (leader == "" || st.Leader == leader)
		}
		if leader != "" && agreed {
			for _, id := range c.Nodes() {
				if n := c.Node(id); n != nil && n.Status().Leader != leader {
					agreed = false
				}
			}
			if agreed {
				return leader
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no raft leader agreed on within 10s")
	return ""
}

// raftAppliedIndex is the index of the last command a node's state machine
// applied, from its status.
func raftAppliedIndex(t testing.TB, n *store.Node) uint64 {
	t.Helper()
	d := n.Status().Detail
	i := strings.Index(d, "applied index ")
	var idx uint64
	if i < 0 {
		t.Fatalf("status detail %q names no applied index", d)
	}
	if _, err := fmt.Sscanf(d[i:], "applied index %d", &idx); err != nil {
		t.Fatalf("status detail %q: %v", d, err)
	}
	return idx
}

// raftOpRecord is one operation as a load worker saw it.
type raftOpRecord struct {
	node       string
	f          string
	typ        history.Type
	start, end time.Time
}

// raftLoad drives reads, writes and CASes with unique values on a few
// keys from procs, each with at most one op in flight, until stop is
// closed or each proc has done maxOps.
type raftLoad struct {
	keys      []string
	maxOps    int
	writeOnly map[*proc]bool // procs that only write
	next      atomic.Int64   // the next unique value

	mu  sync.Mutex
	ops []raftOpRecord
}

// phases summarizes the ops by outcome before a, between a and b, and
// after b.
func (l *raftLoad) phases(a, b time.Time) string {
	var n [3]map[history.Type]int
	for i := range n {
		n[i] = map[history.Type]int{}
	}
	for _, op := range l.ops {
		switch {
		case op.start.Before(a):
			n[0][op.typ]++
		case op.start.Before(b):
			n[1][op.typ]++
		default:
			n[2][op.typ]++
		}
	}
	f := func(m map[history.Type]int) string {
		return fmt.Sprintf("%d ok, %d fail, %d info", m[history.OK], m[history.Fail], m[history.Info])
	}
	return fmt.Sprintf("before: %s; during: %s; after: %s", f(n[0]), f(n[1]), f(n[2]))
}

func (l *raftLoad) run(procs []*proc, stop <-chan struct{}, seed uint64) {
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			last := map[string]history.Value{}
			for n := 0; n < l.maxOps; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := l.keys[rng.IntN(len(l.keys))]
				start := time.Now()
				var done history.Op
				r := rng.IntN(10)
				if l.writeOnly[p] {
					r = 5
				}
				switch {
				case r < 4:
					done = p.read(key)
					if done.Type == history.OK {
						last[key] = done.Value
					}
				case r < 8:
					v := l.next.Add(1)
					done = p.write(key, v)
					if done.Type == history.OK {
						last[key] = history.Int(v)
					}
				default:
					v := l.next.Add(1)
					done = p.do("cas", key, history.List(last[key], history.Int(v)))
					if done.Type == history.OK {
						last[key] = history.Int(v)
					}
				}
				l.mu.Lock()
				l.ops = append(l.ops, raftOpRecord{node: p.node, f: done.F, typ: done.Type, start: start, end: time.Now()})
				l.mu.Unlock()
				if done.Type != history.OK {
					time.Sleep(10 * time.Millisecond) // do not spin on a node that refuses
				} else {
					time.Sleep(2 * time.Millisecond) // leave the cores some air
				}
			}
		})
	}
	wg.Wait()
}

// raftClientsOn makes perNode client processes on every node.
func raftClientsOn(x *tester, c *store.LocalCluster, perNode int) []*proc {
	var procs []*proc
	for range perNode {
		for _, id := range c.Nodes() {
			procs = append(procs, x.client(id, raftClientOpts))
		}
	}
	return procs
}

// raftFinalReads reads every key from every node, marked final, retrying a
// read that fails (the cluster may still be settling) a bounded number of
// times; it returns the values read by key.
func raftFinalReads(t *testing.T, x *tester, c *store.LocalCluster, keys []string) map[string][]history.Value {
	t.Helper()
	got := map[string][]history.Value{}
	for _, id := range c.Nodes() {
		p := x.client(id, raftClientOpts)
		for _, k := range keys {
			var done history.Op
			for range 20 {
				if done = p.finalRead(k); done.Type == history.OK {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if done.Type != history.OK {
				t.Fatalf("final read of %s on %s: %s %s", k, id, done.Type, done.Error)
			}
			got[k] = append(got[k], done.Value)
		}
	}
	for k, vs := range got {
		for _, v := range vs[1:] {
			if !v.Equal(vs[0]) {
				t.Errorf("final reads of %s disagree: %v", k, vs)
			}
		}
	}
	return got
}

// raftExpectValid checks the history: raft must be linearizable and lose
// no acknowledged write.
func raftExpectValid(t *testing.T, x *tester) {
	t.Helper()
	rs := x.check(checkers.LinearizableName, checkers.NameLostWrites)
	x.expect(rs, checkers.LinearizableName, checkers.Valid)
	x.expect(rs, checkers.NameLostWrites, checkers.Valid)
	oks := 0
	for _, op := range x.rec.History() {
		if op.Type == history.OK && op.F != "read" {
			oks++
		}
	}
	if oks < 20 {
		t.Fatalf("only %d acknowledged writes: the test proves little", oks)
	}
}

func TestRaftPartitionIsolatingLeader(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	x := newTester(t, c)
	old := raftLeaderOf(t, c)
	grudge := map[string][]string{old: {}}
	for _, id := range c.Nodes() {
		if id != old {
			grudge[old] = append(grudge[old], id)
			grudge[id] = []string{old}
		}
	}
	procs := raftClientsOn(x, c, 2)
	// Two more clients of the leader only write, so that many writes meet
	// the partition there.
	writers := []*proc{x.client(old, raftClientOpts), x.client(old, raftClientOpts)}
	load := &raftLoad{keys: []string{"k0", "k1", "k2"}, maxOps: 1500, writeOnly: map[*proc]bool{writers[0]: true, writers[1]: true}}
	stop := make(chan struct{})
	var cut, healed time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(stop)
		time.Sleep(600 * time.Millisecond)
		cut = time.Now()
		must(t, c.Partition(grudge))
		time.Sleep(1500 * time.Millisecond)
		healed = time.Now()
		must(t, c.Heal())
		time.Sleep(700 * time.Millisecond)
	})
	load.run(append(procs, writers...), stop, 1)
	wg.Wait()
	t.Logf("isolated leader %s; %s", old, load.phases(cut, healed))

	// The isolated old leader acknowledges nothing it could not commit.
	var fails, infos int
	for _, op := range load.ops {
		if op.node != old || op.f == "read" || op.start.Before(cut) || op.end.After(healed) {
			continue
		}
		switch op.typ {
		case history.OK:
			t.Errorf("isolated old leader %s acknowledged a %s during the partition (%v after the cut)", old, op.f, op.start.Sub(cut))
		case history.Fail:
			fails++
		case history.Info:
			infos++
		}
	}
	if fails+infos < 4 {
		t.Errorf("only %d writes were tried on the isolated leader %s during the partition", fails+infos, old)
	}
	t.Logf("writes on the isolated leader during the partition: %d failed, %d info", fails, infos)

	if now := raftLeaderOf(t, c); now == old {
		t.Logf("%s leads again after the heal", old)
	}
	raftFinalReads(t, x, c, load.keys)
	raftExpectValid(t, x)
}

func TestRaftKillLeaderAndRestart(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	x := newTester(t, c)
	old := raftLeaderOf(t, c)
	load := &raftLoad{keys: []string{"k0", "k1", "k2"}, maxOps: 1500}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(stop)
		time.Sleep(600 * time.Millisecond)
		must(t, c.Kill(old))
		time.Sleep(800 * time.Millisecond)
		must(t, c.Start(old))
		time.Sleep(900 * time.Millisecond)
	})
	load.run(raftClientsOn(x, c, 2), stop, 2)
	wg.Wait()
	t.Logf("killed and restarted leader %s; %d ops", old, len(load.ops))

	raftLeaderOf(t, c)
	raftFinalReads(t, x, c, load.keys)
	raftExpectValid(t, x)

	// The restarted node caught up: every state machine applied the same
	// last command.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var idx []uint64
		for _, id := range c.Nodes() {
			idx = append(idx, raftAppliedIndex(t, c.Node(id)))
		}
		if idx[0] > 0 && idx[0] == idx[1] && idx[1] == idx[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state machines did not converge: applied indexes %v", idx)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRaftPauseFollower(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	x := newTester(t, c)
	leader := raftLeaderOf(t, c)
	follower := ""
	for _, id := range c.Nodes() {
		if id != leader {
			follower = id
			break
		}
	}
	load := &raftLoad{keys: []string{"k0", "k1", "k2"}, maxOps: 1500}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(stop)
		time.Sleep(500 * time.Millisecond)
		must(t, c.Pause(follower))
		time.Sleep(1000 * time.Millisecond)
		must(t, c.Resume(follower))
		time.Sleep(700 * time.Millisecond)
	})
	load.run(raftClientsOn(x, c, 2), stop, 3)
	wg.Wait()
	t.Logf("paused follower %s; %d ops", follower, len(load.ops))
	raftLeaderOf(t, c)
	raftFinalReads(t, x, c, load.keys)
	raftExpectValid(t, x)
}

// TestRaftWholeClusterRestart kills every node and starts them again: what
// was acknowledged survives, since the log and the term are on disk.
func TestRaftWholeClusterRestart(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	x := newTester(t, c)
	raftLeaderOf(t, c)
	p := x.client("n1", raftClientOpts)
	keys := []string{"a", "b"}
	for i, k := range keys {
		if done := p.write(k, int64(10+i)); done.Type != history.OK {
			t.Fatalf("write %s: %s %s", k, done.Type, done.Error)
		}
	}
	for _, id := range c.Nodes() {
		must(t, c.Kill(id))
	}
	for _, id := range c.Nodes() {
		must(t, c.Start(id))
	}
	raftLeaderOf(t, c)
	got := raftFinalReads(t, x, c, keys)
	for i, k := range keys {
		if want := history.Int(int64(10 + i)); !got[k][0].Equal(want) {
			t.Errorf("after a restart of every node %s = %v, want %v", k, got[k][0], want)
		}
	}
	rs := x.check(checkers.LinearizableName, checkers.NameLostWrites)
	x.expect(rs, checkers.LinearizableName, checkers.Valid)
	x.expect(rs, checkers.NameLostWrites, checkers.Valid)
}

// TestRaftOperations runs each operation once through a follower and the
// leader and checks the answers, sessions included.
func TestRaftOperations(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	leader := raftLeaderOf(t, c)
	follower := "n1"
	if follower == leader {
		follower = "n2"
	}
	ctx := context.Background()
	for _, node := range []string{leader, follower} {
		reg := ecstore.New(c.Addr(node), ecstore.Options{Sessions: true, Timeout: 2 * time.Second})
		set := ecstore.New(c.Addr(node), ecstore.Options{Workload: ecstore.Set, Timeout: 2 * time.Second})
		ctr := ecstore.New(c.Addr(node), ecstore.Options{Workload: ecstore.Counter, Timeout: 2 * time.Second})
		key := "ops-" + node
		steps := []struct {
			name string
			cl   *ecstore.Client
			op   history.Op
			typ  history.Type
			want history.Value
		}{
			{"read/never written/null", reg, history.Op{F: "read", Key: key}, history.OK, history.Nil()},
			{"cas/never written, expects -1/fail", reg, history.Op{F: "cas", Key: key, Value: history.Ints(-1, 1)}, history.Fail, history.Value{}},
			{"cas/never written, expects null/ok", reg, history.Op{F: "cas", Key: key, Value: history.List(history.Nil(), history.Int(1))}, history.OK, history.Value{}},
			{"cas/matching/ok", reg, history.Op{F: "cas", Key: key, Value: history.Ints(1, 2)}, history.OK, history.Value{}},
			{"cas/stale expectation/fail", reg, history.Op{F: "cas", Key: key, Value: history.Ints(1, 3)}, history.Fail, history.Value{}},
			{"read/after cas/new value", reg, history.Op{F: "read", Key: key}, history.OK, history.Int(2)},
			{"write/after cas/ok", reg, history.Op{F: "write", Key: key, Value: history.Int(7)}, history.OK, history.Value{}},
			{"read/after write/written value", reg, history.Op{F: "read", Key: key}, history.OK, history.Int(7)},
			{"set add/first/ok", set, history.Op{F: "add", Key: key, Value: history.Int(5)}, history.OK, history.Value{}},
			{"set add/second/ok", set, history.Op{F: "add", Key: key, Value: history.Int(4)}, history.OK, history.Value{}},
			{"set add/duplicate/ok", set, history.Op{F: "add", Key: key, Value: history.Int(5)}, history.OK, history.Value{}},
			{"set read/both/sorted", set, history.Op{F: "read", Key: key}, history.OK, history.Ints(4, 5)},
			{"counter add/3/ok", ctr, history.Op{F: "add", Key: key, Value: history.Int(3)}, history.OK, history.Value{}},
			{"counter add/-1/ok", ctr, history.Op{F: "add", Key: key, Value: history.Int(-1)}, history.OK, history.Value{}},
			{"counter read/total/2", ctr, history.Op{F: "read", Key: key}, history.OK, history.Int(2)},
		}
		for _, s := range steps {
			s.op.Type = history.Invoke
			done := s.cl.Invoke(ctx, s.op)
			if done.Type != s.typ {
				t.Fatalf("via %s, %s: %s (%s), want %s", node, s.name, done.Type, done.Error, s.typ)
			}
			if s.op.F == "read" && !done.Value.Equal(s.want) {
				t.Fatalf("via %s, %s: read %v, want %v", node, s.name, done.Value, s.want)
			}
			if done.Node != node {
				t.Fatalf("via %s, %s: answered by %q", node, s.name, done.Node)
			}
		}
	}
}

// BenchmarkRaft measures acknowledged writes per second with 10 concurrent
// clients, bound to the leader or spread over every node (followers
// forward to the leader).
func BenchmarkRaft(b *testing.B) {
	for _, to := range []string{"leader", "any"} {
		b.Run("clients=10/to="+to, func(b *testing.B) {
			c := startCluster(b, 3, raftTestConfig())
			leader := raftLeaderOf(b, c)
			const clients = 10
			var acked, other atomic.Int64
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range clients {
				node := leader
				if to == "any" {
					node = c.Nodes()[i%len(c.Nodes())]
				}
				cl := ecstore.New(c.Addr(node), ecstore.Options{Timeout: 5 * time.Second})
				share := b.N / clients
				if i < b.N%clients {
					share++
				}
				wg.Go(func() {
					for range share {
						v := next.Add(1)
						op := history.Op{Type: history.Invoke, F: "write", Key: fmt.Sprintf("k%d", v%100), Value: history.Int(v)}
						if cl.Invoke(context.Background(), op).Type == history.OK {
							acked.Add(1)
						} else {
							other.Add(1)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(acked.Load())/elapsed.Seconds(), "writes/s")
			if n := other.Load(); n > 0 {
				b.Logf("%d of %d writes not acknowledged", n, b.N)
			}
		})
	}
}

// TestRaftKillWhilePeerPaused kills the leader while a follower is paused:
// the kill must not wait for the pause to end (a paused peer holds no raft
// goroutine of the killed node), and the cluster serves again once the
// node is back.
func TestRaftKillWhilePeerPaused(t *testing.T) {
	raftNoLeak(t)
	c := startCluster(t, 3, raftTestConfig())
	x := newTester(t, c)
	leader := raftLeaderOf(t, c)
	var paused string
	for _, id := range c.Nodes() {
		if id != leader {
			paused = id
			break
		}
	}
	p := x.client(leader, raftClientOpts)
	if done := p.write("k", 1); done.Type != history.OK {
		t.Fatalf("write before the faults: %s %s", done.Type, done.Error)
	}
	must(t, c.Pause(paused))
	time.Sleep(300 * time.Millisecond) // the leader's messages to it are held by now
	start := time.Now()
	must(t, c.Kill(leader))
	if d := time.Since(start); d > time.Second {
		t.Errorf("killing %s while %s was paused took %v", leader, paused, d)
	}
	must(t, c.Start(leader))
	must(t, c.Resume(paused))
	raftLeaderOf(t, c)
	q := x.client(paused, raftClientOpts)
	for i := range 20 {
		if done := q.write("k", int64(2+i)); done.Type == history.OK {
			break
		} else if i == 19 {
			t.Fatalf("no write succeeded after the faults: last %s %s", done.Type, done.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	raftFinalReads(t, x, c, []string{"k"})
	rs := x.check(checkers.LinearizableName, checkers.NameLostWrites)
	x.expect(rs, checkers.LinearizableName, checkers.Valid)
	x.expect(rs, checkers.NameLostWrites, checkers.Valid)
}
