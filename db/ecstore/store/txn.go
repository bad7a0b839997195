package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/eccheck/eccheck/history"
)

// OpTxn is a list-append transaction: Value holds its micro-operations,
// ["append", key, element] and ["r", key, null], and a successful
// Response's Value the same with each read's list filled in. The raft
// mode applies a transaction as one log entry (atomic, strict
// serializable); the other modes run its micro-operations one after
// another, each a register read or a read and a write of the key's list,
// with nothing holding them together.
const OpTxn Op = "txn"

// txnMop is a parsed micro-operation: f, the key (its JSON and its text)
// and an append's element (canonical JSON).
type txnMop struct {
	f       string
	keyJSON history.Value
	key     string
	elem    history.Value
}

// parseTxn reads a transaction's micro-operations.
func parseTxn(v json.RawMessage) ([]txnMop, error) {
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
		if f != "append" && f != "r" {
			return nil, fmt.Errorf("micro-operation %s: list-append has append and r", it)
		}
		m := txnMop{f: f, keyJSON: parts[1], elem: parts[2]}
		switch {
		case parts[1].Kind() == history.KindString:
			m.key, _ = parts[1].AsString()
		case parts[1].Kind() == history.KindInt:
			m.key = parts[1].String()
		default:
			return nil, fmt.Errorf("micro-operation %s: a key is a string or an integer", it)
		}
		if f == "append" && !parts[2].IsScalar() {
			return nil, fmt.Errorf("micro-operation %s: an element is a number or a string", it)
		}
		out[i] = m
	}
	return out, nil
}

// listKey is the register a list lives in, apart from the registers of
// the register workload.
func listKey(key string) string { return "list:" + key }

// completed renders a transaction's micro-operations with the lists its
// reads returned.
func completed(mops []txnMop, reads map[int][]history.Value) json.RawMessage {
	out := make([]history.Value, len(mops))
	for i, m := range mops {
		if m.f == "r" {
			out[i] = history.List(history.String("r"), m.keyJSON, history.List(reads[i]...))
		} else {
			out[i] = history.List(history.String("append"), m.keyJSON, m.elem)
		}
	}
	return json.RawMessage(history.List(out...).String())
}

// sequentialTxn runs a transaction one micro-operation at a time through
// do: a read reads the list's register; an append reads it and writes it
// back longer. A step that fails after an append was written leaves the
// transaction half applied: the answer is then indeterminate.
func sequentialTxn(ctx context.Context, do func(context.Context, Request) Response, req Request) Response {
	mops, err := parseTxn(req.Value)
	if err != nil {
		return badRequest("txn: %v", err)
	}
	reads := map[int][]history.Value{}
	wrote := false
	fail := func(r Response) Response {
		if wrote && r.Error.Definite() {
			return Response{Error: ErrIndeterminate, Message: "part of the transaction was applied: " + r.Message}
		}
		return r
	}
	for i, m := range mops {
		r := do(ctx, Request{Op: OpRead, Key: listKey(m.key)})
		if r.Error != "" {
			return fail(r)
		}
		list, err := listOf(r.Value)
		if err != nil {
			return fail(badRequest("txn: key %s holds %s: %v", m.key, r.Value, err))
		}
		if m.f == "r" {
			reads[i] = list
			continue
		}
		w := do(ctx, Request{Op: OpWrite, Key: listKey(m.key), Value: json.RawMessage(history.List(append(list, m.elem)...).String())})
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
