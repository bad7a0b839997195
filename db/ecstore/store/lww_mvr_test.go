package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// describe writes a state as "[n1:1=10 n2:1=20] {n1:1 n2:1}", dots and
// contexts sorted, to compare states by eye and by string.
func describe(st mvrState) string {
	r := st.read()
	sibs := make([]string, len(r.Siblings))
	for i, s := range r.Siblings {
		sibs[i] = s.Dot + "=" + string(s.Value)
	}
	vv, _ := json.Marshal(r.Context) // sorted keys
	return "[" + strings.Join(sibs, " ") + "] " + string(vv)
}

func jsonInt(n int) json.RawMessage { return json.RawMessage(fmt.Sprint(n)) }

func TestMVRUpdateAndMerge(t *testing.T) {
	empty := mvrState{}
	a, da := empty.update("n1", nil, jsonInt(10)) // n1:1, saw nothing
	b, db := empty.update("n2", nil, jsonInt(20)) // n2:1, saw nothing
	ab := mvrMerge(a, b)
	tests := []struct {
		name string
		got  mvrState
		want string
	}{
		{"write/first write of a key/one sibling with its dot", a, `[n1:1=10] {"n1":1}`},
		{"merge/concurrent writes on two nodes/two siblings", ab, `[n1:1=10 n2:1=20] {"n1":1,"n2":1}`},
		{"merge/commutative/same two siblings", mvrMerge(b, a), `[n1:1=10 n2:1=20] {"n1":1,"n2":1}`},
		{"merge/idempotent/unchanged", mvrMerge(ab, ab), `[n1:1=10 n2:1=20] {"n1":1,"n2":1}`},
		{"merge/with a state it already holds/unchanged", mvrMerge(ab, a), `[n1:1=10 n2:1=20] {"n1":1,"n2":1}`},
		{"merge/with the empty state/unchanged", mvrMerge(mvrState{}, ab), `[n1:1=10 n2:1=20] {"n1":1,"n2":1}`},
		{"write/context covers both siblings/one sibling", first(ab.update("n1", ab.VV, jsonInt(30))), `[n1:2=30] {"n1":2,"n2":1}`},
		{"write/context covers one sibling/that one superseded, the other kept", first(ab.update("n2", a.VV, jsonInt(30))), `[n2:1=20 n2:2=30] {"n1":1,"n2":2}`},
		{"write/same node, empty context/a sibling of the earlier write", first(a.update("n1", nil, jsonInt(11))), `[n1:1=10 n1:2=11] {"n1":2}`},
		{"write/on a node that lags the context/ctx merged, its siblings superseded", first(a.update("n3", ab.VV, jsonInt(40))), `[n3:1=40] {"n1":1,"n2":1,"n3":1}`},
		// The superseding write meets a replica still holding both
		// siblings: they go (its context covers them, it no longer holds
		// them), whatever the order.
		{"merge/superseding write meets the siblings it saw/one sibling", mvrMerge(ab, first(ab.update("n1", ab.VV, jsonInt(30)))), `[n1:2=30] {"n1":2,"n2":1}`},
		{"merge/siblings meet the superseding write/one sibling", mvrMerge(first(ab.update("n1", ab.VV, jsonInt(30))), ab), `[n1:2=30] {"n1":2,"n2":1}`},
		// A write that saw only n1:1 supersedes it and stays beside n2:1.
		{"merge/partly superseding write meets both/two siblings", mvrMerge(ab, first(a.update("n1", a.VV, jsonInt(12)))), `[n1:2=12 n2:1=20] {"n1":2,"n2":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(tc.got); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if da.String() != "n1:1" || db.String() != "n2:1" {
		t.Errorf("dots %s and %s, want n1:1 and n2:1", da, db)
	}
}

func first(st mvrState, _ mvrDot) mvrState { return st }

// TestMVRMergeLaws drives random writes on three replicas that gossip at
// random, and checks at every step that the merge is commutative,
// associative and idempotent and keeps the states' invariants, and at the
// end that the converged state has seen every write.
func TestMVRMergeLaws(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("merge/seed %d/laws hold", seed), func(t *testing.T) { mvrMergeLaws(t, seed) })
	}
}

func mvrMergeLaws(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	nodes := []string{"n1", "n2", "n3"}
	states := make([]mvrState, 3)
	seen := make([]mvrVV, 4) // per client, the context of its last reply
	var written []mvrDot
	most := 0
	for step := range 2000 {
		i := rng.IntN(3)
		switch rng.IntN(3) {
		case 0: // a client writes through node i
			c := rng.IntN(len(seen))
			st, d := states[i].update(nodes[i], seen[c], jsonInt(step))
			states[i] = st
			seen[c] = writeContext(seen[c], st, d)
			written = append(written, d)
		case 1: // a client reads node i
			seen[rng.IntN(len(seen))] = states[i].VV
		default: // node i pushes its state to node j
			j := rng.IntN(3)
			states[j] = mvrMerge(states[j], states[i])
		}
		a, b, c := states[0], states[1], states[2]
		if !mvrEqual(mvrMerge(a, b), mvrMerge(b, a)) {
			t.Fatalf("step %d: merge is not commutative: %s vs %s", step, describe(mvrMerge(a, b)), describe(mvrMerge(b, a)))
		}
		if !mvrEqual(mvrMerge(mvrMerge(a, b), c), mvrMerge(a, mvrMerge(b, c))) {
			t.Fatalf("step %d: merge is not associative", step)
		}
		if !mvrEqual(mvrMerge(a, a), a) {
			t.Fatalf("step %d: merge is not idempotent: %s", step, describe(a))
		}
		for k, st := range states {
			if !mvrEqual(st.normalized(), st) {
				t.Fatalf("step %d: node %d's state breaks its invariants: %s", step, k, describe(st))
			}
			most = max(most, len(st.Sibs))
		}
	}
	all := mvrMerge(mvrMerge(states[0], states[1]), states[2])
	for _, d := range written {
		if !all.VV.covers(d) {
			t.Fatalf("write %s is neither held nor covered by the converged state %s", d, describe(all))
		}
	}
	if most < 2 {
		t.Fatalf("at most %d sibling: the run made no concurrent writes", most)
	}
	t.Logf("%d writes, at most %d siblings, %d at the end", len(written), most, len(all.Sibs))
}

func TestMVRWriteContext(t *testing.T) {
	empty := mvrState{}
	a, _ := empty.update("n1", nil, jsonInt(1)) // client A's write, n1:1
	// Client B writes through n1 too without having seen n1:1: its dot is
	// n1:2, and n1:1 stays beside it. A context {n1: 2} would claim B saw
	// n1:1, and B's next write would supersede it.
	b, db := a.update("n1", nil, jsonInt(2))
	if got := writeContext(nil, b, db); got["n1"] != 0 {
		t.Errorf("context/an unseen sibling below the new dot/left out: got %v, want no n1 entry", got)
	}
	// Client A, having seen n1:1, writes n1:3 over it: n1:2 (B's) is a
	// sibling A never saw, so A's context cannot claim n1:3 either.
	c, dc := b.update("n1", mvrVV{"n1": 1}, jsonInt(3))
	if got := writeContext(mvrVV{"n1": 1}, c, dc); got["n1"] != 1 {
		t.Errorf("context/unseen sibling n1:2 below n1:3/n1 stays 1: got %v", got)
	}
	// A client that saw everything: its context claims its write.
	d, dd := c.update("n1", c.VV, jsonInt(4))
	if got := writeContext(c.VV, d, dd); got["n1"] != 4 {
		t.Errorf("context/nothing unseen/n1 is the new dot 4: got %v", got)
	}
}

// newTestMVR makes an mvr engine like newTestLWW, with a data directory
// for its dot actor, ready to serve without being started.
func newTestMVR(t *testing.T, self string, ids []string, dir string) *lww {
	t.Helper()
	peers := map[string]string{}
	for _, id := range ids {
		if id != self {
			peers[id] = "127.0.0.1:1"
		}
	}
	cfg := Config{ID: self, Peers: peers, Mode: ModeMVR, AntiEntropy: -1, DataDir: dir, Logf: t.Logf}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	e, err := newLWW(env{cfg: cfg, clock: NewClock(), peers: NewPeers(self, peers, nil), logf: t.Logf}, false)
	if err != nil {
		t.Fatal(err)
	}
	return e.(*lww)
}

// localWrite coordinates a write on l's own state only, as a write whose
// replication was lost.
func localWrite(l *lww, key string, ctx mvrVV, v int) mvrDot {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, d := s.mv[key].update(l.dotActor, ctx, jsonInt(v))
	s.mv[key] = st
	return d
}

func (l *lww) mvState(key string) mvrState {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mv[key]
}

func TestMVRAntiEntropyRepairsAMissedWrite(t *testing.T) {
	ids := []string{"n1", "n2"}
	n1, n2 := newTestMVR(t, "n1", ids, t.TempDir()), newTestMVR(t, "n2", ids, t.TempDir())
	localWrite(n1, "k", nil, 10) // n2 missed it
	localWrite(n2, "j", nil, 5)  // n1 missed this one
	// A round on each: the peer merges the push and answers what it holds
	// of the same keys beyond it, which the pusher merges.
	round := func(from, to *lww) { from.mergeAE(to.mergeAE(from.aeCollect(to.id, 0), true), false) }
	round(n1, n2)
	round(n2, n1)
	for _, key := range []string{"k", "j"} {
		a, b := describe(n1.mvState(key)), describe(n2.mvState(key))
		if a != b {
			t.Errorf("anti-entropy/key %s/converged: n1 %s, n2 %s", key, a, b)
		}
	}
	if got := describe(n2.mvState("k")); got != `[n1:1=10] {"n1":1}` {
		t.Errorf("anti-entropy/n2 missed n1:1/gets it: %s", got)
	}
	// Concurrent writes on both, then a round: two siblings on both.
	localWrite(n1, "c", nil, 1)
	localWrite(n2, "c", nil, 2)
	round(n1, n2)
	for _, l := range []*lww{n1, n2} {
		if got := describe(l.mvState("c")); got != `[n1:1=1 n2:1=2] {"n1":1,"n2":1}` {
			t.Errorf("anti-entropy/concurrent writes/%s holds two siblings: %s", l.id, got)
		}
	}
	// Nothing new: the answer is empty.
	if rep := n2.mergeAE(n1.aeCollect("n2", 0), true); len(rep.MV) != 0 {
		t.Errorf("anti-entropy/converged/empty answer: %+v", rep.MV)
	}
}

func TestMVRDotActorPerStart(t *testing.T) {
	dir := t.TempDir()
	for _, want := range []string{"n1", "n1.2", "n1.3"} {
		got, err := mvrDotActor(Config{ID: "n1", DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("dot actor/start on the same data directory/%s: got %s", want, got)
		}
	}
}

func TestMVRClientOperations(t *testing.T) {
	l := newTestMVR(t, "n1", []string{"n1"}, t.TempDir())
	l.ready.Store(true)
	ctx := context.Background()
	read := func() MVRRead {
		t.Helper()
		resp := l.do(ctx, Request{Op: OpRead, Key: "k"})
		if resp.Error != "" {
			t.Fatalf("read: %s %s", resp.Error, resp.Message)
		}
		var r MVRRead
		if err := json.Unmarshal(resp.Value, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	write := func(v int, c map[string]uint64) MVRWrite {
		t.Helper()
		resp := l.do(ctx, Request{Op: OpWrite, Key: "k", Value: jsonInt(v), Context: c})
		if resp.Error != "" {
			t.Fatalf("write: %s %s", resp.Error, resp.Message)
		}
		var w MVRWrite
		if err := json.Unmarshal(resp.Value, &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if resp := l.do(ctx, Request{Op: OpRead, Key: "k"}); string(resp.Value) != `{"siblings":[],"context":{}}` {
		t.Errorf("read/never written/no siblings, empty context: %s", resp.Value)
	}
	w1 := write(1, nil)
	write(2, nil) // saw nothing: a sibling of w1
	if r := read(); len(r.Siblings) != 2 || r.Context["n1"] != 2 {
		t.Errorf("read/two writes without context/two siblings: %+v", r)
	}
	if w1.Dot != "n1:1" || w1.Context["n1"] != 1 {
		t.Errorf("write/first/dot n1:1, context {n1:1}: %+v", w1)
	}
	w3 := write(3, read().Context)
	if r := read(); len(r.Siblings) != 1 || r.Siblings[0].Dot != w3.Dot || string(r.Siblings[0].Value) != "3" {
		t.Errorf("read/a write whose context covered both/one sibling: %+v", r)
	}
	if resp := l.do(ctx, Request{Op: OpCAS, Key: "k", Old: jsonInt(3), Value: jsonInt(4)}); resp.Error != ErrBadRequest || !strings.Contains(resp.Message, "no compare-and-set") {
		t.Errorf("cas/mvr/refused: %+v", resp)
	}
}

func TestGCounter(t *testing.T) {
	newG := func(t *testing.T) *lww {
		cfg := Config{ID: "n1", Mode: ModeLWW, CounterImpl: CounterG, AntiEntropy: -1, Logf: t.Logf}
		if err := cfg.setDefaults(); err != nil {
			t.Fatal(err)
		}
		e, err := newLWW(env{cfg: cfg, clock: NewClock(), peers: NewPeers("n1", nil, nil), logf: t.Logf}, false)
		if err != nil {
			t.Fatal(err)
		}
		l := e.(*lww)
		l.ready.Store(true)
		return l
	}
	ctx := context.Background()
	total := func(l *lww) string {
		resp := l.do(ctx, Request{Op: OpCounterRead, Key: "c"})
		return string(resp.Value)
	}
	t.Run("g-counter/negative add/refused", func(t *testing.T) {
		l := newG(t)
		if resp := l.do(ctx, Request{Op: OpCounterAdd, Key: "c", Value: jsonInt(-2)}); resp.Error != ErrBadRequest || !strings.Contains(resp.Message, "a G-Counter only grows") {
			t.Errorf("add -2: %+v, want bad-request: a G-Counter only grows", resp)
		}
		if resp := l.do(ctx, Request{Op: OpCounterAdd, Key: "c", Value: jsonInt(3)}); resp.Error != "" {
			t.Errorf("add 3: %+v", resp)
		}
		if got := total(l); got != "3" {
			t.Errorf("total %s, want 3", got)
		}
	})
	t.Run("g-counter/slots from peers/max per actor, decrements dropped", func(t *testing.T) {
		l := newG(t)
		l.apply(lwwItem{T: lwwOpCounterSlot, K: "c", A: "a", P: 5})
		l.apply(lwwItem{T: lwwOpCounterSlot, K: "c", A: "a", P: 3}) // older: the max stays
		l.apply(lwwItem{T: lwwOpCounterSlot, K: "c", A: "b", P: 2, N: 7})
		l.mergeAE(lwwAEMsg{Counters: []lwwAECounter{{K: "c", C: map[string]lwwSlot{"b": {P: 4, N: 9}, "a": {P: 1}}}}}, false)
		if got := total(l); got != "9" {
			t.Errorf("total %s, want 9 (a=5, b=4)", got)
		}
	})
	t.Run("config/g in raft mode/refused", func(t *testing.T) {
		cfg := Config{ID: "n1", Mode: ModeRaft, CounterImpl: CounterG, DataDir: t.TempDir()}
		if err := cfg.setDefaults(); err == nil || !strings.Contains(err.Error(), "counter implementation g") {
			t.Errorf("raft with g: %v, want an error naming the counter implementation", err)
		}
	})
}
