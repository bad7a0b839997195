package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/history"
)

// ListAppend is the workload of list-append transactions (f txn): each
// transaction appends elements to lists and reads lists, several keys at
// once (see the history format).
const ListAppend = "list-append"

// The isolation levels a transaction runs at, as eccheck names them.
const (
	IsolationReadCommitted  = "read-committed"
	IsolationRepeatableRead = "repeatable-read"
	IsolationSerializable   = "serializable"
)

// Isolations lists the isolation levels, weakest first.
var Isolations = []string{IsolationReadCommitted, IsolationRepeatableRead, IsolationSerializable}

var isoLevels = map[string]pgx.TxIsoLevel{
	IsolationReadCommitted:  pgx.ReadCommitted,
	IsolationRepeatableRead: pgx.RepeatableRead,
	IsolationSerializable:   pgx.Serializable,
}

// The statements of a list-append micro-operation: an append adds an
// element at the end of the key's JSON array (creating it), a read returns
// the array (no row: the empty list).
const (
	AppendSQL   = `INSERT INTO lists (k, v) VALUES ($1, jsonb_build_array($2::jsonb)) ON CONFLICT (k) DO UPDATE SET v = lists.v || EXCLUDED.v`
	ReadListSQL = `SELECT v::text FROM lists WHERE k = $1`
)

// abortedError is an error before COMMIT: the transaction was rolled back
// (or, with its connection lost, aborted by the server): it certainly did
// not happen.
type abortedError struct{ err error }

func (e abortedError) Error() string { return "before COMMIT: " + e.err.Error() }
func (e abortedError) Unwrap() error { return e.err }

// commitError is an error of COMMIT itself: an error the server reported
// (a serialization failure) means it rolled back; a lost connection or a
// timeout leaves the outcome open.
type commitError struct{ err error }

func (e commitError) Error() string { return "COMMIT: " + e.err.Error() }
func (e commitError) Unwrap() error { return e.err }

// MopKey is the lists' key of a micro-operation's key: a string as it is,
// an integer as its decimal text.
func MopKey(k history.Value) (string, bool) {
	if s, ok := k.AsString(); ok {
		return s, true
	}
	if n, ok := k.AsInt(); ok {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// AppendTx and ReadTx run one micro-operation in tx.
func AppendTx(ctx context.Context, tx pgx.Tx, key string, elem history.Value) error {
	_, err := tx.Exec(ctx, AppendSQL, key, elem.String())
	return err
}

// ReadTx reads the list at key in tx.
func ReadTx(ctx context.Context, tx pgx.Tx, key string) (history.Value, error) {
	var s *string
	err := tx.QueryRow(ctx, ReadListSQL, key).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && s == nil {
		return history.List(), nil
	}
	if err != nil {
		return history.Nil(), err
	}
	v, err := history.ParseValue(*s)
	if err != nil {
		return history.Nil(), fmt.Errorf("unreadable list %q: %w", *s, err)
	}
	return v, nil
}

// txn runs a list-append transaction at the client's isolation level and
// returns its micro-operations completed (reads with what they read).
func (c *Client) txn(ctx context.Context, conn *pgx.Conn, op history.Op) (history.Value, error) {
	items, ok := op.Value.AsList()
	if !ok {
		return history.Nil(), fmt.Errorf("%w: a txn's value must be a list of micro-operations, not %s", errUsage, op.Value)
	}
	level, ok := isoLevels[c.opts.isolation()]
	if !ok {
		return history.Nil(), fmt.Errorf("%w: isolation %q", errUsage, c.opts.Isolation)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: level})
	if err != nil {
		return history.Nil(), abortedError{err}
	}
	rollback := func(err error) (history.Value, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		tx.Rollback(rctx)
		return history.Nil(), abortedError{err}
	}
	out := make([]history.Value, len(items))
	for i, it := range items {
		parts, ok := it.AsList()
		if !ok || len(parts) != 3 {
			return rollback(fmt.Errorf("%w: micro-operation %s is not [f, key, value]", errUsage, it))
		}
		f, _ := parts[0].AsString()
		key, ok := MopKey(parts[1])
		if !ok {
			return rollback(fmt.Errorf("%w: micro-operation %s: a key is a string or an integer", errUsage, it))
		}
		switch f {
		case "append":
			if err := AppendTx(ctx, tx, key, parts[2]); err != nil {
				return rollback(err)
			}
			out[i] = it
		case "r":
			v, err := ReadTx(ctx, tx, key)
			if err != nil {
				return rollback(err)
			}
			out[i] = history.List(parts[0], parts[1], v)
		default:
			return rollback(fmt.Errorf("%w: micro-operation %q (list-append has append and r)", errUsage, f))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return history.Nil(), commitError{err}
	}
	return history.List(out...), nil
}

// isolation is the transactions' isolation level: serializable unless
// set.
func (o ClientOptions) isolation() string {
	if o.Isolation == "" {
		return IsolationSerializable
	}
	return o.Isolation
}
