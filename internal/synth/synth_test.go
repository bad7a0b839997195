package synth

import (
	"slices"
	"testing"

	"github.com/eccheck/eccheck/history"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name string
		cfg  RegisterConfig
	}{
		{"shape/one key one client/valid", RegisterConfig{Ops: 1000, Seed: 1}},
		{"shape/many keys and clients/valid", RegisterConfig{Ops: 20000, Keys: 50, Clients: 10, Seed: 2}},
		{"shape/faults and stale reads/valid", RegisterConfig{
			Ops: 20000, Keys: 5, Clients: 8, Seed: 3, CASProb: 0.3,
			StaleProb: 0.2, InfoProb: 0.05, FailProb: 0.05,
		}},
		{"shape/odd op count/rounded down", RegisterConfig{Ops: 101, Clients: 3, Seed: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Logf("seed %d", tt.cfg.Seed)
			h := Register(tt.cfg)
			if err := history.Validate(h); err != nil {
				t.Fatalf("invalid history: %v", err)
			}
			if want := tt.cfg.Ops / 2 * 2; len(h) != want {
				t.Errorf("got %d lines, want %d", len(h), want)
			}
			for i, op := range h {
				if op.Index != int64(i) {
					t.Fatalf("op %d has index %d", i, op.Index)
				}
			}
			// Written values are unique, and each operation's line pair is
			// well formed.
			seen := make(map[history.Scalar]bool)
			for _, o := range history.Pair(h) {
				var v history.Value
				switch o.F {
				case "write":
					v = o.Value
				case "cas":
					_, nv, ok := o.Value.Pair()
					if !ok {
						t.Fatalf("cas op %d has value %v, want a pair", o.Invoke, o.Value)
					}
					v = nv
				default:
					continue
				}
				if seen[v.Scalar()] {
					t.Fatalf("value %v written twice", v)
				}
				seen[v.Scalar()] = true
			}
		})
	}
}

func TestRegisterDeterministic(t *testing.T) {
	cfg := RegisterConfig{Ops: 5000, Keys: 7, Clients: 4, Seed: 42, StaleProb: 0.1, InfoProb: 0.02, FailProb: 0.02, CASProb: 0.2}
	a, b := Register(cfg), Register(cfg)
	if !slices.EqualFunc(a, b, func(x, y history.Op) bool {
		return x.Time == y.Time && x.Process == y.Process && x.Type == y.Type &&
			x.F == y.F && x.Key == y.Key && x.Value.Equal(y.Value)
	}) {
		t.Fatal("the same seed gave two different histories")
	}
	cfg.Seed = 43
	c := Register(cfg)
	if len(c) == len(a) && c[len(c)-1].Time == a[len(a)-1].Time {
		t.Error("seeds 42 and 43 gave histories that end at the same time; the seed seems unused")
	}
}

// TestRegisterProbabilities checks that each knob shows in the history: info
// ops with fresh process ids, failures, CASes, and stale reads (reads whose
// value is not the latest written one before the read began).
func TestRegisterProbabilities(t *testing.T) {
	cfg := RegisterConfig{Ops: 40000, Keys: 3, Clients: 5, Seed: 7, CASProb: 0.3, StaleProb: 0.3, InfoProb: 0.05, FailProb: 0.05}
	t.Logf("seed %d", cfg.Seed)
	h := Register(cfg)
	ops := history.Pair(h)
	count := make(map[string]int)
	procs := make(map[history.Process]bool)
	for _, o := range ops {
		count[o.F+"/"+o.Type.String()]++
		procs[o.Process] = true
	}
	for _, k := range []string{"read/ok", "read/fail", "read/info", "write/ok", "write/fail", "write/info", "cas/ok", "cas/fail"} {
		if count[k] == 0 {
			t.Errorf("no %s operations in %v", k, count)
		}
	}
	infos := count["read/info"] + count["write/info"] + count["cas/info"]
	if want := cfg.Clients + infos; len(procs) != want {
		t.Errorf("got %d process ids, want %d (clients + one fresh id per info)", len(procs), want)
	}

	// A read is surely stale when the value it returns had been overwritten
	// by an OK write that completed before the read began, and the value's
	// own write had finished before that write began.
	stale := func(cfg RegisterConfig) int {
		ops := history.Pair(Register(cfg))
		writeOf := make(map[history.Scalar]history.Operation)
		for _, o := range ops {
			if o.F == "write" && o.Type != history.Fail {
				writeOf[o.Value.Scalar()] = o
			}
		}
		n := 0
		for i, r := range ops {
			if r.F != "read" || r.Type != history.OK {
				continue
			}
			w, ok := writeOf[r.Value.Scalar()]
			for _, x := range ops[:i] {
				if x.F == "write" && x.Key == r.Key && x.Type == history.OK && x.Return < r.Call &&
					(r.Value.IsNil() || (ok && w.Return < x.Call)) {
					n++
					break
				}
			}
		}
		return n
	}
	small := RegisterConfig{Ops: 4000, Keys: 2, Clients: 3, Seed: 9, StaleProb: 0.3}
	if n := stale(small); n == 0 {
		t.Error("StaleProb 0.3 gave no surely stale read")
	}
	small.StaleProb = 0
	if n := stale(small); n != 0 {
		t.Errorf("StaleProb 0 gave %d surely stale reads, want 0", n)
	}
}

func BenchmarkRegister1M(b *testing.B) {
	cfg := RegisterConfig{Ops: 1_000_000, Keys: 1000, Clients: 10, Seed: 1, StaleProb: 0.05, InfoProb: 0.01, FailProb: 0.01, CASProb: 0.1}
	for b.Loop() {
		Register(cfg)
	}
}
