package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
)

// The transactional workloads (f txn; see the history format).
const (
	// ListAppend is transactions that append elements to lists and read
	// lists, several keys at once.
	ListAppend = "list-append"
	// RWRegister is transactions that write registers (the registers
	// table of the register workload) and read them.
	RWRegister = "rw-register"
)

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

// The statements of the micro-operations. list-append: an append adds an
// element at the end of the key's JSON array (creating it), a read
// returns the array (no row: the empty list). rw-register, and the
// register workload's write and read: a write sets the key's register, a
// read returns it (no row: null).
const (
	AppendSQL        = `INSERT INTO lists (k, v) VALUES ($1, jsonb_build_array($2::jsonb)) ON CONFLICT (k) DO UPDATE SET v = lists.v || EXCLUDED.v`
	ReadListSQL      = `SELECT v::text FROM lists WHERE k = $1`
	WriteRegisterSQL = `INSERT INTO registers (k, v) VALUES ($1, $2::jsonb) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`
	ReadRegisterSQL  = `SELECT v::text FROM registers WHERE k = $1`
)

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

// WriteTx sets the register at key to v in tx (rw-register).
func WriteTx(ctx context.Context, tx pgx.Tx, key string, v history.Value) error {
	_, err := tx.Exec(ctx, WriteRegisterSQL, key, v.String())
	return err
}

// ReadRegisterTx reads the register at key in tx: null when it was never
// written.
func ReadRegisterTx(ctx context.Context, tx pgx.Tx, key string) (history.Value, error) {
	return scanValue(tx.QueryRow(ctx, ReadRegisterSQL, key))
}

// scanValue reads the JSON text a query returned: null for no row or a
// NULL.
func scanValue(row pgx.Row) (history.Value, error) {
	var s *string
	if err := row.Scan(&s); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return history.Nil(), nil
		}
		return history.Nil(), err
	}
	if s == nil {
		return history.Nil(), nil
	}
	v, err := history.ParseValue(*s)
	if err != nil {
		return history.Nil(), fmt.Errorf("unreadable value %q: %w", *s, err)
	}
	return v, nil
}

// pgTx is a pgx transaction as the shared transaction loop runs it.
type pgTx struct{ tx pgx.Tx }

var _ db.Tx = pgTx{}

func (t pgTx) Append(ctx context.Context, key string, elem history.Value) error {
	return AppendTx(ctx, t.tx, key, elem)
}
func (t pgTx) ReadList(ctx context.Context, key string) (history.Value, error) {
	return ReadTx(ctx, t.tx, key)
}
func (t pgTx) Write(ctx context.Context, key string, v history.Value) error {
	return WriteTx(ctx, t.tx, key, v)
}
func (t pgTx) ReadRegister(ctx context.Context, key string) (history.Value, error) {
	return ReadRegisterTx(ctx, t.tx, key)
}
func (t pgTx) Commit(ctx context.Context) error { return t.tx.Commit(ctx) }

// Rollback rolls back within a second, even when ctx is done (a timeout
// of the operation).
func (t pgTx) Rollback(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	t.tx.Rollback(rctx)
}

// txn runs a list-append or rw-register transaction at the client's
// isolation level and returns its micro-operations completed (reads with
// what they read); see [db.RunTxn] for its errors.
func (c *Client) txn(ctx context.Context, conn *pgx.Conn, op history.Op) (history.Value, error) {
	level, ok := isoLevels[c.opts.isolation()]
	if !ok {
		return history.Nil(), fmt.Errorf("%w: isolation %q", errUsage, c.opts.Isolation)
	}
	return db.RunTxn(ctx, c.opts.Workload, op.Value, func(ctx context.Context) (db.Tx, error) {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: level})
		if err != nil {
			return nil, err
		}
		return pgTx{tx}, nil
	})
}

// isolation is the transactions' isolation level: serializable unless
// set.
func (o ClientOptions) isolation() string {
	if o.Isolation == "" {
		return IsolationSerializable
	}
	return o.Isolation
}
