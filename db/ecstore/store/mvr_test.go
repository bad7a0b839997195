package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// The guarantee tests of the mvr mode: the faults that make lww lose
// writes (a skewed clock, a partition, a restart) leave every
// acknowledged write among the siblings or superseded by a write that saw
// it, through the real checkers.

var mvOpts = ecstore.Options{MultiValue: true}

// mvValues returns the sibling values of an ok mvr read, in dot order, or
// fails the test.
func mvValues(t testing.TB, x *tester, op history.Op) []string {
	t.Helper()
	if op.Type != history.OK {
		x.dump()
		t.Fatalf("read of %s via %s: %s (%s), want ok", op.Key, op.Node, op.Type, op.Error)
	}
	r, err := checkers.ParseMVRead(op.Value)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(r.Siblings))
	for i, s := range r.Siblings {
		out[i] = string(s.Value)
	}
	return out
}

func TestMVRClockSkew(t *testing.T) {
	// lww's clock test (TestLWWClockSkew) in mvr: n1's clock runs 10 s
	// behind and n1 cannot reach n2. Write 1 via n2 is acknowledged, then
	// write 2 via n1. A client that carries its context supersedes its
	// own write; two clients that saw nothing keep both as siblings. The
	// skew decides nothing.
	tests := []struct {
		name    string
		clients int
		want    []string
	}{
		{"lost-writes/one client, context carried/valid, later write supersedes", 1, []string{"2"}},
		// In dot order: write 2 is n1:1, write 1 is n2:1.
		{"lost-writes/two clients, no context/valid, both kept as siblings", 2, []string{"2", "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, lwwConfig(store.ModeMVR, 2, 2))
			must(t, c.SetClock("n1", -10*time.Second))
			must(t, c.Partition(map[string][]string{"n1": {"n2"}, "n2": {"n1"}}))
			x := newTester(t, c)
			a := x.lwwBalanced(newLWWBalancer(t, c, "n2"), mvOpts)
			lwwExpectType(t, x, a.write("k", 1), history.OK)
			b := a
			if tc.clients == 2 {
				b = x.lwwBalanced(newLWWBalancer(t, c, "n1"), mvOpts)
			}
			lwwExpectType(t, x, b.via("n1").write("k", 2), history.OK)
			must(t, c.Heal())
			lwwWaitConverged(t, c, "k")
			for _, f := range lwwFinalReads(x, c, "k", mvOpts) {
				if got := mvValues(t, x, f); !slices.Equal(got, tc.want) {
					x.dump()
					t.Fatalf("final read via %s: siblings %v, want %v", f.Node, got, tc.want)
				}
			}
			rs := x.check(checkers.NameLostWrites)
			x.expect(rs, checkers.NameLostWrites, checkers.Valid)
			if got, want := rs[checkers.NameLostWrites].Stats["final_siblings_max"], float64(len(tc.want)); got != want {
				t.Errorf("final_siblings_max %v, want %v", got, want)
			}
		})
	}
}

func TestMVRForwardedWrites(t *testing.T) {
	// N=2 of 3: n1 does not replicate about a third of the keys and hands
	// their writes to a replica, which coordinates them.
	cfg := lwwConfig(store.ModeMVR, 1, 2)
	cfg.N = 2
	c := startCluster(t, 3, cfg)
	x := newTester(t, c)
	p := x.client("n1", mvOpts)
	forwarded := 0
	for i := range 12 {
		key := fmt.Sprintf("f%d", i)
		lwwExpectType(t, x, p.write(key, int64(i)), history.OK)
		if store.LWWState(c.Node("n1"), key) == "" {
			forwarded++
		}
		if got := mvValues(t, x, p.read(key)); !slices.Equal(got, []string{fmt.Sprint(i)}) {
			x.dump()
			t.Fatalf("read of %s via n1 (R=2): %v, want [%d]", key, got, i)
		}
	}
	if forwarded == 0 {
		t.Fatal("no key of 12 was placed off n1: nothing was forwarded")
	}
	t.Logf("%d of 12 writes forwarded", forwarded)
}

func TestMVRRestartIssuesNewDots(t *testing.T) {
	// n1 coordinates write 1 (n1:1), which reaches every replica, then
	// restarts empty and, cut off, coordinates write 2 from a client that
	// saw nothing. Under its old name it would issue n1:1 again, and the
	// replicas, holding n1:1 already, would keep one of the two values: it
	// issues n1.2:1, and both writes stay as siblings.
	c := startCluster(t, 3, lwwConfig(store.ModeMVR, 3, 1))
	x := newTester(t, c)
	lwwExpectType(t, x, x.client("n1", mvOpts).write("k", 1), history.OK)
	lwwWaitConverged(t, c, "k")
	lwwIsolate(t, c, "n1")
	must(t, c.Kill("n1"))
	must(t, c.Start("n1"))
	// W=3 cannot be met while n1 is cut off: the write is indeterminate,
	// and n1 holds it.
	w2 := x.client("n1", mvOpts).write("k", 2)
	lwwExpectType(t, x, w2, history.Info)
	if st := store.LWWState(c.Node("n1"), "k"); !strings.Contains(st, `"dot":"n1.2:1"`) {
		t.Errorf("n1 after its restart holds %s, want the dot n1.2:1", st)
	}
	must(t, c.Heal())
	lwwWaitConverged(t, c, "k")
	for _, f := range lwwFinalReads(x, c, "k", mvOpts) {
		if got := mvValues(t, x, f); !slices.Equal(got, []string{"1", "2"}) {
			x.dump()
			t.Fatalf("final read via %s: %v, want [1 2]", f.Node, got)
		}
	}
	x.expect(x.check(checkers.NameLostWrites), checkers.NameLostWrites, checkers.Valid)
}
