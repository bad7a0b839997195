package nemesis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

// fakePrimary is a fakeCluster with a primary that Failover replaces: it
// kills the primary for good and promotes the next live node.
type fakePrimary struct {
	*fakeCluster
	primary   string
	failovers int
	grudges   []string // the grudge in force at each Failover call
	rejoin    bool     // the old primary comes back as a replica
	untouched bool     // a failed Failover changed nothing
}

var _ Failoverer = (*fakePrimary)(nil)

func (f *fakePrimary) Primary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.primary
}

func (f *fakePrimary) Failover() (FailoverResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failovers++
	f.grudges = append(f.grudges, fmt.Sprint(f.grudge))
	if err := f.call("failover"); err != nil {
		if f.untouched {
			return FailoverResult{}, err
		}
		return FailoverResult{Killed: f.primary}, err
	}
	old := f.primary
	f.killed[old] = true
	for _, n := range f.nodes {
		if !f.killed[n] {
			f.primary = n
			res := FailoverResult{Killed: old, Promoted: n}
			if f.rejoin {
				f.killed[old] = false
				res.Rejoined = old
			}
			return res, nil
		}
	}
	return FailoverResult{Killed: old}, fmt.Errorf("no replica left")
}

// runUntil runs a nemesis with options o on c until it has recorded ops
// operations, stops it, and returns what it recorded.
func runUntil(t *testing.T, c Cluster, o Options, ops int) history.History {
	t.Helper()
	log := newOpLog()
	nem, err := New(c, o, log.record)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- nem.Run(ctx) }()
	waitFor(t, fmt.Sprintf("%d nemesis ops", ops), func() bool { return len(log.history()) >= ops })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	return log.history()
}

// runFailovers runs a failover nemesis on c until it has recorded ops
// operations.
func runFailovers(t *testing.T, c *fakePrimary, interval time.Duration, ops int) history.History {
	t.Helper()
	return runUntil(t, c, Options{Faults: []string{"failover"}, Interval: interval}, ops)
}

func TestFailover(t *testing.T) {
	t.Run("failover/cluster without a primary/refused", func(t *testing.T) {
		_, err := New(newFake(3), Options{Faults: []string{"failover"}}, nil)
		if err == nil || !strings.Contains(err.Error(), "failover needs a cluster with a primary") {
			t.Fatalf("New = %v, want an error saying failover needs a primary", err)
		}
	})
	t.Run("failover/run/isolates the primary then replaces it", func(t *testing.T) {
		c := &fakePrimary{fakeCluster: newFake(3), primary: "n1"}
		h := runFailovers(t, c, 5*time.Millisecond, 4)
		checkNemesisOps(t, h)
		want := []string{
			`start-failover {"primary":"n1"}`, `stop-failover {"killed":"n1","promoted":"n2"}`,
			`start-failover {"primary":"n2"}`, `stop-failover {"killed":"n2","promoted":"n3"}`,
		}
		for i, w := range want {
			if got := h[i].F + " " + h[i].Value.String(); got != w {
				t.Fatalf("op %d is %s, want %s", i, got, w)
			}
		}
		// Each Failover happened while its primary was cut off both ways.
		if c.grudges[0] != "map[n1:[n2 n3] n2:[n1] n3:[n1]]" || c.grudges[1] != "map[n1:[n2] n2:[n1 n3] n3:[n2]]" {
			t.Fatalf("grudges at the failovers: %q", c.grudges)
		}
		if len(c.grudge) != 0 {
			t.Fatalf("partition left after Run: %v", c.grudge)
		}
	})
	t.Run("failover/with rejoin/recorded, nodes never run out", func(t *testing.T) {
		c := &fakePrimary{fakeCluster: newFake(2), primary: "n1", rejoin: true}
		h := runFailovers(t, c, 2*time.Millisecond, 10)
		checkNemesisOps(t, h)
		if got := h[1].Value.String(); got != `{"killed":"n1","promoted":"n2","rejoined":"n1"}` {
			t.Fatalf("first stop-failover value %s", got)
		}
		if got := h[3].Value.String(); got != `{"killed":"n2","promoted":"n1","rejoined":"n2"}` {
			t.Fatalf("second stop-failover value %s", got)
		}
	})
	t.Run("failover/healed early/partition undone, primary kept", func(t *testing.T) {
		c, log := &fakePrimary{fakeCluster: newFake(3), primary: "n1"}, newOpLog()
		nem, err := New(c, Options{Faults: []string{"failover"}, Interval: time.Hour}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		if err := nem.start(t.Context(), nem.Schedule(1)[0]); err != nil {
			t.Fatal(err)
		}
		if got := nem.Active(); !slices.Equal(got, []string{"failover: n1 cut off"}) {
			t.Fatalf("Active = %q", got)
		}
		if err := nem.HealAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if c.failovers != 0 || c.Primary() != "n1" || len(c.faults()) != 0 {
			t.Fatalf("after HealAll: %d failovers, primary %s, faults %q; want none, n1, none", c.failovers, c.Primary(), c.faults())
		}
		checkNemesisOps(t, log.history())
		if got := fs(log.history()); got != "start-failover stop-failover" {
			t.Fatalf("recorded %q", got)
		}
	})
	t.Run("failover/fails after a kill/error recorded, never tried twice, the run goes on", func(t *testing.T) {
		c, log := &fakePrimary{fakeCluster: newFake(3), primary: "n1"}, newOpLog()
		c.setFail("failover", errBoom)
		nem, err := New(c, Options{Faults: []string{"failover"}, Interval: 2 * time.Millisecond, Cycles: 1}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		if err := nem.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		h := log.history()
		if c.failovers != 1 || len(c.faults()) != 0 || len(h) != 2 || !strings.Contains(h[1].Error, "failover from n1: boom") {
			t.Fatalf("%d failovers (want 1), faults %q, ops %v", c.failovers, c.faults(), h)
		}
		checkNemesisOps(t, h)
	})
	t.Run("failover/fails having changed nothing/tried a second time", func(t *testing.T) {
		c, log := &fakePrimary{fakeCluster: newFake(3), primary: "n1", untouched: true}, newOpLog()
		c.failTimes("failover", 1, errBoom)
		nem, err := New(c, Options{Faults: []string{"failover"}, Interval: 2 * time.Millisecond, Cycles: 1}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		if err := nem.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		h := log.history()
		if c.failovers != 2 || len(h) != 2 || h[1].Error != "" || h[1].Value.String() != `{"killed":"n1","promoted":"n2"}` {
			t.Fatalf("%d failovers (want 2), ops %v", c.failovers, h)
		}
	})
}

// fakeLagger is a fakeCluster whose replicas (every node but n1) lag on
// demand.
type fakeLagger struct {
	*fakeCluster
	lagging map[string]bool
}

func (f *fakeLagger) Replicas() []string { return []string{"n3", "n2"} }

func (f *fakeLagger) Lag(node string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(fmt.Sprintf("lag %s %v", node, on)); err != nil {
		return err
	}
	f.lagging[node] = on
	return nil
}

func TestLag(t *testing.T) {
	t.Run("lag/cluster without replicas that lag/refused", func(t *testing.T) {
		_, err := New(newFake(3), Options{Faults: []string{"lag"}}, nil)
		if err == nil || !strings.Contains(err.Error(), "lag needs a cluster") {
			t.Fatalf("New = %v, want an error saying lag needs replicas that lag", err)
		}
	})
	t.Run("lag/run/a replica lags, then catches up; the seed picks it", func(t *testing.T) {
		c := &fakeLagger{fakeCluster: newFake(3), lagging: map[string]bool{}}
		o := Options{Faults: []string{"lag"}, Interval: 3 * time.Millisecond, Seed: 4}
		h := runUntil(t, c, o, 6)
		checkNemesisOps(t, h)
		nem, err := New(c, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		steps := nem.Schedule(3)
		for i := 0; i < 6; i += 2 {
			want := `{"node":"` + []string{"n2", "n3"}[steps[i/2].Pick%2] + `"}`
			if h[i].F != "start-lag" || h[i].Value.String() != want || h[i+1].F != "stop-lag" || h[i+1].Value.String() != want {
				t.Fatalf("ops %d-%d: %s %s, %s %s; want start-lag and stop-lag of %s", i, i+1, h[i].F, h[i].Value, h[i+1].F, h[i+1].Value, want)
			}
		}
		for n, on := range c.lagging {
			if on {
				t.Fatalf("%s still lags after Run", n)
			}
		}
	})
}
