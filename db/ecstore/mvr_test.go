package ecstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// fakeNode answers POST /v1/op with canned values and records the requests,
// to check what the adapter sends and how it shapes what it gets.
type fakeNode struct {
	mu    sync.Mutex
	reqs  []store.Request
	reply func(store.Request) store.Response
}

func newFakeNode(t *testing.T, reply func(store.Request) store.Response) (*fakeNode, string) {
	f := &fakeNode{reply: reply}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req store.Request
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		resp := f.reply(req)
		resp.Node = "n1"
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeNode) last() store.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeNode) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func TestMultiValueShapes(t *testing.T) {
	replies := map[string]string{
		// Unsorted, as a store might answer: node, then counter (n1:9
		// before n1:10, n10 before n2 as strings).
		"read k":     `{"siblings":[{"value":2,"dot":"n2:1"},{"value":"x","dot":"n10:1"},{"value":3,"dot":"n1:10"},{"value":4,"dot":"n1:9"}],"context":{"n2":1,"n10":1,"n1":10}}`,
		"read fresh": `{"siblings":null,"context":null}`,
		"write k":    `{"dot":"n1:11","context":{"n1":11,"n2":1,"n10":1}}`,
		"write j":    `{"dot":"n3:1","context":{"n3":1}}`,
	}
	f, addr := newFakeNode(t, func(req store.Request) store.Response {
		return store.Response{Value: json.RawMessage(replies[string(req.Op)+" "+req.Key])}
	})
	c := New(addr, Options{MultiValue: true, Timeout: 5 * time.Second})
	do := func(f, key string, v history.Value) history.Op {
		t.Helper()
		return c.Invoke(context.Background(), history.Op{Type: history.Invoke, F: f, Key: key, Value: v})
	}
	tests := []struct {
		name      string
		f, key    string
		value     history.Value
		wantType  history.Type
		wantValue string
		wantCtx   map[string]uint64 // the context the request carried (writes)
	}{
		{"read/never written/no siblings, empty context", "read", "fresh", history.Nil(), history.OK, `{"siblings":[],"context":{}}`, nil},
		{"write/fresh client/no context, value and dot", "write", "j", history.Int(7), history.OK, `{"value":7,"dot":"n3:1","context":{}}`, nil},
		{"read/siblings out of order/sorted by node then counter", "read", "k", history.Nil(), history.OK,
			`{"siblings":[{"value":4,"dot":"n1:9"},{"value":3,"dot":"n1:10"},{"value":"x","dot":"n10:1"},{"value":2,"dot":"n2:1"}],"context":{"n1":10,"n10":1,"n2":1}}`, nil},
		{"write/after a read/carries the read's context", "write", "k", history.Int(5), history.OK, `{"value":5,"dot":"n1:11","context":{"n1":10,"n10":1,"n2":1}}`, map[string]uint64{"n1": 10, "n2": 1, "n10": 1}},
		{"write/after a write/carries the write's context", "write", "k", history.Int(6), history.OK, `{"value":6,"dot":"n1:11","context":{"n1":11,"n10":1,"n2":1}}`, map[string]uint64{"n1": 11, "n2": 1, "n10": 1}},
		{"write/other key/carries that key's context only", "write", "j", history.Int(8), history.OK, `{"value":8,"dot":"n3:1","context":{"n3":1}}`, map[string]uint64{"n3": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := do(tc.f, tc.key, tc.value)
			if done.Type != tc.wantType || done.Value.String() != tc.wantValue {
				t.Fatalf("completion %s %s (%s), want %s %s", done.Type, done.Value, done.Error, tc.wantType, tc.wantValue)
			}
			if tc.f == "write" {
				if got := f.last().Context; !equalVV(got, tc.wantCtx) {
					t.Errorf("request context %v, want %v", got, tc.wantCtx)
				}
			}
		})
	}
	t.Run("cas/mvr/fails without a request", func(t *testing.T) {
		n := f.count()
		done := do("cas", "k", history.List(history.Int(1), history.Int(2)))
		if done.Type != history.Fail || done.Error != "mvr registers have no compare-and-set" {
			t.Errorf("cas: %s %q, want fail %q", done.Type, done.Error, ErrNoCAS)
		}
		if f.count() != n {
			t.Error("the cas reached the node")
		}
	})
	t.Run("history/the checkers' shape/mv-register, lost-writes only", func(t *testing.T) {
		w := do("write", "k", history.Int(9))
		r := do("read", "k", history.Nil())
		var ops []history.Operation
		for _, done := range []history.Op{w, r} {
			ops = append(ops, history.Operation{Type: done.Type, F: done.F, Key: done.Key, Value: done.Value})
		}
		wl, err := checkers.InferWorkload(ops)
		if err != nil || wl != checkers.WorkloadMVRegister {
			t.Errorf("workload %q (%v), want %s", wl, err, checkers.WorkloadMVRegister)
		}
		if _, err := checkers.ParseMVRead(r.Value); err != nil {
			t.Error(err)
		}
	})
}

func equalVV(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMultiValueRoamingSharesContexts(t *testing.T) {
	var addrs []string
	var nodes []*fakeNode
	for range 2 {
		f, addr := newFakeNode(t, func(req store.Request) store.Response {
			if req.Op == store.OpRead {
				return store.Response{Value: json.RawMessage(`{"siblings":[{"value":1,"dot":"n1:1"}],"context":{"n1":1}}`)}
			}
			return store.Response{Value: json.RawMessage(`{"dot":"n2:1","context":{"n1":1,"n2":1}}`)}
		})
		addrs, nodes = append(addrs, addr), append(nodes, f)
	}
	r := NewRoaming(addrs, Options{MultiValue: true})
	r.Invoke(context.Background(), history.Op{Type: history.Invoke, F: "read", Key: "k"})
	w := r.Invoke(context.Background(), history.Op{Type: history.Invoke, F: "write", Key: "k", Value: history.Int(2)})
	if w.Type != history.OK {
		t.Fatalf("write: %s %s", w.Type, w.Error)
	}
	if got := nodes[1].last().Context; !equalVV(got, map[string]uint64{"n1": 1}) {
		t.Errorf("roaming/write on another node after a read/carries the read's context: %v", got)
	}
}

func TestGCounterThroughTheAdapter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := store.StartLocal(ctx, store.LocalOptions{Nodes: 1, DataDir: t.TempDir(),
		Node:    store.Config{Mode: store.ModeMVR, CounterImpl: store.CounterG, RequestTimeout: time.Second},
		LogfFor: func(string) func(string, ...any) { return t.Logf }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := New(c.Addr("n1"), Options{Workload: Counter, MultiValue: true})
	add := func(n int64) history.Op {
		return cl.Invoke(ctx, history.Op{Type: history.Invoke, F: "add", Key: "c", Value: history.Int(n)})
	}
	if done := add(-1); done.Type != history.Fail || !strings.Contains(done.Error, "a G-Counter only grows") {
		t.Errorf("g-counter/add -1/fail: %s %q", done.Type, done.Error)
	}
	if done := add(4); done.Type != history.OK {
		t.Errorf("g-counter/add 4/ok: %s %q", done.Type, done.Error)
	}
	if done := cl.Invoke(ctx, history.Op{Type: history.Invoke, F: "read", Key: "c"}); done.Type != history.OK || !done.Value.Equal(history.Int(4)) {
		t.Errorf("g-counter/read/4: %s %s %q", done.Type, done.Value, done.Error)
	}
}

func TestSettingsMVRAndCounters(t *testing.T) {
	bad := []struct {
		name   string
		s      Settings
		c      db.Common
		phrase string
	}{
		{"validate/mvr with sessions/usage error", Settings{Mode: "mvr", Sessions: true}, db.Common{Workloads: []string{"register"}}, "--sessions and --mode mvr"},
		{"validate/mvr with list-append/names the modes that run it", Settings{Mode: "mvr"}, db.Common{Workloads: []string{"list-append"}}, "--mode lww, hlc, primary, raft, not mvr"},
		{"validate/mvr with rw-register/names the modes that run it", Settings{Mode: "mvr"}, db.Common{Workloads: []string{"rw-register"}}, "--workload rw-register"},
		{"validate/mvr with lww-blob sets/usage error", Settings{Mode: "mvr", SetImpl: "lww-blob"}, db.Common{Workloads: []string{"set"}}, "--set-impl lww-blob and --mode mvr"},
		{"validate/unknown counter impl/names the flag", Settings{Mode: "lww", CounterImpl: "or"}, db.Common{Workloads: []string{"counter"}}, `--counter-impl "or": want pn or g`},
		{"validate/g in raft/names the flag and the modes", Settings{Mode: "raft", CounterImpl: "g"}, db.Common{Workloads: []string{"counter"}}, "--counter-impl g: G-Counters are in --mode lww, hlc, mvr, not raft"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.W, s.R, s.PrimaryReads = 1, 1, "any"
			if s.SetImpl == "" {
				s.SetImpl = "orset"
			}
			tc.c.Nodes = 3
			err := s.Validate(tc.c)
			var ue db.UsageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.phrase) {
				t.Errorf("error %v, want a usage error with %q", err, tc.phrase)
			}
		})
	}
	good := []struct {
		s       Settings
		runName string
	}{
		{Settings{Mode: "mvr", W: 2, R: 2, SetImpl: "orset", CounterImpl: "pn", PrimaryReads: "any"}, "ecstore-mvr-w2r2"},
		{Settings{Mode: "mvr", W: 1, R: 1, SetImpl: "orset", CounterImpl: "g", PrimaryReads: "any"}, "ecstore-mvr-w1r1-gcounter"},
		{Settings{Mode: "lww", W: 1, R: 1, SetImpl: "orset", CounterImpl: "g", PrimaryReads: "any"}, "ecstore-lww-w1r1-gcounter"},
		{Settings{Mode: "raft", W: 1, R: 1, SetImpl: "orset", CounterImpl: "pn", PrimaryReads: "any"}, "ecstore-raft"},
	}
	for _, tc := range good {
		t.Run("settings/"+tc.runName+"/valid, named, recorded", func(t *testing.T) {
			c := db.Common{Nodes: 3, Workloads: []string{"register", "counter", "session"}}
			if err := tc.s.Validate(c); err != nil {
				t.Fatal(err)
			}
			if got := tc.s.RunName(c); got != tc.runName {
				t.Errorf("run name %s, want %s", got, tc.runName)
			}
			if got := tc.s.Record()["counter_impl"]; got != tc.s.CounterImpl {
				t.Errorf("recorded counter_impl %v, want %s", got, tc.s.CounterImpl)
			}
		})
	}
}
