package workload

import (
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// rwMop is one micro-operation of an rw-register invocation.
type rwMop struct {
	f, key string
	value  history.Value
}

// rwMops reads an rw-register invocation's micro-operations, failing the
// test on any other shape.
func rwMops(t *testing.T, op history.Op) []rwMop {
	t.Helper()
	items, ok := op.Value.AsList()
	if op.F != "txn" || op.Key != "" || !ok || len(items) < 1 || len(items) > 4 {
		t.Fatalf("op %s: want a txn of 1 to 4 micro-operations and no key", op.AppendJSON(nil))
	}
	out := make([]rwMop, len(items))
	for i, it := range items {
		parts, ok := it.AsList()
		if !ok || len(parts) != 3 {
			t.Fatalf("micro-operation %s is not [f, key, value]", it)
		}
		f, _ := parts[0].AsString()
		k, ok := parts[1].AsString()
		if !ok {
			t.Fatalf("micro-operation %s: the key is not a string", it)
		}
		switch {
		case f == "r" && !parts[2].IsNil():
			t.Fatalf("micro-operation %s: an invocation's read carries a value", it)
		case f == "w" && parts[2].Kind() != history.KindInt:
			t.Fatalf("micro-operation %s: a write of something other than an integer", it)
		case f != "r" && f != "w":
			t.Fatalf("micro-operation %s: rw-register has w and r", it)
		}
		out[i] = rwMop{f, k, parts[2]}
	}
	return out
}

// rw-register streams make transactions of 1 to 4 micro-operations over
// the group's few keys: about half reads, half writes of values no other
// write of the key repeats, at most groupSize*rwWritesPerKey writes per
// key, every key handed to the final reads, which are transactions too.
func TestRWRegisterStreams(t *testing.T) {
	const workers, ops = 10, 2000
	g, err := NewGenerator(RWRegister, workers)
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{} // key/value
	writes := map[string]int{}   // per key
	touched := map[string]bool{}
	var reads, ws int
	for w := range workers {
		s := g.Stream(5, w)
		for range ops {
			for _, m := range rwMops(t, s.Next()) {
				touched[m.key] = true
				if m.f == "r" {
					reads++
					continue
				}
				ws++
				writes[m.key]++
				kv := m.key + "/" + m.value.String()
				if written[kv] {
					t.Fatalf("rw-register/values/unique per key: %s written twice", kv)
				}
				written[kv] = true
			}
		}
	}
	most := 0
	for k, n := range writes {
		most = max(most, n)
		if n > 5*rwWritesPerKey {
			t.Errorf("rw-register/writes per key/at most %d: key %s has %d", 5*rwWritesPerKey, k, n)
		}
	}
	t.Logf("%d keys, at most %d writes on one, %d reads and %d writes", len(writes), most, reads, ws)
	if share := float64(ws) / float64(reads+ws); share < 0.4 || share > 0.6 {
		t.Errorf("rw-register/mix/about half writes: %.2f of the micro-operations write", share)
	}
	keys := g.Keys()
	for k := range touched {
		if !slices.Contains(keys, k) {
			t.Fatalf("rw-register/keys/final reads: key %s touched but not in Keys()", k)
		}
	}
	if len(keys) < 2*workers {
		t.Fatalf("rw-register/keys/rotate: %d keys %v", len(keys), keys[:min(len(keys), 10)])
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "rw") {
			t.Fatalf("rw-register/keys/own prefix: %s", k)
		}
	}
	fr := g.FinalRead(keys[0])
	if fr.F != "txn" || fr.Key != "" || fr.Value.String() != `[["r","`+keys[0]+`",null]]` {
		t.Fatalf("rw-register/final read/a transaction reading the key: %s", fr.AppendJSON(nil))
	}
}

// A transactional stream is a function of the seed and the worker alone:
// pulled in any interleaving it gives the same operations, and another
// seed gives others.
func TestTransactionalStreamsAreAFunctionOfTheSeed(t *testing.T) {
	for _, name := range []string{ListAppend, RWRegister} {
		// ops pulls 300 operations from each of 3 workers, in turn or
		// worker by worker, and returns them by worker.
		ops := func(seed uint64, interleave bool) string {
			g, err := NewGenerator(name, 3)
			if err != nil {
				t.Fatal(err)
			}
			var out [3][]string
			streams := []*Stream{g.Stream(seed, 0), g.Stream(seed, 1), g.Stream(seed, 2)}
			next := func(w int) { out[w] = append(out[w], string(streams[w].Next().AppendJSON(nil))) }
			if interleave {
				for range 300 {
					for w := range 3 {
						next(w)
					}
				}
			} else {
				for w := range 3 {
					for range 300 {
						next(w)
					}
				}
			}
			return strings.Join(slices.Concat(out[0], out[1], out[2]), "\n")
		}
		a, b, c := ops(11, false), ops(11, true), ops(12, false)
		if a != b {
			t.Errorf("%s/same seed, another interleaving/same operations: they differ", name)
		}
		if a == c {
			t.Errorf("%s/another seed/other operations: the same", name)
		}
	}
}

func TestTransactionalWorkloads(t *testing.T) {
	for _, tc := range []struct {
		name          string
		transactional bool
		kind          string
	}{
		{Register, false, "register"},
		{Session, false, "register"},
		{Set, false, "set"},
		{Counter, false, "counter"},
		{ListAppend, true, ListAppend},
		{RWRegister, true, RWRegister},
	} {
		if got := Transactional(tc.name); got != tc.transactional {
			t.Errorf("%s/Transactional/%v: %v", tc.name, tc.transactional, got)
		}
		if got := Kind(tc.name); got != tc.kind {
			t.Errorf("%s/Kind/%s: %s", tc.name, tc.kind, got)
		}
	}
	if ws, err := ParseWorkloads("register,rw-register"); err != nil || !slices.Equal(ws, []string{Register, RWRegister}) {
		t.Errorf("parse/register,rw-register/both: %v %v", ws, err)
	}
	if _, err := ParseWorkloads("list-append,rw-register"); err == nil || !strings.Contains(err.Error(), "run them apart") {
		t.Errorf("parse/list-append,rw-register/refused: %v", err)
	}
}
