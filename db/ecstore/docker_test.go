package ecstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/nemesis"
)

// opLog keeps the operations a nemesis records.
type opLog struct {
	mu  sync.Mutex
	ops history.History
}

func (l *opLog) record(op history.Op) history.Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	op.Index = int64(len(l.ops))
	l.ops = append(l.ops, op)
	return op
}

func TestEcstoreImage(t *testing.T) {
	c := engine(t)
	t.Setenv("ECCHECK_IMAGES_FILE", filepath.Join(t.TempDir(), "images.json"))
	ctx := t.Context()
	o := docker.BuildOptions{Binary: staticBinary(t), Progress: dockertest.Writer(t), Force: true}
	first, err := c.Build(ctx, Image, o)
	if err != nil {
		t.Fatalf("images/ecstore/forced build: %v", err)
	}
	if !first.Built || !strings.HasPrefix(first.Ref, "eccheck/ecstore:") {
		t.Fatalf("images/ecstore/forced build: got %+v, want a built eccheck/ecstore:<hash>", first)
	}
	o.Force = false
	second, err := c.Build(ctx, Image, o)
	if err != nil {
		t.Fatalf("images/ecstore/second build: %v", err)
	}
	if second.Built || second.Ref != first.Ref {
		t.Fatalf("images/ecstore/second build/skipped by label: got %+v, want the same ref %s not built", second, first.Ref)
	}
	ref, err := c.ImageFor(ctx, Image)
	if err != nil || ref != "eccheck/ecstore:latest" {
		t.Fatalf("images/ecstore/latest: ImageFor = %q, %v", ref, err)
	}
	insp, err := c.API().ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := insp.Config.Labels[docker.LabelInputs]; got != first.Inputs {
		t.Errorf("images/ecstore/label: %s=%q, want %q", docker.LabelInputs, got, first.Inputs)
	}
	if ep := strings.Join(insp.Config.Entrypoint, " "); ep != "/eccheck store serve" {
		t.Errorf("images/ecstore/entrypoint: %q", ep)
	}
}

func invoke(t *testing.T, addr, f, key string, v history.Value) history.Op {
	t.Helper()
	cl := New(addr, Options{Timeout: 2 * time.Second})
	return cl.Invoke(t.Context(), history.Op{Type: history.Invoke, F: f, Key: key, Value: v})
}

// labelled counts the containers and networks carrying eccheck.cluster=name.
func labelled(t *testing.T, c *docker.Client, name string) (containers, networks int) {
	t.Helper()
	ctx := context.Background()
	cs, err := c.API().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: dockertest.ClusterFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := c.API().NetworkList(ctx, client.NetworkListOptions{Filters: dockertest.ClusterFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs.Items), len(ns.Items)
}

// TestCluster brings up a 3-node lww cluster (W=1 R=1) and exercises it:
// client operations through the published ports, status, kill and start,
// pause and resume, clock offsets, a partition and its heal, and down.
func TestCluster(t *testing.T) {
	c := engine(t)
	ctx := t.Context()
	images(t, c)

	name := fmt.Sprintf("t%d", time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if err := c.Down(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	cl, err := upDocker(t, c, name, &Settings{Mode: store.ModeLWW, W: 1, R: 1})
	if err != nil {
		t.Fatalf("cluster/up: %v", err)
	}

	t.Run("ops/write through the bridge address, read through 127.0.0.1/value read", func(t *testing.T) {
		for _, n := range cl.Nodes() {
			if a := cl.PublishedAddr(n); !strings.HasPrefix(a, "127.0.0.1:") {
				t.Errorf("node %s published at %q, want 127.0.0.1:PORT", n, a)
			}
			nd, _ := cl.Node(n)
			if a := cl.Addr(n); a != fmt.Sprintf("%s:%d", nd.IP, port) {
				t.Errorf("node %s reached at %q, want its address on the cluster's network (the engine is local)", n, a)
			}
		}
		if w := invoke(t, cl.Addr("n1"), "write", "k", history.Int(7)); w.Type != history.OK {
			t.Fatalf("write: %+v", w)
		}
		r := invoke(t, cl.PublishedAddr("n1"), "read", "k", history.Nil())
		if r.Type != history.OK || r.Value.Scalar() != history.Int(7).Scalar() {
			t.Fatalf("read: %+v, want ok 7", r)
		}
	})

	t.Run("status/open by label/three running nodes", func(t *testing.T) {
		got, err := c.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Nodes(), ",") != "n1,n2,n3" {
			t.Fatalf("nodes %v", got.Nodes())
		}
		first, _ := cl.Node("n1")
		for _, name := range got.Nodes() {
			n, _ := got.Node(name)
			if n.State != "running" || got.Addr(name) != cl.Addr(name) || n.IP != first.IP && name == "n1" {
				t.Errorf("node %+v, want running at %s", n, cl.Addr(name))
			}
		}
		names, err := c.ClusterNames(ctx)
		if err != nil || !strings.Contains(strings.Join(names, ","), name) {
			t.Errorf("ClusterNames = %v, %v; want %s among them", names, err, name)
		}
	})

	t.Run("kill/start/node serves again at the same address", func(t *testing.T) {
		if err := cl.Kill("n2"); err != nil {
			t.Fatal(err)
		}
		if _, err := health(context.Background(), cl.Addr("n2")); err == nil {
			t.Fatal("n2 answers after kill")
		}
		if err := cl.Start("n2"); err != nil {
			t.Fatal(err)
		}
		if w := invoke(t, cl.Addr("n2"), "write", "k2", history.Int(1)); w.Type != history.OK {
			t.Fatalf("write after start: %+v", w)
		}
	})

	t.Run("pause/resume/paused node stops answering", func(t *testing.T) {
		if err := cl.Pause("n3"); err != nil {
			t.Fatal(err)
		}
		if _, err := health(context.Background(), cl.Addr("n3")); err == nil {
			t.Error("n3 answers while paused")
		}
		if err := cl.Resume("n3"); err != nil {
			t.Fatal(err)
		}
		if err := cl.Resume("n3"); err != nil {
			t.Errorf("resume of a running node: %v", err)
		}
		if err := dockertest.Eventually(5*time.Second, func() error { _, err := health(context.Background(), cl.Addr("n3")); return err }); err != nil {
			t.Errorf("n3 after resume: %v", err)
		}
	})

	t.Run("clock/clock file/offset reported by the node", func(t *testing.T) {
		if err := cl.SetClock("n1", 90*time.Second); err != nil {
			t.Fatal(err)
		}
		check := func(want time.Duration) error {
			st, err := health(context.Background(), cl.Addr("n1"))
			if err != nil {
				return err
			}
			if time.Duration(st.ClockOffsetNs) != want {
				return fmt.Errorf("clock offset %v, want %v", time.Duration(st.ClockOffsetNs), want)
			}
			return nil
		}
		if err := dockertest.Eventually(3*time.Second, func() error { return check(90 * time.Second) }); err != nil {
			t.Error(err)
		}
		if err := cl.SetClock("n1", 0); err != nil {
			t.Fatal(err)
		}
		if err := dockertest.Eventually(3*time.Second, func() error { return check(0) }); err != nil {
			t.Error(err)
		}
	})

	t.Run("clock/n1 60s behind/later write through n1 silently lost to earlier write through n2", func(t *testing.T) {
		// Real-time order: 1 through n2, then 2 through n1 whose clock is
		// 60 s behind. Both are acknowledged, but lww keeps the newest
		// stamp, so after anti-entropy both nodes answer 1: the later
		// write is lost because of the clock written into n1's container.
		if w := invoke(t, cl.Addr("n2"), "write", "skew", history.Int(1)); w.Type != history.OK {
			t.Fatalf("write 1 through n2: %+v", w)
		}
		if err := cl.SetClock("n1", -60*time.Second); err != nil {
			t.Fatal(err)
		}
		defer cl.SetClock("n1", 0)
		if err := dockertest.Eventually(3*time.Second, func() error {
			st, err := health(context.Background(), cl.Addr("n1"))
			if err == nil && time.Duration(st.ClockOffsetNs) != -60*time.Second {
				err = fmt.Errorf("n1 clock offset %v, want -1m0s", time.Duration(st.ClockOffsetNs))
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if w := invoke(t, cl.Addr("n1"), "write", "skew", history.Int(2)); w.Type != history.OK {
			t.Fatalf("write 2 through n1: %+v", w)
		}
		for _, n := range []string{"n1", "n2"} {
			if err := dockertest.Eventually(10*time.Second, func() error {
				r := invoke(t, cl.Addr(n), "read", "skew", history.Nil())
				if r.Type != history.OK || r.Value.Scalar() != history.Int(1).Scalar() {
					return fmt.Errorf("read through %s: %+v, want ok 1 (the earlier write through n2)", n, r)
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
		}
		// Control: with n1's clock back, a write through n1 wins.
		if err := cl.SetClock("n1", 0); err != nil {
			t.Fatal(err)
		}
		if err := dockertest.Eventually(3*time.Second, func() error {
			st, err := health(context.Background(), cl.Addr("n1"))
			if err == nil && st.ClockOffsetNs != 0 {
				err = fmt.Errorf("n1 clock offset %v, want 0", time.Duration(st.ClockOffsetNs))
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if w := invoke(t, cl.Addr("n1"), "write", "skew", history.Int(3)); w.Type != history.OK {
			t.Fatalf("write 3 through n1: %+v", w)
		}
		for _, n := range []string{"n1", "n2"} {
			if err := dockertest.Eventually(10*time.Second, func() error {
				r := invoke(t, cl.Addr(n), "read", "skew", history.Nil())
				if r.Type != history.OK || r.Value.Scalar() != history.Int(3).Scalar() {
					return fmt.Errorf("control: read through %s: %+v, want ok 3 (n1's clock reset)", n, r)
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("partition/n1 isolated/write on n2 not seen on n1 until heal", func(t *testing.T) {
		if err := cl.Partition(map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				cl.Heal()
			}
		}()
		if w := invoke(t, cl.Addr("n2"), "write", "p", history.Int(42)); w.Type != history.OK {
			t.Fatalf("write on n2: %+v", w)
		}
		// Anti-entropy runs every second: three rounds pass.
		time.Sleep(3 * time.Second)
		if r := invoke(t, cl.Addr("n1"), "read", "p", history.Nil()); r.Type != history.OK || r.Value.Scalar() != history.Nil().Scalar() {
			t.Fatalf("read on isolated n1: %+v, want ok null", r)
		}
		// The host still reaches the isolated node, and n3 gets n2's write.
		if err := dockertest.Eventually(5*time.Second, func() error {
			r := invoke(t, cl.Addr("n3"), "read", "p", history.Nil())
			if r.Type != history.OK || r.Value.Scalar() != history.Int(42).Scalar() {
				return fmt.Errorf("read on n3: %+v", r)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		if err := cl.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		helpers, err := c.API().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: dockertest.ClusterFilter(name).Add("label", docker.LabelRole+"=helper")})
		if err != nil || len(helpers.Items) != 0 {
			t.Errorf("helper containers left after heal: %d, %v", len(helpers.Items), err)
		}
		if err := dockertest.Eventually(10*time.Second, func() error {
			r := invoke(t, cl.Addr("n1"), "read", "p", history.Nil())
			if r.Type != history.OK || r.Value.Scalar() != history.Int(42).Scalar() {
				return fmt.Errorf("read on n1 after heal: %+v", r)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("nemesis/engine refuses a pause/recorded with its error, the run goes on", func(t *testing.T) {
		// A node stopped behind the nemesis's back cannot be paused: the
		// engine refuses, twice. The nemesis records that and goes on to
		// its second fault; Run returns no error.
		log := &opLog{}
		o := nemesis.Options{Faults: []string{nemesis.KindPause}, Interval: 300 * time.Millisecond, Cycles: 2, Seed: 1}
		nem, err := nemesis.New(cl, o, log.record)
		if err != nil {
			t.Fatal(err)
		}
		victim := nem.Schedule(1)[0].Nodes[0]
		n, _ := cl.Node(victim)
		if _, err := c.API().ContainerStop(ctx, n.ID, client.ContainerStopOptions{}); err != nil {
			t.Fatal(err)
		}
		defer cl.Start(victim)
		if err := nem.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil: a refused fault does not end the run", err)
		}
		h := log.ops
		if len(h) != 4 || h[0].F != "start-pause" || !strings.Contains(h[0].Error, "pause "+victim+":") || !strings.Contains(h[0].Error, "(tried twice)") {
			t.Fatalf("history %+v: want a start-pause of %s with the engine's error, tried twice, then a second fault", h, victim)
		}
		if nem.Cycles() != 2 || nem.Failed() < 1 {
			t.Fatalf("%d cycles, %d failed; want 2 and at least 1", nem.Cycles(), nem.Failed())
		}
		t.Logf("recorded: %s", h[0].Error)
	})

	t.Run("logs/node log/names the node", func(t *testing.T) {
		logs, err := cl.Logs(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "ecstore n1") {
			t.Errorf("n1's log does not name it:\n%s", logs)
		}
	})

	t.Run("down/everything labelled/removed", func(t *testing.T) {
		if cs, ns := labelled(t, c, name); cs < 3 || ns != 1 {
			t.Fatalf("before down: %d containers, %d networks", cs, ns)
		}
		if err := cl.Down(ctx); err != nil {
			t.Fatal(err)
		}
		if cs, ns := labelled(t, c, name); cs != 0 || ns != 0 {
			t.Fatalf("after down: %d containers, %d networks left", cs, ns)
		}
		if err := c.Down(ctx, name); err != nil {
			t.Errorf("down of nothing: %v", err)
		}
	})
}
