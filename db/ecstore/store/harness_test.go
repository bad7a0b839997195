package store_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// This file is a small harness for the store's guarantee tests: clients
// bound to nodes record every operation into a history, which the real
// checkers then judge. (The product's harness is the workload package;
// this one is just enough to prove each mode's guarantee through a fault.)

// startCluster starts an in-process cluster and closes it when the test
// ends.
func startCluster(t testing.TB, nodes int, cfg store.Config) *store.LocalCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.Logf == nil {
		cfg.Logf = func(format string, args ...any) { t.Logf(format, args...) }
		if _, ok := t.(*testing.B); ok {
			cfg.Logf = func(string, ...any) {}
		}
	}
	logf := cfg.Logf
	cfg.Logf = nil
	c, err := store.StartLocal(ctx, store.LocalOptions{Nodes: nodes, Node: cfg, DataDir: t.TempDir(),
		LogfFor: func(node string) func(string, ...any) {
			return func(format string, args ...any) { logf(node+": "+format, args...) }
		}})
	if err != nil {
		t.Fatalf("start %s cluster: %v", cfg.Mode, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("close cluster: %v", err)
		}
	})
	return c
}

// tester records a history of operations from several clients.
type tester struct {
	t    testing.TB
	c    *store.LocalCluster
	rec  *history.Recorder
	mu   sync.Mutex
	next history.Process
}

func newTester(t testing.TB, c *store.LocalCluster) *tester {
	t.Helper()
	rec, err := history.Create(filepath.Join(t.TempDir(), "history.jsonl"), history.KeepInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	return &tester{t: t, c: c, rec: rec}
}

// proc is one client process bound to a node.
type proc struct {
	x    *tester
	id   history.Process
	node string
	cl   *ecstore.Client
}

// client makes a process bound to node.
func (x *tester) client(node string, o ecstore.Options) *proc {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := &proc{x: x, id: x.next, node: node, cl: ecstore.New(x.c.Addr(node), o)}
	x.next++
	return p
}

// do records the invocation f(key, value), performs it and records its
// completion, which it returns. After an info the process continues under a
// fresh id, as in Jepsen.
func (p *proc) do(f, key string, value history.Value) history.Op {
	inv := p.x.rec.Record(history.Op{Process: p.id, Type: history.Invoke, F: f, Key: key, Value: value, Node: p.node})
	done := p.cl.Invoke(context.Background(), inv)
	done.Process = p.id
	done = p.x.rec.Record(done)
	if done.Type == history.Info {
		p.x.mu.Lock()
		p.id = p.x.next
		p.x.next++
		p.x.mu.Unlock()
	}
	return done
}

func (p *proc) read(key string) history.Op { return p.do("read", key, history.Nil()) }
func (p *proc) write(key string, v int64) history.Op {
	return p.do("write", key, history.Int(v))
}

// finalRead records a read marked final, as the harness's final phase does.
func (p *proc) finalRead(key string) history.Op {
	inv := p.x.rec.Record(history.Op{Process: p.id, Type: history.Invoke, F: "read", Key: key, Node: p.node, Final: true})
	done := p.cl.Invoke(context.Background(), inv)
	done.Process, done.Final = p.id, true
	return p.x.rec.Record(done)
}

// check runs the named checkers on the history so far.
func (x *tester) check(names ...string) map[string]checkers.Result {
	x.t.Helper()
	h := x.rec.History()
	if err := history.Validate(h); err != nil {
		x.t.Fatalf("recorded history is not valid: %v", err)
	}
	in := checkers.NewInput(h)
	out := map[string]checkers.Result{}
	for _, n := range names {
		c, err := checkers.Lookup(n)
		if err != nil {
			x.t.Fatal(err)
		}
		out[n] = checkers.Run(context.Background(), in, []checkers.Checker{c}, checkers.Options{Timeout: time.Minute})[0]
	}
	return out
}

// dump logs the history, for a failing test.
func (x *tester) dump() {
	for _, op := range x.rec.History() {
		x.t.Logf("%s", op.AppendJSON(nil))
	}
}

// expect asserts a checker's verdict, dumping the history when it differs.
func (x *tester) expect(rs map[string]checkers.Result, name string, want checkers.Verdict) {
	x.t.Helper()
	r, ok := rs[name]
	if !ok {
		x.t.Fatalf("checker %s did not run", name)
	}
	if r.Verdict != want {
		x.dump()
		first := ""
		if len(r.Anomalies) > 0 {
			first = r.Anomalies[0].Explanation
		}
		x.t.Fatalf("%s: %s, want %s (%s) %s", name, r.Verdict, want, r.Summary, first)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
