package store

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseOffset(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"0", 0, false}, {"", 0, false}, {"+90s", 90 * time.Second, false}, {"-5m", -5 * time.Minute, false},
		{"-250ms", -250 * time.Millisecond, false}, {"+2d", 48 * time.Hour, false}, {"1500", 1500, false},
		{"soon", 0, true}, {"+5 minutes", 0, true},
	}
	for _, c := range cases {
		got, err := ParseOffset(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseOffset(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestClockOffsetAndFile(t *testing.T) {
	c := NewClock()
	before := time.Now().UnixNano()
	c.Set(-10*time.Second, 0)
	if got := c.Now(); got > before-9*int64(time.Second) {
		t.Fatalf("clock 10 s behind reads %d, real %d", got, before)
	}
	path := filepath.Join(t.TempDir(), "offset")
	if err := os.WriteFile(path, []byte("+90s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { c.WatchFile(path, 5*time.Millisecond, stop, t.Logf); close(done) }()
	defer func() { close(stop); <-done }()
	waitFor(t, func() bool { return c.Offset() == 90*time.Second })
	if err := os.WriteFile(path, []byte("-5m"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.Offset() == -5*time.Minute })
	os.Remove(path)
	waitFor(t, func() bool { return c.Offset() == 0 })
}

func TestHLCNeverGoesBackwards(t *testing.T) {
	c := NewClock()
	h := NewHLC(c, "n1")
	a := h.Next()
	// A stamp from a node whose clock is an hour ahead.
	h.Observe(Stamp{Wall: time.Now().Add(time.Hour).UnixNano(), Logical: 3, Node: "n2"})
	b := h.Next()
	c.Set(-time.Hour, 0)
	d := h.Next()
	if !a.Less(b) || !b.Less(d) || b.Wall < time.Now().Add(59*time.Minute).UnixNano() {
		t.Fatalf("stamps %v, %v, %v: want increasing, and past the observed one", a, b, d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPeersObeyFaults checks the packet semantics of peer messages under a
// LocalNet: a message the receiver drops is never delivered; a reply the
// sender drops is lost after the receiver acted; both look alike to the
// sender (ErrNoReply); a pause holds messages until resume.
func TestPeersObeyFaults(t *testing.T) {
	var delivered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	net := NewLocalNet()
	p := NewPeers("n1", map[string]string{"n2": addr}, net)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		var resp struct{ OK bool }
		return p.Call(ctx, "n2", "ping", struct{}{}, &resp)
	}
	if err := call(); err != nil || delivered.Load() != 1 {
		t.Fatalf("healthy link: err %v, delivered %d", err, delivered.Load())
	}
	net.SetGrudge(map[string][]string{"n2": {"n1"}}) // n2 drops n1's messages
	if err := call(); !errors.Is(err, ErrNoReply) || delivered.Load() != 1 {
		t.Fatalf("request dropped: err %v, delivered %d; want ErrNoReply and no delivery", err, delivered.Load())
	}
	net.SetGrudge(map[string][]string{"n1": {"n2"}}) // n1 drops n2's replies
	if err := call(); !errors.Is(err, ErrNoReply) || delivered.Load() != 2 {
		t.Fatalf("reply dropped: err %v, delivered %d; want ErrNoReply after delivery", err, delivered.Load())
	}
	net.Heal()
	net.Pause("n1")
	go func() { time.Sleep(30 * time.Millisecond); net.Resume("n1") }()
	start := time.Now()
	if err := call(); err != nil || time.Since(start) < 25*time.Millisecond {
		t.Fatalf("paused sender: err %v after %v; want success after the resume", err, time.Since(start))
	}
	net.SetDelay("n1", "n2", 200*time.Millisecond)
	if err := call(); !errors.Is(err, ErrNoReply) {
		t.Fatalf("delay beyond the deadline: err %v, want ErrNoReply", err)
	}
}

func TestWrapConnCutByPartition(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				c.Close()
				return
			}
			c.Write(buf[:n])
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ln2 := NewLocalNet()
	c := WrapConn(raw, ln2, "n1", "n2")
	defer c.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo over a healthy link: %q, %v", buf, err)
	}
	ln2.SetGrudge(map[string][]string{"n2": {"n1"}})
	if _, err := c.Write([]byte("lost")); !errors.Is(err, ErrLinkCut) {
		t.Fatalf("write across a partition: %v, want ErrLinkCut", err)
	}
}
