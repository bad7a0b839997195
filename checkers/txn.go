package checkers

import (
	"fmt"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// FTxn is the operation function of a transaction: its value is a list of
// micro-operations, ["append", key, element], ["r", key, null] (completed
// as ["r", key, [elements...]] in list-append, or ["r", key, value] in
// rw-register) and ["w", key, value].
const FTxn = "txn"

// The micro-operation functions.
const (
	MopAppend = "append"
	MopRead   = "r"
	MopWrite  = "w"
)

// mop is one micro-operation of a transaction.
type mop struct {
	f string
	// key is the key's JSON text (a string or an integer key).
	key string
	// arg is an append's element or a write's value; res a read's result
	// (a list in list-append), nil in an invocation.
	arg history.Scalar
	res history.Value
}

// txn is a transaction of the history.
type txn struct {
	op   history.Operation
	mops []mop
}

// name is how an anomaly names the transaction: by the history line of
// its invocation.
func (t *txn) name() string { return fmt.Sprintf("T%d", t.op.Invoke) }

// parseTxn reads the micro-operations of a txn operation. A read's result
// is taken only from a transaction that completed ok (the paired value is
// then the completion's).
func parseTxn(o history.Operation) (*txn, error) {
	items, ok := o.Value.AsList()
	if !ok {
		return nil, fmt.Errorf("op %d: a txn's value must be a list of micro-operations, not %s", o.Invoke, o.Value)
	}
	t := &txn{op: o, mops: make([]mop, 0, len(items))}
	for i, it := range items {
		parts, ok := it.AsList()
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("op %d: micro-operation %d is %s, want [f, key, value]", o.Invoke, i, it)
		}
		f, ok := parts[0].AsString()
		if !ok || f != MopAppend && f != MopRead && f != MopWrite {
			return nil, fmt.Errorf("op %d: micro-operation %d is %s: want f append, r or w", o.Invoke, i, it)
		}
		k := parts[1]
		if k.Kind() != history.KindString && k.Kind() != history.KindInt {
			return nil, fmt.Errorf("op %d: micro-operation %d is %s: a key is a string or an integer", o.Invoke, i, it)
		}
		m := mop{f: f, key: k.String()}
		switch f {
		case MopRead:
			if o.Type == history.OK {
				m.res = parts[2]
			}
		default:
			if !parts[2].IsScalar() || parts[2].IsNil() {
				return nil, fmt.Errorf("op %d: micro-operation %d is %s: an element or a value is an integer or a string", o.Invoke, i, it)
			}
			m.arg = parts[2].Scalar()
		}
		t.mops = append(t.mops, m)
	}
	return t, nil
}

// txnKind says which transactional workload the micro-operations of ops
// are: list-append when they append, rw-register when they write; "" when
// neither (reads only), and an error when both.
func txnKind(ops []history.Operation) (Workload, error) {
	var appends, writes int
	for _, o := range ops {
		if o.F != FTxn {
			continue
		}
		items, _ := o.Value.AsList()
		for _, it := range items {
			parts, _ := it.AsList()
			if len(parts) == 0 {
				continue
			}
			switch f, _ := parts[0].AsString(); f {
			case MopAppend:
				appends++
			case MopWrite:
				writes++
			}
		}
	}
	switch {
	case appends > 0 && writes > 0:
		return "", fmt.Errorf("the transactions both append (%d) and write (%d): a history is list-append or rw-register, not both", appends, writes)
	case writes > 0:
		return WorkloadRWRegister, nil
	case appends > 0:
		return WorkloadListAppend, nil
	}
	return "", nil
}

// listText renders a read's list briefly, for explanations.
func listText(v history.Value) string {
	items, ok := v.AsList()
	if !ok {
		return v.String()
	}
	if len(items) <= 8 {
		return v.String()
	}
	parts := make([]string, 0, 7)
	for _, it := range items[:3] {
		parts = append(parts, it.String())
	}
	parts = append(parts, "...")
	for _, it := range items[len(items)-3:] {
		parts = append(parts, it.String())
	}
	return "[" + strings.Join(parts, ",") + "] (" + fmt.Sprint(len(items)) + " elements)"
}
