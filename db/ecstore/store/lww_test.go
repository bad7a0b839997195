package store_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// The guarantee tests of the lww and hlc modes: each fault shows what
// last-write-wins replication really does, through the real checkers, on
// both sides.

// lwwConfig is a test configuration of the lww or hlc mode with short
// timeouts.
func lwwConfig(mode string, w, r int) store.Config {
	return store.Config{
		Mode: mode, W: w, R: r,
		AntiEntropy:    100 * time.Millisecond,
		RequestTimeout: 300 * time.Millisecond,
		SessionWait:    300 * time.Millisecond,
	}
}

// lwwIsolate cuts node off from every other node, both ways.
func lwwIsolate(t testing.TB, c *store.LocalCluster, node string) {
	t.Helper()
	grudge := map[string][]string{}
	for _, n := range c.Nodes() {
		if n != node {
			grudge[node] = append(grudge[node], n)
			grudge[n] = []string{node}
		}
	}
	must(t, c.Partition(grudge))
}

// lwwWaitConverged waits until every node holds the same state of each key.
func lwwWaitConverged(t testing.TB, c *store.LocalCluster, keys ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		diverged := ""
		for _, k := range keys {
			first := store.LWWState(c.Node(c.Nodes()[0]), k)
			for _, n := range c.Nodes()[1:] {
				if s := store.LWWState(c.Node(n), k); s != first {
					diverged = fmt.Sprintf("key %s: %s holds %q, %s holds %q", k, c.Nodes()[0], first, n, s)
				}
			}
		}
		if diverged == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge within 5s: %s", diverged)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lwwBalancer is a load balancer in front of the cluster that sends each
// request to the node the test picked: one client (one session) reaches
// several coordinators, as behind a real load balancer.
type lwwBalancer struct {
	c      *store.LocalCluster
	target atomic.Value // node id
	srv    *httptest.Server
}

func newLWWBalancer(t testing.TB, c *store.LocalCluster, node string) *lwwBalancer {
	b := &lwwBalancer{c: c}
	b.target.Store(node)
	b.srv = httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: "http", Host: c.Addr(b.target.Load().(string))})
	}})
	t.Cleanup(b.srv.Close)
	return b
}

// lwwBalancedProc is a process whose requests go through the balancer.
type lwwBalancedProc struct {
	*proc
	b *lwwBalancer
}

// lwwBalanced makes a process behind b.
func (x *tester) lwwBalanced(b *lwwBalancer, o ecstore.Options) *lwwBalancedProc {
	x.mu.Lock()
	defer x.mu.Unlock()
	node := b.target.Load().(string)
	p := &proc{x: x, id: x.next, node: node, cl: ecstore.New(b.srv.Listener.Addr().String(), o)}
	x.next++
	return &lwwBalancedProc{proc: p, b: b}
}

// via sends the process's next requests to node.
func (p *lwwBalancedProc) via(node string) *lwwBalancedProc {
	p.b.target.Store(node)
	p.node = node
	return p
}

// lwwFinalReads marks a final read of key on every node, after convergence.
func lwwFinalReads(x *tester, c *store.LocalCluster, key string, o ecstore.Options) []history.Op {
	var out []history.Op
	for _, n := range c.Nodes() {
		out = append(out, x.client(n, o).finalRead(key))
	}
	return out
}

func lwwExpectType(t testing.TB, x *tester, op history.Op, want history.Type) {
	t.Helper()
	if op.Type != want {
		x.dump()
		t.Fatalf("%s %s of %s via %s: %s (%s), want %s", op.F, op.Value, op.Key, op.Node, op.Type, op.Error, want)
	}
}

func TestLWWStaleReads(t *testing.T) {
	t.Run("lww W=1 R=1/partition isolates a node/stale reads, not linearizable", func(t *testing.T) {
		c := startCluster(t, 3, lwwConfig(store.ModeLWW, 1, 1))
		x := newTester(t, c)
		w, r := x.client("n1", ecstore.Options{}), x.client("n3", ecstore.Options{})
		lwwIsolate(t, c, "n3")
		for i := int64(1); i <= 3; i++ {
			lwwExpectType(t, x, w.write("k", i), history.OK)
			if got := r.read("k"); got.Type != history.OK || !got.Value.IsNil() {
				x.dump()
				t.Fatalf("read via the isolated n3 after write %d: %s %s, want ok null", i, got.Type, got.Value)
			}
		}
		rs := x.check(checkers.LinearizableName, checkers.NameStaleness)
		x.expect(rs, checkers.LinearizableName, checkers.Invalid)
		if st := rs[checkers.NameStaleness].Stats; st["stale_max_ms"] <= 0 || st["stale_reads"] < 3 {
			t.Errorf("staleness: max lag %v ms, %v stale reads; want a lag > 0 and 3 stale reads", st["stale_max_ms"], st["stale_reads"])
		}
	})
	t.Run("lww W=2 R=2/no fault, one operation at a time/linearizable", func(t *testing.T) {
		c := startCluster(t, 3, lwwConfig(store.ModeLWW, 2, 2))
		x := newTester(t, c)
		procs := []*proc{x.client("n1", ecstore.Options{}), x.client("n2", ecstore.Options{}), x.client("n3", ecstore.Options{})}
		for i := int64(1); i <= 12; i++ {
			lwwExpectType(t, x, procs[i%3].write("k", i), history.OK)
			for j := range procs {
				if got := procs[(int(i)+j+1)%3].read("k"); got.Type != history.OK || !got.Value.Equal(history.Int(i)) {
					x.dump()
					t.Fatalf("read after write %d: %s %s, want ok %d", i, got.Type, got.Value, i)
				}
			}
		}
		rs := x.check(checkers.LinearizableName, checkers.NameStaleness)
		x.expect(rs, checkers.LinearizableName, checkers.Valid)
		if st := rs[checkers.NameStaleness].Stats; st["stale_reads"] != 0 {
			t.Errorf("staleness: %v stale reads with W+R>N and no concurrency, want 0", st["stale_reads"])
		}
	})
}

func TestLWWClockSkew(t *testing.T) {
	// n1's clock runs 10 s behind. A client writes 1 via n2; once that is
	// acknowledged it writes 2 via n1, which cannot reach n2 (n3 reaches
	// both). With wall-clock stamps the later write carries the older
	// stamp and silently loses; with an HLC it wins whenever it causally
	// follows the first write: the client carries its session, or n1 read
	// the key first.
	tests := []struct {
		name      string
		mode      string
		session   bool
		readFirst bool
		want      checkers.Verdict
		final     int64
	}{
		{"lost-writes/lww, second write via the slow clock/invalid, later write lost", store.ModeLWW, false, false, checkers.Invalid, 1},
		{"lost-writes/lww, slow clock read the key first/invalid, later write lost", store.ModeLWW, false, true, checkers.Invalid, 1},
		{"lost-writes/hlc, client carries its session/valid, later write kept", store.ModeHLC, true, false, checkers.Valid, 2},
		{"lost-writes/hlc, slow clock read the key first/valid, later write kept", store.ModeHLC, false, true, checkers.Valid, 2},
		// Without a causal link an HLC is only a wall clock: the later write
		// loses, as in lww. (Anti-entropy is off so that n1 cannot learn of
		// the first write before the second; read repair converges.)
		{"lost-writes/hlc, no causal link/invalid, later write lost", store.ModeHLC, false, false, checkers.Invalid, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lwwConfig(tc.mode, 2, 2)
			causal := tc.session || tc.readFirst
			if !causal {
				cfg.AntiEntropy = -1
			}
			c := startCluster(t, 3, cfg)
			must(t, c.SetClock("n1", -10*time.Second))
			must(t, c.Partition(map[string][]string{"n1": {"n2"}, "n2": {"n1"}}))
			x := newTester(t, c)
			o := ecstore.Options{Sessions: tc.session}
			p := x.lwwBalanced(newLWWBalancer(t, c, "n2"), o)
			lwwExpectType(t, x, p.write("k", 1), history.OK)
			p.via("n1")
			if tc.readFirst {
				if got := p.read("k"); got.Type != history.OK || !got.Value.Equal(history.Int(1)) {
					x.dump()
					t.Fatalf("read via n1: %s %s, want ok 1", got.Type, got.Value)
				}
			}
			lwwExpectType(t, x, p.write("k", 2), history.OK)
			must(t, c.Heal())
			if !causal {
				// Unrecorded reads repair the replicas in place of
				// anti-entropy.
				for _, n := range c.Nodes() {
					ecstore.New(c.Addr(n), ecstore.Options{}).Invoke(context.Background(), history.Op{F: "read", Key: "k"})
				}
			}
			lwwWaitConverged(t, c, "k")
			for _, f := range lwwFinalReads(x, c, "k", ecstore.Options{}) {
				if f.Type != history.OK || !f.Value.Equal(history.Int(tc.final)) {
					x.dump()
					t.Fatalf("final read via %s: %s %s, want ok %d", f.Node, f.Type, f.Value, tc.final)
				}
			}
			x.expect(x.check(checkers.NameLostWrites), checkers.NameLostWrites, tc.want)
		})
	}
}

func TestLWWSessions(t *testing.T) {
	// One client behind a load balancer writes via n1 and reads via n3
	// while n1 is cut off, with W=1 R=1. Without a session the reads
	// return the old value; with one they wait for the client's write and
	// fail rather than go back in time, and succeed once the partition
	// heals.
	tests := []struct {
		name     string
		sessions bool
		want     checkers.Verdict
	}{
		{"read-your-writes/lww W=1 R=1 partitioned, no session/invalid", false, checkers.Invalid},
		{"read-your-writes/lww W=1 R=1 partitioned, session/valid", true, checkers.Valid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, lwwConfig(store.ModeLWW, 1, 1))
			x := newTester(t, c)
			p := x.lwwBalanced(newLWWBalancer(t, c, "n1"), ecstore.Options{Sessions: tc.sessions})
			lwwIsolate(t, c, "n1")
			for i := int64(1); i <= 3; i++ {
				lwwExpectType(t, x, p.via("n1").write("k", i), history.OK)
				got := p.via("n3").read("k")
				switch {
				case tc.sessions && got.Type == history.OK && !got.Value.Equal(history.Int(i)):
					x.dump()
					t.Fatalf("read with a session after writing %d: ok %s; want %d or a failure", i, got.Value, i)
				case tc.sessions && got.Type == history.Info:
					t.Fatalf("read with a session: info (%s), want ok or fail", got.Error)
				case !tc.sessions && (got.Type != history.OK || !got.Value.IsNil()):
					x.dump()
					t.Fatalf("read without a session via the other side: %s %s, want ok null", got.Type, got.Value)
				}
			}
			must(t, c.Heal())
			got := p.via("n3").read("k")
			if tc.sessions && (got.Type != history.OK || !got.Value.Equal(history.Int(3))) {
				x.dump()
				t.Fatalf("read with a session after healing: %s %s (%s), want ok 3", got.Type, got.Value, got.Error)
			}
			rs := x.check(checkers.NameReadYourWrites, checkers.NameMonotonicReads)
			x.expect(rs, checkers.NameReadYourWrites, tc.want)
			if tc.sessions {
				x.expect(rs, checkers.NameMonotonicReads, checkers.Valid)
			}
		})
	}
}

// lwwConcurrently runs f for each process at once and waits for all.
func lwwConcurrently(procs []*proc, f func(i int, p *proc)) {
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { f(i, p) })
	}
	wg.Wait()
}

func TestLWWSets(t *testing.T) {
	// Three clients, one per node, add unique elements at once while n1 is
	// cut off; then the partition heals and anti-entropy runs. An OR-set
	// keeps every acknowledged add; a set kept as one last-write-wins value
	// and updated by read-modify-write keeps only one side's.
	tests := []struct {
		name string
		impl string
		want checkers.Verdict
	}{
		{"lost-writes/or-set, concurrent adds across a partition/valid", store.SetORSet, checkers.Valid},
		{"lost-writes/lww-blob, concurrent adds across a partition/invalid", store.SetLWWBlob, checkers.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lwwConfig(store.ModeLWW, 1, 1)
			cfg.SetImpl = tc.impl
			c := startCluster(t, 3, cfg)
			x := newTester(t, c)
			o := ecstore.Options{Workload: ecstore.Set}
			procs := []*proc{x.client("n1", o), x.client("n2", o), x.client("n3", o)}
			lwwIsolate(t, c, "n1")
			var acked atomic.Int64
			lwwConcurrently(procs, func(i int, p *proc) {
				for j := range 15 {
					if p.do("add", "s", history.Int(int64(100*(i+1)+j))).Type == history.OK {
						acked.Add(1)
					}
				}
			})
			if acked.Load() != 45 {
				t.Fatalf("%d of 45 adds acknowledged with W=1 (a replica coordinates each): want all", acked.Load())
			}
			must(t, c.Heal())
			lwwWaitConverged(t, c, "s")
			finals := lwwFinalReads(x, c, "s", o)
			rs := x.check(checkers.NameLostWrites)
			x.expect(rs, checkers.NameLostWrites, tc.want)
			n, _ := finals[0].Value.AsList()
			switch {
			case tc.impl == store.SetORSet && len(n) != 45:
				t.Errorf("or-set final read holds %d elements, want all 45", len(n))
			case tc.impl == store.SetLWWBlob && rs[checkers.NameLostWrites].Stats["lost"] == 0:
				t.Errorf("lww-blob: no add reported lost")
			}
		})
	}
}

func TestLWWCounters(t *testing.T) {
	// PN-counter adds on both sides of a partition all survive the heal:
	// after convergence every node reads the sum of the acknowledged adds,
	// within the bounds the counter checker allows. Reads during the
	// partition, on the other hand, miss the other side's acknowledged adds
	// (W=1 R=1 is eventually consistent), which the checker must flag.
	tests := []struct {
		name        string
		mode        string
		readsDuring bool
		want        checkers.Verdict
	}{
		{"counter/lww adds across a partition, reads after the heal/valid, sum kept", store.ModeLWW, false, checkers.Valid},
		{"counter/hlc adds across a partition, reads after the heal/valid, sum kept", store.ModeHLC, false, checkers.Valid},
		{"counter/lww reads during the partition/invalid, other side's adds missing", store.ModeLWW, true, checkers.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, lwwConfig(tc.mode, 1, 1))
			x := newTester(t, c)
			o := ecstore.Options{Workload: ecstore.Counter}
			procs := []*proc{x.client("n1", o), x.client("n2", o), x.client("n3", o)}
			lwwIsolate(t, c, "n1")
			var sum atomic.Int64
			lwwConcurrently(procs, func(i int, p *proc) {
				for j := range 12 {
					d := int64(i + 1)
					if j%4 == 3 {
						d = -2
					}
					lwwExpectType(t, x, p.do("add", "c", history.Int(d)), history.OK)
					sum.Add(d)
				}
			})
			if tc.readsDuring {
				for _, p := range procs {
					lwwExpectType(t, x, p.do("read", "c", history.Nil()), history.OK)
				}
			}
			must(t, c.Heal())
			lwwWaitConverged(t, c, "c")
			for _, f := range lwwFinalReads(x, c, "c", o) {
				if v, _ := f.Value.AsInt(); f.Type != history.OK || v != sum.Load() {
					x.dump()
					t.Fatalf("final read via %s: %s %s, want ok %d (the sum of the acknowledged adds)", f.Node, f.Type, f.Value, sum.Load())
				}
			}
			x.expect(x.check(checkers.NameCounter), checkers.NameCounter, tc.want)
		})
	}
}

func TestLWWCASNotAtomic(t *testing.T) {
	// A compare-and-set reads with R and writes with W: two coordinators
	// that cannot see each other both succeed from the same old value, and
	// the linearizable checker sees that no order explains both.
	c := startCluster(t, 3, lwwConfig(store.ModeLWW, 1, 1))
	x := newTester(t, c)
	a, b := x.client("n1", ecstore.Options{}), x.client("n3", ecstore.Options{})
	lwwExpectType(t, x, a.write("k", 0), history.OK)
	lwwWaitConverged(t, c, "k")
	lwwIsolate(t, c, "n1")
	lwwExpectType(t, x, a.do("cas", "k", history.Ints(0, 1)), history.OK)
	lwwExpectType(t, x, b.do("cas", "k", history.Ints(0, 2)), history.OK)
	lwwExpectType(t, x, b.do("cas", "k", history.Ints(5, 6)), history.Fail)
	x.expect(x.check(checkers.LinearizableName), checkers.LinearizableName, checkers.Invalid)
}

// benchLWW measures a mixed read/write load from 10 clients over 3
// in-process nodes with W=1 R=1.
func benchLWW(b *testing.B, mode string) {
	cfg := store.Config{Mode: mode, W: 1, R: 1, RequestTimeout: time.Second}
	c := startCluster(b, 3, cfg)
	const clients, keys = 10, 100
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		cl := ecstore.New(c.Addr(c.Nodes()[i%3]), ecstore.Options{})
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				op := history.Op{Process: history.Process(i), Type: history.Invoke, F: "read", Key: fmt.Sprintf("k%d", n%keys)}
				if n%2 == 0 {
					op.F, op.Value = "write", history.Int(n)
				}
				if done := cl.Invoke(context.Background(), op); done.Type != history.OK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d operations did not succeed without faults", f, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

func BenchmarkLWW(b *testing.B) { benchLWW(b, store.ModeLWW) }

func BenchmarkHLC(b *testing.B) { benchLWW(b, store.ModeHLC) }

func TestLWWRestartCatchesUp(t *testing.T) {
	// Replicas keep their state in memory: a killed node restarts empty,
	// and anti-entropy brings it back.
	c := startCluster(t, 3, lwwConfig(store.ModeLWW, 3, 1))
	x := newTester(t, c)
	p := x.client("n1", ecstore.Options{})
	lwwExpectType(t, x, p.write("k", 1), history.OK)
	must(t, c.Kill("n3"))
	must(t, c.Start("n3"))
	if s := store.LWWState(c.Node("n3"), "k"); s != "" {
		t.Fatalf("restarted n3 holds %q, want nothing (lww keeps state in memory)", s)
	}
	lwwWaitConverged(t, c, "k")
	if got := x.client("n3", ecstore.Options{}).read("k"); got.Type != history.OK || !got.Value.Equal(history.Int(1)) {
		t.Fatalf("read via the restarted n3: %s %s, want ok 1", got.Type, got.Value)
	}
	x.expect(x.check(checkers.LinearizableName), checkers.LinearizableName, checkers.Valid)
}

func TestLWWStopsCleanly(t *testing.T) {
	// Stopping the nodes ends every goroutine the engine started, even with
	// messages stuck on a cut link and reads waiting to repair.
	before := runtime.NumGoroutine()
	c := startCluster(t, 3, lwwConfig(store.ModeHLC, 1, 1))
	p, q := ecstore.New(c.Addr("n1"), ecstore.Options{}), ecstore.New(c.Addr("n3"), ecstore.Options{Sessions: true})
	lwwIsolate(t, c, "n3")
	ctx := context.Background()
	for i := int64(1); i <= 5; i++ {
		p.Invoke(ctx, history.Op{F: "write", Key: "k", Value: history.Int(i)})
		q.Invoke(ctx, history.Op{F: "read", Key: "k"})
		q.Invoke(ctx, history.Op{F: "write", Key: "k", Value: history.Int(10 + i)})
		q.Invoke(ctx, history.Op{F: "read", Key: "k"})
	}
	must(t, c.Close())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after closing the cluster, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLWWCoordinatorNotAReplica(t *testing.T) {
	// With N=2 of 3 nodes, the third node still coordinates every
	// operation on a key, keeping none of it.
	cfg := lwwConfig(store.ModeLWW, 2, 1)
	cfg.N = 2
	c := startCluster(t, 3, cfg)
	key, outsider := "", ""
	for i := 0; outsider == ""; i++ {
		key = fmt.Sprintf("k%d", i)
		reps := store.LWWReplicas(c.Nodes(), 2, key)
		for _, n := range c.Nodes() {
			if n != reps[0] && n != reps[1] {
				outsider = n
			}
		}
	}
	x := newTester(t, c)
	p := x.client(outsider, ecstore.Options{})
	for i := int64(1); i <= 3; i++ {
		lwwExpectType(t, x, p.write(key, i), history.OK)
		if got := p.read(key); got.Type != history.OK || !got.Value.Equal(history.Int(i)) {
			x.dump()
			t.Fatalf("read via %s, which replicates nothing of %s: %s %s, want ok %d", outsider, key, got.Type, got.Value, i)
		}
	}
	if s := store.LWWState(c.Node(outsider), key); s != "" {
		t.Errorf("%s is not a replica of %s yet holds %q", outsider, key, s)
	}
	x.expect(x.check(checkers.LinearizableName), checkers.LinearizableName, checkers.Valid)
}
