package galera

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// The read settings of --galera-read.
const (
	ReadOwn   = "own"   // reads on the node the worker writes to
	ReadOther = "other" // reads on the next node, which applies the worker's writes later
)

// Reads lists the values of --galera-read.
var Reads = []string{ReadOwn, ReadOther}

// ClientOptions configure a Client.
type ClientOptions struct {
	// Workload is the data type: "register" (the default), "set" or
	// "counter" (see [workload.Kind]).
	Workload string
	// Write is the address of the server writes go to, Read of the one
	// reads go to (the same server when empty).
	Write, Read string
	// WriteNode and ReadNode name them in the history.
	WriteNode, ReadNode string
	// Timeout bounds each operation; 0 means 5s.
	Timeout time.Duration
	// Session are session variables set on every connection, such as
	// wsrep_sync_wait (the nodes' own setting otherwise).
	Session map[string]string
	// Isolation is the isolation level of list-append and rw-register
	// transactions; empty means repeatable-read, MariaDB's default.
	Isolation string
}

// Client performs a worker's operations, each one autocommit statement,
// through database/sql and go-sql-driver/mysql: writes on one node, reads
// on it or on another. It is one process of the history: at most one
// operation in flight.
type Client struct {
	opts        ClientOptions
	write, read *sql.DB
	// refused is when the last operation found its node unreachable or
	// not ready (zero otherwise): the next one waits until
	// refusedBackoff has passed, so that a worker whose node is down
	// does not spin.
	refused time.Time
}

// refusedBackoff is the least time between two operations of a client
// whose node refused the last one.
const refusedBackoff = 100 * time.Millisecond

// quiet discards go-sql-driver's own log lines (a connection lost under
// a fault): the history and the run's progress say what matters.
type quiet struct{}

func (quiet) Print(...any) {}

func init() { mysql.SetLogger(quiet{}) }

// NewClient makes a client; it connects lazily.
func NewClient(o ClientOptions) (*Client, error) {
	if o.Workload == "" {
		o.Workload = workload.Register
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Read == "" {
		o.Read, o.ReadNode = o.Write, o.WriteNode
	}
	c := &Client{opts: o}
	var err error
	if c.write, err = open(o.Write, o.Timeout, o.Session); err != nil {
		return nil, err
	}
	c.read = c.write
	if o.Read != o.Write {
		if c.read, err = open(o.Read, o.Timeout, o.Session); err != nil {
			c.write.Close()
			return nil, err
		}
	}
	return c, nil
}

// open makes a pool of one connection to the server at addr.
func open(addr string, timeout time.Duration, session map[string]string) (*sql.DB, error) {
	d, err := sql.Open("mysql", DSN(addr, timeout+time.Second, session))
	if err != nil {
		return nil, fmt.Errorf("galera client of %s: %w", addr, err)
	}
	d.SetMaxOpenConns(1)
	d.SetMaxIdleConns(1)
	return d, nil
}

// Close closes the client's connections.
func (c *Client) Close() error {
	errs := []error{c.write.Close()}
	if c.read != c.write {
		errs = append(errs, c.read.Close())
	}
	return errors.Join(errs...)
}

// errNoMatch marks a compare-and-set whose comparison was false.
var errNoMatch = errors.New("the value did not match: nothing written")

// errUsage marks an operation the workload does not have.
var errUsage = errors.New("unknown operation")

// Invoke performs op and returns its completion: ok when it certainly
// happened, fail when it certainly did not, info when it may have (see
// [Classify]).
func (c *Client) Invoke(ctx context.Context, op history.Op) history.Op {
	done := history.Op{Process: op.Process, F: op.F, Key: op.Key, Value: op.Value, Type: history.Info}
	key := op.Key
	if key == "" {
		key = "default"
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if wait := refusedBackoff - time.Since(c.refused); !c.refused.IsZero() && wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	read := op.F == "read"
	var v history.Value
	var err error
	switch {
	case read:
		done.Node = c.opts.ReadNode
		v, err = c.readKey(ctx, key)
	case op.F == "txn" && workload.Transactional(c.opts.Workload):
		done.Node = c.opts.WriteNode
		v, err = c.txn(ctx, op)
	default:
		done.Node = c.opts.WriteNode
		err = c.exec(ctx, op, key)
	}
	done.Type, done.Error = Classify(err, read)
	if db.Aborted(err) {
		// A transaction that never reached COMMIT did not happen.
		done.Type = history.Fail
	}
	c.refused = time.Time{}
	if unavailable(err) {
		c.refused = time.Now()
	}
	if done.Type == history.OK && (read || op.F == "txn") {
		done.Value = v
	}
	return done
}

// exec runs a write of op.
func (c *Client) exec(ctx context.Context, op history.Op, key string) error {
	kind := workload.Kind(c.opts.Workload)
	affected := func(q string, args ...any) error {
		res, err := c.write.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return errNoMatch
		}
		return nil
	}
	switch {
	case kind == workload.Register && op.F == "write":
		return WriteRegister(ctx, c.write, key, op.Value)
	case kind == workload.Register && op.F == "cas":
		old, nv, ok := op.Value.Pair()
		if !ok {
			return fmt.Errorf("%w: cas value %s is not [old, new]", errUsage, op.Value)
		}
		if old.IsNil() {
			_, err := c.write.ExecContext(ctx, `INSERT INTO registers (k, v) VALUES (?, ?)`, key, nv.String())
			if isDuplicate(err) {
				return fmt.Errorf("%w: %v", errNoMatch, err)
			}
			return err
		}
		return affected(`UPDATE registers SET v = ? WHERE k = ? AND v = ?`, nv.String(), key, old.String())
	case kind == workload.Set && op.F == "add":
		_, err := c.write.ExecContext(ctx, `INSERT INTO sets (k, e) VALUES (?, ?)`, key, op.Value.String())
		return err
	case kind == workload.Counter && op.F == "add":
		d, ok := op.Value.AsInt()
		if !ok {
			return fmt.Errorf("%w: counter add of %s, not an integer", errUsage, op.Value)
		}
		_, err := c.write.ExecContext(ctx, `INSERT INTO counters (k, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)`, key, d)
		return err
	}
	return fmt.Errorf("%w: the %s workload has no operation %q", errUsage, c.opts.Workload, op.F)
}

// readKey reads key of the workload's kind.
func (c *Client) readKey(ctx context.Context, key string) (history.Value, error) {
	one := func(q string, empty history.Value) (history.Value, error) {
		var s string
		err := c.read.QueryRowContext(ctx, q, key).Scan(&s)
		if errors.Is(err, sql.ErrNoRows) {
			return empty, nil
		}
		if err != nil {
			return history.Nil(), err
		}
		return parse(s)
	}
	switch workload.Kind(c.opts.Workload) {
	case workload.Register:
		return one(ReadRegisterSQL, history.Nil())
	case workload.Counter:
		return one(`SELECT CAST(n AS CHAR) FROM counters WHERE k = ?`, history.Int(0))
	case workload.Set:
		rows, err := c.read.QueryContext(ctx, `SELECT e FROM sets WHERE k = ?`, key)
		if err != nil {
			return history.Nil(), err
		}
		defer rows.Close()
		elems := []history.Value{}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return history.Nil(), err
			}
			e, err := parse(s)
			if err != nil {
				return history.Nil(), err
			}
			elems = append(elems, e)
		}
		if err := rows.Err(); err != nil {
			return history.Nil(), err
		}
		slices.SortFunc(elems, func(a, b history.Value) int { return strings.Compare(a.String(), b.String()) })
		return history.List(elems...), nil
	}
	return history.Nil(), fmt.Errorf("%w: the %s workload has no read", errUsage, c.opts.Workload)
}

// parse reads a value the workloads wrote (its JSON text).
func parse(s string) (history.Value, error) {
	v, err := history.ParseValue(s)
	if err != nil {
		return history.Nil(), fmt.Errorf("unreadable value %q: %w", s, err)
	}
	return v, nil
}

// MariaDB's error numbers that Classify tells apart.
const (
	erDupEntry          = 1062 // ER_DUP_ENTRY
	erLockWaitTimeout   = 1205 // ER_LOCK_WAIT_TIMEOUT
	erLockDeadlock      = 1213 // ER_LOCK_DEADLOCK: Galera's certification failure
	erUnknownCom        = 1047 // ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use"
	erErrorDuringCommit = 1180 // ER_ERROR_DURING_COMMIT
	erQueryInterrupted  = 1317 // ER_QUERY_INTERRUPTED
)

func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erDupEntry
}

// refused are the error numbers with which the server answers a statement
// it rolled back (an autocommit statement is its own transaction): a
// certification failure or a local transaction aborted by a replicated
// one (deadlock), a lock wait timeout, a node outside the primary
// component ("WSREP has not yet prepared node for application use"), a
// duplicate key, a read-only server, too many connections, denied
// access, unknown table, column or database, bad syntax.
var refused = []uint16{erLockDeadlock, erLockWaitTimeout, erUnknownCom, erDupEntry,
	1290, 1792, 1040, 1044, 1045, 1046, 1049, 1054, 1064, 1146}

// unavailable says whether err is a node that could not be reached or
// does not take queries (outside the primary component).
func unavailable(err error) bool {
	var me *mysql.MySQLError
	var op *net.OpError
	return errors.As(err, &me) && me.Number == erUnknownCom || errors.Is(err, driver.ErrBadConn) || errors.As(err, &op) && op.Op == "dial"
}

// Classify decides the type of a completed operation from its error:
//
//   - none: ok;
//   - a read that did not complete: fail (a read changes nothing);
//   - a compare-and-set whose compare was false; an operation the
//     workload does not have; an error with which the server said it
//     rolled the statement back (a certification failure, reported as a
//     deadlock; a node outside the primary component; see refused); a
//     connection that could not be made, or that database/sql found bad
//     before it sent anything: fail;
//   - anything else (an error during COMMIT, an interrupted query, a
//     timeout, a connection lost after the statement was sent): info.
//
// The returned text is the error, "" for ok.
func Classify(err error, read bool) (history.Type, string) {
	if err == nil {
		return history.OK, ""
	}
	if read || errors.Is(err, errNoMatch) || errors.Is(err, errUsage) {
		return history.Fail, err.Error()
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		if slices.Contains(refused, me.Number) {
			return history.Fail, err.Error()
		}
		return history.Info, err.Error()
	}
	if errors.Is(err, driver.ErrBadConn) {
		return history.Fail, err.Error() // database/sql: nothing was sent
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return history.Fail, err.Error()
	}
	return history.Info, err.Error()
}
