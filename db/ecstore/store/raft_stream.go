// This file holds the raft mode's stream layer: the TCP connections of
// raft's transport, opened with a hello that names the dialing node and
// wrapped so that partitions and pauses act on consensus traffic.

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// raftHello starts every raft connection: the dialer's node id follows on
// the same line.
const raftHello = "ecstore-raft "

// raftStream is the raft transport's stream layer: TCP connections that
// open with a hello naming the dialing node, each wrapped by WrapConn so
// that partitions and pauses act on raft's traffic.
type raftStream struct {
	ln     net.Listener
	addr   net.Addr
	self   string
	faults Faults
	ids    map[string]string // raft address -> node id
	ready  chan net.Conn     // accepted connections past their hello
	done   chan struct{}

	mu     sync.Mutex
	open   map[io.Closer]struct{} // every live connection
	closed bool
	wg     sync.WaitGroup
}

var _ raft.StreamLayer = (*raftStream)(nil)

func newRaftStream(cfg Config) (*raftStream, error) {
	ln, err := net.Listen("tcp", cfg.RaftListen)
	if err != nil {
		return nil, fmt.Errorf("raft listen: %w", err)
	}
	s := &raftStream{
		ln: ln, addr: ln.Addr(), self: cfg.ID, faults: cfg.Faults,
		ids:   map[string]string{},
		ready: make(chan net.Conn),
		done:  make(chan struct{}),
		open:  map[io.Closer]struct{}{},
	}
	// Advertise the configured address (the one in the raft configuration)
	// when it names a host and port, rather than a wildcard listener's.
	if host, port, err := net.SplitHostPort(cfg.RaftListen); err == nil && port != "0" {
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			s.addr = advertised(cfg.RaftListen)
		}
	}
	for id, a := range cfg.RaftPeers {
		s.ids[a] = id
	}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

// advertised is a listener's address as the cluster knows it.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }

// track registers a live connection; false once the stream is closed.
func (s *raftStream) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	return true
}

func (s *raftStream) untrack(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
}

// swap replaces a tracked connection by its wrapper.
func (s *raftStream) swap(raw io.Closer, wrapped io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, raw)
	if s.closed {
		return false
	}
	s.open[wrapped] = struct{}{}
	return true
}

func (s *raftStream) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Go(func() { s.handshake(c) })
	}
}

// handshake reads an accepted connection's hello and hands the wrapped
// connection to Accept.
func (s *raftStream) handshake(c net.Conn) {
	fail := func() {
		s.untrack(c)
		c.Close()
	}
	_ = c.SetReadDeadline(time.Now().Add(raftHelloTimeout))
	// Byte by byte, so that nothing after the line is consumed.
	var line []byte
	b := make([]byte, 1)
	for len(line) < 128 {
		if _, err := c.Read(b); err != nil {
			fail()
			return
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	peer, ok := strings.CutPrefix(string(line), raftHello)
	if !ok || !s.knows(peer) {
		fail()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	w := s.wrap(c, peer)
	if !s.swap(c, w) {
		w.Close()
		return
	}
	select {
	case s.ready <- w:
	case <-s.done:
		w.Close()
	}
}

func (s *raftStream) knows(id string) bool {
	for _, known := range s.ids {
		if known == id {
			return true
		}
	}
	return false
}

func (s *raftStream) wrap(c net.Conn, peer string) *raftConn {
	return &raftConn{Conn: WrapConn(c, s.faults, s.self, peer), s: s, faults: s.faults, self: s.self, peer: peer, closed: make(chan struct{})}
}

// Accept implements net.Listener.
func (s *raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Addr implements net.Listener.
func (s *raftStream) Addr() net.Addr { return s.addr }

// Close implements net.Listener: it stops listening and closes every
// connection, accepted or dialed.
func (s *raftStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	open := s.open
	s.open = map[io.Closer]struct{}{}
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range open {
		c.Close()
	}
	s.wg.Wait()
	return err
}

// Dial implements raft.StreamLayer.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	peer, ok := s.ids[string(address)]
	if !ok {
		return nil, fmt.Errorf("raft dial %s: no node has that address", address)
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if !s.track(c) {
		c.Close()
		return nil, net.ErrClosed
	}
	w := s.wrap(c, peer)
	if !s.swap(c, w) {
		w.Close()
		return nil, net.ErrClosed
	}
	if timeout > 0 {
		_ = w.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := w.Write([]byte(raftHello + s.self + "\n")); err != nil {
		w.Close()
		return nil, fmt.Errorf("raft dial %s: hello: %w", peer, err)
	}
	_ = w.SetWriteDeadline(time.Time{})
	return w, nil
}

// raftConn is a raft connection: the fault-wrapped connection, plus a
// pause gate that, unlike WrapConn's, gives up at the connection's
// deadline or when it is closed, so a paused peer cannot hold a raft
// goroutine (or a shutdown) forever.
type raftConn struct {
	net.Conn
	s          *raftStream
	faults     Faults
	self, peer string
	closeOnce  sync.Once
	closed     chan struct{}
	rdl, wdl   atomic.Int64 // deadlines, unix ns; 0 for none
}

// cancelled is a context that has ended, for polling WaitRunning.
var cancelled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (c *raftConn) gate(deadline int64) error {
	f := c.faults
	if f == nil || (f.WaitRunning(cancelled, c.self) == nil && f.WaitRunning(cancelled, c.peer) == nil) {
		return nil
	}
	base, stop := context.WithCancel(context.Background())
	defer stop()
	ctx := base
	if deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(base, time.Unix(0, deadline))
		defer cancel()
	}
	go func() { // ends when gate returns, at the latest
		select {
		case <-c.closed:
			stop()
		case <-base.Done():
		}
	}()
	if f.WaitRunning(ctx, c.self) == nil && f.WaitRunning(ctx, c.peer) == nil {
		return nil
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	return os.ErrDeadlineExceeded
}

func (c *raftConn) Read(b []byte) (int, error) {
	if err := c.gate(c.rdl.Load()); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *raftConn) Write(b []byte) (int, error) {
	if err := c.gate(c.wdl.Load()); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func unixNs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (c *raftConn) SetDeadline(t time.Time) error {
	c.rdl.Store(unixNs(t))
	c.wdl.Store(unixNs(t))
	return c.Conn.SetDeadline(t)
}

func (c *raftConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(unixNs(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *raftConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(unixNs(t))
	return c.Conn.SetWriteDeadline(t)
}

func (c *raftConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.s.untrack(c)
		err = c.Conn.Close()
	})
	return err
}
