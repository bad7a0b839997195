package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// The read settings of --redis-read.
const (
	ReadPrimary = "primary" // every read on the primary Sentinel names
	ReadReplica = "replica" // each read on the next replica in turn
)

// Reads lists the values of --redis-read.
var Reads = []string{ReadPrimary, ReadReplica}

// The key spaces of the workloads: a string, a set and a counter per key.
const (
	registerPrefix = "r:"
	setPrefix      = "s:"
	counterPrefix  = "c:"
	// requestPrefix is the key space of the requests counter adds were
	// applied for (--idempotency-keys): one key per request.
	requestPrefix = "req:"
)

// casScript is compare-and-set as one server-side step: it writes
// ARGV[2] when the key holds ARGV[1] (or, with ARGV[3] = "nil", does not
// exist) and returns 1, else 0.
var casScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (ARGV[3] == 'nil' and cur == false) or (ARGV[3] ~= 'nil' and cur == ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// addOnceScript is a counter add applied at most once per request, as
// one server-side step, so that the request's key and the add are
// written together: it adds ARGV[1] to the counter KEYS[1] when the
// request key KEYS[2] does not exist yet, creating it, and returns 1; a
// request seen before applies nothing and counts one more attempt in its
// key, and the script returns the attempts so far (2, 3, ...).
//
// A repeated attempt writes its key so that it is replicated like the
// first attempt: a WAIT after it covers the replication stream up to it,
// the first attempt's add included, and the repeated attempt is
// acknowledged ok only when the add it stands for is as safe as a fresh
// add acknowledged ok. (WAIT waits for the connection's own last write;
// after a script that wrote nothing, it would be acknowledged however
// far behind the replicas are.)
var addOnceScript = goredis.NewScript(`
if redis.call('SET', KEYS[2], 1, 'NX') then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  return 1
end
return redis.call('INCR', KEYS[2])`)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Workload is the data type: "register" (the default), "set" or
	// "counter" (see [workload.Kind]).
	Workload string
	// Sentinels are the Sentinel addresses the client finds the primary
	// through; Primary, when set instead, is one fixed server address (a
	// final read's node, or a test's).
	Sentinels []string
	Primary   string
	// Replicas are the servers replica reads go to, in turn; empty
	// means reads go to the primary.
	Replicas []string
	// Wait, when positive, follows each write with WAIT Wait replicas
	// for WaitTimeout (0 means 1s); a write fewer replicas acknowledged
	// is info.
	Wait        int
	WaitTimeout time.Duration
	// Timeout bounds each operation; 0 means 5s.
	Timeout time.Duration
	// NodeOf names the node at an address, for the history.
	NodeOf func(addr string) string
	// IdempotencyKeys applies a counter add at most once per request
	// (history.Op.Request) with [addOnceScript]; an add with no request
	// is applied as it is.
	IdempotencyKeys bool
	// Password is what the servers and the Sentinels want (requirepass),
	// or "".
	Password string
}

// Client performs a worker's operations through go-redis: writes (and
// reads, unless replicas are named) on the primary found through
// Sentinel, following a failover as applications do. It is one process
// of the history: at most one operation in flight.
type Client struct {
	opts     ClientOptions
	primary  goredis.UniversalClient
	replicas []*goredis.Client
	next     int
	// primaryNode names the node of a fixed Primary; through Sentinel it
	// is "" (go-redis does not say which server answered).
	primaryNode string
}

// quiet discards go-redis's own log lines (Sentinel discovery, each new
// primary): eccheck reports what matters in the history and its progress.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func init() { goredis.SetLogger(quiet{}) }

// baseOptions are go-redis's options for one operation at a time, with no
// retries: a command go-redis retried by itself after a lost connection
// could apply twice behind the history's back.
func baseOptions(o *goredis.Options) *goredis.Options {
	o.MaxRetries = -1
	o.DialTimeout = 2 * time.Second
	o.ContextTimeoutEnabled = true
	o.PoolSize = 2
	o.DisableIdentity = true
	return o
}

// NewClient makes a client; it connects lazily.
func NewClient(o ClientOptions) *Client {
	if o.Workload == "" {
		o.Workload = workload.Register
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = time.Second
	}
	c := &Client{opts: o}
	if o.Primary != "" {
		c.primaryNode = c.node(o.Primary)
		c.primary = goredis.NewClient(baseOptions(&goredis.Options{Addr: o.Primary, Password: o.Password}))
	} else {
		c.primary = goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName: MasterName, SentinelAddrs: o.Sentinels, Password: o.Password, SentinelPassword: o.Password,
			MaxRetries: -1, DialTimeout: 2 * time.Second, ContextTimeoutEnabled: true, PoolSize: 2, DisableIdentity: true,
		})
	}
	for _, r := range o.Replicas {
		c.replicas = append(c.replicas, goredis.NewClient(baseOptions(&goredis.Options{Addr: r, Password: o.Password})))
	}
	return c
}

// Close closes the client's connections.
func (c *Client) Close() error {
	errs := []error{c.primary.Close()}
	for _, r := range c.replicas {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// errNoMatch marks a compare-and-set whose comparison was false.
var errNoMatch = errors.New("the value did not match: nothing written")

// errUsage marks an operation the workload does not have.
var errUsage = errors.New("unknown operation")

// errWait marks a write that WAIT saw on fewer replicas than asked: it
// was applied on the primary, which may lose it.
var errWait = errors.New("fewer replicas than asked acknowledged the write")

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
	v, node, err := c.exec(ctx, op, key)
	done.Node = node
	done.Type, done.Error = Classify(err, op.F == "read")
	if done.Type == history.OK && op.F == "read" {
		done.Value = v
	}
	return done
}

// reader returns the client of the next read and the node it reads.
func (c *Client) reader() (goredis.Cmdable, string) {
	if len(c.replicas) == 0 {
		return c.primary, c.primaryNode
	}
	r := c.replicas[c.next%len(c.replicas)]
	c.next++
	return r, c.node(r.Options().Addr)
}

func (c *Client) node(addr string) string {
	if c.opts.NodeOf == nil {
		return ""
	}
	return c.opts.NodeOf(addr)
}

// exec runs op and returns what a read returned and the node it ran on.
func (c *Client) exec(ctx context.Context, op history.Op, key string) (history.Value, string, error) {
	kind := workload.Kind(c.opts.Workload)
	if op.F == "read" {
		r, node := c.reader()
		v, err := c.read(ctx, r, kind, key)
		return v, node, err
	}
	node := c.primaryNode
	var err error
	switch {
	case kind == workload.Register && op.F == "write":
		err = c.write(ctx, func(pipe goredis.Pipeliner) { pipe.Set(ctx, registerPrefix+key, op.Value.String(), 0) })
	case kind == workload.Register && op.F == "cas":
		old, nv, ok := op.Value.Pair()
		if !ok {
			return history.Nil(), node, fmt.Errorf("%w: cas value %s is not [old, new]", errUsage, op.Value)
		}
		isNil := "set"
		if old.IsNil() {
			isNil = "nil"
		}
		var res *goredis.Cmd
		err = c.write(ctx, func(pipe goredis.Pipeliner) {
			res = casScript.Eval(ctx, pipe, []string{registerPrefix + key}, old.String(), nv.String(), isNil)
		})
		// A script that wrote nothing failed, whatever WAIT saw.
		if n, rerr := res.Int(); rerr == nil && n == 0 && (err == nil || errors.Is(err, errWait)) {
			err = errNoMatch
		}
	case kind == workload.Set && op.F == "add":
		err = c.write(ctx, func(pipe goredis.Pipeliner) { pipe.SAdd(ctx, setPrefix+key, op.Value.String()) })
	case kind == workload.Counter && op.F == "add":
		d, ok := op.Value.AsInt()
		if !ok {
			return history.Nil(), node, fmt.Errorf("%w: counter add of %s, not an integer", errUsage, op.Value)
		}
		if c.opts.IdempotencyKeys && op.Request != "" {
			err = c.write(ctx, func(pipe goredis.Pipeliner) {
				addOnceScript.Eval(ctx, pipe, []string{counterPrefix + key, requestPrefix + op.Request}, d)
			})
			break
		}
		err = c.write(ctx, func(pipe goredis.Pipeliner) { pipe.IncrBy(ctx, counterPrefix+key, d) })
	default:
		err = fmt.Errorf("%w: the %s workload has no operation %q", errUsage, c.opts.Workload, op.F)
	}
	return history.Nil(), node, err
}

// write sends a write, followed by WAIT on the same connection when the
// client waits for replicas, in one pipeline, and returns the first error.
func (c *Client) write(ctx context.Context, cmds func(goredis.Pipeliner)) error {
	pipe := c.primary.Pipeline()
	cmds(pipe)
	var wait *goredis.Cmd
	if c.opts.Wait > 0 {
		wait = pipe.Do(ctx, "WAIT", c.opts.Wait, c.opts.WaitTimeout.Milliseconds())
	}
	cmdsRun, err := pipe.Exec(ctx)
	if err != nil {
		// The first failed command's error (Exec returns it).
		return err
	}
	for _, cmd := range cmdsRun {
		if cmd.Err() != nil {
			return cmd.Err()
		}
	}
	if wait != nil {
		if n, err := wait.Int64(); err != nil || n < int64(c.opts.Wait) {
			return fmt.Errorf("%w: WAIT %d saw %d within %v", errWait, c.opts.Wait, n, c.opts.WaitTimeout)
		}
	}
	return nil
}

// read reads key of the workload's kind on r.
func (c *Client) read(ctx context.Context, r goredis.Cmdable, kind, key string) (history.Value, error) {
	switch kind {
	case workload.Register:
		s, err := r.Get(ctx, registerPrefix+key).Result()
		if errors.Is(err, goredis.Nil) {
			return history.Nil(), nil
		}
		if err != nil {
			return history.Nil(), err
		}
		return parse(s)
	case workload.Set:
		ms, err := r.SMembers(ctx, setPrefix+key).Result()
		if err != nil {
			return history.Nil(), err
		}
		elems := make([]history.Value, 0, len(ms))
		for _, m := range ms {
			e, err := parse(m)
			if err != nil {
				return history.Nil(), err
			}
			elems = append(elems, e)
		}
		slices.SortFunc(elems, func(a, b history.Value) int { return strings.Compare(a.String(), b.String()) })
		return history.List(elems...), nil
	case workload.Counter:
		s, err := r.Get(ctx, counterPrefix+key).Result()
		if errors.Is(err, goredis.Nil) {
			return history.Int(0), nil
		}
		if err != nil {
			return history.Nil(), err
		}
		return parse(s)
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

// refusals are the prefixes of the errors with which a Redis server
// refuses a write before it applies it: it certainly did not happen.
var refusals = []string{"READONLY", "NOREPLICAS", "MASTERDOWN", "LOADING", "BUSY", "OOM", "WRONGTYPE", "NOSCRIPT", "ERR"}

// Classify decides the type of a completed operation from its error:
//
//   - none: ok;
//   - a read that did not complete: fail (a read changes nothing);
//   - a compare-and-set whose compare was false; an operation the
//     workload does not have; an error reply with which the server refused
//     the write (READONLY from a replica, NOREPLICAS under
//     min-replicas-to-write, LOADING, MASTERDOWN, ...); a connection that
//     could not be made: fail;
//   - a write that WAIT saw on fewer replicas than asked: info (the
//     primary applied it, and a failover may lose it);
//   - anything else (a timeout, a connection lost after the write was
//     sent): info.
//
// The returned text is the error, "" for ok.
func Classify(err error, read bool) (history.Type, string) {
	if err == nil {
		return history.OK, ""
	}
	if read || errors.Is(err, errNoMatch) || errors.Is(err, errUsage) {
		return history.Fail, err.Error()
	}
	if errors.Is(err, errWait) {
		return history.Info, err.Error()
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		for _, p := range refusals {
			if strings.HasPrefix(err.Error(), p) {
				return history.Fail, err.Error()
			}
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return history.Fail, err.Error() // nothing was sent
	}
	return history.Info, err.Error()
}
