package nemesis

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeRestarter is a fake cluster that restarts after a crash its own way
// and counts how it was asked.
type fakeRestarter struct {
	*fakeCluster
	restarts int
	failOnce bool
}

func (f *fakeRestarter) RestartAll() (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts++
	for node, dead := range f.killed {
		if !dead {
			return nil, errors.New(node + " still runs: a restart needs every node stopped")
		}
	}
	if f.failOnce {
		f.failOnce = false
		return nil, errBoom
	}
	for node := range f.killed {
		f.killed[node] = false
	}
	return map[string]string{"bootstrapped": "n2"}, nil
}

func TestCrash(t *testing.T) {
	o := Options{Faults: []string{"crash"}, Interval: 3 * time.Millisecond, Seed: 1, Cycles: 1}
	t.Run("crash/every node killed, then started node by node", func(t *testing.T) {
		c := newFake(3)
		h := runUntil(t, c, o, 2)
		checkNemesisOps(t, h)
		if h[0].F != "start-crash" || h[0].Value.String() != `["n1","n2","n3"]` || h[1].F != "stop-crash" {
			t.Fatalf("ops %s %s, %s %s: want start-crash of every node, then stop-crash", h[0].F, h[0].Value, h[1].F, h[1].Value)
		}
		kills, starts := 0, 0
		for _, call := range c.calls[:6] {
			switch {
			case strings.HasPrefix(call, "kill "):
				kills++
			case strings.HasPrefix(call, "start "):
				starts++
				if kills < 3 {
					t.Fatalf("calls %v: a node started before every node was killed", c.calls)
				}
			}
		}
		if kills != 3 || starts != 3 {
			t.Fatalf("calls %v: want 3 kills, then 3 starts", c.calls)
		}
		for node, dead := range c.killed {
			if dead {
				t.Fatalf("%s still down after Run", node)
			}
		}
	})
	t.Run("crash/restarted the cluster's own way, a second time after a failure", func(t *testing.T) {
		c := &fakeRestarter{fakeCluster: newFake(3), failOnce: true}
		h := runUntil(t, c, o, 2)
		checkNemesisOps(t, h)
		if h[1].F != "stop-crash" || h[1].Value.String() != `{"bootstrapped":"n2"}` || h[1].Error != "" {
			t.Fatalf("stop op %s %s (%s): want the restart's result", h[1].F, h[1].Value, h[1].Error)
		}
		if c.restarts != 2 {
			t.Fatalf("%d restarts, want 2 (the first failed)", c.restarts)
		}
		for _, call := range c.calls {
			if strings.HasPrefix(call, "start ") {
				t.Fatalf("calls %v: a node started by Start, not by the restart", c.calls)
			}
		}
	})
}
