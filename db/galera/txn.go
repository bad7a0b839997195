package galera

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eccheck/eccheck/db"
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

// The statements of the micro-operations. list-append: an append adds an
// element at the end of the key's JSON array (creating it); a read
// returns the array (no row: the empty list). rw-register, and the
// register workload's write and read: a write sets the key's register (its
// JSON text), a read returns it (no row: null).
const (
	AppendSQL        = `INSERT INTO lists (k, v) VALUES (?, JSON_ARRAY(?)) ON DUPLICATE KEY UPDATE v = JSON_MERGE_PRESERVE(v, JSON_ARRAY(?))`
	ReadListSQL      = `SELECT v FROM lists WHERE k = ?`
	WriteRegisterSQL = `INSERT INTO registers (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)`
	ReadRegisterSQL  = `SELECT v FROM registers WHERE k = ?`
)

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

// WriteRegister sets the register at key to v (rw-register).
func WriteRegister(ctx context.Context, tx Appender, key string, v history.Value) error {
	_, err := tx.ExecContext(ctx, WriteRegisterSQL, key, v.String())
	return err
}

// ReadRegister reads the register at key: null when it was never
// written.
func ReadRegister(ctx context.Context, tx Appender, key string) (history.Value, error) {
	var s string
	err := tx.QueryRowContext(ctx, ReadRegisterSQL, key).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return history.Nil(), nil
	}
	if err != nil {
		return history.Nil(), err
	}
	return parse(s)
}

// sqlTx is a database/sql transaction as the shared transaction loop
// runs it.
type sqlTx struct{ tx *sql.Tx }

var _ db.Tx = sqlTx{}

func (t sqlTx) Append(ctx context.Context, key string, elem history.Value) error {
	return AppendList(ctx, t.tx, key, elem)
}
func (t sqlTx) ReadList(ctx context.Context, key string) (history.Value, error) {
	return ReadList(ctx, t.tx, key)
}
func (t sqlTx) Write(ctx context.Context, key string, v history.Value) error {
	return WriteRegister(ctx, t.tx, key, v)
}
func (t sqlTx) ReadRegister(ctx context.Context, key string) (history.Value, error) {
	return ReadRegister(ctx, t.tx, key)
}
func (t sqlTx) Commit(context.Context) error { return t.tx.Commit() }
func (t sqlTx) Rollback(context.Context)     { t.tx.Rollback() }

// txn runs a list-append or rw-register transaction on the write node at
// the client's isolation level and returns its micro-operations
// completed; see [db.RunTxn] for its errors.
func (c *Client) txn(ctx context.Context, op history.Op) (history.Value, error) {
	iso := c.opts.Isolation
	if iso == "" {
		iso = IsolationRepeatableRead
	}
	level, ok := sqlLevels[iso]
	if !ok {
		return history.Nil(), fmt.Errorf("%w: isolation %q", errUsage, iso)
	}
	return db.RunTxn(ctx, c.opts.Workload, op.Value, func(ctx context.Context) (db.Tx, error) {
		tx, err := c.write.BeginTx(ctx, &sql.TxOptions{Isolation: level})
		if err != nil {
			return nil, err
		}
		return sqlTx{tx}, nil
	})
}
