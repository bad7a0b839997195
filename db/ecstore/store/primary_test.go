package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// primaryConfig is a primary-mode configuration with short timeouts.
func primaryConfig(reads string, failover time.Duration) store.Config {
	return store.Config{
		Mode:            store.ModePrimary,
		PrimaryReads:    reads,
		FailoverTimeout: failover,
		RequestTimeout:  300 * time.Millisecond,
		SessionWait:     time.Second,
	}
}

// primaryWaitFor polls cond every 20 ms until it holds, failing the test with
// what after limit.
func primaryWaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// primaryWaitRole waits until node reports role with leader as its primary.
func primaryWaitRole(t testing.TB, c *store.LocalCluster, node, role, leader string) {
	t.Helper()
	primaryWaitFor(t, 10*time.Second, fmt.Sprintf("%s to be %s with primary %s", node, role, leader), func() bool {
		n := c.Node(node)
		if n == nil {
			return false
		}
		s := n.Status()
		return s.Ready && s.Role == role && s.Leader == leader
	})
}

// primaryAgree waits until every node is ready, follows the same primary and
// answers the same read of key (through clients that record nothing), so
// that the final reads that follow see the converged state.
func primaryAgree(t testing.TB, c *store.LocalCluster, workload, key string) history.Value {
	t.Helper()
	var agreed history.Value
	clients := map[string]*ecstore.Client{}
	for _, id := range c.Nodes() {
		clients[id] = ecstore.New(c.Addr(id), ecstore.Options{Workload: workload, Timeout: time.Second})
	}
	primaryWaitFor(t, 10*time.Second, "the nodes to agree on "+key, func() bool {
		var leader string
		var vals []history.Value
		for _, id := range c.Nodes() {
			n := c.Node(id)
			if n == nil {
				return false
			}
			s := n.Status()
			if !s.Ready || (leader != "" && s.Leader != leader) {
				return false
			}
			leader = s.Leader
			r := clients[id].Invoke(context.Background(), history.Op{F: "read", Key: key})
			if r.Type != history.OK {
				return false
			}
			vals = append(vals, r.Value)
		}
		for _, v := range vals[1:] {
			if !v.Equal(vals[0]) {
				return false
			}
		}
		agreed = vals[0]
		return true
	})
	return agreed
}

// primaryOK fails the test unless op completed ok.
func primaryOK(t testing.TB, op history.Op) history.Op {
	t.Helper()
	if op.Type != history.OK {
		t.Fatalf("%s %s %s on %s: %s (%s), want ok", op.F, op.Key, op.Value, op.Node, op.Type, op.Error)
	}
	return op
}

// TestPrimaryFollowerReads shows that followers serve stale reads while
// replication lags, and that reading from the primary does not.
func TestPrimaryFollowerReads(t *testing.T) {
	cases := []struct {
		name      string
		reads     string
		want      checkers.Verdict
		wantStale bool
	}{
		{"linearizable/follower-reads-under-replication-delay/invalid", "any", checkers.Invalid, true},
		{"linearizable/primary-reads-under-replication-delay/valid", "primary", checkers.Valid, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, primaryConfig(tc.reads, time.Second))
			primaryWaitRole(t, c, "n1", "primary", "n1")
			must(t, c.SetDelay("n1", "n2", 200*time.Millisecond))
			x := newTester(t, c)
			writer, reader := x.client("n1", ecstore.Options{}), x.client("n2", ecstore.Options{})
			for i := int64(1); i <= 4; i++ {
				primaryOK(t, writer.write("x", i))
				// Right after the primary's ack: the shipment to n2 is
				// still on its 200 ms way.
				r := primaryOK(t, reader.read("x"))
				if got, _ := r.Value.AsInt(); (got != i) != tc.wantStale {
					t.Errorf("read on n2 right after writing %d returned %s; stale expected: %v", i, r.Value, tc.wantStale)
				}
				time.Sleep(50 * time.Millisecond)
			}
			rs := x.check(checkers.LinearizableName, checkers.NameStaleness)
			x.expect(rs, checkers.LinearizableName, tc.want)
			st := rs[checkers.NameStaleness]
			if lag := st.Stats["stale_max_ms"]; (lag > 0) != tc.wantStale || (st.Stats["stale_reads"] > 0) != tc.wantStale {
				t.Errorf("staleness: max lag %.1f ms, %v stale reads; stale expected: %v", lag, st.Stats["stale_reads"], tc.wantStale)
			}
		})
	}
}

// TestPrimaryFailover shows that a failover loses the writes the isolated
// old primary acknowledged (split brain), and that without the partition the
// same workload loses nothing.
func TestPrimaryFailover(t *testing.T) {
	cases := []struct {
		name      string
		partition bool
		want      checkers.Verdict
		final     int64
	}{
		{"lost-writes/primary-isolated-and-replaced/invalid", true, checkers.Invalid, 100},
		{"lost-writes/no-fault/valid", false, checkers.Valid, 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, primaryConfig("any", 400*time.Millisecond))
			primaryWaitRole(t, c, "n1", "primary", "n1")
			x := newTester(t, c)
			a, b := x.client("n1", ecstore.Options{}), x.client("n2", ecstore.Options{})
			for i := int64(1); i <= 5; i++ {
				primaryOK(t, a.write("x", i))
			}
			primaryAgree(t, c, ecstore.Register, "x")
			if tc.partition {
				must(t, c.Partition(map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}))
			}
			// The client talks to n1 directly: the partition cuts only
			// node-to-node traffic, so the isolated primary keeps acking.
			for i := int64(6); i <= 8; i++ {
				primaryOK(t, a.write("x", i))
			}
			if tc.partition {
				primaryWaitRole(t, c, "n2", "primary", "n2")
				primaryWaitRole(t, c, "n3", "follower", "n2")
				if s := c.Node("n1").Status(); s.Role != "primary" {
					t.Fatalf("the isolated old primary is %s; it should still believe it leads", s.Role)
				}
			}
			primaryOK(t, b.write("x", 100))
			for i := int64(9); i <= 11; i++ {
				primaryOK(t, a.write("x", i)) // lost with the partition: n1 acks, n2 never sees them
			}
			if tc.partition {
				must(t, c.Heal())
				primaryWaitRole(t, c, "n1", "follower", "n2")
			}
			if got := primaryAgree(t, c, ecstore.Register, "x"); !got.Equal(history.Int(tc.final)) {
				t.Errorf("the nodes agree on %s, want %d", got, tc.final)
			}
			for _, id := range c.Nodes() {
				primaryOK(t, x.client(id, ecstore.Options{}).finalRead("x"))
			}
			rs := x.check(checkers.NameLostWrites)
			x.expect(rs, checkers.NameLostWrites, tc.want)
			if tc.partition && rs[checkers.NameLostWrites].AnomalyCount != 3 {
				t.Errorf("lost-writes found %d anomalies, want the 3 writes n1 acknowledged after n2's write", rs[checkers.NameLostWrites].AnomalyCount)
			}
		})
	}
}

// TestPrimaryFollowerRestart shows that a killed follower comes back empty
// and catches up with a full copy.
func TestPrimaryFollowerRestart(t *testing.T) {
	t.Run("lost-writes/follower-killed-and-restarted/valid", func(t *testing.T) {
		c := startCluster(t, 3, primaryConfig("any", 400*time.Millisecond))
		primaryWaitRole(t, c, "n1", "primary", "n1")
		x := newTester(t, c)
		a, b := x.client("n1", ecstore.Options{}), x.client("n2", ecstore.Options{})
		for i := int64(1); i <= 5; i++ {
			primaryOK(t, a.write("x", i))
			primaryOK(t, a.write("y", i))
		}
		must(t, c.Kill("n3"))
		for i := int64(6); i <= 10; i++ {
			primaryOK(t, b.write("x", i)) // forwarded by n2
		}
		must(t, c.Start("n3"))
		primaryWaitRole(t, c, "n3", "follower", "n1")
		for _, key := range []string{"x", "y"} {
			primaryAgree(t, c, ecstore.Register, key)
			for _, id := range c.Nodes() {
				r := primaryOK(t, x.client(id, ecstore.Options{}).finalRead(key))
				if want := map[string]int64{"x": 10, "y": 5}[key]; !r.Value.Equal(history.Int(want)) {
					t.Errorf("final read of %s on %s: %s, want %d", key, id, r.Value, want)
				}
			}
		}
		x.expect(x.check(checkers.NameLostWrites), checkers.NameLostWrites, checkers.Valid)
	})
}

// TestPrimaryRestart shows what a killed primary costs: a write it
// acknowledged but had not shipped is lost once a follower takes over, and
// the old primary, back empty, follows the new one instead of leading with
// no data.
func TestPrimaryRestart(t *testing.T) {
	cases := []struct {
		name    string
		unsent  bool // acknowledge a write the followers never receive
		restart string
		want    checkers.Verdict
		final   int64
	}{
		{"lost-writes/primary-killed-before-shipping/invalid", true, "after-failover", checkers.Invalid, 5},
		{"lost-writes/primary-killed-and-restarted-at-once/valid", false, "at-once", checkers.Valid, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, primaryConfig("any", 400*time.Millisecond))
			primaryWaitRole(t, c, "n1", "primary", "n1")
			x := newTester(t, c)
			a := x.client("n1", ecstore.Options{})
			for i := int64(1); i <= 5; i++ {
				primaryOK(t, a.write("x", i))
			}
			primaryAgree(t, c, ecstore.Register, "x")
			if tc.unsent {
				must(t, c.SetDelay("n1", "n2", 300*time.Millisecond))
				must(t, c.SetDelay("n1", "n3", 300*time.Millisecond))
				primaryOK(t, a.write("x", 6)) // acknowledged; its shipment is on its slow way
			}
			must(t, c.Kill("n1"))
			must(t, c.Heal())
			if tc.restart == "at-once" {
				must(t, c.Start("n1"))
			}
			primaryWaitRole(t, c, "n2", "primary", "n2")
			if tc.restart == "after-failover" {
				must(t, c.Start("n1"))
			}
			primaryWaitRole(t, c, "n1", "follower", "n2")
			if !tc.unsent {
				primaryOK(t, x.client("n1", ecstore.Options{}).write("x", 6)) // forwarded to n2
			}
			if got := primaryAgree(t, c, ecstore.Register, "x"); !got.Equal(history.Int(tc.final)) {
				t.Errorf("the nodes agree on %s, want %d", got, tc.final)
			}
			for _, id := range c.Nodes() {
				primaryOK(t, x.client(id, ecstore.Options{}).finalRead("x"))
			}
			x.expect(x.check(checkers.NameLostWrites), checkers.NameLostWrites, tc.want)
		})
	}
}

// TestPrimaryPause shows that a primary frozen long enough is replaced, and
// steps down and takes the new primary's copy when it resumes.
func TestPrimaryPause(t *testing.T) {
	t.Run("lost-writes/primary-paused-and-replaced/valid", func(t *testing.T) {
		c := startCluster(t, 3, primaryConfig("any", 400*time.Millisecond))
		primaryWaitRole(t, c, "n1", "primary", "n1")
		x := newTester(t, c)
		a, b := x.client("n1", ecstore.Options{}), x.client("n2", ecstore.Options{})
		for i := int64(1); i <= 5; i++ {
			primaryOK(t, a.write("x", i))
		}
		must(t, c.Pause("n1"))
		primaryWaitRole(t, c, "n2", "primary", "n2")
		primaryOK(t, b.write("x", 100))
		if s := c.Node("n1").Status(); s.Role != "primary" || !s.Paused {
			t.Fatalf("paused n1 reports role %s, paused %v; it should still believe it leads", s.Role, s.Paused)
		}
		must(t, c.Resume("n1"))
		primaryWaitRole(t, c, "n1", "follower", "n2")
		primaryOK(t, a.write("x", 101)) // forwarded to n2
		if got := primaryAgree(t, c, ecstore.Register, "x"); !got.Equal(history.Int(101)) {
			t.Errorf("the nodes agree on %s, want 101", got)
		}
		for _, id := range c.Nodes() {
			primaryOK(t, x.client(id, ecstore.Options{}).finalRead("x"))
		}
		rs := x.check(checkers.NameLostWrites, checkers.LinearizableName)
		x.expect(rs, checkers.NameLostWrites, checkers.Valid)
		x.expect(rs, checkers.LinearizableName, checkers.Valid)
	})
}

// TestPrimarySessions shows that session tokens give read-your-writes on
// follower reads despite replication lag, and that without them a follower
// serves a client's read before its own write has reached it.
func TestPrimarySessions(t *testing.T) {
	cases := []struct {
		name     string
		sessions bool
		want     checkers.Verdict
	}{
		{"read-your-writes/follower-reads-with-sessions/valid", true, checkers.Valid},
		{"read-your-writes/follower-reads-without-sessions/invalid", false, checkers.Invalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, primaryConfig("any", time.Second))
			primaryWaitRole(t, c, "n1", "primary", "n1")
			must(t, c.SetDelay("n1", "n2", 200*time.Millisecond))
			x := newTester(t, c)
			p := x.client("n2", ecstore.Options{Sessions: tc.sessions})
			for i := int64(1); i <= 4; i++ {
				primaryOK(t, p.write("x", i)) // forwarded to the primary n1
				r := primaryOK(t, p.read("x"))
				if got, _ := r.Value.AsInt(); (got == i) != tc.sessions {
					t.Errorf("read after writing %d returned %s; sessions %v", i, r.Value, tc.sessions)
				}
			}
			rs := x.check(checkers.NameReadYourWrites, checkers.NameMonotonicReads)
			x.expect(rs, checkers.NameReadYourWrites, tc.want)
			if tc.sessions {
				x.expect(rs, checkers.NameMonotonicReads, checkers.Valid)
			}
		})
	}
}

// TestPrimaryForwarding checks the outcome of writes sent to a follower:
// applied through the primary, indeterminate when the forward got no reply,
// failed when it certainly never reached the primary; and CAS outcomes.
func TestPrimaryForwarding(t *testing.T) {
	cfg := primaryConfig("any", 5*time.Second) // no failover during this test
	cfg.SessionWait = 200 * time.Millisecond   // a forward waits RequestTimeout + SessionWait
	c := startCluster(t, 3, cfg)
	primaryWaitRole(t, c, "n1", "primary", "n1")
	x := newTester(t, c)
	p := x.client("n2", ecstore.Options{Timeout: 3 * time.Second})
	steps := []struct {
		name  string
		fault func()
		f     string
		value history.Value
		want  history.Type
	}{
		{"write/forwarded-to-primary/ok", nil, "write", history.Int(1), history.OK},
		{"cas/expected-value-held/ok", nil, "cas", history.Ints(1, 2), history.OK},
		{"cas/expected-value-not-held/fail", nil, "cas", history.Ints(1, 3), history.Fail},
		{"write/primary-cut-off/info", func() {
			must(t, c.Partition(map[string][]string{"n1": {"n2"}, "n2": {"n1"}}))
		}, "write", history.Int(4), history.Info},
		{"write/primary-down/fail", func() {
			must(t, c.Heal())
			must(t, c.Kill("n1"))
			time.Sleep(100 * time.Millisecond) // let n2 notice its connections closed
		}, "write", history.Int(5), history.Fail},
	}
	for _, s := range steps {
		if s.fault != nil {
			s.fault()
		}
		if got := p.do(s.f, "x", s.value); got.Type != s.want {
			t.Errorf("%s: %s (%s), want %s", s.name, got.Type, got.Error, s.want)
		}
	}
	x.expect(x.check(checkers.LinearizableName), checkers.LinearizableName, checkers.Valid)
}

// TestPrimarySetsAndCounters checks that set adds and counter adds sent to
// any node are applied once by the primary and reach every node.
func TestPrimarySetsAndCounters(t *testing.T) {
	c := startCluster(t, 3, primaryConfig("any", time.Second))
	primaryWaitRole(t, c, "n1", "primary", "n1")
	t.Run("lost-writes/set-adds-through-every-node/valid", func(t *testing.T) {
		x := newTester(t, c)
		for i, id := range c.Nodes() {
			p := x.client(id, ecstore.Options{Workload: ecstore.Set})
			for j := range int64(4) {
				primaryOK(t, p.do("add", "s", history.Int(int64(i)*10+j)))
			}
		}
		primaryAgree(t, c, ecstore.Set, "s")
		for _, id := range c.Nodes() {
			r := primaryOK(t, x.client(id, ecstore.Options{Workload: ecstore.Set}).finalRead("s"))
			if l, _ := r.Value.AsList(); len(l) != 12 {
				t.Errorf("final set read on %s: %s, want 12 elements", id, r.Value)
			}
		}
		x.expect(x.check(checkers.NameLostWrites), checkers.NameLostWrites, checkers.Valid)
	})
	t.Run("counter/adds-through-every-node/valid", func(t *testing.T) {
		x := newTester(t, c)
		for _, id := range c.Nodes() {
			p := x.client(id, ecstore.Options{Workload: ecstore.Counter})
			for _, d := range []int64{5, -2, 7} {
				primaryOK(t, p.do("add", "k", history.Int(d)))
			}
		}
		if got := primaryAgree(t, c, ecstore.Counter, "k"); !got.Equal(history.Int(30)) {
			t.Errorf("the nodes agree on counter %s, want 30", got)
		}
		for _, id := range c.Nodes() {
			primaryOK(t, x.client(id, ecstore.Options{Workload: ecstore.Counter}).finalRead("k"))
		}
		x.expect(x.check(checkers.NameCounter), checkers.NameCounter, checkers.Valid)
	})
}

// BenchmarkPrimary measures 10 clients over 3 nodes: writes go to the
// primary, reads to any node (half of each).
func BenchmarkPrimary(b *testing.B) {
	c := startCluster(b, 3, primaryConfig("any", time.Second))
	primaryWaitRole(b, c, "n1", "primary", "n1")
	const clients = 10
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range clients {
		writer := ecstore.New(c.Addr("n1"), ecstore.Options{})
		reader := ecstore.New(c.Addr(c.Nodes()[w%3]), ecstore.Options{})
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				key := fmt.Sprintf("k%d", i%64)
				op := history.Op{F: "read", Key: key}
				cl := reader
				if i%2 == 0 {
					op, cl = history.Op{F: "write", Key: key, Value: history.Int(i)}, writer
				}
				if cl.Invoke(context.Background(), op).Type != history.OK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if n := failed.Load(); n > 0 {
		b.Errorf("%d of %d operations did not complete ok", n, b.N)
	}
}
