package ecstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestLinks brings up a 3-node lww cluster (W=3, R=1, so that a write
// through a node waits for its peer messages) and applies link faults:
// 100% loss on n1 keeps a write through n2 from n1 until heal, bandwidth
// shows as a tbf qdisc, and a delay on n1 (netem or, without sch_netem,
// ecstore's hook) slows writes through n1.
func TestLinks(t *testing.T) {
	c := engine(t)
	ctx := t.Context()
	images(t, c)
	name := fmt.Sprintf("l%d", time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if err := c.Down(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if cs, ns := labelled(t, c, name); cs != 0 || ns != 0 {
			t.Errorf("cleanup: %d containers, %d networks left", cs, ns)
		}
	})
	cl, err := upDocker(t, c, name, &Settings{Mode: store.ModeLWW, W: 3, R: 1})
	if err != nil {
		t.Fatalf("cluster/up: %v", err)
	}
	read := func(node, key string) history.Op { return invoke(t, cl.Addr(node), "read", key, history.Nil()) }

	t.Run("loss/100% on n1/write via n2 reaches n1 only after heal", func(t *testing.T) {
		if err := cl.Loss("n1", "", 100); err != nil {
			t.Fatal(err)
		}
		fs, err := cl.Faults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fs[0].Loss["n2"] != 1 || fs[0].Loss["n3"] != 1 || len(fs[1].Loss) != 0 {
			t.Errorf("status: n1 loss %v, n2 loss %v; want n2 and n3 at 1 on n1 only", fs[0].Loss, fs[1].Loss)
		}
		// W=3 cannot be met without n1: the write is indeterminate, yet
		// n2 and n3 keep it.
		invoke(t, cl.Addr("n2"), "write", "l", history.Int(5))
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if r := read("n1", "l"); r.Type != history.OK || r.Value.Scalar() != history.Nil().Scalar() {
				t.Fatalf("read on n1 under 100%% loss: %+v, want ok null", r)
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err := cl.Heal(); err != nil {
			t.Fatal(err)
		}
		if err := dockertest.Eventually(10*time.Second, func() error {
			if r := read("n1", "l"); r.Type != history.OK || r.Value.Scalar() != history.Int(5).Scalar() {
				return fmt.Errorf("read on n1 after heal: %+v", r)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("bandwidth/1mbit on n2/tbf qdisc until heal", func(t *testing.T) {
		if err := cl.Bandwidth("n2", "1mbit"); err != nil {
			t.Fatal(err)
		}
		fs, err := cl.Faults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(fs[1].Qdisc, "tbf") {
			t.Errorf("n2 qdisc %q, want tbf", fs[1].Qdisc)
		}
		if w := invoke(t, cl.Addr("n2"), "write", "b", history.Int(1)); w.Type != history.OK {
			t.Errorf("write through a 1mbit node: %+v", w)
		}
		if err := cl.Heal(); err != nil {
			t.Fatal(err)
		}
		if fs, err := cl.Faults(ctx); err != nil || fs[1].Qdisc != "" {
			t.Errorf("n2 qdisc after heal %q, %v; want none", fs[1].Qdisc, err)
		}
	})

	t.Run("delay/300ms on n1/W=3 write through n1 takes at least the delay", func(t *testing.T) {
		const d = 300 * time.Millisecond
		start := time.Now()
		if w := invoke(t, cl.Addr("n1"), "write", "d", history.Int(1)); w.Type != history.OK || time.Since(start) >= d {
			t.Fatalf("write before the delay: %+v in %v", w, time.Since(start))
		}
		res, err := cl.Delay("n1", "", d)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("delay: %s (%s)", res.Method, res.Note)
		if res.Method == docker.DelayHook && !strings.Contains(res.Note, "sch_netem") {
			t.Errorf("fallback not explained: %+v", res)
		}
		start = time.Now()
		if w := invoke(t, cl.Addr("n1"), "write", "d", history.Int(2)); w.Type != history.OK || time.Since(start) < d {
			t.Errorf("write under the delay: %+v in %v, want ok after at least %v", w, time.Since(start), d)
		}
		if err := cl.Heal(); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if w := invoke(t, cl.Addr("n1"), "write", "d", history.Int(3)); w.Type != history.OK || time.Since(start) >= d {
			t.Errorf("write after heal: %+v in %v, want fast", w, time.Since(start))
		}
	})
}
