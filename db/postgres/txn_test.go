package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// txnLog builds the history of transactions a test runs step by step:
// each transaction's invocation when it begins, its completion (with what
// its reads returned) when it commits or fails.
type txnLog struct {
	h    history.History
	now  int64
	open map[history.Process][]history.Value
}

func (l *txnLog) line(op history.Op) {
	l.now += 1000
	op.Index, op.Time = int64(len(l.h)), l.now
	l.h = append(l.h, op)
}

// begin records the invocation of process p's transaction of mops (reads
// with null values).
func (l *txnLog) begin(p history.Process, mops ...history.Value) {
	if l.open == nil {
		l.open = map[history.Process][]history.Value{}
	}
	l.open[p] = mops
	l.line(history.Op{Process: p, Type: history.Invoke, F: "txn", Value: history.List(mops...)})
}

// end records its completion: ok with what the reads returned, or fail.
func (l *txnLog) end(p history.Process, typ history.Type, done ...history.Value) {
	v := history.List(done...)
	if typ != history.OK {
		v = history.List(l.open[p]...)
	}
	l.line(history.Op{Process: p, Type: typ, F: "txn", Value: v})
}

func mopR(k string, v history.Value) history.Value {
	return history.List(history.String("r"), history.String(k), v)
}
func mopA(k string, e int64) history.Value {
	return history.List(history.String("append"), history.String(k), history.Int(e))
}
func mopW(k string, v int64) history.Value {
	return history.List(history.String("w"), history.String(k), history.Int(v))
}

// check runs the transactional checker on the log under model.
func (l *txnLog) check(t *testing.T, model string) checkers.Result {
	t.Helper()
	if err := history.Validate(l.h); err != nil {
		t.Fatal(err)
	}
	return checkers.Transactional(context.Background(), checkers.NewInput(l.h), checkers.Options{ConsistencyModel: model})
}

func kindsFound(r checkers.Result) []string {
	var out []string
	for _, a := range r.Anomalies {
		out = append(out, a.Kind)
	}
	return out
}

// TestPostgresTransactionsByConstruction drives Postgres transactions
// step by step, so that each isolation level's anomaly happens by
// construction, and holds the transactional checker to what Postgres
// documents: at repeatable read (snapshot isolation) two transactions
// that read x and y and each append to a different one both commit
// (write skew: G2-item, which snapshot isolation allows); at serializable
// one of them fails; at read committed a transaction reads x before and y
// after another committed appends to both (read skew: G-single, which
// read committed allows); at repeatable read it does not. The client runs
// a whole transaction through Invoke too, list-append and rw-register. On
// registers, read committed lets two transactions that read x both write
// it (a lost update, which snapshot isolation forbids); repeatable read
// refuses the second.
func TestPostgresTransactionsByConstruction(t *testing.T) {
	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dockertest.Images(t, c, Image)
	name := fmt.Sprintf("pgtxn%d", os.Getpid()%100000)
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.Down(dctx, name)
	})
	pc, err := Up(ctx, c, Options{Name: name, Nodes: 1, Progress: dockertest.Writer(t)})
	if err != nil {
		t.Fatal(err)
	}
	dsn := pc.PrimaryDSN()
	if err := Setup(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	conn := func() *pgx.Conn {
		t.Helper()
		cn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Close(context.Background()) })
		return cn
	}
	c1, c2 := conn(), conn()
	begin := func(cn *pgx.Conn, iso string) pgx.Tx {
		t.Helper()
		tx, err := cn.BeginTx(ctx, pgx.TxOptions{IsoLevel: isoLevels[iso]})
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	read := func(tx pgx.Tx, k string) history.Value {
		t.Helper()
		v, err := ReadTx(ctx, tx, k)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	serialization := func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "40001"
	}

	// Write skew: both read x and y, one appends to x, the other to y.
	writeSkew := func(iso, x, y string) *txnLog {
		l := &txnLog{}
		l.begin(1, mopR(x, history.Nil()), mopR(y, history.Nil()), mopA(x, 1))
		l.begin(2, mopR(x, history.Nil()), mopR(y, history.Nil()), mopA(y, 1))
		t1, t2 := begin(c1, iso), begin(c2, iso)
		r1x, r1y, r2x, r2y := read(t1, x), read(t1, y), read(t2, x), read(t2, y)
		e1, e2 := AppendTx(ctx, t1, x, history.Int(1)), AppendTx(ctx, t2, y, history.Int(1))
		if e1 == nil {
			e1 = t1.Commit(ctx)
		} else {
			t1.Rollback(ctx)
		}
		if e2 == nil {
			e2 = t2.Commit(ctx)
		} else {
			t2.Rollback(ctx)
		}
		for i, e := range []error{e1, e2} {
			p := history.Process(i + 1)
			switch {
			case e == nil && p == 1:
				l.end(p, history.OK, mopR(x, r1x), mopR(y, r1y), mopA(x, 1))
			case e == nil:
				l.end(p, history.OK, mopR(x, r2x), mopR(y, r2y), mopA(y, 1))
			case serialization(e):
				l.end(p, history.Fail)
			default:
				t.Fatalf("%s write skew: transaction %d: %v", iso, p, e)
			}
		}
		// A reader after both shows the keys' orders.
		l.begin(3, mopR(x, history.Nil()), mopR(y, history.Nil()))
		t3 := begin(c1, IsolationSerializable)
		r3x, r3y := read(t3, x), read(t3, y)
		if err := t3.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		l.end(3, history.OK, mopR(x, r3x), mopR(y, r3y))
		return l
	}
	outcomes := func(l *txnLog) map[history.Process]history.Type {
		out := map[history.Process]history.Type{}
		for _, op := range l.h {
			if op.Type != history.Invoke {
				out[op.Process] = op.Type
			}
		}
		return out
	}
	rr := writeSkew(IsolationRepeatableRead, "ws-x1", "ws-y1")
	if o := outcomes(rr); o[1] != history.OK || o[2] != history.OK {
		t.Fatalf("repeatable read: both write-skew transactions should commit: %v", o)
	}
	if r := rr.check(t, checkers.ModelSerializable); r.Verdict != checkers.Invalid || !slices.Contains(kindsFound(r), checkers.AnomalyG2Item) {
		t.Errorf("repeatable read write skew, checked for serializable: %s %v, want G2-item", r.Verdict, kindsFound(r))
	}
	if r := rr.check(t, checkers.ModelSnapshotIsolation); r.Verdict != checkers.Valid {
		t.Errorf("repeatable read write skew, checked for snapshot isolation: %s %v (%s), want valid", r.Verdict, kindsFound(r), r.Summary)
	}
	ser := writeSkew(IsolationSerializable, "ws-x2", "ws-y2")
	if o := outcomes(ser); !(o[1] == history.OK && o[2] == history.Fail || o[1] == history.Fail && o[2] == history.OK) {
		t.Errorf("serializable write skew: outcomes %v, want one committed and one failed (a serialization failure)", o)
	}
	if r := ser.check(t, checkers.ModelStrictSerializable); r.Verdict != checkers.Valid {
		t.Errorf("serializable write skew, checked for strict-serializable: %s %v, want valid", r.Verdict, kindsFound(r))
	}

	// Read skew: T1 reads x, T2 appends to x and y and commits, T1 reads y.
	readSkew := func(iso, x, y string) *txnLog {
		l := &txnLog{}
		l.begin(1, mopR(x, history.Nil()), mopR(y, history.Nil()))
		t1 := begin(c1, iso)
		r1x := read(t1, x)
		l.begin(2, mopA(x, 1), mopA(y, 1))
		t2 := begin(c2, iso)
		if err := AppendTx(ctx, t2, x, history.Int(1)); err != nil {
			t.Fatal(err)
		}
		if err := AppendTx(ctx, t2, y, history.Int(1)); err != nil {
			t.Fatal(err)
		}
		if err := t2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		l.end(2, history.OK, mopA(x, 1), mopA(y, 1))
		r1y := read(t1, y)
		if err := t1.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		l.end(1, history.OK, mopR(x, r1x), mopR(y, r1y))
		return l
	}
	rc := readSkew(IsolationReadCommitted, "rs-x1", "rs-y1")
	if r := rc.check(t, checkers.ModelSnapshotIsolation); r.Verdict != checkers.Invalid || !slices.Contains(kindsFound(r), checkers.AnomalyGSingle) {
		t.Errorf("read committed read skew, checked for snapshot isolation: %s %v, want G-single", r.Verdict, kindsFound(r))
	}
	if r := rc.check(t, checkers.ModelReadCommitted); r.Verdict != checkers.Valid || r.Stats["found_G-single"] != 1 {
		t.Errorf("read committed read skew, checked for read committed: %s %v, want valid with the G-single counted as allowed", r.Verdict, r.Stats)
	}
	if r := readSkew(IsolationRepeatableRead, "rs-x2", "rs-y2").check(t, checkers.ModelSnapshotIsolation); r.Verdict != checkers.Valid {
		t.Errorf("repeatable read, the same steps, checked for snapshot isolation: %s %v, want valid", r.Verdict, kindsFound(r))
	}

	// The client runs a whole transaction.
	cl := NewClient(dsn, ClientOptions{Workload: ListAppend, Isolation: IsolationSerializable})
	defer cl.Close(context.Background())
	op := history.Op{Process: 9, Type: history.Invoke, F: "txn", Value: history.List(mopA("cl", 1), mopR("cl", history.Nil()), mopA("cl", 2), mopR("cl", history.Nil()))}
	done := cl.Invoke(ctx, op)
	want := history.List(mopA("cl", 1), mopR("cl", history.Ints(1)), mopA("cl", 2), mopR("cl", history.Ints(1, 2)))
	if done.Type != history.OK || !done.Value.Equal(want) {
		t.Fatalf("client txn: %v %s (%s), want ok %s", done.Type, done.Value, done.Error, want)
	}
	bad := cl.Invoke(ctx, history.Op{Process: 9, Type: history.Invoke, F: "txn", Value: history.List(mopA("cl", 3), history.List(history.String("w"), history.String("cl"), history.Int(4)))})
	if bad.Type != history.Fail {
		t.Fatalf("client txn with a w micro-operation: %v (%s), want fail (rolled back)", bad.Type, bad.Error)
	}
	if after := cl.Invoke(ctx, history.Op{Process: 9, Type: history.Invoke, F: "txn", Value: history.List(mopR("cl", history.Nil()))}); !after.Value.Equal(history.List(mopR("cl", history.Ints(1, 2)))) {
		t.Fatalf("after the failed transaction: %s, want its append rolled back", after.Value)
	}

	// rw-register: a read of a never-written key is null, reads see the
	// transaction's own writes and later the committed ones; an append in
	// it fails before anything is sent; the key's list stays its own.
	rw := NewClient(dsn, ClientOptions{Workload: RWRegister, Isolation: IsolationSerializable})
	defer rw.Close(context.Background())
	for _, step := range []struct {
		name string
		mops []history.Value
		typ  history.Type
		want history.Value
	}{
		{"own writes", []history.Value{mopR("cl", history.Nil()), mopW("cl", 5), mopR("cl", history.Nil()), mopW("cl", 6), mopR("cl", history.Nil())}, history.OK,
			history.List(mopR("cl", history.Nil()), mopW("cl", 5), mopR("cl", history.Int(5)), mopW("cl", 6), mopR("cl", history.Int(6)))},
		{"an append", []history.Value{mopW("cl", 7), mopA("cl", 8)}, history.Fail, history.Nil()},
		{"committed", []history.Value{mopR("cl", history.Nil())}, history.OK, history.List(mopR("cl", history.Int(6)))},
	} {
		done := rw.Invoke(ctx, history.Op{Process: 10, Type: history.Invoke, F: "txn", Value: history.List(step.mops...)})
		if done.Type != step.typ || step.typ == history.OK && !done.Value.Equal(step.want) {
			t.Fatalf("rw-register client/%s: %v %s (%s), want %v %s", step.name, done.Type, done.Value, done.Error, step.typ, step.want)
		}
	}
	if after := cl.Invoke(ctx, history.Op{Process: 9, Type: history.Invoke, F: "txn", Value: history.List(mopR("cl", history.Nil()))}); !after.Value.Equal(history.List(mopR("cl", history.Ints(1, 2)))) {
		t.Fatalf("list-append after rw-register writes of the key: %s, want the list as it was", after.Value)
	}

	// Lost update on registers: T1 and T2 read x, T2 writes it and
	// commits, then T1 writes it. Read committed lets T1's update act on
	// T2's row and commit (a lost update, which snapshot isolation
	// forbids); repeatable read refuses T1 (could not serialize access
	// due to concurrent update).
	lostUpdate := func(iso, x string) *txnLog {
		l := &txnLog{}
		l.begin(1, mopR(x, history.Nil()), mopW(x, 1))
		l.begin(2, mopR(x, history.Nil()), mopW(x, 2))
		t1, t2 := begin(c1, iso), begin(c2, iso)
		r1, err := ReadRegisterTx(ctx, t1, x)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ReadRegisterTx(ctx, t2, x)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteTx(ctx, t2, x, history.Int(2)); err != nil {
			t.Fatal(err)
		}
		if err := t2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		l.end(2, history.OK, mopR(x, r2), mopW(x, 2))
		e1 := WriteTx(ctx, t1, x, history.Int(1))
		if e1 == nil {
			e1 = t1.Commit(ctx)
		} else {
			t1.Rollback(ctx)
		}
		switch {
		case e1 == nil:
			l.end(1, history.OK, mopR(x, r1), mopW(x, 1))
		case serialization(e1):
			l.end(1, history.Fail)
		default:
			t.Fatalf("%s lost update: T1: %v", iso, e1)
		}
		// A reader after both shows which write is the last.
		l.begin(3, mopR(x, history.Nil()))
		t3 := begin(c1, IsolationSerializable)
		r3, err := ReadRegisterTx(ctx, t3, x)
		if err != nil {
			t.Fatal(err)
		}
		if err := t3.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		l.end(3, history.OK, mopR(x, r3))
		return l
	}
	rcLost := lostUpdate(IsolationReadCommitted, "lu-x1")
	if o := outcomes(rcLost); o[1] != history.OK || o[2] != history.OK {
		t.Fatalf("read committed lost update: both transactions should commit: %v", o)
	}
	if r := rcLost.check(t, checkers.ModelSnapshotIsolation); r.Verdict != checkers.Invalid || !slices.Contains(kindsFound(r), checkers.AnomalyLostUpdate) {
		t.Errorf("read committed lost update, checked for snapshot isolation: %s %v (%s), want lost-update", r.Verdict, kindsFound(r), r.Summary)
	}
	rrLost := lostUpdate(IsolationRepeatableRead, "lu-x2")
	if o := outcomes(rrLost); o[1] != history.Fail || o[2] != history.OK {
		t.Errorf("repeatable read lost update: outcomes %v, want T1 refused (a serialization failure)", o)
	}
	if r := rrLost.check(t, checkers.ModelStrictSerializable); r.Verdict != checkers.Valid {
		t.Errorf("repeatable read, the same steps, checked for strict-serializable: %s %v (%s), want valid", r.Verdict, kindsFound(r), r.Summary)
	}
}
