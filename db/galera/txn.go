package galera

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/eccheck/eccheck/history"
)

// The isolation levels of --galera-isolation, as eccheck names them.
const (
	IsolationReadCommitted  = "read-committed"
	IsolationRepeatableRead = "repeatable-read" // MariaDB's default
)

// Isolations lists the isolation levels of --galera-isolation. Galera
// does not support SERIALIZABLE across nodes (it certifies row keys, not
// reads), so it is not offered.
var Isolations = []string{IsolationReadCommitted, IsolationRepeatableRead}

var sqlLevels = map[string]sql.IsolationLevel{
	IsolationReadCommitted:  sql.LevelReadCommitted,
	IsolationRepeatableRead: sql.LevelRepeatableRead,
}

// The statements of a list-append micro-operation: an append adds an
// element at the end of the key's JSON array (creating it); a read returns
// the array (no row: the empty list).
const (
	AppendSQL   = `INSERT INTO lists (k, v) VALUES (?, JSON_ARRAY(?)) ON DUPLICATE KEY UPDATE v = JSON_MERGE_PRESERVE(v, JSON_ARRAY(?))`
	ReadListSQL = `SELECT v FROM lists WHERE k = ?`
)

// abortedError is an error before COMMIT: the transaction was rolled back
// (or aborted with its connection): it certainly did not happen.
type abortedError struct{ err error }

func (e abortedError) Error() string { return "before COMMIT: " + e.err.Error() }
func (e abortedError) Unwrap() error { return e.err }

// commitError is an error of COMMIT itself: a certification failure (a
// deadlock error) means it rolled back; a lost connection leaves the
// outcome open (see Classify).
type commitError struct{ err error }

func (e commitError) Error() string { return "COMMIT: " + e.err.Error() }
func (e commitError) Unwrap() error { return e.err }

// mopKey is the lists' key of a micro-operation's key.
func mopKey(k history.Value) (string, bool) {
	if s, ok := k.AsString(); ok {
		return s, true
	}
	if n, ok := k.AsInt(); ok {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// scalarArg is an element as a statement argument.
func scalarArg(v history.Value) (any, bool) {
	if n, ok := v.AsInt(); ok {
		return n, true
	}
	if s, ok := v.AsString(); ok {
		return s, true
	}
	return nil, false
}

// Appender runs the statements of list-append on a transaction or a
// connection.
type Appender interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// AppendList appends elem to the list at key.
func AppendList(ctx context.Context, tx Appender, key string, elem history.Value) error {
	arg, ok := scalarArg(elem)
	if !ok {
		return fmt.Errorf("%w: element %s is not an integer or a string", errUsage, elem)
	}
	_, err := tx.ExecContext(ctx, AppendSQL, key, arg, arg)
	return err
}

// ReadList reads the list at key.
func ReadList(ctx context.Context, tx Appender, key string) (history.Value, error) {
	var s string
	err := tx.QueryRowContext(ctx, ReadListSQL, key).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return history.List(), nil
	}
	if err != nil {
		return history.Nil(), err
	}
	v, err := history.ParseValue(s)
	if err != nil {
		return history.Nil(), fmt.Errorf("unreadable list %q: %w", s, err)
	}
	return v, nil
}

// txn runs a list-append transaction on the write node at the client's
// isolation level and returns its micro-operations completed.
func (c *Client) txn(ctx context.Context, op history.Op) (history.Value, error) {
	items, ok := op.Value.AsList()
	if !ok {
		return history.Nil(), fmt.Errorf("%w: a txn's value must be a list of micro-operations, not %s", errUsage, op.Value)
	}
	iso := c.opts.Isolation
	if iso == "" {
		iso = IsolationRepeatableRead
	}
	level, ok := sqlLevels[iso]
	if !ok {
		return history.Nil(), fmt.Errorf("%w: isolation %q", errUsage, iso)
	}
	tx, err := c.write.BeginTx(ctx, &sql.TxOptions{Isolation: level})
	if err != nil {
		return history.Nil(), abortedError{err}
	}
	rollback := func(err error) (history.Value, error) {
		tx.Rollback()
		return history.Nil(), abortedError{err}
	}
	out := make([]history.Value, len(items))
	for i, it := range items {
		parts, ok := it.AsList()
		if !ok || len(parts) != 3 {
			return rollback(fmt.Errorf("%w: micro-operation %s is not [f, key, value]", errUsage, it))
		}
		f, _ := parts[0].AsString()
		key, ok := mopKey(parts[1])
		if !ok {
			return rollback(fmt.Errorf("%w: micro-operation %s: a key is a string or an integer", errUsage, it))
		}
		switch f {
		case "append":
			if err := AppendList(ctx, tx, key, parts[2]); err != nil {
				return rollback(err)
			}
			out[i] = it
		case "r":
			v, err := ReadList(ctx, tx, key)
			if err != nil {
				return rollback(err)
			}
			out[i] = history.List(parts[0], parts[1], v)
		default:
			return rollback(fmt.Errorf("%w: micro-operation %q (list-append has append and r)", errUsage, f))
		}
	}
	if err := tx.Commit(); err != nil {
		return history.Nil(), commitError{err}
	}
	return history.List(out...), nil
}
