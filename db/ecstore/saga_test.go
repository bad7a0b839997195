package ecstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/db/sagatest"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// The saga workload's conformance suite passes against an in-process
// cluster of each mode that runs sagas, with clients bound to different
// nodes (a follower forwards to the leader or the primary).
func TestSagaConformance(t *testing.T) {
	for _, mode := range SagaModes {
		t.Run(mode, func(t *testing.T) {
			c := startLocal(t, store.Config{Mode: mode, RequestTimeout: time.Second, SessionWait: time.Second, FailoverTimeout: time.Second})
			clients := 0
			sagatest.Run(t, func(t *testing.T) workload.Client {
				node := c.Nodes()[clients%len(c.Nodes())]
				clients++
				return retrying{New(c.Addr(node), Options{Workload: workload.Kind(workload.Saga), Timeout: 5 * time.Second})}
			})
		})
	}
}

// An lww cluster refuses a saga operation outright: nothing there makes a
// step's check and its write one action.
func TestSagaRefusedByLWW(t *testing.T) {
	c := startLocal(t, store.Config{Mode: store.ModeLWW, RequestTimeout: time.Second})
	cl := New(c.Addr(c.Nodes()[0]), Options{Workload: Saga, Timeout: 5 * time.Second})
	v, _ := history.Raw([]byte(`{"stock":[1]}`))
	done := cl.Invoke(context.Background(), history.Op{Type: history.Invoke, F: "saga-init", Value: v})
	if done.Type != history.Fail || !strings.Contains(done.Error, "saga operations run in modes raft and primary") {
		t.Errorf("saga-init on lww: %s %q, want a fail naming the modes that run sagas", done.Type, done.Error)
	}
}

// --workload saga is a usage error with a mode that does not run sagas,
// naming those that do, and with --sessions.
func TestValidateSaga(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        Settings
		workload string
		want     string // "" for no error
	}{
		{"mode/raft/ok", Settings{Mode: "raft"}, "saga", ""},
		{"mode/primary/ok", Settings{Mode: "primary"}, "saga", ""},
		{"mode/lww/refused", Settings{Mode: "lww"}, "saga", "--workload saga: ecstore runs sagas in --mode raft and primary, not lww"},
		{"mode/hlc/refused", Settings{Mode: "hlc"}, "saga", "--mode raft and primary, not hlc"},
		{"sessions/raft/refused", Settings{Mode: "raft", Sessions: true}, "saga", "--sessions and --workload saga"},
		{"mode/lww without saga/ok", Settings{Mode: "lww"}, "register", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.W, s.R, s.SetImpl, s.PrimaryReads = 1, 1, store.SetORSet, "any"
			err := s.Validate(db.Common{Nodes: 3, Workloads: []string{tc.workload}})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("no error, want one saying %q", tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q lacks %q", err, tc.want)
			default:
				if _, ok := err.(db.UsageError); !ok {
					t.Errorf("error %v is a %T, want a db.UsageError", err, err)
				}
			}
		})
	}
}

// startLocal starts an in-process cluster of 3 nodes and stops it when
// the test ends.
func startLocal(t *testing.T, cfg store.Config) *store.LocalCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := store.StartLocal(ctx, store.LocalOptions{Nodes: 3, Node: cfg, DataDir: t.TempDir(),
		LogfFor: func(node string) func(string, ...any) {
			return func(format string, args ...any) { t.Logf(node+": "+format, args...) }
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

// retrying retries an operation that failed because the cluster could
// not take it yet (no leader or primary elected, a forward refused): it
// certainly did not apply, so the suite sees the answer of the attempt
// that reached the state. A refusal of the protocol is returned as it is.
type retrying struct{ cl workload.Client }

func (r retrying) Invoke(ctx context.Context, op history.Op) history.Op {
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := r.cl.Invoke(ctx, op)
		transient := done.Type == history.Fail &&
			(strings.HasPrefix(done.Error, string(store.ErrNotLeader)) || strings.HasPrefix(done.Error, string(store.ErrUnavailable)) || strings.Contains(done.Error, "unreachable"))
		if !transient || time.Now().After(deadline) || ctx.Err() != nil {
			return done
		}
		time.Sleep(50 * time.Millisecond)
	}
}
