package db

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// memTx is a transaction on an in-memory store: its changes are staged
// and become the store's on Commit. failOn makes the micro-operation on
// that key fail, commitErr the commit.
type memTx struct {
	store     *memDB
	lists     map[string][]history.Value
	regs      map[string]history.Value
	failOn    string
	commitErr error
	rolled    bool
}

type memDB struct {
	lists map[string][]history.Value
	regs  map[string]history.Value
}

func (m *memDB) begin(failOn string, commitErr error) *memTx {
	return &memTx{store: m, lists: maps.Clone(m.lists), regs: maps.Clone(m.regs), failOn: failOn, commitErr: commitErr}
}

var errInjected = errors.New("injected")

func (t *memTx) fail(key string) error {
	if key == t.failOn {
		return errInjected
	}
	return nil
}

func (t *memTx) Append(_ context.Context, key string, elem history.Value) error {
	t.lists[key] = append(t.lists[key], elem)
	return t.fail(key)
}
func (t *memTx) ReadList(_ context.Context, key string) (history.Value, error) {
	return history.List(t.lists[key]...), t.fail(key)
}
func (t *memTx) Write(_ context.Context, key string, v history.Value) error {
	t.regs[key] = v
	return t.fail(key)
}
func (t *memTx) ReadRegister(_ context.Context, key string) (history.Value, error) {
	return t.regs[key], t.fail(key)
}
func (t *memTx) Commit(context.Context) error {
	if t.commitErr != nil {
		return t.commitErr
	}
	t.store.lists, t.store.regs = t.lists, t.regs
	return nil
}
func (t *memTx) Rollback(context.Context) { t.rolled = true }

func TestParseTxn(t *testing.T) {
	for _, tc := range []struct {
		name, workload, value, want string // want: "" for parsed, else a part of the error
	}{
		{"list-append/append and r/parsed", workload.ListAppend, `[["append","x",1],["r",5,null]]`, ""},
		{"list-append/string element/parsed", workload.ListAppend, `[["append","x","a"]]`, ""},
		{"list-append/w/refused", workload.ListAppend, `[["append","x",1],["w","x",2]]`, "(list-append has append and r)"},
		{"rw-register/w and r/parsed", workload.RWRegister, `[["w","x",1],["r","x",null],["w",7,"s"]]`, ""},
		{"rw-register/append/refused", workload.RWRegister, `[["append","x",1]]`, "(rw-register has w and r)"},
		{"rw-register/write of null/refused", workload.RWRegister, `[["w","x",null]]`, "an integer or a string"},
		{"rw-register/write of a list/refused", workload.RWRegister, `[["w","x",[1]]]`, "an integer or a string"},
		{"any/key a list/refused", workload.RWRegister, `[["r",[1],null]]`, "a key is a string or an integer"},
		{"any/two-part micro-operation/refused", workload.ListAppend, `[["r","x"]]`, "is not [f, key, value]"},
		{"any/empty/refused", workload.ListAppend, `[]`, "non-empty list"},
		{"any/not a list/refused", workload.ListAppend, `7`, "non-empty list"},
		{"register/a txn/refused", workload.Register, `[["r","x",null]]`, "has no transactions"},
	} {
		v, err := history.ParseValue(tc.value)
		if err != nil {
			t.Fatal(err)
		}
		mops, err := ParseTxn(tc.workload, v)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && len(mops) == 0:
			t.Errorf("%s: no micro-operations", tc.name)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBadTxn)):
			t.Errorf("%s: %v, want ErrBadTxn naming %q", tc.name, err, tc.want)
		}
	}
}

// RunTxn runs the micro-operations in order on one transaction: reads see
// the transaction's own earlier writes and come back with what they read
// (an rw-register read of a never-written key: null), keys keep the form
// the history gave them; an error of a micro-operation rolls back (an
// AbortedError), an error of COMMIT is a CommitError, a malformed
// transaction never begins.
func TestRunTxn(t *testing.T) {
	ctx := context.Background()
	store := &memDB{lists: map[string][]history.Value{}, regs: map[string]history.Value{}}
	run := func(w, value, failOn string, commitErr error) (history.Value, error, *memTx) {
		t.Helper()
		v, err := history.ParseValue(value)
		if err != nil {
			t.Fatal(err)
		}
		var tx *memTx
		out, err := RunTxn(ctx, w, v, func(context.Context) (Tx, error) {
			tx = store.begin(failOn, commitErr)
			return tx, nil
		})
		return out, err, tx
	}
	for _, tc := range []struct {
		name, workload, value, want string
	}{
		{"list-append/reads see own appends", workload.ListAppend, `[["r","x",null],["append","x",1],["r","x",null],["append",5,2],["r",5,null]]`,
			`[["r","x",[]],["append","x",1],["r","x",[1]],["append",5,2],["r",5,[2]]]`},
		{"list-append/a later transaction sees the committed list", workload.ListAppend, `[["append","x",3],["r","x",null]]`,
			`[["append","x",3],["r","x",[1,3]]]`},
		{"rw-register/never written: null, then own write", workload.RWRegister, `[["r","y",null],["w","y",10],["r","y",null],["w","y",11],["r","y",null]]`,
			`[["r","y",null],["w","y",10],["r","y",10],["w","y",11],["r","y",11]]`},
		{"rw-register/a later transaction sees the last write", workload.RWRegister, `[["r","y",null],["r","x",null]]`,
			`[["r","y",11],["r","x",null]]`},
	} {
		out, err, _ := run(tc.workload, tc.value, "", nil)
		if err != nil || out.String() != tc.want {
			t.Errorf("%s: %s %v, want %s", tc.name, out, err, tc.want)
		}
	}

	out, err, tx := run(workload.RWRegister, `[["w","y",12],["w","z",13]]`, "z", nil)
	if !Aborted(err) || !errors.Is(err, errInjected) || !out.IsNil() || !tx.rolled {
		t.Errorf("rw-register/a micro-operation fails/rolled back, aborted: %s %v (rolled back %v)", out, err, tx.rolled)
	}
	if store.regs["y"].String() != "11" {
		t.Errorf("rw-register/a micro-operation fails/nothing of it stays: y is %s", store.regs["y"])
	}
	commitErr := errors.New("connection lost")
	out, err, _ = run(workload.RWRegister, `[["w","y",14]]`, "", commitErr)
	var ce CommitError
	if Aborted(err) || !errors.As(err, &ce) || !errors.Is(err, commitErr) || !out.IsNil() {
		t.Errorf("rw-register/COMMIT fails/a CommitError, not aborted: %v", err)
	}
	out, err, tx = run(workload.ListAppend, `[["append","x",4],["w","x",5]]`, "", nil)
	if !Aborted(err) || !errors.Is(err, ErrBadTxn) || tx != nil {
		t.Errorf("list-append/a w micro-operation/aborted before begin: %s %v (begun %v)", out, err, tx != nil)
	}
	began := errors.New("no connection")
	_, err = RunTxn(ctx, workload.ListAppend, history.List(history.List(history.String("r"), history.String("x"), history.Nil())),
		func(context.Context) (Tx, error) { return nil, began })
	if !Aborted(err) || !errors.Is(err, began) {
		t.Errorf("any/begin fails/aborted: %v", err)
	}
}
