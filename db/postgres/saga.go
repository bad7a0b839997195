// This file holds the saga workload (checkers/saga_protocol.go): the
// tables of a booking's three services and of the coordinators' log, and
// one transaction per operation.

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
)

// Saga is the saga workload: inventory, payment and shipment services and
// the coordinators' log, which [checkers.SagaFs] work on, each operation
// one transaction.
const Saga = "saga"

// sagaSchema creates the saga workload's tables; each statement is
// idempotent. The ledger is append-only: a trigger refuses UPDATE, DELETE
// and TRUNCATE on it, and its identity column keeps the order the
// entries were written in.
var sagaSchema = []string{
	`CREATE TABLE IF NOT EXISTS stock (item bigint PRIMARY KEY, n bigint NOT NULL CHECK (n >= 0))`,
	`CREATE TABLE IF NOT EXISTS reservations (saga text PRIMARY KEY, item bigint NOT NULL, qty bigint NOT NULL, state text NOT NULL CHECK (state IN ('reserved', 'released')))`,
	`CREATE TABLE IF NOT EXISTS payments (saga text PRIMARY KEY, amount bigint NOT NULL, state text NOT NULL CHECK (state IN ('charged', 'refunded')))`,
	`CREATE TABLE IF NOT EXISTS ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, saga text NOT NULL, kind text NOT NULL CHECK (kind IN ('charge', 'refund')), amount bigint NOT NULL)`,
	`CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$`,
	`CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`,
	`CREATE TABLE IF NOT EXISTS shipments (saga text PRIMARY KEY, state text NOT NULL CHECK (state IN ('confirmed', 'cancelled')))`,
	`CREATE TABLE IF NOT EXISTS saga_log (saga text PRIMARY KEY, owner text NOT NULL, epoch bigint NOT NULL, status text NOT NULL CHECK (status IN ('running', 'compensating', 'done', 'compensated')), item bigint NOT NULL, qty bigint NOT NULL, price bigint NOT NULL, steps text[] NOT NULL DEFAULT '{}')`,
}

// refusal is an operation the protocol refuses, its reason the error
// text ("declined", "out of stock", "fenced: epoch 3"): the transaction
// was rolled back and the operation certainly did not apply.
type refusal string

func (r refusal) Error() string { return string(r) }

// refused reports whether err is a [refusal].
func refused(err error) bool {
	var r refusal
	return errors.As(err, &r)
}

// sagaWrites are the saga operations that write (all but saga-pending and
// saga-read).
var sagaWrites = []string{checkers.FSagaInit, checkers.FSagaBegin, checkers.FSagaLog, checkers.FSagaClaim,
	checkers.FReserve, checkers.FRelease, checkers.FCharge, checkers.FRefund, checkers.FConfirm, checkers.FCancel}

// sagaLockInit is the advisory lock key saga-init takes (saga ids take
// theirs from their text, hashed).
const sagaLockInit = "saga-init"

// saga runs a saga operation on conn: saga-read in one read-only snapshot
// of the node conn is connected to, saga-pending as one statement, every
// other operation as one transaction at read committed (see [sagaTx]). It
// returns the completion's value: what the protocol says the operation
// returns (a record, a list of records, the state, the shipment's state),
// or the invocation's value for the others.
//
// Its errors: a [refusal] (rolled back), a [db.AbortedError] (an error
// before COMMIT: rolled back), a [db.CommitError], errUsage for a value
// or an operation the workload does not have (nothing sent), or a read's
// error.
func (c *Client) saga(ctx context.Context, conn *pgx.Conn, op history.Op) (history.Value, error) {
	a, err := checkers.ParseSagaArgs([]byte(op.Value.String()))
	if err != nil {
		return history.Nil(), fmt.Errorf("%w: %w", errUsage, err)
	}
	id := op.Key
	switch op.F {
	case checkers.FSagaRead:
		return sagaRead(ctx, conn)
	case checkers.FSagaPending:
		return sagaPending(ctx, conn)
	case checkers.FSagaInit:
		return sagaTx(ctx, conn, sagaLockInit, func(tx pgx.Tx) (history.Value, error) {
			return op.Value, sagaInit(ctx, tx, a.Stock)
		})
	}
	if id == "" {
		return history.Nil(), fmt.Errorf("%w: %s needs the saga's id as its key", errUsage, op.F)
	}
	var step func(pgx.Tx) (history.Value, error)
	echo := func(err error) (history.Value, error) { return op.Value, err }
	switch op.F {
	case checkers.FSagaBegin:
		step = func(tx pgx.Tx) (history.Value, error) { return echo(sagaBegin(ctx, tx, id, a)) }
	case checkers.FSagaLog:
		if a.Status != "" && !slices.Contains([]string{checkers.SagaRunning, checkers.SagaCompensating, checkers.SagaDone, checkers.SagaCompensated}, a.Status) {
			return history.Nil(), fmt.Errorf("%w: saga-log status %q", errUsage, a.Status)
		}
		step = func(tx pgx.Tx) (history.Value, error) { return echo(sagaLog(ctx, tx, id, a)) }
	case checkers.FSagaClaim:
		step = func(tx pgx.Tx) (history.Value, error) { return sagaClaim(ctx, tx, id, a) }
	case checkers.FReserve:
		step = func(tx pgx.Tx) (history.Value, error) { return echo(reserve(ctx, tx, id, a)) }
	case checkers.FRelease:
		step = func(tx pgx.Tx) (history.Value, error) { return echo(release(ctx, tx, id, a)) }
	case checkers.FCharge:
		step = func(tx pgx.Tx) (history.Value, error) { return echo(charge(ctx, tx, id, a)) }
	case checkers.FRefund:
		step = func(tx pgx.Tx) (history.Value, error) { return echo(refund(ctx, tx, id, a)) }
	case checkers.FConfirm:
		step = func(tx pgx.Tx) (history.Value, error) { return echo(confirm(ctx, tx, id, a)) }
	case checkers.FCancel:
		step = func(tx pgx.Tx) (history.Value, error) { return cancelShipment(ctx, tx, id) }
	default:
		return history.Nil(), fmt.Errorf("%w: the saga workload has no operation %q", errUsage, op.F)
	}
	return sagaTx(ctx, conn, "saga:"+id, step)
}

// sagaTx runs fn in one transaction at read committed that first takes
// the advisory lock of key (a saga's, or saga-init's) until it ends: the
// operations of one saga take turns, and each statement after the lock
// sees what the one before committed. The rows that decide an outcome
// are read FOR UPDATE besides, and stock is taken by UPDATE ... WHERE n >=
// qty, so that the rules hold whatever else runs. An error of fn rolls
// the transaction back: a [refusal] is returned as it is, any other as a
// [db.AbortedError]; COMMIT's error is a [db.CommitError].
//
// Read committed, whatever --pg-isolation says (it is the isolation of
// list-append and rw-register): the locks make each operation atomic,
// and serializable would add serialization failures of operations that
// only contend for a stock row.
func sagaTx(ctx context.Context, conn *pgx.Conn, key string, fn func(pgx.Tx) (history.Value, error)) (history.Value, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return history.Nil(), db.AbortedError{Err: err}
	}
	v, err := func() (history.Value, error) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
			return history.Nil(), fmt.Errorf("lock %s: %w", key, err)
		}
		return fn(tx)
	}()
	if err != nil {
		pgTx{tx}.Rollback(ctx)
		if refused(err) {
			return history.Nil(), err
		}
		return history.Nil(), db.AbortedError{Err: err}
	}
	if err := tx.Commit(ctx); err != nil {
		return history.Nil(), db.CommitError{Err: err}
	}
	return v, nil
}

// touch rewrites saga's row of table unchanged. An operation that is ok
// without changing anything (a retried step, a compensation already
// done) touches the row that decided it, so that its COMMIT writes WAL and
// waits, with synchronous replication, until the standbys have what it
// read, as the first attempt's would have: an ok is as safe as the one of
// a step applied now. (A transaction that writes nothing commits at once,
// however far behind the standbys are.)
func touch(ctx context.Context, tx pgx.Tx, table, saga string) error {
	_, err := tx.Exec(ctx, `UPDATE `+table+` SET saga = saga WHERE saga = $1`, saga)
	return err
}

// sagaInit stores the stock of items 0, 1, ... unless the tables hold
// saga state already.
func sagaInit(ctx context.Context, tx pgx.Tx, stock []int64) error {
	var exists bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stock) OR EXISTS (SELECT 1 FROM reservations) OR EXISTS (SELECT 1 FROM payments)
		OR EXISTS (SELECT 1 FROM ledger) OR EXISTS (SELECT 1 FROM shipments) OR EXISTS (SELECT 1 FROM saga_log)`).Scan(&exists)
	if err != nil {
		return err
	}
	if exists {
		return refusal("exists")
	}
	_, err = tx.Exec(ctx, `INSERT INTO stock (item, n) SELECT i - 1, n FROM unnest($1::bigint[]) WITH ORDINALITY AS s (n, i)`, stock)
	return err
}

// sagaBegin writes saga's log record (epoch 1, running), or finds it
// written by the same owner.
func sagaBegin(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var owner string
	err := tx.QueryRow(ctx, `SELECT owner FROM saga_log WHERE saga = $1 FOR UPDATE`, saga).Scan(&owner)
	switch {
	case err == nil && owner == a.Owner:
		return touch(ctx, tx, "saga_log", saga)
	case err == nil:
		return refusal("exists: owned by " + owner)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO saga_log (saga, owner, epoch, status, item, qty, price) VALUES ($1, $2, 1, 'running', $3, $4, $5)`,
		saga, a.Owner, a.Item, a.Qty, a.Price)
	return err
}

// sagaLog appends a step to saga's log and sets its status, if the
// record's epoch is the writer's.
func sagaLog(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var epoch int64
	err := tx.QueryRow(ctx, `SELECT epoch FROM saga_log WHERE saga = $1 FOR UPDATE`, saga).Scan(&epoch)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return refusal("no saga " + saga)
	case err != nil:
		return err
	case epoch != a.Epoch:
		return refusal(fmt.Sprintf("fenced: epoch %d", epoch))
	}
	_, err = tx.Exec(ctx, `UPDATE saga_log SET steps = CASE WHEN $2::text = '' THEN steps ELSE steps || $2::text END, status = CASE WHEN $3::text = '' THEN status ELSE $3::text END WHERE saga = $1`,
		saga, a.Step, a.Status)
	return err
}

// sagaRecordColumns are saga_log's columns in [scanRecord]'s order.
const sagaRecordColumns = `saga, owner, epoch, status, item, qty, price, steps`

// scanRecord reads a row of [sagaRecordColumns].
func scanRecord(row pgx.Row) (checkers.SagaRecord, error) {
	var r checkers.SagaRecord
	err := row.Scan(&r.Saga, &r.Owner, &r.Epoch, &r.Status, &r.Item, &r.Qty, &r.Price, &r.Steps)
	if r.Steps == nil {
		r.Steps = []string{}
	}
	return r, err
}

// sagaClaim moves saga's record to the claimer's epoch and owner, if it
// is at the epoch before and not final, and returns the record.
func sagaClaim(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) (history.Value, error) {
	var epoch int64
	var status string
	err := tx.QueryRow(ctx, `SELECT epoch, status FROM saga_log WHERE saga = $1 FOR UPDATE`, saga).Scan(&epoch, &status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return history.Nil(), refusal("no saga " + saga)
	case err != nil:
		return history.Nil(), err
	case status == checkers.SagaDone || status == checkers.SagaCompensated:
		return history.Nil(), refusal("final: " + status)
	case epoch != a.Epoch-1:
		return history.Nil(), refusal(fmt.Sprintf("fenced: epoch %d", epoch))
	}
	r, err := scanRecord(tx.QueryRow(ctx, `UPDATE saga_log SET epoch = $2, owner = $3 WHERE saga = $1 RETURNING `+sagaRecordColumns, saga, a.Epoch, a.Owner))
	if err != nil {
		return history.Nil(), err
	}
	return jsonValue(r)
}

// reserve takes qty of item from stock for saga, unless its reservation
// holds already (ok) or was released (refused).
func reserve(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM reservations WHERE saga = $1 FOR UPDATE`, saga).Scan(&state)
	switch {
	case err == nil && state == "reserved":
		return touch(ctx, tx, "reservations", saga)
	case err == nil:
		return refusal(state)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	case a.Decline:
		return refusal("declined")
	}
	tag, err := tx.Exec(ctx, `UPDATE stock SET n = n - $2 WHERE item = $1 AND n >= $2`, a.Item, a.Qty)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stock WHERE item = $1)`, a.Item).Scan(&known); err != nil {
			return err
		}
		if !known {
			return refusal(fmt.Sprintf("no item %d", a.Item))
		}
		return refusal("out of stock")
	}
	_, err = tx.Exec(ctx, `INSERT INTO reservations (saga, item, qty, state) VALUES ($1, $2, $3, 'reserved')`, saga, a.Item, a.Qty)
	return err
}

// release puts saga's reservation back in stock, or leaves a tombstone
// (qty 0, released) when there is none.
func release(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var item, qty int64
	var state string
	err := tx.QueryRow(ctx, `SELECT item, qty, state FROM reservations WHERE saga = $1 FOR UPDATE`, saga).Scan(&item, &qty, &state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, `INSERT INTO reservations (saga, item, qty, state) VALUES ($1, $2, 0, 'released')`, saga, a.Item)
		return err
	case err != nil:
		return err
	case state == "released":
		return touch(ctx, tx, "reservations", saga)
	}
	// What goes back is what the reservation took.
	if _, err := tx.Exec(ctx, `UPDATE stock SET n = n + $2 WHERE item = $1`, item, qty); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE reservations SET state = 'released' WHERE saga = $1`, saga)
	return err
}

// charge records saga's payment and its ledger entry, unless it is
// charged already (ok) or refunded (refused).
func charge(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM payments WHERE saga = $1 FOR UPDATE`, saga).Scan(&state)
	switch {
	case err == nil && state == "charged":
		return touch(ctx, tx, "payments", saga)
	case err == nil:
		return refusal(state)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	case a.Decline:
		return refusal("declined")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO payments (saga, amount, state) VALUES ($1, $2, 'charged')`, saga, a.Amount); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO ledger (saga, kind, amount) VALUES ($1, 'charge', $2)`, saga, a.Amount)
	return err
}

// refund refunds saga's payment with a ledger entry of the amount it
// charged, or leaves a tombstone (amount 0, refunded) when there is none.
// A payment refunded already is left as it is, unless the refund does not
// dedupe (--saga-bug double-refund): the ledger then gets another refund
// of the payment's amount.
func refund(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var amount int64
	var state string
	err := tx.QueryRow(ctx, `SELECT amount, state FROM payments WHERE saga = $1 FOR UPDATE`, saga).Scan(&amount, &state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, `INSERT INTO payments (saga, amount, state) VALUES ($1, 0, 'refunded')`, saga)
		return err
	case err != nil:
		return err
	case state == "refunded" && a.Deduped():
		return touch(ctx, tx, "payments", saga)
	case state == "charged":
		if _, err := tx.Exec(ctx, `UPDATE payments SET state = 'refunded' WHERE saga = $1`, saga); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO ledger (saga, kind, amount) VALUES ($1, 'refund', $2)`, saga, amount)
	return err
}

// confirm records saga's shipment confirmed, unless it is confirmed
// already (ok) or cancelled (refused).
func confirm(ctx context.Context, tx pgx.Tx, saga string, a checkers.SagaArgs) error {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM shipments WHERE saga = $1 FOR UPDATE`, saga).Scan(&state)
	switch {
	case err == nil && state == "confirmed":
		return touch(ctx, tx, "shipments", saga)
	case err == nil:
		return refusal(state)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	case a.Decline:
		return refusal("declined")
	}
	_, err = tx.Exec(ctx, `INSERT INTO shipments (saga, state) VALUES ($1, 'confirmed')`, saga)
	return err
}

// cancelShipment records saga's shipment cancelled when there is none,
// and returns its state.
func cancelShipment(ctx context.Context, tx pgx.Tx, saga string) (history.Value, error) {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM shipments WHERE saga = $1 FOR UPDATE`, saga).Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		state = "cancelled"
		_, err = tx.Exec(ctx, `INSERT INTO shipments (saga, state) VALUES ($1, 'cancelled')`, saga)
	case err == nil:
		err = touch(ctx, tx, "shipments", saga)
	}
	if err != nil {
		return history.Nil(), err
	}
	return history.String(state), nil
}

// sagaPending lists the log records that are not final, as a JSON array.
func sagaPending(ctx context.Context, conn *pgx.Conn) (history.Value, error) {
	rows, err := conn.Query(ctx, `SELECT `+sagaRecordColumns+` FROM saga_log WHERE status NOT IN ('done', 'compensated') ORDER BY saga`)
	if err != nil {
		return history.Nil(), err
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (checkers.SagaRecord, error) { return scanRecord(row) })
	if err != nil {
		return history.Nil(), err
	}
	return jsonValue(recs)
}

// sagaRead reads every service's state and the log in one read-only
// transaction at repeatable read: one snapshot, on a standby as on the
// primary.
func sagaRead(ctx context.Context, conn *pgx.Conn) (history.Value, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return history.Nil(), err
	}
	defer pgTx{tx}.Rollback(ctx)
	st := checkers.SagaState{
		Stock:        []int64{},
		Reservations: map[string]checkers.Reservation{},
		Payments:     map[string]checkers.Payment{},
		Ledger:       []checkers.LedgerEntry{},
		Shipments:    map[string]string{},
		Log:          map[string]checkers.SagaRecord{},
	}
	var saga string
	reads := []struct {
		q    string
		scan func(pgx.Rows) error
	}{
		{`SELECT n FROM stock ORDER BY item`, func(r pgx.Rows) error {
			var n int64
			err := r.Scan(&n)
			st.Stock = append(st.Stock, n)
			return err
		}},
		{`SELECT saga, item, qty, state FROM reservations`, func(r pgx.Rows) error {
			var v checkers.Reservation
			err := r.Scan(&saga, &v.Item, &v.Qty, &v.State)
			st.Reservations[saga] = v
			return err
		}},
		{`SELECT saga, amount, state FROM payments`, func(r pgx.Rows) error {
			var v checkers.Payment
			err := r.Scan(&saga, &v.Amount, &v.State)
			st.Payments[saga] = v
			return err
		}},
		{`SELECT saga, kind, amount FROM ledger ORDER BY id`, func(r pgx.Rows) error {
			var v checkers.LedgerEntry
			err := r.Scan(&v.Saga, &v.Kind, &v.Amount)
			st.Ledger = append(st.Ledger, v)
			return err
		}},
		{`SELECT saga, state FROM shipments`, func(r pgx.Rows) error {
			var v string
			err := r.Scan(&saga, &v)
			st.Shipments[saga] = v
			return err
		}},
		{`SELECT ` + sagaRecordColumns + ` FROM saga_log`, func(r pgx.Rows) error {
			v, err := scanRecord(r)
			st.Log[v.Saga] = v
			return err
		}},
	}
	for _, rd := range reads {
		if err := eachRow(ctx, tx, rd.q, rd.scan); err != nil {
			return history.Nil(), fmt.Errorf("saga-read: %w", err)
		}
	}
	return jsonValue(st)
}

// eachRow runs q in tx and hands each row to scan.
func eachRow(ctx context.Context, tx pgx.Tx, q string, scan func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// jsonValue is v's JSON as a history value.
func jsonValue(v any) (history.Value, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return history.Nil(), err
	}
	return history.Raw(js)
}
