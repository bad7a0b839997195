package store

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Faults is the fault state a node consults for its traffic. In the
// in-process backend one Faults (a LocalNet) is shared by every node; a
// node in its own container has none, and real faults (iptables, docker
// pause) act on it instead.
type Faults interface {
	// Drops reports whether node at drops the messages that come from
	// node from (one-way partitions are allowed).
	Drops(at, from string) bool
	// Delay is the extra latency of a message from one node to another.
	Delay(from, to string) time.Duration
	// WaitRunning blocks while node is paused, until ctx ends.
	WaitRunning(ctx context.Context, node string) error
}

// LocalNet is the Faults of an in-process cluster: a grudge map (node ->
// nodes whose messages it drops), per-link delays and paused nodes.
type LocalNet struct {
	mu      sync.Mutex
	grudge  map[string]map[string]bool
	delay   map[[2]string]time.Duration
	paused  map[string]chan struct{} // closed on resume
	changed chan struct{}            // closed and replaced on every change
}

// NewLocalNet returns a network with no faults.
func NewLocalNet() *LocalNet {
	return &LocalNet{
		grudge:  map[string]map[string]bool{},
		delay:   map[[2]string]time.Duration{},
		paused:  map[string]chan struct{}{},
		changed: make(chan struct{}),
	}
}

func (n *LocalNet) bump() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of the fault state,
// so that a connection can re-check its link.
func (n *LocalNet) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// SetGrudge replaces the partition: grudge[a] lists the nodes whose
// messages a drops.
func (n *LocalNet) SetGrudge(grudge map[string][]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.grudge = map[string]map[string]bool{}
	for at, froms := range grudge {
		for _, f := range froms {
			if n.grudge[at] == nil {
				n.grudge[at] = map[string]bool{}
			}
			n.grudge[at][f] = true
		}
	}
	n.bump()
}

// Heal removes every partition and delay (not pauses).
func (n *LocalNet) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.grudge = map[string]map[string]bool{}
	n.delay = map[[2]string]time.Duration{}
	n.bump()
}

// SetDelay delays every message from one node to another by d (0 removes
// the delay).
func (n *LocalNet) SetDelay(from, to string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d <= 0 {
		delete(n.delay, [2]string{from, to})
	} else {
		n.delay[[2]string{from, to}] = d
	}
	n.bump()
}

// Pause freezes a node: it stops handling requests and sending messages,
// without closing any socket, until Resume.
func (n *LocalNet) Pause(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.paused[node]; !ok {
		n.paused[node] = make(chan struct{})
		n.bump()
	}
}

// Resume unfreezes a paused node.
func (n *LocalNet) Resume(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.paused[node]; ok {
		close(ch)
		delete(n.paused, node)
		n.bump()
	}
}

// ResumeAll unfreezes every node.
func (n *LocalNet) ResumeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for node, ch := range n.paused {
		close(ch)
		delete(n.paused, node)
	}
	n.bump()
}

// Drops implements Faults.
func (n *LocalNet) Drops(at, from string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.grudge[at][from]
}

// Delay implements Faults.
func (n *LocalNet) Delay(from, to string) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delay[[2]string{from, to}]
}

// Paused reports whether node is paused.
func (n *LocalNet) Paused(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.paused[node]
	return ok
}

// WaitRunning implements Faults.
func (n *LocalNet) WaitRunning(ctx context.Context, node string) error {
	n.mu.Lock()
	ch, ok := n.paused[node]
	n.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ Faults = (*LocalNet)(nil)

// ErrLinkCut is returned by a connection whose link a partition cut.
var ErrLinkCut = errors.New("link cut by a partition")

// linkCut reports whether traffic between a and b is cut in either
// direction (a TCP stream needs both).
func linkCut(f Faults, a, b string) bool { return f.Drops(a, b) || f.Drops(b, a) }

// WrapConn makes a stream connection between node self and node peer obey
// f: while either end is paused, reads and writes block; once a partition
// cuts the link either way, the connection fails with ErrLinkCut and is
// closed, so the other side sees it fail too; messages wait for the link's
// delay. Raft's TCP transport uses it so that in-process partitions cut
// consensus traffic as they cut everything else. With f nil, c is returned
// as it is.
func WrapConn(c net.Conn, f Faults, self, peer string) net.Conn {
	if f == nil {
		return c
	}
	return &faultConn{Conn: c, f: f, self: self, peer: peer}
}

type faultConn struct {
	net.Conn
	f          Faults
	self, peer string
}

func (c *faultConn) gate(ctx context.Context) error {
	if err := c.f.WaitRunning(ctx, c.self); err != nil {
		return err
	}
	if err := c.f.WaitRunning(ctx, c.peer); err != nil {
		return err
	}
	if linkCut(c.f, c.self, c.peer) {
		c.Conn.Close()
		return ErrLinkCut
	}
	return nil
}

func (c *faultConn) Read(b []byte) (int, error) {
	if err := c.gate(context.Background()); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if err == nil && linkCut(c.f, c.self, c.peer) {
		// The bytes arrived on a link cut meanwhile: they are lost.
		c.Conn.Close()
		return 0, ErrLinkCut
	}
	return n, err
}

func (c *faultConn) Write(b []byte) (int, error) {
	if err := c.gate(context.Background()); err != nil {
		return 0, err
	}
	if d := c.f.Delay(c.self, c.peer); d > 0 {
		time.Sleep(d)
	}
	return c.Conn.Write(b)
}
