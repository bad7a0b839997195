package nemesis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHealAllUndoesEachFault(t *testing.T) {
	isolate := Step{Kind: "partition", Shape: "isolate", Desc: "partition isolate n1", Nodes: []string{"n1"},
		Grudge: map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}}
	for _, tc := range []struct {
		name       string
		nodes      int
		step       Step
		faults     []string // the fake's faults once the step started
		start      string   // the start op's value
		stop       string   // the stop op's value
		wantStrobe bool
	}{
		{"heal/partition isolate/healed and recorded", 3, isolate,
			[]string{"grudge map[n1:[n2 n3] n2:[n1] n3:[n1]]"},
			`{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}`, `{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}`, false},
		{"heal/clock bump/reset to zero", 3,
			Step{Kind: "clock", Shape: "bump", Desc: "clock n2 -3.2s", Nodes: []string{"n2"}, Offset: -3200 * time.Millisecond},
			[]string{"clock n2 -3.2s"}, `{"node":"n2","offset_ms":-3200}`, `{"node":"n2","offset_ms":0}`, false},
		{"heal/clock strobe/stopped and reset to zero", 3,
			Step{Kind: "clock", Shape: "strobe", Desc: "clock strobe n1 +2s every 1ms", Nodes: []string{"n1"}, Offset: 2 * time.Second, Period: time.Millisecond},
			nil, `{"node":"n1","offset_ms":2000,"strobe_ms":1}`, `{"node":"n1","offset_ms":0}`, true},
		{"heal/kill two of five/restarted", 5,
			Step{Kind: "kill", Desc: "kill n2,n4", Nodes: []string{"n2", "n4"}},
			[]string{"killed n2", "killed n4"}, `["n2","n4"]`, `["n2","n4"]`, false},
		{"heal/pause one/resumed", 3,
			Step{Kind: "pause", Desc: "pause n3", Nodes: []string{"n3"}},
			[]string{"paused n3"}, `["n3"]`, `["n3"]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, log := newFake(tc.nodes), newOpLog()
			nem, err := New(c, Options{Faults: []string{tc.step.Kind}}, log.record)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if err := nem.start(ctx, tc.step); err != nil {
				t.Fatal(err)
			}
			if tc.wantStrobe {
				waitFor(t, "the strobe to flip the clock", func() bool { return c.sets() > 5 })
			} else if got := c.faults(); !slices.Equal(got, tc.faults) {
				t.Fatalf("in force after start: %q, want %q", got, tc.faults)
			}
			if got := nem.Active(); !slices.Equal(got, []string{tc.step.Desc}) {
				t.Fatalf("Active = %q, want [%q]", got, tc.step.Desc)
			}
			if err := nem.HealAll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := c.faults(); len(got) > 0 {
				t.Fatalf("still in force after HealAll: %q", got)
			}
			if got := nem.Active(); got != nil {
				t.Fatalf("Active after HealAll = %q", got)
			}
			sets := c.sets()
			h := log.history()
			if got, want := fs(h), "start-"+tc.step.Kind+" stop-"+tc.step.Kind; got != want {
				t.Fatalf("recorded %q, want %q", got, want)
			}
			if got := h[0].Value.String(); got != tc.start {
				t.Errorf("start value %s, want %s", got, tc.start)
			}
			if got := h[1].Value.String(); got != tc.stop {
				t.Errorf("stop value %s, want %s", got, tc.stop)
			}
			checkNemesisOps(t, h)

			if err := nem.HealAll(ctx); err != nil {
				t.Fatalf("second HealAll: %v", err)
			}
			if got := len(log.history()); got != 2 {
				t.Fatalf("second HealAll recorded %d more ops, want none", got-2)
			}
			time.Sleep(10 * time.Millisecond)
			if c.sets() != sets {
				t.Fatalf("the clock moved %d times after HealAll; the strobe is still running", c.sets()-sets)
			}
		})
	}
}

func TestHealAllFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nodes  int
		step   Step
		fail   string // the call that fails the first HealAll
		err    string // what its error says
		active string // Active after the failed HealAll
		left   []string
	}{
		{"heal/a restart fails/the other node restarted, the failed one kept for a retry", 5,
			Step{Kind: "kill", Desc: "kill n2,n4", Nodes: []string{"n2", "n4"}},
			"start n2", "start n2: boom", "kill n2", []string{"killed n2"}},
		{"heal/heal fails/partition kept in force for a retry", 3,
			Step{Kind: "partition", Shape: "one-way", Desc: "partition one-way n1 deaf", Nodes: []string{"n1"}, Grudge: map[string][]string{"n1": {"n2", "n3"}}},
			"heal", "heal partition one-way n1 deaf: boom", "partition one-way n1 deaf", []string{"grudge map[n1:[n2 n3]]"}},
		{"heal/clock reset fails/clock kept for a retry", 3,
			Step{Kind: "clock", Shape: "bump", Desc: "clock n3 +1s", Nodes: []string{"n3"}, Offset: time.Second},
			"clock n3 0s", "reset clock n3: boom", "clock n3 +1s", []string{"clock n3 1s"}},
		{"heal/resume fails/node kept for a retry", 3,
			Step{Kind: "pause", Desc: "pause n1", Nodes: []string{"n1"}},
			"resume n1", "resume n1: boom", "pause n1", []string{"paused n1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, log := newFake(tc.nodes), newOpLog()
			nem, err := New(c, Options{Faults: []string{tc.step.Kind}}, log.record)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if err := nem.start(ctx, tc.step); err != nil {
				t.Fatal(err)
			}
			c.setFail(tc.fail, errBoom)
			err = nem.HealAll(ctx)
			if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("HealAll = %v, want an error wrapping boom saying %q", err, tc.err)
			}
			if got := c.faults(); !slices.Equal(got, tc.left) {
				t.Fatalf("in force after the failed HealAll: %q, want %q", got, tc.left)
			}
			if got := nem.Active(); !slices.Equal(got, []string{tc.active}) {
				t.Fatalf("Active = %q, want [%q]", got, tc.active)
			}
			c.setFail(tc.fail, nil)
			if err := nem.HealAll(ctx); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := c.faults(); len(got) > 0 || nem.Active() != nil {
				t.Fatalf("in force after the retry: %q, Active %q", got, nem.Active())
			}
			h := log.history()
			if got, want := fs(h), "start-"+tc.step.Kind+" stop-"+tc.step.Kind+" stop-"+tc.step.Kind; got != want {
				t.Fatalf("recorded %q, want %q", got, want)
			}
			if !strings.Contains(h[1].Error, tc.err) || h[2].Error != "" {
				t.Errorf("the failed stop records error %q, want %q", h[1].Error, tc.err)
			}
			checkNemesisOps(t, h)
		})
	}
}

func TestStartFailures(t *testing.T) {
	t.Run("start/second kill fails/error names the node, the first is restarted", func(t *testing.T) {
		c, log := newFake(5), newOpLog()
		nem, err := New(c, Options{Faults: []string{"kill"}}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		c.setFail("kill n4", errBoom)
		err = nem.start(t.Context(), Step{Kind: "kill", Desc: "kill n2,n4", Nodes: []string{"n2", "n4"}})
		if !errors.Is(err, errBoom) || err.Error() != "kill n4: boom (tried twice)" {
			t.Fatalf("start = %v, want kill n4: boom (tried twice)", err)
		}
		if got := c.faults(); !slices.Equal(got, []string{"killed n2"}) {
			t.Fatalf("in force: %q", got)
		}
		if err := nem.HealAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := c.faults(); len(got) > 0 {
			t.Fatalf("in force after HealAll: %q", got)
		}
		h := log.history()
		if h[0].Error != "kill n4: boom (tried twice)" {
			t.Fatalf("start op error %q", h[0].Error)
		}
		checkNemesisOps(t, h)
	})
	t.Run("start/partition fails in Run/recorded with the error, healed, the schedule goes on", func(t *testing.T) {
		c, log := newFake(3), newOpLog()
		nem, err := New(c, Options{Faults: []string{"partition"}, Interval: time.Millisecond, Cycles: 2}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		c.setFail("partition", errBoom)
		if err := nem.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil: a fault that cannot be applied does not end the run", err)
		}
		h := log.history()
		if got := fs(h); got != "start-partition stop-partition start-partition stop-partition" {
			t.Fatalf("recorded %q", got)
		}
		want := nem.Schedule(1)[0].Desc + ": boom (tried twice)"
		if h[0].Error != want || h[1].Error != "" {
			t.Fatalf("start error %q, stop error %q; want %q and none", h[0].Error, h[1].Error, want)
		}
		if n := strings.Count(strings.Join(c.calls, " "), "partition"); n != 4 {
			t.Fatalf("Partition called %d times, want 4 (each start tried twice): %q", n, c.calls)
		}
		if !slices.Contains(c.calls, "heal") || nem.Failed() != 2 || nem.Cycles() != 2 {
			t.Fatalf("calls %q, %d failed ops, %d cycles; want heals, 2 and 2", c.calls, nem.Failed(), nem.Cycles())
		}
		checkNemesisOps(t, h)
	})
	t.Run("start/pause fails once/the second try applies it, nothing recorded as failed", func(t *testing.T) {
		c, log := newFake(3), newOpLog()
		nem, err := New(c, Options{Faults: []string{"pause"}, Interval: time.Millisecond, Cycles: 1}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		node := nem.Schedule(1)[0].Nodes[0]
		c.failTimes("pause "+node, 1, errBoom)
		if err := nem.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		h := log.history()
		if got := fs(h); got != "start-pause stop-pause" || h[0].Error != "" || nem.Failed() != 0 {
			t.Fatalf("recorded %q, start error %q, %d failed", got, h[0].Error, nem.Failed())
		}
		if got := strings.Join(c.calls, " "); got != "pause "+node+" pause "+node+" resume "+node {
			t.Fatalf("calls %q, want the pause tried twice then the resume", got)
		}
		checkNemesisOps(t, h)
	})
	t.Run("stop/restart fails/no new fault starts until it is undone", func(t *testing.T) {
		c, log := newFake(3), newOpLog()
		nem, err := New(c, Options{Faults: []string{"kill", "pause"}, Interval: time.Millisecond, Cycles: 2}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		killed := nem.Schedule(1)[0].Nodes[0]
		// The restart fails at the stop (twice) and at the next step's
		// retry (twice); the retry after that works.
		c.failTimes("start "+killed, 4, errBoom)
		if err := nem.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		h := log.history()
		// Step 1 (a pause) is skipped: its turn went to the retry.
		if got := fs(h); got != "start-kill stop-kill stop-kill stop-kill start-kill stop-kill" {
			t.Fatalf("recorded %q: want the failed restart retried at each step before anything new starts", got)
		}
		if want := startValue(nem.Schedule(3)[2]); !h[4].Value.Equal(want) {
			t.Fatalf("the second start is %s, want schedule step 2's %s", h[4].Value, want)
		}
		if !strings.Contains(h[1].Error, "start "+killed+": boom (tried twice)") || h[2].Error == "" || h[3].Error != "" {
			t.Fatalf("stop errors %q, %q, %q", h[1].Error, h[2].Error, h[3].Error)
		}
		if got := c.faults(); len(got) > 0 {
			t.Fatalf("in force after Run: %q", got)
		}
		checkNemesisOps(t, h)
	})
}

func TestCycles(t *testing.T) {
	c, log := newFake(5), newOpLog()
	nem, err := New(c, Options{Faults: []string{"partition", "clock", "kill", "pause"}, Interval: time.Millisecond, Cycles: 6, Seed: 3}, log.record)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- nem.Run(t.Context()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cycles/six cycles/Run returns by itself: still running after 5 s")
	}
	h := log.history()
	checkNemesisOps(t, h)
	if len(h) != 12 || nem.Cycles() != 6 {
		t.Fatalf("cycles/six cycles/six starts and six stops: %d ops, %d cycles: %s", len(h), nem.Cycles(), fs(h))
	}
	if got := c.faults(); len(got) > 0 {
		t.Fatalf("cycles/six cycles/nothing in force after: %q", got)
	}
	if _, err := New(c, Options{Cycles: -1}, nil); err == nil {
		t.Fatal("cycles/negative/refused: New accepted it")
	}
}

func TestRun(t *testing.T) {
	all := []string{"partition", "clock", "kill", "pause"}
	t.Run("run/cancel/returns promptly with nothing in force", func(t *testing.T) {
		c, log := newFake(5), newOpLog()
		nem, err := New(c, Options{Faults: all, Interval: time.Millisecond, Seed: 11}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- nem.Run(ctx) }()
		waitFor(t, "20 faults", func() bool { return len(log.history()) >= 40 })
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v, want nil on cancel", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within 2s of cancel")
		}
		if got := c.faults(); len(got) > 0 {
			t.Fatalf("in force after Run: %q", got)
		}
		if got := nem.Active(); got != nil {
			t.Fatalf("Active after Run: %q", got)
		}
		h := log.history()
		checkNemesisOps(t, h)
		// Run starts the faults of the schedule, in order.
		var starts []history.Op
		for _, op := range h {
			if strings.HasPrefix(op.F, "start-") {
				starts = append(starts, op)
			}
		}
		for i, s := range nem.Schedule(len(starts)) {
			if starts[i].F != "start-"+s.Kind || !starts[i].Value.Equal(startValue(s)) {
				t.Fatalf("start %d is %s %s, the schedule says %s (%s)", i, starts[i].F, starts[i].Value, s.Desc, startValue(s))
			}
		}
		if err := nem.HealAll(t.Context()); err != nil || len(log.history()) != len(h) {
			t.Fatalf("HealAll after Run = %v and recorded %d ops, want nothing to do", err, len(log.history())-len(h))
		}
	})
	t.Run("run/cancel while a fault is in force/healed", func(t *testing.T) {
		c, log := newFake(3), newOpLog()
		nem, err := New(c, Options{Faults: []string{"kill"}, Interval: 20 * time.Millisecond}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- nem.Run(ctx) }()
		waitFor(t, "a node killed", func() bool { return len(nem.Active()) > 0 && len(c.faults()) > 0 })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := c.faults(); len(got) > 0 {
			t.Fatalf("in force after Run: %q", got)
		}
		if got := fs(log.history()); got != "start-kill stop-kill" {
			t.Fatalf("recorded %q", got)
		}
	})
	t.Run("run/no faults/waits and touches nothing", func(t *testing.T) {
		c, log := newFake(3), newOpLog()
		nem, err := New(c, Options{Interval: time.Millisecond}, log.record)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		if err := nem.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if len(c.calls) > 0 || len(log.history()) > 0 {
			t.Fatalf("calls %q, ops %v", c.calls, log.history())
		}
	})
	t.Run("run/twice at once/second is refused", func(t *testing.T) {
		nem, err := New(newFake(3), Options{Faults: []string{"pause"}, Interval: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- nem.Run(ctx) }()
		waitFor(t, "Run to start", nem.running.Load)
		if err := nem.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("second Run = %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("run/panic in record/heals then panics on", func(t *testing.T) {
		c := newFake(3)
		var calls int
		record := func(op history.Op) history.Op {
			calls++
			if calls == 1 {
				panic("recorder broke")
			}
			return op
		}
		nem, err := New(c, Options{Faults: []string{"pause"}, Interval: time.Millisecond}, record)
		if err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != "recorder broke" {
					t.Fatalf("recovered %v, want the recorder's panic", r)
				}
			}()
			_ = nem.Run(t.Context())
		}()
		if got := c.faults(); len(got) > 0 {
			t.Fatalf("in force after the panic: %q", got)
		}
		if calls != 2 {
			t.Fatalf("recorded %d ops, want the start that panicked and the stop", calls)
		}
	})
}

func TestHealAllGivesUpWhenCtxEnds(t *testing.T) {
	c, log := newFake(3), newOpLog()
	nem, err := New(c, Options{Faults: []string{"partition"}}, log.record)
	if err != nil {
		t.Fatal(err)
	}
	step := Step{Kind: "partition", Shape: "isolate", Desc: "partition isolate n1", Nodes: []string{"n1"},
		Grudge: map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}}
	if err := nem.start(t.Context(), step); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	c.mu.Lock()
	c.block = block
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err = nem.HealAll(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "heal partition isolate n1") {
		t.Fatalf("HealAll = %v, want a deadline error naming the partition", err)
	}
	close(block)
	if err := nem.HealAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.faults(); len(got) > 0 {
		t.Fatalf("in force: %q", got)
	}
	if got := fs(log.history()); got != "start-partition stop-partition" {
		t.Fatalf("recorded %q: the heal that finished in the background is recorded once", got)
	}
}
