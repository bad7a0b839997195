package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// The read settings of --etcd-read.
const (
	// ReadLinearizable is etcd's default: a read goes through the
	// leader's read index, so it sees every write acknowledged before it
	// started, and fails when the member cannot reach a quorum.
	ReadLinearizable = "linearizable"
	// ReadSerializable serves a read from the member asked, from what it
	// has applied, without the leader: faster, available in a minority,
	// and possibly stale.
	ReadSerializable = "serializable"
)

// Reads lists the values of --etcd-read.
var Reads = []string{ReadLinearizable, ReadSerializable}

// The key spaces of the workloads: a register is one key, a set one key
// per element under a prefix, a counter one key holding a decimal.
const (
	registerPrefix = "r/"
	setPrefix      = "s/"
	counterPrefix  = "c/"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Workload is the data type: "register" (the default), "set" or
	// "counter" (see [workload.Kind]).
	Workload string
	// Read is ReadLinearizable (the default) or ReadSerializable.
	Read string
	// Timeout bounds each operation; 0 means 5s.
	Timeout time.Duration
	// Node names the member the endpoints belong to, for the history.
	Node string
	// Auth, when set, is the user the client logs in as (a cluster with
	// authentication on).
	Auth *Auth
}

// Auth is an etcd user and its password.
type Auth struct{ User, Password string }

// Client performs a worker's operations on etcd through the official Go
// client, bound to the endpoints it was made with (one member's, for a
// worker bound to a node). It is one process of the history: at most one
// operation in flight.
type Client struct {
	cli  *clientv3.Client
	opts ClientOptions
}

// NewClient returns a client of the members at endpoints (host:port). It
// connects lazily: a member that does not answer makes operations fail or
// time out, not this call.
func NewClient(endpoints []string, o ClientOptions) (*Client, error) {
	if o.Workload == "" {
		o.Workload = workload.Register
	}
	if o.Read == "" {
		o.Read = ReadLinearizable
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	cli, err := newEtcd(endpoints, o.Auth)
	if err != nil {
		return nil, err
	}
	return &Client{cli: cli, opts: o}, nil
}

// newEtcd makes an etcd client of endpoints that logs nothing and never
// learns the other members' endpoints (so a worker stays on its member).
func newEtcd(endpoints []string, auth *Auth) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		// Reject a stream to a member that stopped answering, so that a
		// paused member's requests end at their deadline.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	}
	if auth != nil {
		cfg.Username, cfg.Password = auth.User, auth.Password
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client of %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// Close closes the client's connections.
func (c *Client) Close() error { return c.cli.Close() }

// errNoMatch marks a compare-and-set whose comparison was false: nothing
// was written.
var errNoMatch = errors.New("the compare was false: nothing written")

// errUsage marks an operation the workload does not have.
var errUsage = errors.New("unknown operation")

// Invoke performs op and returns its completion: ok when it certainly
// happened, fail when it certainly did not, info when it may have (see
// [Classify]).
func (c *Client) Invoke(ctx context.Context, op history.Op) history.Op {
	done := history.Op{Process: op.Process, F: op.F, Key: op.Key, Value: op.Value, Type: history.Info, Node: c.opts.Node}
	key := op.Key
	if key == "" {
		key = "default"
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	v, err := c.exec(ctx, op, key)
	done.Type, done.Error = Classify(err, op.F == "read")
	if done.Type == history.OK && op.F == "read" {
		done.Value = v
	}
	return done
}

// readOpts are the options of a read as --etcd-read says.
func (c *Client) readOpts(more ...clientv3.OpOption) []clientv3.OpOption {
	if c.opts.Read == ReadSerializable {
		more = append(more, clientv3.WithSerializable())
	}
	return more
}

// exec runs op and returns what a read returned.
func (c *Client) exec(ctx context.Context, op history.Op, key string) (history.Value, error) {
	kind := workload.Kind(c.opts.Workload)
	switch {
	case kind == workload.Register && op.F == "read":
		res, err := c.cli.Get(ctx, registerPrefix+key, c.readOpts()...)
		if err != nil {
			return history.Nil(), err
		}
		if len(res.Kvs) == 0 {
			return history.Nil(), nil
		}
		return parse(res.Kvs[0].Value)
	case kind == workload.Register && op.F == "write":
		_, err := c.cli.Put(ctx, registerPrefix+key, op.Value.String())
		return history.Nil(), err
	case kind == workload.Register && op.F == "cas":
		old, nv, ok := op.Value.Pair()
		if !ok {
			return history.Nil(), fmt.Errorf("%w: cas value %s is not [old, new]", errUsage, op.Value)
		}
		k := registerPrefix + key
		cmp := clientv3.Compare(clientv3.Value(k), "=", old.String())
		if old.IsNil() {
			cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0) // the key does not exist
		}
		res, err := c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, nv.String())).Commit()
		if err != nil {
			return history.Nil(), err
		}
		if !res.Succeeded {
			return history.Nil(), errNoMatch
		}
		return history.Nil(), nil
	case kind == workload.Set && op.F == "add":
		_, err := c.cli.Put(ctx, setPrefix+key+"/"+op.Value.String(), "")
		return history.Nil(), err
	case kind == workload.Set && op.F == "read":
		prefix := setPrefix + key + "/"
		res, err := c.cli.Get(ctx, prefix, c.readOpts(clientv3.WithPrefix(), clientv3.WithKeysOnly())...)
		if err != nil {
			return history.Nil(), err
		}
		elems := make([]history.Value, 0, len(res.Kvs))
		for _, kv := range res.Kvs {
			e, err := parse(kv.Key[len(prefix):])
			if err != nil {
				return history.Nil(), err
			}
			elems = append(elems, e)
		}
		slices.SortFunc(elems, func(a, b history.Value) int { return strings.Compare(a.String(), b.String()) })
		return history.List(elems...), nil
	case kind == workload.Counter && op.F == "add":
		d, ok := op.Value.AsInt()
		if !ok {
			return history.Nil(), fmt.Errorf("%w: counter add of %s, not an integer", errUsage, op.Value)
		}
		return history.Nil(), c.add(ctx, counterPrefix+key, d)
	case kind == workload.Counter && op.F == "read":
		res, err := c.cli.Get(ctx, counterPrefix+key, c.readOpts()...)
		if err != nil {
			return history.Nil(), err
		}
		if len(res.Kvs) == 0 {
			return history.Int(0), nil
		}
		return parse(res.Kvs[0].Value)
	}
	return history.Nil(), fmt.Errorf("%w: the %s workload has no operation %q", errUsage, c.opts.Workload, op.F)
}

// errConflicts marks a counter add that gave up after losing every
// compare-and-set to other writers: none of its attempts wrote.
var errConflicts = errors.New("every compare-and-set lost to a concurrent add")

// add adds d to the counter at k with a compare-and-set loop: read the
// value and its revision, then write the sum if the revision is still
// the same. A lost compare wrote nothing, so the loop tries again until
// ctx ends; the first attempt whose outcome is unknown ends the loop
// with that error, which makes the add info.
func (c *Client) add(ctx context.Context, k string, d int64) error {
	for {
		res, err := c.cli.Get(ctx, k, c.readOpts()...)
		if err != nil {
			// Nothing was written by this add yet.
			return definite{fmt.Errorf("read before the compare-and-set: %w", err)}
		}
		var n, rev int64
		if len(res.Kvs) > 0 {
			v, err := parse(res.Kvs[0].Value)
			if err != nil {
				return definite{err}
			}
			if n, _ = v.AsInt(); v.Kind() != history.KindInt {
				return definite{fmt.Errorf("counter %s holds %s, not an integer", k, v)}
			}
			rev = res.Kvs[0].ModRevision
		}
		cmp := clientv3.Compare(clientv3.ModRevision(k), "=", rev)
		txn, err := c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, history.Int(n+d).String())).Commit()
		if err != nil {
			return err
		}
		if txn.Succeeded {
			return nil
		}
		if ctx.Err() != nil {
			return definite{errConflicts}
		}
	}
}

// definite wraps an error after which the operation certainly did not
// happen.
type definite struct{ error }

func (d definite) Unwrap() error { return d.error }

// parse reads a value the workloads wrote (its JSON text).
func parse(b []byte) (history.Value, error) {
	v, err := history.ParseValue(string(b))
	if err != nil {
		return history.Nil(), definite{fmt.Errorf("unreadable value %q: %w", b, err)}
	}
	return v, nil
}

// refused are the errors with which etcd refuses a write before it
// proposes it to Raft: it certainly did not happen.
var refused = []error{
	rpctypes.ErrTooManyRequests, rpctypes.ErrNoSpace, rpctypes.ErrRequestTooLarge,
	rpctypes.ErrEmptyKey, rpctypes.ErrKeyNotFound, rpctypes.ErrTooManyOps, rpctypes.ErrDuplicateKey,
	rpctypes.ErrCompacted, rpctypes.ErrFutureRev,
}

// Classify decides the type of a completed operation from its error:
//
//   - none: ok;
//   - a read that did not complete: fail (a read changes nothing);
//   - a compare-and-set whose compare was false, an operation the
//     workload does not have, or a write etcd refused before proposing it
//     (too many requests, no space, too large; Raft dropped the proposal
//     because the member knew no leader): fail;
//   - anything else (a timeout, a lost connection, "leader changed", "request
//     timed out", the run's end): info, since the write may have been
//     proposed and may commit.
//
// The returned text is the error, "" for ok.
func Classify(err error, read bool) (history.Type, string) {
	if err == nil {
		return history.OK, ""
	}
	var d definite
	if read || errors.Is(err, errNoMatch) || errors.Is(err, errUsage) || errors.As(err, &d) {
		return history.Fail, err.Error()
	}
	for _, r := range refused {
		if errors.Is(err, r) {
			return history.Fail, err.Error()
		}
	}
	if strings.Contains(err.Error(), "raft proposal dropped") {
		return history.Fail, err.Error()
	}
	return history.Info, err.Error()
}
