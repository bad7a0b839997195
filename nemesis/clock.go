package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/eccheck/eccheck/history"
)

// The clock fault shapes.
const (
	clockBump   = "bump"
	clockStrobe = "strobe"
)

// clockKind moves one node's clock by up to [Options.ClockMax] either way,
// once (a bump) or back and forth every few milliseconds (a strobe), and
// sets it back.
type clockKind struct{}

func (clockKind) name() string { return KindClock }

func (clockKind) needs(int) error { return nil }

func (clockKind) check(Cluster) error { return nil }

// plan draws a clock fault: a bump or, one time in three, a strobe.
func (clockKind) plan(p *planner) Step {
	node := p.nodes[p.rng.IntN(len(p.nodes))]
	maxMS := p.o.ClockMax.Milliseconds()
	ms := int64(0)
	for ms == 0 {
		ms = p.rng.Int64N(2*maxMS+1) - maxMS
	}
	offset := time.Duration(ms) * time.Millisecond
	s := Step{Kind: KindClock, Shape: clockBump, Nodes: []string{node}, Offset: offset}
	if p.rng.IntN(3) == 0 {
		s.Shape = clockStrobe
		s.Period = time.Duration(5+p.rng.IntN(16)) * time.Millisecond
		s.Desc = fmt.Sprintf("clock strobe %s %s every %s", node, signed(offset), s.Period)
	} else {
		s.Desc = fmt.Sprintf("clock %s %s", node, signed(offset))
	}
	return s
}

func (clockKind) start(ctx context.Context, n *Nemesis, f *fault) (history.Value, error) {
	s := f.step
	value := clockValue(s.Nodes[0], s.Offset, s.Period)
	if err := n.try(func() error { return n.c.SetClock(s.Nodes[0], s.Offset) }); err != nil {
		return value, fmt.Errorf("%s: %w", s.Desc, err)
	}
	if s.Shape == clockStrobe {
		f.strobe = startStrobe(ctx, n.c, s)
	}
	return value, nil
}

func (k clockKind) stop(n *Nemesis, f *fault) (history.Value, error) { return k.undo(n, f) }

func (clockKind) undo(n *Nemesis, f *fault) (history.Value, error) {
	node := f.step.Nodes[0]
	var errs []error
	if f.strobe != nil {
		if err := f.strobe.stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.step.Desc, err))
		}
		f.strobe = nil
	}
	if err := n.try(func() error { return n.c.SetClock(node, 0) }); err != nil {
		errs = append(errs, fmt.Errorf("reset clock %s: %w", node, err))
	} else {
		f.left = false
	}
	return clockValue(node, 0, 0), joinErrs(errs)
}

// clockValue is {"node":"n1","offset_ms":-3200}, with "strobe_ms" (the
// strobe period) for a strobe.
func clockValue(node string, offset, period time.Duration) history.Value {
	return rawValue(struct {
		Node     string `json:"node"`
		OffsetMS int64  `json:"offset_ms"`
		StrobeMS int64  `json:"strobe_ms,omitempty"`
	}{node, offset.Milliseconds(), period.Milliseconds()})
}

// signed formats d with its sign, "+3.2s" or "-150ms".
func signed(d time.Duration) string {
	if d > 0 {
		return "+" + d.String()
	}
	return d.String()
}

// strobe flips a node's clock between an offset and zero until stopped.
type strobe struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the first SetClock error; read after done is closed
}

// startStrobe starts flipping the clock of s's node every s.Period; the
// clock is at s.Offset when it starts. It stops at stop, or when ctx ends.
func startStrobe(ctx context.Context, c Cluster, s Step) *strobe {
	ctx, cancel := context.WithCancel(ctx)
	st := &strobe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		t := time.NewTicker(s.Period)
		defer t.Stop()
		on := true
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			on = !on
			offset := time.Duration(0)
			if on {
				offset = s.Offset
			}
			if err := c.SetClock(s.Nodes[0], offset); err != nil {
				st.err = fmt.Errorf("strobe %s: %w", s.Nodes[0], err)
				return
			}
		}
	}()
	return st
}

// stop stops the strobe, waits for it, and returns the error that stopped it
// early, if any.
func (st *strobe) stop() error {
	st.cancel()
	<-st.done
	return st.err
}
