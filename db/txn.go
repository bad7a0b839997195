package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// This file holds what the SQL systems (postgres, galera) share of the
// transactional workloads: the micro-operations of a txn, run in order on
// an open transaction of the system's own, and the two errors that decide
// whether a failed transaction may have happened.

// TxnStore is the micro-operations of a transaction on one system, each
// run inside the transaction. An error from any of them rolls the
// transaction back.
type TxnStore interface {
	// Append adds elem at the end of the list at key, creating it
	// (list-append).
	Append(ctx context.Context, key string, elem history.Value) error
	// ReadList returns the list at key: the empty list when there is
	// none.
	ReadList(ctx context.Context, key string) (history.Value, error)
	// Write sets the register at key to v (rw-register).
	Write(ctx context.Context, key string, v history.Value) error
	// ReadRegister returns the register at key: null when it was never
	// written.
	ReadRegister(ctx context.Context, key string) (history.Value, error)
}

// Tx is an open transaction: its micro-operations and its end.
type Tx interface {
	TxnStore
	// Commit ends the transaction; its error is a [CommitError]'s.
	Commit(ctx context.Context) error
	// Rollback abandons it, as well as it can (its error is not
	// reported: the transaction did not happen either way).
	Rollback(ctx context.Context)
}

// ErrBadTxn marks a transaction the workload does not have: a value that
// is not a list of micro-operations, or a micro-operation of another
// workload. Nothing of it was sent.
var ErrBadTxn = errors.New("bad transaction")

// AbortedError is an error before COMMIT: the transaction was never
// begun, or rolled back (or, with its connection lost, aborted by the
// server): it certainly did not happen.
type AbortedError struct{ Err error }

func (e AbortedError) Error() string { return "before COMMIT: " + e.Err.Error() }
func (e AbortedError) Unwrap() error { return e.Err }

// CommitError is an error of COMMIT itself: whether the transaction
// happened is the system's to say from the error it wraps (one the server
// reported, such as a serialization failure, means it rolled back; a lost
// connection or a timeout leaves it open).
type CommitError struct{ Err error }

func (e CommitError) Error() string { return "COMMIT: " + e.Err.Error() }
func (e CommitError) Unwrap() error { return e.Err }

// Aborted reports whether err ended a transaction before its COMMIT: the
// operation certainly did not happen, whatever the error says.
func Aborted(err error) bool {
	var a AbortedError
	return errors.As(err, &a)
}

// Mop is a micro-operation of a transaction.
type Mop struct {
	// F is "append", "w" or "r".
	F string
	// Key is the key's text (an integer key as its decimal text); KeyValue
	// is the key as the history gave it, which the completion repeats.
	Key      string
	KeyValue history.Value
	// Value is what an append adds or a write sets; null for a read.
	Value history.Value
}

// TxnKey is a micro-operation's key as text: a string as it is, an
// integer as its decimal text.
func TxnKey(k history.Value) (string, bool) {
	if s, ok := k.AsString(); ok {
		return s, true
	}
	if n, ok := k.AsInt(); ok {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// ParseTxn reads a txn's value, the micro-operations of workload w
// ([workload.ListAppend]: append and r; [workload.RWRegister]: w and r).
// An append's element and a write's value are integers or strings. Its
// errors wrap [ErrBadTxn].
func ParseTxn(w string, v history.Value) ([]Mop, error) {
	items, ok := v.AsList()
	if !ok || len(items) == 0 {
		return nil, fmt.Errorf("%w: a txn's value must be a non-empty list of micro-operations, not %s", ErrBadTxn, v)
	}
	write, has := "", ""
	switch w {
	case workload.ListAppend:
		write, has = "append", "append and r"
	case workload.RWRegister:
		write, has = "w", "w and r"
	default:
		return nil, fmt.Errorf("%w: the %s workload has no transactions", ErrBadTxn, w)
	}
	out := make([]Mop, len(items))
	for i, it := range items {
		parts, ok := it.AsList()
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("%w: micro-operation %s is not [f, key, value]", ErrBadTxn, it)
		}
		f, _ := parts[0].AsString()
		if f != write && f != "r" {
			return nil, fmt.Errorf("%w: micro-operation %s (%s has %s)", ErrBadTxn, it, w, has)
		}
		key, ok := TxnKey(parts[1])
		if !ok {
			return nil, fmt.Errorf("%w: micro-operation %s: a key is a string or an integer", ErrBadTxn, it)
		}
		if k := parts[2].Kind(); f == write && k != history.KindInt && k != history.KindString {
			return nil, fmt.Errorf("%w: micro-operation %s: what it writes is an integer or a string", ErrBadTxn, it)
		}
		out[i] = Mop{F: f, Key: key, KeyValue: parts[1], Value: parts[2]}
	}
	return out, nil
}

// RunTxn runs the transaction v of workload w: it parses it, opens a
// transaction with begin, runs the micro-operations in order on it and
// commits. It returns the micro-operations completed, each read with what
// it read. A malformed transaction, an error of begin or of a
// micro-operation (after which it rolls back) is an [AbortedError]; an
// error of COMMIT a [CommitError].
func RunTxn(ctx context.Context, w string, v history.Value, begin func(context.Context) (Tx, error)) (history.Value, error) {
	mops, err := ParseTxn(w, v)
	if err != nil {
		return history.Nil(), AbortedError{err}
	}
	tx, err := begin(ctx)
	if err != nil {
		return history.Nil(), AbortedError{err}
	}
	out := make([]history.Value, len(mops))
	for i, m := range mops {
		if out[i], err = m.run(ctx, w, tx); err != nil {
			tx.Rollback(ctx)
			return history.Nil(), AbortedError{err}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return history.Nil(), CommitError{err}
	}
	return history.List(out...), nil
}

// run runs m on s and returns it completed.
func (m Mop) run(ctx context.Context, w string, s TxnStore) (history.Value, error) {
	f := history.String(m.F)
	switch {
	case m.F == "append":
		return history.List(f, m.KeyValue, m.Value), s.Append(ctx, m.Key, m.Value)
	case m.F == "w":
		return history.List(f, m.KeyValue, m.Value), s.Write(ctx, m.Key, m.Value)
	case w == workload.ListAppend:
		v, err := s.ReadList(ctx, m.Key)
		return history.List(f, m.KeyValue, v), err
	default:
		v, err := s.ReadRegister(ctx, m.Key)
		return history.List(f, m.KeyValue, v), err
	}
}
