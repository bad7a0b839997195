package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/eccheck/eccheck/history"
)

// The transactions. Value holds the micro-operations, and a successful
// Response's Value the same with each read's value filled in. The raft
// mode applies a transaction as one log entry (atomic, strict
// serializable); the other modes run its micro-operations one after
// another, each a register read or write of its own, with nothing holding
// them together.
//
// The two kinds keep their data apart, from each other and from the
// register workload's: a list-append key's list and an rw-register key's
// register are different objects, so neither kind ever reads the other's.
const (
	// OpTxn is a list-append transaction: ["append", key, element] and
	// ["r", key, null], each read completed with the key's list.
	OpTxn Op = "txn"
	// OpRWTxn is an rw-register transaction: ["w", key, value] and
	// ["r", key, null], each read completed with the key's value, null
	// when it was never written.
	OpRWTxn Op = "rw-txn"
)

// isTxn reports whether op is a transaction.
func isTxn(op Op) bool { return op == OpTxn || op == OpRWTxn }

// txnMop is a parsed micro-operation: f, the key (its JSON and its text)
// and an append's element or a write's value (canonical JSON).
type txnMop struct {
	f       string
	keyJSON history.Value
	key     string
	value   history.Value
}

// parseTxn reads the micro-operations of a transaction of kind op (OpTxn
// or OpRWTxn). An append's element and a write's value are numbers or
// strings.
func parseTxn(op Op, v json.RawMessage) ([]txnMop, error) {
	write, has := "append", "list-append has append and r"
	if op == OpRWTxn {
		write, has = "w", "rw-register has w and r"
	}
	hv, err := history.ParseValue(string(v))
	if err != nil {
		return nil, err
	}
	items, ok := hv.AsList()
	if !ok || len(items) == 0 {
		return nil, fmt.Errorf("a transaction is a non-empty list of micro-operations, not %s", hv)
	}
	out := make([]txnMop, len(items))
	for i, it := range items {
		parts, ok := it.AsList()
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("micro-operation %s is not [f, key, value]", it)
		}
		f, _ := parts[0].AsString()
		if f != write && f != "r" {
			return nil, fmt.Errorf("micro-operation %s: %s", it, has)
		}
		m := txnMop{f: f, keyJSON: parts[1], value: parts[2]}
		switch {
		case parts[1].Kind() == history.KindString:
			m.key, _ = parts[1].AsString()
		case parts[1].Kind() == history.KindInt:
			m.key = parts[1].String()
		default:
			return nil, fmt.Errorf("micro-operation %s: a key is a string or an integer", it)
		}
		if f == write && (!parts[2].IsScalar() || parts[2].IsNil()) {
			return nil, fmt.Errorf("micro-operation %s: what it writes is a number or a string", it)
		}
		out[i] = m
	}
	return out, nil
}

// listKey is the register a list lives in, apart from the registers of
// the register workload.
func listKey(key string) string { return "list:" + key }

// rwKey is the register an rw-register key lives in, apart from the
// registers of the register workload and from the lists.
func rwKey(key string) string { return "rw:" + key }

// completed renders a transaction's micro-operations with what its reads
// returned (by position: a list, or a register's value).
func completed(mops []txnMop, reads map[int]history.Value) json.RawMessage {
	out := make([]history.Value, len(mops))
	for i, m := range mops {
		v := m.value
		if m.f == "r" {
			v = reads[i]
		}
		out[i] = history.List(history.String(m.f), m.keyJSON, v)
	}
	return json.RawMessage(history.List(out...).String())
}

// sequentialTxn runs a transaction one micro-operation at a time through
// do. list-append: a read reads the list's register; an append reads it
// and writes it back longer. rw-register: a read and a write are those of
// the key's register. A step that fails after a write was made leaves the
// transaction half applied: the answer is then indeterminate.
func sequentialTxn(ctx context.Context, do func(context.Context, Request) Response, req Request) Response {
	mops, err := parseTxn(req.Op, req.Value)
	if err != nil {
		return badRequest("%s: %v", req.Op, err)
	}
	reads := map[int]history.Value{}
	wrote := false
	fail := func(r Response) Response {
		if wrote && r.Error.Definite() {
			return Response{Error: ErrIndeterminate, Message: "part of the transaction was applied: " + r.Message}
		}
		return r
	}
	for i, m := range mops {
		if req.Op == OpRWTxn && m.f == "w" {
			w := do(ctx, Request{Op: OpWrite, Key: rwKey(m.key), Value: json.RawMessage(m.value.String())})
			if w.Error != "" {
				return fail(w)
			}
			wrote = true
			continue
		}
		if req.Op == OpRWTxn {
			r := do(ctx, Request{Op: OpRead, Key: rwKey(m.key)})
			if r.Error != "" {
				return fail(r)
			}
			v, err := registerOf(r.Value)
			if err != nil {
				return fail(badRequest("%s: key %s holds %s: %v", req.Op, m.key, r.Value, err))
			}
			reads[i] = v
			continue
		}
		r := do(ctx, Request{Op: OpRead, Key: listKey(m.key)})
		if r.Error != "" {
			return fail(r)
		}
		list, err := listOf(r.Value)
		if err != nil {
			return fail(badRequest("%s: key %s holds %s: %v", req.Op, m.key, r.Value, err))
		}
		if m.f == "r" {
			reads[i] = history.List(list...)
			continue
		}
		w := do(ctx, Request{Op: OpWrite, Key: listKey(m.key), Value: json.RawMessage(history.List(append(list, m.value)...).String())})
		if w.Error != "" {
			return fail(w)
		}
		wrote = true
	}
	return Response{Value: completed(mops, reads)}
}

// listOf reads a list's JSON (null: empty).
func listOf(v json.RawMessage) ([]history.Value, error) {
	if len(v) == 0 {
		return nil, nil
	}
	hv, err := history.ParseValue(string(v))
	if err != nil {
		return nil, err
	}
	if hv.IsNil() {
		return nil, nil
	}
	items, ok := hv.AsList()
	if !ok {
		return nil, fmt.Errorf("not a list")
	}
	return items, nil
}

// registerOf reads an rw-register value's JSON (empty: null, never
// written).
func registerOf(v json.RawMessage) (history.Value, error) {
	if len(v) == 0 {
		return history.Nil(), nil
	}
	hv, err := history.ParseValue(string(v))
	if err != nil {
		return history.Nil(), err
	}
	if !hv.IsScalar() {
		return history.Nil(), fmt.Errorf("not a number or a string")
	}
	return hv, nil
}
