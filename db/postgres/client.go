// Package postgres is the adapter for PostgreSQL through pgx: it turns
// history operations into single SQL statements (each its own autocommit
// transaction) and classifies each outcome as ok, fail (certainly did not
// happen) or info (may have happened).
//
// The transactional workloads (list-append, rw-register) and the saga
// workload's operations ([Saga]) are one transaction each.
//
// Writes always go to the primary. Reads go to the primary, or to a replica
// when [ClientOptions.ReadDSN] names one: the routing that makes a user's own
// write vanish on refresh when the replica lags.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
)

// Workloads a client serves; they decide what "read" and "add" mean.
const (
	Register = "register"
	Set      = "set"
	Counter  = "counter"
)

// schema creates the tables of every workload; each statement is
// idempotent.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS registers (k text PRIMARY KEY, v jsonb)`,
	`CREATE TABLE IF NOT EXISTS sets (k text NOT NULL, e jsonb NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS sets_k ON sets (k)`,
	`CREATE TABLE IF NOT EXISTS counters (k text PRIMARY KEY, n bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS lists (k text PRIMARY KEY, v jsonb NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS requests (id text PRIMARY KEY, attempts int NOT NULL DEFAULT 1)`,
}

// The statements of a counter add. With idempotency keys an add runs in
// one transaction with [RecordRequestSQL], which returns how many of the
// request's attempts reached the primary: 1, and the add is applied
// ([AddCounterSQL]); more, and the request was applied before, so the
// attempt applies nothing.
//
// A repeated attempt still writes (it counts itself in the request's row)
// so that its COMMIT is a commit like the first one's: with
// synchronous replication it waits for the standbys until they have
// applied everything up to it, the first attempt's add included. An
// attempt is acknowledged ok only when the add it stands for is as safe
// as a fresh add acknowledged ok; a repeated attempt whose COMMIT writes
// nothing would be acknowledged at once, however far behind the standbys
// are.
const (
	AddCounterSQL    = `INSERT INTO counters (k, n) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = counters.n + EXCLUDED.n`
	RecordRequestSQL = `INSERT INTO requests (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET attempts = requests.attempts + 1 RETURNING attempts`
)

// Setup creates the workloads' tables on the primary at dsn if they do not
// exist yet. Replicas receive them through replication.
func Setup(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres setup: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range append(slices.Clip(schema), sagaSchema...) {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres setup: %s: %w", s, err)
		}
	}
	return nil
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// Workload is Register (the default), Set, Counter, ListAppend,
	// RWRegister or Saga.
	Workload string
	// Isolation is the isolation level of the transactions of ListAppend
	// and RWRegister (IsolationReadCommitted, ...); empty means
	// serializable.
	Isolation string
	// ReadDSN, when not empty, is where reads go (a replica); empty means
	// reads go to the primary with the writes.
	ReadDSN string
	// Node and ReadNode name the primary and the read target in the
	// completions' node field; empty means "primary" and "replica".
	Node, ReadNode string
	// Timeout bounds each operation, connecting included; past it a write
	// is info. 0 means 5s.
	Timeout time.Duration
	// ReadMode is ReadPrimary, ReadReplica or ReadLSNFence; empty means
	// ReadReplica when ReadDSN is set and ReadPrimary otherwise.
	ReadMode string
	// FenceWait bounds the wait of a fenced read for the replica to replay
	// the client's last write; 0 means 1s.
	FenceWait time.Duration
	// ReadTargets are the servers reads take turns on with
	// ReadRoundRobin.
	ReadTargets []ReadTarget
	// IdempotencyKeys applies a counter add at most once per request
	// (history.Op.Request), recording the request in the requests table
	// in the add's transaction: a retried add whose first attempt
	// committed applies nothing. An add with no request is applied as
	// it is.
	IdempotencyKeys bool
	// Primary, when set, names the primary now (its DSN and node name)
	// and is asked each time the client connects to the primary: after a
	// failover, the first operation that finds its connection lost fails
	// or is info, and the next connects to the new primary. It overrides
	// New's primaryDSN and Node.
	Primary func() (dsn, node string)
}

// Client performs operations for one process of a history. It is not safe
// for concurrent use: a process has at most one operation in flight.
type Client struct {
	opts    ClientOptions
	primary *target
	read    *target // == primary when reads go to the primary
	// rotation are the read targets of ReadRoundRobin, next the index of
	// the one the next read goes to.
	rotation []*target
	next     int

	// lsn is the primary's WAL position after the client's last
	// acknowledged write ("" before any); lsnUnknown says it could not be
	// read after the last one.
	lsn        string
	lsnUnknown bool
}

// target is one server the client talks to, with its connection (opened
// on first use, and again after a connection was lost) and the notices the
// server sent during the current operation.
type target struct {
	dsn     string
	node    string
	resolve func() (dsn, node string) // when set, gives dsn and node at each connect
	conn    *pgx.Conn
	// failed is when the last connection attempt failed (zero after a
	// success): the next attempt waits until connectBackoff has passed,
	// so that a client whose server is down does not spin.
	failed time.Time

	mu      sync.Mutex
	notices []*pgconn.Notice
}

// New returns a client whose writes go to the primary at primaryDSN (a
// libpq keyword string or a postgres:// URL).
func NewClient(primaryDSN string, o ClientOptions) *Client {
	if o.Workload == "" {
		o.Workload = Register
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Node == "" {
		o.Node = "primary"
	}
	if o.ReadNode == "" {
		o.ReadNode = "replica"
	}
	if o.FenceWait == 0 {
		o.FenceWait = time.Second
	}
	c := &Client{opts: o, primary: &target{dsn: primaryDSN, node: o.Node, resolve: o.Primary}}
	if o.Primary != nil {
		c.primary.dsn, c.primary.node = o.Primary()
	}
	c.read = c.primary
	switch {
	case o.readMode() == ReadRoundRobin:
		for _, rt := range o.ReadTargets {
			c.rotation = append(c.rotation, &target{dsn: rt.DSN, node: rt.Node})
		}
	case o.ReadDSN != "" && o.readMode() != ReadPrimary:
		c.read = &target{dsn: o.ReadDSN, node: o.ReadNode}
	}
	return c
}

// Close closes the client's connections.
func (c *Client) Close(ctx context.Context) error {
	var errs []error
	for _, t := range append([]*target{c.primary, c.read}, c.rotation...) {
		if t.conn != nil {
			errs = append(errs, t.conn.Close(ctx))
			t.conn = nil
		}
	}
	return errors.Join(errs...)
}

// connect opens t's connection if it has none. A statement whose context
// ends is cancelled on the server (a cancel request), and its connection
// closed only if no answer comes within a second more: so that a commit
// left waiting for a synchronous standby returns, with Postgres's warning
// that it committed locally, rather than vanishing with the connection.
func (t *target) connect(ctx context.Context) error {
	if t.conn != nil && !t.conn.IsClosed() {
		return nil
	}
	t.conn = nil
	if wait := connectBackoff - time.Since(t.failed); !t.failed.IsZero() && wait > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect to %s: %w", t.node, ctx.Err())
		case <-time.After(wait):
		}
	}
	if t.resolve != nil {
		t.dsn, t.node = t.resolve()
	}
	cfg, err := pgx.ParseConfig(t.dsn)
	if err != nil {
		return fmt.Errorf("dsn of %s: %w", t.node, err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: time.Second}
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		t.mu.Lock()
		t.notices = append(t.notices, n)
		t.mu.Unlock()
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.failed = time.Now()
		return fmt.Errorf("connect to %s: %w", t.node, err)
	}
	t.conn, t.failed = conn, time.Time{}
	return nil
}

// connectBackoff is the least time between two connection attempts of a
// client to a server that refused the last one.
const connectBackoff = 100 * time.Millisecond

// takeNotices returns the notices received since the last call.
func (t *target) takeNotices() []*pgconn.Notice {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.notices
	t.notices = nil
	return n
}

// drop closes the connection after an error that may have left it in an
// unknown state; the next operation connects again.
func (t *target) drop() {
	if t.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t.conn.Close(ctx)
		cancel()
		t.conn = nil
	}
}

// errNoRows marks a CAS whose old value did not match.
var errNoRows = errors.New("no row matched the expected value")

// Invoke performs the invocation op and returns its completion: the same
// process, f and key, with type ok, fail or info, the value read (for
// reads), the node and the error text. It never returns an invocation.
func (c *Client) Invoke(ctx context.Context, op history.Op) history.Op {
	done := history.Op{Process: op.Process, F: op.F, Key: op.Key, Value: op.Value, Type: history.Info}
	key := op.Key
	if key == "" {
		key = "default"
	}
	// A read goes where reads go: the register, set and counter reads,
	// and saga-read (the final reads read each node). saga-pending reads
	// the primary's log, where the coordinators recover from, and is,
	// like a read, certainly without effect when it fails.
	saga := c.opts.Workload == Saga
	read := op.F == "read" || saga && op.F == checkers.FSagaRead
	readOnly := read || saga && op.F == checkers.FSagaPending
	if err := c.opts.checkReadMode(); err != nil {
		done.Type, done.Error = history.Fail, err.Error()
		return done
	}
	fenced := read && c.opts.readMode() == ReadLSNFence
	t := c.primary
	switch {
	case read && len(c.rotation) > 0:
		t = c.rotation[c.next%len(c.rotation)]
		c.next++
	case read && !(fenced && c.lsnUnknown):
		t = c.read
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	err := t.connect(ctx)
	done.Node = t.node
	if err != nil {
		// Nothing was sent: the operation certainly did not happen.
		done.Type, done.Error = history.Fail, err.Error()
		return done
	}
	if fenced && t == c.read {
		if err := c.fence(ctx); err != nil {
			// The read was not sent: a definite failure, never a
			// stale value.
			done.Type, done.Error = history.Fail, err.Error()
			if !errors.Is(err, errFence) {
				t.drop()
			}
			return done
		}
	}
	t.takeNotices()
	v, err := c.exec(ctx, t.conn, op, key)
	notices := t.takeNotices()
	done.Type, done.Error = Classify(err, readOnly, notices)
	if db.Aborted(err) {
		// A transaction that never reached COMMIT did not happen.
		done.Type = history.Fail
	}
	if done.Type == history.OK && (read || op.F == "txn" || saga) {
		done.Value = v
	}
	if done.Type == history.OK && wrote(op.F) && c.opts.readMode() == ReadLSNFence {
		c.remember(ctx)
	}
	if err != nil && !errors.Is(err, errNoRows) && !errors.Is(err, errUsage) && !errors.Is(err, db.ErrBadTxn) && !refused(err) {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Severity == "FATAL" || pe.Severity == "PANIC" {
			t.drop()
		}
	}
	return done
}

// errUsage marks an operation the workload does not have.
var errUsage = errors.New("unknown operation")

// exec runs op's statement and returns what a read returned.
func (c *Client) exec(ctx context.Context, conn *pgx.Conn, op history.Op, key string) (history.Value, error) {
	scan := func(q string, args ...any) (history.Value, error) {
		return scanValue(conn.QueryRow(ctx, q, args...))
	}
	affected := func(q string, args ...any) error {
		tag, err := conn.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errNoRows
		}
		return nil
	}
	switch {
	case c.opts.Workload == Register && op.F == "read":
		return scan(ReadRegisterSQL, key)
	case c.opts.Workload == Register && op.F == "write":
		_, err := conn.Exec(ctx, WriteRegisterSQL, key, op.Value.String())
		return history.Nil(), err
	case c.opts.Workload == Register && op.F == "cas":
		old, nv, ok := op.Value.Pair()
		if !ok {
			return history.Nil(), fmt.Errorf("%w: cas value %s is not [old, new]", errUsage, op.Value)
		}
		if old.IsNil() {
			return history.Nil(), affected(`INSERT INTO registers (k, v) VALUES ($1, $2::jsonb) ON CONFLICT (k) DO NOTHING`, key, nv.String())
		}
		return history.Nil(), affected(`UPDATE registers SET v = $3::jsonb WHERE k = $1 AND v = $2::jsonb`, key, old.String(), nv.String())
	case c.opts.Workload == Set && op.F == "add":
		_, err := conn.Exec(ctx, `INSERT INTO sets (k, e) VALUES ($1, $2::jsonb)`, key, op.Value.String())
		return history.Nil(), err
	case c.opts.Workload == Set && op.F == "read":
		return scan(`SELECT COALESCE(jsonb_agg(e ORDER BY e), '[]'::jsonb)::text FROM sets WHERE k = $1`, key)
	case c.opts.Workload == Counter && op.F == "add":
		d, ok := op.Value.AsInt()
		if !ok {
			return history.Nil(), fmt.Errorf("%w: counter add of %s, not an integer", errUsage, op.Value)
		}
		if c.opts.IdempotencyKeys && op.Request != "" {
			return history.Nil(), addOnce(ctx, conn, op.Request, key, d)
		}
		_, err := conn.Exec(ctx, AddCounterSQL, key, d)
		return history.Nil(), err
	case c.opts.Workload == Counter && op.F == "read":
		return scan(`SELECT COALESCE((SELECT n FROM counters WHERE k = $1), 0)::text`, key)
	case (c.opts.Workload == ListAppend || c.opts.Workload == RWRegister) && op.F == "txn":
		return c.txn(ctx, conn, op)
	case c.opts.Workload == Saga:
		return c.saga(ctx, conn, op)
	}
	return history.Nil(), fmt.Errorf("%w: the %s workload has no operation %q", errUsage, c.opts.Workload, op.F)
}

// addOnce adds d to the counter at key unless request was applied
// before, in one transaction at read committed: the request's row is
// inserted, or counts one more attempt, and only the first attempt adds.
// An error before COMMIT is a [db.AbortedError] (nothing happened, nor
// was the request recorded); COMMIT's own is a [db.CommitError].
func addOnce(ctx context.Context, conn *pgx.Conn, request, key string, d int64) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return db.AbortedError{Err: err}
	}
	abort := func(err error) error {
		pgTx{tx}.Rollback(ctx)
		return db.AbortedError{Err: err}
	}
	var attempts int
	if err := tx.QueryRow(ctx, RecordRequestSQL, request).Scan(&attempts); err != nil {
		return abort(fmt.Errorf("record request %s: %w", request, err))
	}
	if attempts == 1 {
		if _, err := tx.Exec(ctx, AddCounterSQL, key, d); err != nil {
			return abort(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return db.CommitError{Err: err}
	}
	return nil
}

// Classify decides the type of a completed operation from the error its
// statement returned and the notices the server sent meanwhile:
//
//   - no error and no warning of a commit left unreplicated: ok;
//   - a read that did not complete: fail (a read changes nothing, so it
//     certainly did not happen);
//   - a CAS that matched no row, a saga operation the protocol refuses
//     (rolled back: "declined", "fenced: epoch 3"; the text is the
//     reason), an unknown operation, an error the server
//     reported with severity ERROR (the statement's autocommit transaction
//     rolled back: constraint, serialization, read-only and similar), or an
//     error pgx says was raised before anything was sent: fail;
//   - a WARNING that the transaction committed locally but might not have
//     been replicated (a cancelled wait for a synchronous standby): info,
//     even though the statement returned success;
//   - anything else (a timeout, a lost connection, a FATAL termination
//     after the statement was sent: a single autocommit statement is its
//     own commit, so it may have committed): info.
//
// The returned text is the error or the warning, "" for ok.
func Classify(err error, read bool, notices []*pgconn.Notice) (history.Type, string) {
	for _, n := range notices {
		if UnreplicatedCommit(n) {
			text := "committed locally, might not be replicated: " + n.Message
			if err != nil {
				text = err.Error() + "; " + text
			}
			if read {
				return history.Fail, text
			}
			return history.Info, text
		}
	}
	if err == nil {
		return history.OK, ""
	}
	if read || errors.Is(err, errNoRows) || refused(err) || errors.Is(err, errUsage) || pgconn.SafeToRetry(err) {
		return history.Fail, err.Error()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Severity == "ERROR" {
		return history.Fail, err.Error()
	}
	return history.Info, err.Error()
}

// UnreplicatedCommit reports whether a notice is Postgres's warning that a
// transaction committed locally but might not have been replicated to the
// synchronous standbys (sent when the wait for them is cancelled or the
// connection is terminated during it).
func UnreplicatedCommit(n *pgconn.Notice) bool {
	return n != nil && (strings.Contains(n.Detail, "committed locally") || strings.Contains(n.Message, "committed locally"))
}
