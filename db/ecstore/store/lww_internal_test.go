package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// LWWState describes a node's own replica state of key in the lww, hlc and
// mvr modes (register version or siblings and context, counter slots, set
// elements with their tags), so that the external tests can wait until
// every replica converged. It is empty for a node that is down, holds
// nothing for key, or runs another mode.
func LWWState(n *Node, key string) string {
	if n == nil {
		return ""
	}
	l, ok := n.eng.(*lww)
	if !ok {
		return ""
	}
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if v, ok := s.regs[key]; ok {
		fmt.Fprintf(&b, "register %+v %s;", v.S, v.V)
	}
	if st, ok := s.mv[key]; ok {
		r, _ := json.Marshal(st.read())
		fmt.Fprintf(&b, "mv %s;", r)
	}
	if c := s.counters[key]; len(c) > 0 {
		actors := make([]string, 0, len(c))
		for a := range c {
			actors = append(actors, a)
		}
		sort.Strings(actors)
		b.WriteString("counter")
		for _, a := range actors {
			fmt.Fprintf(&b, " %s=+%d-%d", a, c[a].P, c[a].N)
		}
		b.WriteString(";")
	}
	if set := s.sets[key]; len(set) > 0 {
		elems := make([]string, 0, len(set))
		for e, tags := range set {
			ts := make([]string, 0, len(tags))
			for t := range tags {
				ts = append(ts, t)
			}
			sort.Strings(ts)
			elems = append(elems, e+strings.Join(ts, ","))
		}
		sort.Strings(elems)
		b.WriteString("set " + strings.Join(elems, " ") + ";")
	}
	return b.String()
}

// newTestLWW makes an engine of node self among ids, not started, with no
// network: enough to drive its replica state directly.
func newTestLWW(t *testing.T, self string, ids []string, n int, hlc bool) *lww {
	t.Helper()
	peers := map[string]string{}
	for _, id := range ids {
		if id != self {
			peers[id] = "127.0.0.1:1"
		}
	}
	cfg := Config{ID: self, Peers: peers, Mode: ModeLWW, N: n, AntiEntropy: -1, Logf: t.Logf}
	if hlc {
		cfg.Mode = ModeHLC
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	e, err := newLWW(env{cfg: cfg, clock: NewClock(), peers: NewPeers(self, peers, nil), logf: t.Logf}, hlc)
	if err != nil {
		t.Fatal(err)
	}
	return e.(*lww)
}

func TestLWWReplicaPlacement(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4", "n5"}
	tests := []struct {
		name string
		n    int
	}{
		{"placement/N equals the cluster/every node", 5},
		{"placement/N=3 of 5/consecutive on the ring", 3},
		{"placement/N=1 of 5/one node", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits := map[string]int{}
			for i := range 500 {
				key := fmt.Sprintf("k%d", i)
				got := lwwReplicas(ids, tc.n, key)
				if len(got) != tc.n {
					t.Fatalf("%s: %d replicas %v, want %d", key, len(got), got, tc.n)
				}
				// Consecutive on the ring of sorted ids, no repeats.
				start := slices.Index(ids, got[0])
				for j, r := range got {
					if want := ids[(start+j)%len(ids)]; r != want {
						t.Fatalf("%s: replicas %v are not consecutive on the ring %v", key, got, ids)
					}
					hits[r]++
				}
				// Every node computes the same placement.
				for _, self := range ids {
					l := &lww{ids: ids, cfg: Config{N: tc.n}, id: self}
					if !slices.Equal(l.replicas(key), got) {
						t.Fatalf("%s: node %s places it on %v, want %v", key, self, l.replicas(key), got)
					}
				}
			}
			for _, id := range ids {
				if hits[id] == 0 {
					t.Errorf("node %s replicates none of 500 keys: %v", id, hits)
				}
			}
		})
	}
}

func TestLWWRegisterMerge(t *testing.T) {
	old := Stamp{Wall: 100, Node: "n2"}
	newer := Stamp{Wall: 200, Node: "n1"}
	tests := []struct {
		name  string
		first Stamp
		then  Stamp
		want  string
	}{
		{"last write wins/newer stamp arrives later/replaces", old, newer, `"b"`},
		{"last write wins/older stamp arrives later/ignored", newer, old, `"a"`},
		{"last write wins/same wall time/node id breaks the tie", Stamp{Wall: 5, Node: "n1"}, Stamp{Wall: 5, Node: "n2"}, `"b"`},
		{"last write wins/equal stamp/first kept", old, old, `"a"`},
		{"last write wins/same wall, higher logical/replaces", Stamp{Wall: 5, Logical: 1, Node: "n3"}, Stamp{Wall: 5, Logical: 2, Node: "n1"}, `"b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLWW(t, "n1", []string{"n1"}, 1, false)
			a, b := tc.first, tc.then
			l.apply(lwwItem{T: lwwOpWrite, K: "k", V: json.RawMessage(`"a"`), S: &a})
			l.apply(lwwItem{T: lwwOpWrite, K: "k", V: json.RawMessage(`"b"`), S: &b})
			rep := l.apply(lwwItem{T: lwwOpRead, K: "k"})
			if string(rep.V) != tc.want {
				t.Errorf("register holds %s, want %s", rep.V, tc.want)
			}
		})
	}
}

func TestLWWStamps(t *testing.T) {
	t.Run("stamps/same nanosecond/distinct and increasing", func(t *testing.T) {
		l := newTestLWW(t, "n1", []string{"n1"}, 1, false)
		fixed := time.Unix(1000, 0)
		l.e.clock.now = func() time.Time { return fixed }
		a, b := l.stamp(), l.stamp()
		if !a.Less(b) {
			t.Errorf("stamps %+v then %+v: want increasing", a, b)
		}
	})
	t.Run("stamps/lww clock set back/older than before", func(t *testing.T) {
		l := newTestLWW(t, "n1", []string{"n1"}, 1, false)
		a := l.stamp()
		l.e.clock.Set(-10*time.Second, 0)
		if b := l.stamp(); !b.Less(a) {
			t.Errorf("after setting the clock back, stamp %+v is not older than %+v: lww must follow the wall clock", b, a)
		}
	})
	t.Run("stamps/hlc observed a stamp from the future/greater", func(t *testing.T) {
		l := newTestLWW(t, "n1", []string{"n1"}, 1, true)
		l.e.clock.Set(-10*time.Second, 0)
		seen := Stamp{Wall: time.Now().UnixNano(), Node: "n2"}
		l.observe(&seen)
		if b := l.stamp(); !seen.Less(b) {
			t.Errorf("hlc stamp %+v after observing %+v: want greater", b, seen)
		}
	})
}

func TestLWWCRDTMerge(t *testing.T) {
	t.Run("pn-counter/slots merged in any order, twice/greatest of each", func(t *testing.T) {
		a := newTestLWW(t, "n1", []string{"n1"}, 1, false)
		b := newTestLWW(t, "n1", []string{"n1"}, 1, false)
		slots := []lwwItem{
			{T: lwwOpCounterSlot, K: "c", A: "x", P: 3},
			{T: lwwOpCounterSlot, K: "c", A: "x", P: 5, N: 1},
			{T: lwwOpCounterSlot, K: "c", A: "y", P: 2, N: 4},
		}
		for _, it := range slots {
			a.apply(it)
		}
		for i := len(slots) - 1; i >= 0; i-- {
			b.apply(slots[i])
			b.apply(slots[i])
		}
		want := map[string]lwwSlot{"x": {P: 5, N: 1}, "y": {P: 2, N: 4}}
		for name, l := range map[string]*lww{"in order": a, "reversed and twice": b} {
			got := l.apply(lwwItem{T: lwwOpCounterRead, K: "c"}).C
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: slots %v, want %v", name, got, want)
			}
		}
	})
	t.Run("or-set/adds of one element with two tags/one element, both tags", func(t *testing.T) {
		l := newTestLWW(t, "n1", []string{"n1"}, 1, false)
		l.apply(lwwItem{T: lwwOpSetAdd, K: "s", V: json.RawMessage(`1`), Tag: "a.1"})
		l.apply(lwwItem{T: lwwOpSetAdd, K: "s", V: json.RawMessage(`1`), Tag: "b.1"})
		l.apply(lwwItem{T: lwwOpSetAdd, K: "s", V: json.RawMessage(`2`), Tag: "a.2"})
		elems := l.apply(lwwItem{T: lwwOpSetRead, K: "s"}).E
		got := map[string]int{}
		for _, e := range elems {
			got[string(e.V)] = len(e.Tags)
		}
		if fmt.Sprint(got) != "map[1:2 2:1]" {
			t.Errorf("elements and tag counts %v, want map[1:2 2:1]", got)
		}
	})
}

func TestLWWAntiEntropyMerge(t *testing.T) {
	// The receiver merges a push and answers with exactly what the pusher
	// lacks, so one round trip brings both sides level.
	push := newTestLWW(t, "n1", []string{"n1", "n2"}, 2, false)
	recv := newTestLWW(t, "n2", []string{"n1", "n2"}, 2, false)
	s1, s2 := Stamp{Wall: 1, Node: "n1"}, Stamp{Wall: 2, Node: "n2"}
	push.apply(lwwItem{T: lwwOpWrite, K: "old-here", V: json.RawMessage(`1`), S: &s1})
	recv.apply(lwwItem{T: lwwOpWrite, K: "old-here", V: json.RawMessage(`2`), S: &s2})
	push.apply(lwwItem{T: lwwOpWrite, K: "new-here", V: json.RawMessage(`3`), S: &s2})
	recv.apply(lwwItem{T: lwwOpWrite, K: "new-here", V: json.RawMessage(`4`), S: &s1})
	push.apply(lwwItem{T: lwwOpCounterSlot, K: "c", A: "n1", P: 1})
	recv.apply(lwwItem{T: lwwOpCounterSlot, K: "c", A: "n2", P: 7})
	push.apply(lwwItem{T: lwwOpSetAdd, K: "s", V: json.RawMessage(`1`), Tag: "n1.1"})
	recv.apply(lwwItem{T: lwwOpSetAdd, K: "s", V: json.RawMessage(`2`), Tag: "n2.1"})

	m := push.aeCollect("n2", 0)
	reply := recv.mergeAE(m, true)
	tests := []struct {
		name string
		got  int
		want int
	}{
		{"anti-entropy/receiver newer/answered", len(reply.Regs), 1},
		{"anti-entropy/counter slot the pusher lacks/answered", len(reply.Counters), 1},
		{"anti-entropy/set tag the pusher lacks/answered", len(reply.Sets), 1},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %d entries, want %d (reply %+v)", tc.name, tc.got, tc.want, reply)
		}
	}
	push.mergeAE(reply, false)
	for _, key := range []string{"old-here", "new-here", "c", "s"} {
		a, b := lwwStateOf(push, key), lwwStateOf(recv, key)
		if a != b || a == "" {
			t.Errorf("anti-entropy/after one round trip/key %s converged: pusher %q, receiver %q", key, a, b)
		}
	}
	if got := string(recv.apply(lwwItem{T: lwwOpRead, K: "new-here"}).V); got != "3" {
		t.Errorf("anti-entropy/pushed newer/receiver holds %s, want 3", got)
	}
}

// lwwStateOf is LWWState for an engine outside a node.
func lwwStateOf(l *lww, key string) string { return LWWState(&Node{eng: l}, key) }

func TestLWWUndelivered(t *testing.T) {
	dial := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	read := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"delivery/connection refused/certainly undelivered", fmt.Errorf("peer n2 lww-batch: %w", dial), true},
		{"delivery/no reply before the deadline/maybe delivered", fmt.Errorf("peer n2 lww-batch: %w", ErrNoReply), false},
		{"delivery/connection reset after sending/maybe delivered", fmt.Errorf("peer n2 lww-batch: %w", read), false},
		{"delivery/error status from the peer/maybe delivered", errors.New("peer n2 lww-batch: status 500: boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lwwUndelivered(tc.err); got != tc.want {
				t.Errorf("lwwUndelivered(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestLWWUnreachableReplicas(t *testing.T) {
	// A coordinator that replicates nothing of a key, whose replicas all
	// refuse connections, knows the write went nowhere: ErrUnavailable. A
	// replica coordinator applied it locally: ErrIndeterminate.
	ids := []string{"n1", "n2", "n3"}
	key := ""
	for i := 0; key == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		if !slices.Contains(lwwReplicas(ids, 1, k), "n1") {
			key = k
		}
	}
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	tests := []struct {
		name  string
		n     int
		want  ErrorKind
		delta bool
	}{
		{"write/not a replica, replicas refuse/unavailable", 1, ErrUnavailable, false},
		{"write/a replica, peers refuse/indeterminate", 3, ErrIndeterminate, false},
		{"counter add/not a replica, replicas refuse/indeterminate", 1, ErrIndeterminate, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peers := map[string]string{"n2": closed(), "n3": closed()}
			cfg := Config{ID: "n1", Peers: peers, Mode: ModeLWW, N: tc.n, W: min(2, tc.n), AntiEntropy: -1, RequestTimeout: 300 * time.Millisecond, Logf: t.Logf}
			if err := cfg.setDefaults(); err != nil {
				t.Fatal(err)
			}
			e, err := newLWW(env{cfg: cfg, clock: NewClock(), peers: NewPeers("n1", peers, nil), logf: t.Logf}, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer e.stop()
			req := Request{Op: OpWrite, Key: key, Value: json.RawMessage(`1`)}
			if tc.delta {
				req.Op = OpCounterAdd
			}
			resp := e.do(context.Background(), req)
			if resp.Error != tc.want {
				t.Errorf("error %q (%s), want %q", resp.Error, resp.Message, tc.want)
			}
		})
	}
}

// LWWReplicas returns the nodes that hold key when each key lives on n of
// the nodes ids, for the external tests.
func LWWReplicas(ids []string, n int, key string) []string { return lwwReplicas(ids, n, key) }
