package workload

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// memStore is a linearizable in-memory store for the runner's unit tests:
// one lock around registers, sets and counters. Every fifth operation of a
// process named flaky ends info (after taking effect).
type memStore struct {
	mu    sync.Mutex
	regs  map[string]history.Value
	sets  map[string][]history.Value
	ctrs  map[string]int64
	calls atomic.Int64
	flaky bool
	// idem dedupes by idempotency key: a request applied once is not
	// applied again (its retry only acknowledges it).
	idem    bool
	applied map[string]bool
}

func newMemStore() *memStore {
	return &memStore{regs: map[string]history.Value{}, sets: map[string][]history.Value{}, ctrs: map[string]int64{}}
}

type memClient struct {
	s    *memStore
	kind string
}

func (c memClient) Invoke(ctx context.Context, op history.Op) history.Op {
	s := c.s
	n := s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	done := op
	done.Type = history.OK
	if s.idem && op.Request != "" && op.F != "read" {
		if s.applied[op.Request] {
			return done
		}
		if s.applied == nil {
			s.applied = map[string]bool{}
		}
		s.applied[op.Request] = true
	}
	switch {
	case c.kind == "register" && op.F == "read":
		done.Value = s.regs[op.Key]
	case c.kind == "register" && op.F == "write":
		s.regs[op.Key] = op.Value
	case c.kind == "register" && op.F == "cas":
		old, nv, _ := op.Value.Pair()
		if !s.regs[op.Key].Equal(old) {
			done.Type = history.Fail
		} else {
			s.regs[op.Key] = nv
		}
	case c.kind == "set" && op.F == "add":
		s.sets[op.Key] = append(s.sets[op.Key], op.Value)
	case c.kind == "set" && op.F == "read":
		done.Value = history.List(append([]history.Value(nil), s.sets[op.Key]...)...)
	case c.kind == "counter" && op.F == "add":
		d, _ := op.Value.AsInt()
		s.ctrs[op.Key] += d
	case c.kind == "counter" && op.F == "read":
		done.Value = history.Int(s.ctrs[op.Key])
	}
	if s.flaky && n%5 == 0 && op.F != "read" {
		done.Type, done.Error = history.Info, "timeout"
	}
	return done
}

// fakeNemesis counts its calls; a fake is fine in this unit test.
type fakeNemesis struct {
	runs, heals atomic.Int64
	// doneAfter, when set, makes Run return after it, as a nemesis does
	// once it has carried out the faults it was asked for.
	doneAfter time.Duration
	// healErr is what HealAll returns.
	healErr error
}

func (f *fakeNemesis) Run(ctx context.Context) error {
	f.runs.Add(1)
	if f.doneAfter > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(f.doneAfter):
		}
		return nil
	}
	<-ctx.Done()
	return nil
}
func (f *fakeNemesis) HealAll(context.Context) error { f.heals.Add(1); return f.healErr }
func (f *fakeNemesis) Active() []string              { return []string{"fake"} }
func (f *fakeNemesis) Cycles() int                   { return 2 }
func (f *fakeNemesis) Failed() int                   { return 1 }

func runMem(t *testing.T, s *memStore, names []string, o Options) (Summary, history.History) {
	t.Helper()
	rec, err := history.Create(filepath.Join(t.TempDir(), "h.jsonl"), history.KeepInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	for _, n := range names {
		g, err := NewGenerator(n, 4)
		if err != nil {
			t.Fatal(err)
		}
		o.Parts = append(o.Parts, Part{Gen: g, Workers: 4})
	}
	o.Recorder = rec
	o.Nodes = []string{"n1", "n2", "n3"}
	o.NewClient = func(w, node string) (Client, error) { return memClient{s: s, kind: Kind(w)}, nil }
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	h := rec.History()
	if err := history.Validate(h); err != nil {
		t.Fatalf("recorded history is invalid: %v", err)
	}
	return sum, h
}

func TestRunRecordsACheckableHistory(t *testing.T) {
	s := newMemStore()
	s.flaky = true
	nem := &fakeNemesis{}
	var progress atomic.Int64
	// Paced (each worker its share of the rate), so that every workload
	// gets operations: unpaced, the first workers to be scheduled could
	// spend the whole MaxOps on this fast store before the set workers
	// ran (seen once on a loaded machine).
	sum, h := runMem(t, s, []string{Register, Set, Counter}, Options{
		Seed: 1, TimeLimit: 300 * time.Millisecond, MaxOps: 3000, Rate: 6000, Nemesis: nem,
		Progress: func(Progress) { progress.Add(1) },
	})
	if sum.Ops == 0 || sum.Info == 0 || sum.FinalReads == 0 {
		t.Fatalf("summary %+v: want operations, some info, final reads", sum)
	}
	if nem.runs.Load() != 1 || nem.heals.Load() != 1 || progress.Load() == 0 {
		t.Errorf("nemesis runs %d heals %d, progress calls %d; want 1, 1, >0", nem.runs.Load(), nem.heals.Load(), progress.Load())
	}
	// A process that got an info never invokes again.
	infoed := map[history.Process]bool{}
	finals := 0
	for _, op := range h {
		if op.Type == history.Invoke && infoed[op.Process] {
			t.Fatalf("process %d invoked after an info", op.Process)
		}
		if op.Type == history.Info {
			infoed[op.Process] = true
		}
		if op.Final && op.Type == history.OK {
			finals++
		}
	}
	if finals != sum.FinalReads {
		t.Errorf("%d final reads ok, summary says %d", finals, sum.FinalReads)
	}
	// The store is linearizable, so every checker must agree.
	in := checkers.NewInput(h)
	split, order := checkers.SplitByWorkload(in.Ops)
	if len(order) != 3 {
		t.Fatalf("workloads %v, want register, set and counter", order)
	}
	for _, w := range order {
		sub := checkers.Input{History: h, Ops: split[w]}
		for _, r := range checkers.Run(context.Background(), sub, checkers.ForWorkload(w), checkers.Options{Timeout: time.Minute}) {
			if r.Verdict != checkers.Valid {
				t.Errorf("%s on %s: %s (%s)", r.Checker, w, r.Verdict, r.Summary)
			}
		}
	}
}

func TestRunBounds(t *testing.T) {
	s := newMemStore()
	start := time.Now()
	sum, _ := runMem(t, s, []string{Register}, Options{Seed: 2, TimeLimit: 10 * time.Second, MaxOps: 500})
	if sum.Ops != 500 || time.Since(start) > 5*time.Second {
		t.Fatalf("MaxOps 500: ran %d ops in %v", sum.Ops, time.Since(start))
	}
	sum, _ = runMem(t, newMemStore(), []string{Register}, Options{Seed: 2, TimeLimit: 500 * time.Millisecond, Rate: 100})
	if sum.Ops < 25 || sum.Ops > 80 {
		t.Fatalf("rate 100/s for 0.5 s gave %d ops, want about 50", sum.Ops)
	}
}

func TestStreamsAreAFunctionOfTheSeed(t *testing.T) {
	ops := func(seed uint64) []string {
		g, _ := NewGenerator(Register, 4)
		var out []string
		for w := 0; w < 4; w++ {
			s := g.Stream(seed, w)
			for i := 0; i < 200; i++ {
				out = append(out, string(s.Next().AppendJSON(nil)))
			}
		}
		return out
	}
	a, b, c := ops(7), ops(7), ops(8)
	same := func(x, y []string) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, c) {
		t.Fatal("the same seed must give the same operations, and another seed others")
	}
	// Written values are unique across workers.
	seen := map[string]bool{}
	for _, line := range a {
		op, _, err := history.Read(stringsReader(line+"\n"), "x")
		if err != nil {
			t.Fatal(err)
		}
		if f := op[0].F; f == "write" || f == "cas" {
			v := op[0].Value.String()
			if f == "cas" {
				_, nv, _ := op[0].Value.Pair()
				v = nv.String()
			}
			if seen[v] {
				t.Fatalf("value %s written twice", v)
			}
			seen[v] = true
		}
	}
}

// When the nemesis has done the faults it was asked for, the workers stop,
// long before the time limit; a heal that fails is a warning, not the end
// of the run.
func TestRunStopsWhenTheNemesisIsDone(t *testing.T) {
	nem := &fakeNemesis{doneAfter: 100 * time.Millisecond, healErr: errors.New("engine refused")}
	start := time.Now()
	sum, _ := runMem(t, newMemStore(), []string{Register}, Options{Seed: 1, TimeLimit: time.Minute, Rate: 2000, Nemesis: nem})
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("run/nemesis done after 100ms/workers stop: the run took %v of its 1m limit", el)
	}
	if sum.FinalReads == 0 || sum.FaultCycles != 2 || sum.FaultsFailed != 1 {
		t.Fatalf("run/nemesis done/final reads and the nemesis's counts in the summary: %+v", sum)
	}
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "heal before the final reads: engine refused") {
		t.Fatalf("run/heal fails/a warning naming it: %q", sum.Warnings)
	}
}

func TestRunHealsOnPanic(t *testing.T) {
	rec, err := history.Create(filepath.Join(t.TempDir(), "h.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	g, _ := NewGenerator(Register, 2)
	nem := &fakeNemesis{}
	defer func() {
		if recover() == nil {
			t.Fatal("the worker's panic did not propagate")
		}
		if nem.heals.Load() != 1 {
			t.Fatalf("heals %d after a panic, want 1", nem.heals.Load())
		}
	}()
	Run(context.Background(), Options{Parts: []Part{{Gen: g, Workers: 2}}, Nodes: []string{"n1"}, Recorder: rec, Nemesis: nem, TimeLimit: time.Second,
		NewClient: func(string, string) (Client, error) { return panicClient{}, nil }})
}

type panicClient struct{}

func (panicClient) Invoke(context.Context, history.Op) history.Op { panic("client bug") }

func TestRunRejectsMissingOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{}); err == nil {
		t.Fatal("Run with no options succeeded")
	}
	_, err := Run(context.Background(), Options{Parts: []Part{{Gen: mustGen(t), Workers: 1}}, Nodes: []string{"n1"}, Recorder: nopRecorder{},
		NewClient: func(string, string) (Client, error) { return nil, errors.New("no route") }})
	if err == nil {
		t.Fatal("a client that cannot be made must stop the run")
	}
}

func mustGen(t *testing.T) *Generator {
	g, err := NewGenerator(Register, 1)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type nopRecorder struct{}

func (nopRecorder) Record(op history.Op) history.Op { return op }

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// list-append streams make transactions of 1 to 4 micro-operations over
// the group's few keys, elements unique per key, every key they touch
// handed to the final reads, which are transactions too.
func TestListAppendStreams(t *testing.T) {
	g, err := NewGenerator(ListAppend, 6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	touched := map[string]bool{}
	for w := 0; w < 6; w++ {
		s := g.Stream(3, w)
		for i := 0; i < 300; i++ {
			op := s.Next()
			items, ok := op.Value.AsList()
			if op.F != "txn" || op.Key != "" || !ok || len(items) < 1 || len(items) > 4 {
				t.Fatalf("op %s: want a txn of 1 to 4 micro-operations and no key", op.AppendJSON(nil))
			}
			for _, it := range items {
				parts, _ := it.AsList()
				f, _ := parts[0].AsString()
				k, _ := parts[1].AsString()
				touched[k] = true
				switch f {
				case "append":
					e := k + "/" + parts[2].String()
					if seen[e] {
						t.Fatalf("element %s appended twice", e)
					}
					seen[e] = true
				case "r":
					if !parts[2].IsNil() {
						t.Fatalf("an invocation's read carries %s", parts[2])
					}
				default:
					t.Fatalf("micro-operation %s", it)
				}
			}
		}
	}
	keys := g.Keys()
	for k := range touched {
		if !slices.Contains(keys, k) {
			t.Fatalf("key %s touched but not in Keys() for the final reads", k)
		}
	}
	if len(keys) < 4 {
		t.Fatalf("keys %v: want them to rotate", keys)
	}
	fr := g.FinalRead(keys[0])
	if fr.F != "txn" || fr.Key != "" || fr.Value.String() != `[["r","`+keys[0]+`",null]]` {
		t.Fatalf("final read %s", fr.AppendJSON(nil))
	}
}

// With --retry a worker retries an attempt that ended info, each attempt
// recorded with its request on a fresh process; the flaky store applies
// an add and then reports info, so without idempotency keys the retries
// apply adds twice (the duplicates checker finds it), and with them, once.
func TestRunRetries(t *testing.T) {
	for _, idem := range []bool{false, true} {
		s := newMemStore()
		s.flaky, s.idem = true, idem
		sum, h := runMem(t, s, []string{Counter}, Options{Seed: 3, TimeLimit: 2 * time.Second, MaxOps: 400, Retry: 2})
		if sum.Retries == 0 {
			t.Fatalf("idem %v: no retries in %+v", idem, sum)
		}
		ops := history.Pair(h)
		attempts := map[string][]history.Operation{}
		for _, o := range ops {
			if !o.Final && o.Request == "" {
				t.Fatalf("op %d has no request under --retry", o.Invoke)
			}
			if o.Request != "" {
				attempts[o.Request] = append(attempts[o.Request], o)
			}
		}
		retried := 0
		for req, as := range attempts {
			for i, a := range as {
				switch {
				case a.Attempt != i+1:
					t.Fatalf("request %s: attempt %d recorded as %d", req, i+1, a.Attempt)
				case i > 0 && (as[i-1].Type != history.Info || a.Process == as[i-1].Process || !a.Value.Equal(as[0].Value)):
					t.Fatalf("request %s: attempt %d after a %s on process %d (now %d), value %s", req, a.Attempt, as[i-1].Type, as[i-1].Process, a.Process, a.Value)
				}
			}
			if len(as) > 3 {
				t.Fatalf("request %s: %d attempts with --retry 2", req, len(as))
			}
			if len(as) > 1 {
				retried++
			}
		}
		if int64(retried) == 0 {
			t.Fatalf("idem %v: no request has two attempts", idem)
		}
		r := checkers.Duplicates(context.Background(), checkers.NewInput(h), checkers.Options{})
		switch {
		case !idem && r.Verdict != checkers.Invalid:
			t.Errorf("retries without idempotency keys: duplicates %s (%s), want invalid", r.Verdict, r.Summary)
		case idem && r.Verdict != checkers.Valid:
			t.Errorf("retries with idempotency keys: duplicates %s (%s %v), want valid", r.Verdict, r.Summary, r.Anomalies)
		}
		t.Logf("idem %v: %d retries, %d requests retried: %s", idem, sum.Retries, retried, r.Summary)
	}
}

// divergentClient answers a read of key "slow" with its node's own value
// until 150 ms after the first read anywhere, then with one value on every
// node; key "never" keeps a value per node. A fake is fine in this unit
// test: it makes the convergence phase's two outcomes by construction.
type divergentClient struct {
	node  string
	start *atomic.Int64
}

func (c divergentClient) Invoke(_ context.Context, op history.Op) history.Op {
	done := op
	done.Type = history.OK
	if op.F != "read" || op.Node == "" { // the workers' own operations
		return done
	}
	c.start.CompareAndSwap(0, time.Now().UnixNano())
	switch {
	case op.Key == "never" || op.Key == "slow" && time.Since(time.Unix(0, c.start.Load())) < 150*time.Millisecond:
		done.Value = history.String(c.node)
	default:
		done.Value = history.Int(1)
	}
	return done
}

// The convergence phase polls every node until they agree: a key that
// agrees after about 150 ms converges then, one that never agrees is
// reported with each node's value once the bound passes.
// runConverge runs a one-operation workload on n1..n3 with a convergence
// phase of 600 ms over the register keys given, through the clients
// newClient (and nodeClient, if set) make, and returns what the phase
// found.
func runConverge(t *testing.T, keys []string, newClient, nodeClient func(string, string) (Client, error)) *checkers.Convergence {
	t.Helper()
	g, err := NewGenerator(Register, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		g.use(k)
	}
	rec, err := history.Create(filepath.Join(t.TempDir(), "h.jsonl"), history.KeepInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	sum, err := Run(context.Background(), Options{
		Parts: []Part{{Gen: g, Workers: 1}}, Nodes: []string{"n1", "n2", "n3"}, Seed: 1, NewClient: newClient, NodeClient: nodeClient,
		Recorder: rec, TimeLimit: 10 * time.Millisecond, MaxOps: 1, Converge: 600 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Convergence == nil {
		t.Fatal("no convergence in the summary")
	}
	return sum.Convergence
}

func TestRunConvergencePhase(t *testing.T) {
	var start atomic.Int64
	c := runConverge(t, []string{"never", "slow"}, func(_, node string) (Client, error) { return divergentClient{node: node, start: &start}, nil }, nil)
	byKey := map[string]checkers.KeyConvergence{}
	for _, k := range c.Keys {
		byKey[k.Key] = k
	}
	if k := byKey["slow"]; !k.Converged || k.MS < 150 || k.MS > 600 || k.Polls < 2 {
		t.Errorf("slow: %+v, want converged after 150 ms, within the bound, after several rounds", k)
	}
	if k := byKey["never"]; k.Converged || k.Values["n1"] != `"n1"` || k.Values["n3"] != `"n3"` {
		t.Errorf("never: %+v, want never converged with each node's value", k)
	}
	if r := checkers.ConvergenceResult(*c); r.Verdict != checkers.Invalid {
		t.Errorf("convergence result %s, want invalid (a key never converged)", r.Verdict)
	}
}

// A node whose NodeClient fails (a failover fenced it off) is left out
// of the convergence phase and named; the others are compared.
func TestRunConvergenceLeavesOutNodes(t *testing.T) {
	var start atomic.Int64
	newClient := func(_, node string) (Client, error) { return divergentClient{node: node, start: &start}, nil }
	c := runConverge(t, []string{"slow"}, newClient, func(w, node string) (Client, error) {
		if node == "n2" {
			return nil, errors.New("fenced off by a failover")
		}
		return newClient(w, node)
	})
	if c.Excluded["n2"] != "fenced off by a failover" || len(c.Excluded) != 1 {
		t.Fatalf("convergence %+v, want n2 left out with its reason", c)
	}
	r := checkers.ConvergenceResult(*c)
	if r.Verdict != checkers.Valid || !strings.Contains(r.Summary, "left out: n2 (fenced off by a failover)") {
		t.Errorf("result %s %q, want valid naming n2 left out", r.Verdict, r.Summary)
	}
}

// downClient is a node that answers no read: it is still restarting.
type downClient struct{}

func (downClient) Invoke(_ context.Context, op history.Op) history.Op {
	if op.F == "read" && op.Node != "" {
		op.Type, op.Error = history.Fail, "connection refused"
		return op
	}
	op.Type = history.OK
	return op
}

// A node that answers no read during the whole phase is unavailable, not
// divergent: the others are compared, and it is named as left out.
func TestRunConvergenceNodeDown(t *testing.T) {
	var start atomic.Int64
	c := runConverge(t, []string{"slow"}, func(_, node string) (Client, error) {
		if node == "n3" {
			return downClient{}, nil
		}
		return divergentClient{node: node, start: &start}, nil
	}, nil)
	if !strings.Contains(c.Excluded["n3"], "answered no read during the phase: connection refused") {
		t.Fatalf("convergence %+v, want n3 left out as unavailable", c)
	}
	for _, k := range c.Keys {
		if k.Key == "slow" && (!k.Converged || k.MS < 150) {
			t.Errorf("slow: %+v, want converged between n1 and n2 after 150 ms", k)
		}
	}
	if r := checkers.ConvergenceResult(*c); r.Verdict != checkers.Valid {
		t.Errorf("result %s: %s", r.Verdict, r.Summary)
	}
}
