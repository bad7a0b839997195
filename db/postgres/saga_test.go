package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/sagatest"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// TestSagaRefusalIsFail: an operation the protocol refuses failed, and
// its error text is the reason.
func TestSagaRefusalIsFail(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"refusal/bare/the reason", refusal("declined"), "declined"},
		{"refusal/wrapped/fail", fmt.Errorf("reserve: %w", refusal("out of stock")), "reserve: out of stock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if typ, text := Classify(tt.err, false, nil); typ != history.Fail || text != tt.want {
				t.Errorf("Classify = %s %q, want fail %q", typ, text, tt.want)
			}
		})
	}
}

// TestSagaFencedNode: the final client of an old primary killed for good
// fails its saga-read, saying why, and sends the saga's steps of the
// final recovery to its client of the primary (here one whose
// connection is refused: the failure is the connection's).
func TestSagaFencedNode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	writes := NewClient("postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres?sslmode=disable", ClientOptions{Workload: Saga, Node: "n2", Timeout: 2 * time.Second})
	defer writes.Close(context.Background())
	f := &fencedNode{node: "n1", writes: writes}
	tests := []struct {
		name, f, node, want string
	}{
		{"fenced/saga-read/old primary", checkers.FSagaRead, "n1", "old primary"},
		{"fenced/saga-pending/to the primary", checkers.FSagaPending, "n2", "connect to n2"},
		{"fenced/saga-claim/to the primary", checkers.FSagaClaim, "n2", "connect to n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := f.Invoke(context.Background(), history.Op{Process: 1, Type: history.Invoke, F: tt.f, Key: "s"})
			if done.Type != history.Fail || done.Node != tt.node || !strings.Contains(done.Error, tt.want) {
				t.Errorf("%s: %s on %s %q, want fail on %s saying %q", tt.f, done.Type, done.Node, done.Error, tt.node, tt.want)
			}
		})
	}
}

// TestPostgresSaga runs the saga workload on a primary and one replica:
// the conformance suite (writes on the primary, the final state read on
// the replica), then the replica's saga-read against the primary's once
// it has caught up; many clients at once on a few sagas, whose outcomes
// must keep every rule; and, with the replica a synchronous standby, a
// retried step that finds its first attempt applied waits for the standby
// as that attempt did.
func TestPostgresSaga(t *testing.T) {
	pc := upPG(t, "saga", Options{Nodes: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := waitTables(ctx, pc.DSN("n2"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	newSagaClient := func(t *testing.T, dsn, readDSN, readNode string, timeout time.Duration) *Client {
		o := ClientOptions{Workload: workload.Kind(Saga), Node: "n1", Timeout: timeout, ReadMode: ReadPrimary}
		if readDSN != "" {
			o.ReadDSN, o.ReadNode, o.ReadMode = readDSN, readNode, ReadReplica
		}
		c := NewClient(dsn, o)
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	read := func(t *testing.T, c *Client) checkers.SagaState {
		t.Helper()
		done := c.Invoke(ctx, history.Op{Type: history.Invoke, F: checkers.FSagaRead, Value: history.Nil()})
		if done.Type != history.OK {
			t.Fatalf("saga-read on %s: %s %s", done.Node, done.Type, done.Error)
		}
		st, err := checkers.ParseSagaState([]byte(done.Value.String()))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	t.Run("conformance", func(t *testing.T) {
		calls := 0
		sagatest.Run(t, func(t *testing.T) workload.Client {
			calls++
			if calls == 1 {
				return newSagaClient(t, pc.PrimaryDSN(), "", "", 0)
			}
			// Later clients write on the primary and read on n2.
			return newSagaClient(t, pc.PrimaryDSN(), pc.DSN("n2"), "n2", 0)
		})
		if t.Failed() {
			return
		}
		(&clientSet{topo: pc, logf: t.Logf}).catchUp(ctx, "n2")
		onPrimary := read(t, newSagaClient(t, pc.PrimaryDSN(), "", "", 0))
		onReplica := read(t, newSagaClient(t, pc.PrimaryDSN(), pc.DSN("n2"), "n2", 0))
		if !reflect.DeepEqual(onPrimary, onReplica) {
			t.Fatalf("saga-read after n2 caught up:\n n1 %+v\n n2 %+v", onPrimary, onReplica)
		}
		if len(onPrimary.Log) == 0 || len(onPrimary.Ledger) == 0 {
			t.Fatalf("saga-read of the primary holds no log or no ledger: %+v", onPrimary)
		}
		if err := pgExec(ctx, pc.PrimaryDSN(), `UPDATE ledger SET amount = 0`); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("UPDATE of the ledger: %v, want the append-only trigger's error", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		dsn := newDatabase(t, ctx, pc, "sagaconc")
		seed := time.Now().UnixNano()
		t.Logf("seed %d", seed)
		concurrentSagas(t, ctx, seed, func(t *testing.T) *Client { return newSagaClient(t, dsn, "", "", 10*time.Second) })
	})

	t.Run("sync retry waits", func(t *testing.T) {
		dsn := newDatabase(t, ctx, pc, "sagasync")
		c := newSagaClient(t, dsn, "", "", time.Second)
		do := func(f, key, js string) history.Op {
			v, err := history.Raw([]byte(js))
			if err != nil {
				t.Fatal(err)
			}
			return c.Invoke(ctx, history.Op{Type: history.Invoke, F: f, Key: key, Value: v})
		}
		for _, s := range []struct{ f, key, js string }{
			{checkers.FSagaInit, "", `{"stock":[5]}`},
			{checkers.FSagaBegin, "s", `{"item":0,"qty":1,"price":3,"owner":"p0"}`},
		} {
			if got := do(s.f, s.key, s.js); got.Type != history.OK {
				t.Fatalf("%s: %s %s", s.f, got.Type, got.Error)
			}
		}
		setSync := func(commit, names string) {
			t.Helper()
			for _, q := range []string{`ALTER SYSTEM SET synchronous_commit = ` + commit, `ALTER SYSTEM SET synchronous_standby_names = ` + quote(names), `SELECT pg_reload_conf()`} {
				if err := pgExec(ctx, pc.PrimaryDSN(), q); err != nil {
					t.Fatal(err)
				}
			}
		}
		setSync("remote_apply", "FIRST 1 (n2)")
		pauseReplay(t, pc, "n2")
		t.Cleanup(func() {
			pgExec(context.Background(), pc.DSN("n2"), `SELECT pg_wal_replay_resume()`)
			setSync("on", "")
		})
		// The first attempt commits on the primary but n2 does not
		// apply it: info. A retry finds the payment charged, and waits
		// for n2 as the first did: info again, not an ok n2 could lose.
		for i, js := range []string{`{"amount":3}`, `{"amount":3}`} {
			start := time.Now()
			got := do(checkers.FCharge, "s", js)
			if got.Type != history.Info || !strings.Contains(got.Error, "committed locally") {
				t.Fatalf("charge attempt %d with n2's replay paused: %s %q after %v, want info (committed locally, waiting for n2)", i+1, got.Type, got.Error, time.Since(start).Round(time.Millisecond))
			}
		}
		if got := do(checkers.FCancel, "s", `null`); got.Type != history.Info {
			t.Fatalf("cancel (writes a tombstone) with n2 paused: %s %s, want info", got.Type, got.Error)
		}
		if err := pgExec(ctx, pc.DSN("n2"), `SELECT pg_wal_replay_resume()`); err != nil {
			t.Fatal(err)
		}
		if got := do(checkers.FCharge, "s", `{"amount":3}`); got.Type != history.OK {
			t.Fatalf("charge retried after n2 resumed: %s %s, want ok", got.Type, got.Error)
		}
		if got := do(checkers.FCancel, "s", `null`); got.Type != history.OK || got.Value.String() != `"cancelled"` {
			t.Fatalf("cancel after n2 resumed: %s %s %s, want ok \"cancelled\"", got.Type, got.Value, got.Error)
		}
	})
}

// concurrentSagas runs workers on a few sagas at once, each invoking
// random steps, and checks what they were told against the state at the
// end: stock is conserved, a payment has at most one charge and, with
// every refund deduped, at most one refund, a shipment is one state that
// every ok confirm and cancel agrees with, a claim of an epoch is won once,
// and every fail is one of the protocol's refusals (no deadlock or
// duplicate key slips through).
func concurrentSagas(t *testing.T, ctx context.Context, seed int64, newClient func(*testing.T) *Client) {
	// More demand than stock, and forward steps more often than
	// compensations, so that reserves race for the last units.
	const workers, sagas, steps = 6, 24, 80
	stock := []int64{7, 4}
	admin := newClient(t)
	initial, _ := json.Marshal(map[string]any{"stock": stock})
	invoke := func(c *Client, p int, f, key string, args any) history.Op {
		js, _ := json.Marshal(args)
		v, err := history.Raw(js)
		if err != nil {
			t.Fatal(err)
		}
		return c.Invoke(ctx, history.Op{Type: history.Invoke, Process: history.Process(p), F: f, Key: key, Value: v})
	}
	if got := invoke(admin, 0, checkers.FSagaInit, "", json.RawMessage(initial)); got.Type != history.OK {
		t.Fatalf("saga-init: %s %s", got.Type, got.Error)
	}
	for s := range sagas {
		id := fmt.Sprintf("s%d", s)
		if got := invoke(admin, 0, checkers.FSagaBegin, id, map[string]any{"item": s % 2, "qty": 2, "price": 10, "owner": "p0"}); got.Type != history.OK {
			t.Fatalf("saga-begin %s: %s %s", id, got.Type, got.Error)
		}
	}

	var mu sync.Mutex
	var results []history.Op
	var wg sync.WaitGroup
	for w := range workers {
		c := newClient(t)
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range steps {
				id := fmt.Sprintf("s%d", rng.IntN(sagas))
				var f string
				var args any
				switch rng.IntN(12) {
				case 0, 1, 2:
					f, args = checkers.FReserve, map[string]any{"item": rng.IntN(2), "qty": 1 + rng.IntN(3)}
				case 3:
					f, args = checkers.FRelease, map[string]any{"item": rng.IntN(2), "qty": 1}
				case 4, 5:
					f, args = checkers.FCharge, map[string]any{"amount": 10}
				case 6:
					f, args = checkers.FRefund, map[string]any{"amount": 10}
				case 7, 8:
					f, args = checkers.FConfirm, map[string]any{}
				case 9:
					f, args = checkers.FCancel, nil
				case 10:
					f, args = checkers.FSagaClaim, map[string]any{"epoch": 2, "owner": fmt.Sprintf("p%d", w+1)}
				default:
					f, args = checkers.FSagaLog, map[string]any{"epoch": 1 + rng.IntN(2), "step": "x", "status": "running"}
				}
				done := invoke(c, w+1, f, id, args)
				mu.Lock()
				results = append(results, done)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	done := invoke(admin, 0, checkers.FSagaRead, "", nil)
	if done.Type != history.OK {
		t.Fatalf("saga-read: %s %s", done.Type, done.Error)
	}
	st, err := checkers.ParseSagaState([]byte(done.Value.String()))
	if err != nil {
		t.Fatal(err)
	}

	refusals := []string{"declined", "out of stock", "released", "refunded", "cancelled", "fenced: epoch ", "final: "}
	claims := map[string]int{}
	for _, op := range results {
		switch op.Type {
		case history.Info:
			t.Errorf("%s %s: info (%s) on a healthy cluster", op.F, op.Key, op.Error)
		case history.Fail:
			known := false
			for _, r := range refusals {
				known = known || strings.HasPrefix(op.Error, r)
			}
			if !known {
				t.Errorf("%s %s failed with %q, not one of the protocol's refusals", op.F, op.Key, op.Error)
			}
		case history.OK:
			switch op.F {
			case checkers.FSagaClaim:
				claims[op.Key]++
			case checkers.FConfirm:
				if st.Shipments[op.Key] != "confirmed" {
					t.Errorf("confirm %s ok, but its shipment ended %q", op.Key, st.Shipments[op.Key])
				}
			case checkers.FCancel:
				if s, _ := op.Value.AsString(); s != st.Shipments[op.Key] {
					t.Errorf("cancel %s returned %q, but its shipment ended %q", op.Key, s, st.Shipments[op.Key])
				}
			case checkers.FReserve:
				if _, ok := st.Reservations[op.Key]; !ok {
					t.Errorf("reserve %s ok, but it has no reservation", op.Key)
				}
			case checkers.FCharge:
				if p := st.Payments[op.Key]; p.Amount != 10 {
					t.Errorf("charge %s ok, but its payment is %+v", op.Key, p)
				}
			}
		}
	}
	for id, n := range claims {
		if n != 1 {
			t.Errorf("%d claims of %s at epoch 2 ok, want 1", n, id)
		}
	}
	held := make([]int64, len(stock))
	for id, r := range st.Reservations {
		if r.State == "reserved" {
			held[r.Item] += r.Qty
		}
		if r.State == "released" && r.Qty == 0 {
			continue // a tombstone
		}
		if r.Qty < 1 || r.Qty > 3 {
			t.Errorf("reservation %s = %+v", id, r)
		}
	}
	for i := range stock {
		if st.Stock[i] < 0 || st.Stock[i]+held[i] != stock[i] {
			t.Errorf("item %d: %d in stock and %d reserved, want %d together", i, st.Stock[i], held[i], stock[i])
		}
	}
	for id, p := range st.Payments {
		charges, refunds := countLedger(st.Ledger, id, "charge"), countLedger(st.Ledger, id, "refund")
		ok := p.State == "charged" && charges == 1 && refunds == 0 ||
			p.State == "refunded" && p.Amount == 10 && charges == 1 && refunds == 1 ||
			p.State == "refunded" && p.Amount == 0 && charges == 0 && refunds == 0
		if !ok {
			t.Errorf("payment %s = %+v with %d charges and %d refunds in the ledger", id, p, charges, refunds)
		}
	}
	n := map[history.Type]int{}
	why := map[string]int{}
	for _, op := range results {
		n[op.Type]++
		if op.Type == history.Fail {
			why[op.F+": "+op.Error]++
		}
	}
	reserved := 0
	for _, r := range st.Reservations {
		if r.State == "reserved" {
			reserved++
		}
	}
	t.Logf("%d operations: %d ok, %d fail, %d info; fails %v; stock %v, %d reservations held, %d ledger entries, %d shipments",
		len(results), n[history.OK], n[history.Fail], n[history.Info], why, st.Stock, reserved, len(st.Ledger), len(st.Shipments))
}

func countLedger(ledger []checkers.LedgerEntry, saga, kind string) int {
	n := 0
	for _, e := range ledger {
		if e.Saga == saga && e.Kind == kind {
			n++
		}
	}
	return n
}

// newDatabase creates a database on pc's primary with the workloads'
// tables, and returns its connection string on the primary.
func newDatabase(t *testing.T, ctx context.Context, pc *Cluster, name string) string {
	t.Helper()
	if err := pgExec(ctx, pc.PrimaryDSN(), `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	dsn := strings.Replace(pc.PrimaryDSN(), "/postgres?", "/"+name+"?", 1)
	if err := Setup(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// pgExec runs one statement on dsn.
func pgExec(ctx context.Context, dsn, q string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, q)
	return err
}
