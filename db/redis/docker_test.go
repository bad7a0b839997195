package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/workload"
)

// upCluster builds the redis and base images (once per machine) and
// brings up a primary, two replicas and three Sentinels that the test
// removes.
func upCluster(t *testing.T) (*docker.Client, *Cluster) {
	t.Helper()
	c := dockertest.Engine(t)
	dockertest.Images(t, c, Image, docker.Base)
	name := dockertest.ClusterName(t, c, "redistest")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	rc, err := Up(ctx, c, Options{Name: name, Nodes: 3, Progress: dockertest.Writer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	return c, rc
}

// worker is a test's client.
type worker struct {
	t *testing.T
	c *Client
}

func (rc *Cluster) worker(t *testing.T, o ClientOptions) worker {
	if o.Primary == "" {
		o.Sentinels = rc.SentinelAddrs()
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	o.NodeOf = rc.NodeOf
	c := NewClient(o)
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

// TestCluster brings up a primary, two replicas and three Sentinels and
// drives the client: every workload's operations and outcomes through
// Sentinel; a write on a replica is refused (fail); with a replica cut off
// from the primary (lag), a read there misses a write acknowledged
// before it (stale by construction) and WAIT 2 times out (info); after the
// heal it catches up; with the primary cut off, Sentinel promotes a
// replica and the old primary, back, is its replica, without the write it
// acknowledged while cut off.
func TestCluster(t *testing.T) {
	_, rc := upCluster(t)
	ctx := t.Context()
	if p, r := rc.Primary(), rc.Replicas(); p != "n1" || len(r) != 2 {
		t.Fatalf("primary %s, replicas %v: want n1 and two", p, r)
	}
	if roles := rc.Roles(ctx); roles["n1"] != "primary" || roles["n2"] != "replica" || roles["n3"] != "replica" {
		t.Fatalf("roles %v", roles)
	}

	reg := rc.worker(t, ClientOptions{Workload: workload.Register})
	reg.expect("read", "k", history.Nil(), history.OK, history.Nil())
	reg.expect("cas", "k", history.List(history.Int(1), history.Int(2)), history.Fail, history.Nil())
	reg.expect("cas", "k", history.List(history.Nil(), history.Int(1)), history.OK, history.Nil())
	reg.expect("cas", "k", history.List(history.Nil(), history.Int(9)), history.Fail, history.Nil())
	reg.expect("cas", "k", history.List(history.Int(1), history.Int(2)), history.OK, history.Nil())
	reg.expect("write", "k", history.Int(3), history.OK, history.Nil())
	reg.expect("read", "k", history.Nil(), history.OK, history.Int(3))
	set := rc.worker(t, ClientOptions{Workload: workload.Set})
	for _, e := range []int64{3, 1, 2} {
		set.expect("add", "s", history.Int(e), history.OK, history.Nil())
	}
	set.expect("read", "s", history.Nil(), history.OK, history.Ints(1, 2, 3))
	ctr := rc.worker(t, ClientOptions{Workload: workload.Counter})
	ctr.expect("read", "c", history.Nil(), history.OK, history.Int(0))
	ctr.expect("add", "c", history.Int(5), history.OK, history.Nil())
	ctr.expect("add", "c", history.Int(-2), history.OK, history.Nil())
	ctr.expect("read", "c", history.Nil(), history.OK, history.Int(3))

	// A replica refuses writes; it serves reads.
	onN3 := rc.worker(t, ClientOptions{Workload: workload.Register, Primary: rc.Addr("n3")})
	onN3.expect("write", "k", history.Int(99), history.Fail, history.Nil())
	if err := dockertest.Eventually(10*time.Second, func() error {
		if got := onN3.do("read", "k", history.Nil()); !got.Value.Equal(history.Int(3)) {
			return fmt.Errorf("read on n3: %v %s %s", got.Type, got.Value, got.Error)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// n3 cut off from the primary: stale reads there, WAIT 2 times out.
	if err := (&System{Cluster: rc, redisSys: redisSys{s: rc.sentinels, at: rc}}).Lag("n3", true); err != nil {
		t.Fatal(err)
	}
	reg.expect("write", "k", history.Int(4), history.OK, history.Nil())
	onN3.expect("read", "k", history.Nil(), history.OK, history.Int(3))
	waiter := rc.worker(t, ClientOptions{Workload: workload.Register, Wait: 2, WaitTimeout: 300 * time.Millisecond})
	waiter.expect("write", "k", history.Int(5), history.Info, history.Nil())
	wait1 := rc.worker(t, ClientOptions{Workload: workload.Register, Wait: 1, WaitTimeout: time.Second})
	wait1.expect("write", "k", history.Int(6), history.OK, history.Nil())
	if err := (&System{Cluster: rc, redisSys: redisSys{s: rc.sentinels, at: rc}}).Lag("n3", false); err != nil {
		t.Fatal(err)
	}
	if err := dockertest.Eventually(20*time.Second, func() error {
		if got := onN3.do("read", "k", history.Nil()); !got.Value.Equal(history.Int(6)) {
			return fmt.Errorf("read on n3 after the heal: %v %s %s", got.Type, got.Value, got.Error)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The primary cut off: it still takes a write, which the failover
	// then loses.
	sys := &System{Cluster: rc, redisSys: redisSys{s: rc.sentinels, at: rc, logf: t.Logf}}
	if err := rc.Partition(map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}); err != nil {
		t.Fatal(err)
	}
	onN1 := rc.worker(t, ClientOptions{Workload: workload.Register, Primary: rc.Addr("n1")})
	onN1.expect("write", "k", history.Int(7), history.OK, history.Nil())
	start := time.Now()
	res, err := sys.Failover()
	if err != nil {
		t.Fatalf("failover: %+v, %v", res, err)
	}
	t.Logf("failover in %v: %+v", time.Since(start).Round(time.Millisecond), res)
	if res.Promoted == "n1" || res.Promoted == "" || res.Rejoined != "n1" || rc.Primary() != res.Promoted {
		t.Fatalf("failover: %+v, primary now %s", res, rc.Primary())
	}
	if err := rc.WaitSettled(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every node, the old primary included, has the last value the new
	// primary had: 6, not the 7 the old primary acknowledged.
	for _, node := range rc.Nodes() {
		w := rc.worker(t, ClientOptions{Workload: workload.Register, Primary: rc.Addr(node)})
		w.expect("read", "k", history.Nil(), history.OK, history.Int(6))
	}
	// The Sentinel client writes to the new primary.
	if err := dockertest.Eventually(20*time.Second, func() error {
		if got := reg.do("write", "k", history.Int(8)); got.Type != history.OK {
			return fmt.Errorf("write through Sentinel after the failover: %v %s", got.Type, got.Error)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
