package store

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Clock is a node's wall clock, which the nemesis skews: the real time plus
// an offset, plus a drift in parts per million of the time since the drift
// was set. Go programs ignore libfaketime, so ecstore owns this hook: set
// directly in-process, or through a file the node re-reads (in a
// container).
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	drift  float64   // ppm
	since  time.Time // when drift was set
	now    func() time.Time
}

// NewClock returns a clock with no offset.
func NewClock() *Clock { return &Clock{now: time.Now, since: time.Now()} }

// Now returns the skewed wall time in nanoseconds since the epoch.
func (c *Clock) Now() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	real := c.now()
	t := real.Add(c.offset)
	if c.drift != 0 {
		t = t.Add(time.Duration(float64(real.Sub(c.since)) * c.drift / 1e6))
	}
	return t.UnixNano()
}

// Set sets the offset and drift.
func (c *Clock) Set(offset time.Duration, driftPPM float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset, c.drift, c.since = offset, driftPPM, c.now()
}

// Offset returns the current offset.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// ParseOffset parses a clock offset as libfaketime's timestamp files write
// it ("+90s", "-5m", "+1.5h", "0") or as a Go duration ("-250ms").
// A bare integer is nanoseconds.
func ParseOffset(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n), nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
		return d, nil
	}
	// libfaketime also writes days ("+2d").
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(s, "+"), "d"), 64); err == nil {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	return 0, fmt.Errorf("clock offset %q: want a duration like +90s, -5m or -250ms", s)
}

// WatchFile re-reads path every interval and sets the offset it holds,
// until stop is closed. A missing file means no offset; an unreadable or
// malformed one is reported to logf once per change and ignored.
func (c *Clock) WatchFile(path string, interval time.Duration, stop <-chan struct{}, logf func(string, ...any)) {
	var last string
	read := func() {
		b, err := os.ReadFile(path)
		text := strings.TrimSpace(string(b))
		switch {
		case os.IsNotExist(err):
			text = "0"
		case err != nil:
			if last != "error" {
				logf("clock file %s: %v", path, err)
				last = "error"
			}
			return
		}
		if text == last {
			return
		}
		last = text
		d, err := ParseOffset(text)
		if err != nil {
			logf("clock file %s: %v", path, err)
			return
		}
		c.Set(d, 0)
		logf("clock offset set to %v from %s", d, path)
	}
	read()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			read()
		}
	}
}

// HLC is a hybrid logical clock over a Clock: stamps never go backwards
// and exceed every stamp the node has seen, whatever the wall clock says.
type HLC struct {
	mu    sync.Mutex
	clock *Clock
	node  string
	last  Stamp
}

// NewHLC returns an HLC for node over clock.
func NewHLC(clock *Clock, node string) *HLC { return &HLC{clock: clock, node: node} }

// Next returns a stamp greater than every stamp issued or observed so far.
func (h *HLC) Next() Stamp {
	h.mu.Lock()
	defer h.mu.Unlock()
	wall := h.clock.Now()
	if wall > h.last.Wall {
		h.last = Stamp{Wall: wall, Node: h.node}
	} else {
		h.last = Stamp{Wall: h.last.Wall, Logical: h.last.Logical + 1, Node: h.node}
	}
	return h.last
}

// Observe folds a stamp seen in a message into the clock.
func (h *HLC) Observe(s Stamp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.Wall < s.Wall || (h.last.Wall == s.Wall && h.last.Logical < s.Logical) {
		h.last.Wall, h.last.Logical = s.Wall, s.Logical
	}
}
