// Package ecstore is the adapter for ecstore, eccheck's own store: it turns
// history operations into calls on a node's HTTP API and classifies each
// outcome as ok, fail (certainly did not happen) or info (may have
// happened).
package ecstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// Workloads an adapter client serves; they decide what "read" and "add"
// mean.
const (
	Register = "register"
	Set      = "set"
	Counter  = "counter"
	// ListAppend is list-append transactions (f txn).
	ListAppend = "list-append"
	// RWRegister is rw-register transactions (f txn).
	RWRegister = "rw-register"
	// Saga is the saga workload's operations (checkers.SagaFs), each one
	// store.OpSaga; only the raft and primary modes run them.
	Saga = "saga"
)

// Options configure a Client.
type Options struct {
	// Workload is Register (the default), Set, Counter, ListAppend,
	// RWRegister or Saga.
	Workload string
	// Sessions makes the client carry its session token on every request,
	// so that the store gives read-your-writes and monotonic reads.
	Sessions bool
	// Timeout bounds each operation; past it the operation is info. 0
	// means 5s.
	Timeout time.Duration
	// IdempotencyKeys sends a counter add's request (history.Op.Request)
	// as its idempotency key, which the store dedupes by.
	IdempotencyKeys bool
	// MultiValue says the registers are multi-value (mode mvr): a write
	// sends the causal context of the client's last reply for its key and
	// completes with {"value", "dot"} (checkers.MVWrite), a read completes
	// with {"siblings", "context"} (checkers.MVRead), and a CAS fails, as
	// such a register has none.
	MultiValue bool
}

// ErrNoCAS is why a CAS fails in mvr mode.
var ErrNoCAS = errors.New("mvr registers have no compare-and-set")

// Client performs operations against one ecstore node. It is not safe for
// concurrent use: a client is one process of the history, with at most one
// operation in flight.
type Client struct {
	addr    string
	opts    Options
	http    *http.Client
	session *store.Session
	// contexts holds, per key, the causal context of the client's last
	// read or write reply (MultiValue); a Roaming client's clients share
	// one.
	contexts map[string]map[string]uint64
}

var (
	_ workload.Client = (*Client)(nil)
	_ workload.Client = (*Roaming)(nil)
)

// New returns a client of the node at addr (host:port).
func New(addr string, o Options) *Client {
	if o.Workload == "" {
		o.Workload = Register
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	return &Client{addr: addr, opts: o, http: &http.Client{Transport: tr}, contexts: map[string]map[string]uint64{}}
}

// Addr returns the node the client talks to.
func (c *Client) Addr() string { return c.addr }

// ResetSession forgets the session token, as a new client would.
func (c *Client) ResetSession() { c.session = nil }

// request maps an invocation to a store request.
func (c *Client) request(op history.Op) (store.Request, error) {
	req := store.Request{Key: op.Key}
	if req.Key == "" && c.opts.Workload != Saga {
		req.Key = "default"
	}
	raw := func(v history.Value) json.RawMessage { return json.RawMessage(v.String()) }
	switch {
	case c.opts.Workload == Register && op.F == "read":
		req.Op = store.OpRead
	case c.opts.Workload == Register && op.F == "write":
		req.Op, req.Value = store.OpWrite, raw(op.Value)
		if c.opts.MultiValue {
			req.Context = c.contexts[req.Key]
		}
	case c.opts.Workload == Register && op.F == "cas" && c.opts.MultiValue:
		return req, ErrNoCAS
	case c.opts.Workload == Register && op.F == "cas":
		old, nv, ok := op.Value.Pair()
		if !ok {
			return req, fmt.Errorf("cas value %s is not [old, new]", op.Value)
		}
		req.Op, req.Old, req.Value = store.OpCAS, raw(old), raw(nv)
	case c.opts.Workload == Set && op.F == "add":
		req.Op, req.Value = store.OpSetAdd, raw(op.Value)
	case c.opts.Workload == Set && op.F == "read":
		req.Op = store.OpSetRead
	case c.opts.Workload == Counter && op.F == "add":
		req.Op, req.Value = store.OpCounterAdd, raw(op.Value)
		if c.opts.IdempotencyKeys {
			req.RequestID = op.Request
		}
	case c.opts.Workload == Counter && op.F == "read":
		req.Op = store.OpCounterRead
	case c.opts.Workload == ListAppend && op.F == "txn":
		req.Op, req.Key, req.Value = store.OpTxn, "txn", raw(op.Value)
	case c.opts.Workload == RWRegister && op.F == "txn":
		req.Op, req.Key, req.Value = store.OpRWTxn, "txn", raw(op.Value)
	case c.opts.Workload == Saga && slices.Contains(checkers.SagaFs, op.F):
		cmd, err := json.Marshal(store.SagaCommand{F: op.F, Args: raw(op.Value)})
		if err != nil {
			return req, fmt.Errorf("encode %s: %w", op.F, err)
		}
		req.Op, req.Value = store.OpSaga, cmd
	default:
		return req, fmt.Errorf("the %s workload has no operation %q", c.opts.Workload, op.F)
	}
	if c.opts.Sessions && c.session != nil {
		req.Session = c.session
	}
	return req, nil
}

// Invoke performs the invocation op and returns its completion: the same
// process, f and key, with type ok, fail or info, the value read (for
// reads) and the node and error text. It never returns an invocation.
func (c *Client) Invoke(ctx context.Context, op history.Op) history.Op {
	done := history.Op{Process: op.Process, F: op.F, Key: op.Key, Value: op.Value, Type: history.Info}
	req, err := c.request(op)
	if err != nil {
		done.Type, done.Error = history.Fail, err.Error()
		return done
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	resp, sent, err := c.do(ctx, req)
	if err != nil {
		done.Error = err.Error()
		if !sent {
			done.Type = history.Fail // never reached the node
		}
		return done
	}
	done.Node = resp.Node
	if c.opts.Sessions && resp.Session != nil {
		if c.session == nil {
			c.session = &store.Session{}
		}
		c.session.Merge(resp.Session)
	}
	switch {
	case resp.Error == "" && c.opts.MultiValue && (req.Op == store.OpRead || req.Op == store.OpWrite):
		v, err := c.multiValue(req, op, resp)
		if err != nil {
			done.Type, done.Error = history.Info, fmt.Sprintf("unreadable reply from %s: %v", resp.Node, err)
			return done
		}
		done.Type, done.Value = history.OK, v
	case resp.Error == "":
		done.Type = history.OK
		if req.Op == store.OpRead || req.Op == store.OpSetRead || req.Op == store.OpCounterRead || req.Op == store.OpTxn || req.Op == store.OpRWTxn {
			v, err := history.ParseValue(string(orNull(resp.Value)))
			if err != nil {
				done.Type, done.Error = history.Info, fmt.Sprintf("unreadable value from %s: %v", resp.Node, err)
				return done
			}
			done.Value = v
		}
		if req.Op == store.OpSaga && len(resp.Value) > 0 {
			// The record, the records, the state or the shipment's state;
			// the other operations keep their arguments as their value.
			v, err := history.Raw(resp.Value)
			if err != nil {
				done.Type, done.Error = history.Info, fmt.Sprintf("unreadable value from %s: %v", resp.Node, err)
				return done
			}
			done.Value = v
		}
	case resp.Error == store.ErrRefused:
		done.Type, done.Error = history.Fail, resp.Message // the protocol's reason: "declined", "fenced: epoch 3"
	case resp.Error.Definite():
		done.Type, done.Error = history.Fail, errText(resp)
	default:
		done.Type, done.Error = history.Info, errText(resp)
	}
	return done
}

// multiValue makes the completion value of a register read or write in
// mvr mode from the store's reply, and remembers the reply's context for
// the key's next write. Siblings come sorted by dot (node, then counter),
// so that equal states read identically.
func (c *Client) multiValue(req store.Request, op history.Op, resp store.Response) (history.Value, error) {
	var out any
	switch req.Op {
	case store.OpRead:
		var r store.MVRRead
		if err := json.Unmarshal(resp.Value, &r); err != nil {
			return history.Value{}, fmt.Errorf("mvr read %s: %w", resp.Value, err)
		}
		mv := checkers.MVRead{Siblings: make([]checkers.MVSibling, len(r.Siblings)), Context: make(map[string]int64, len(r.Context))}
		for i, s := range r.Siblings {
			if _, _, err := checkers.ParseDot(s.Dot); err != nil {
				return history.Value{}, err
			}
			mv.Siblings[i] = checkers.MVSibling{Value: orNull(s.Value), Dot: s.Dot}
		}
		slices.SortFunc(mv.Siblings, func(a, b checkers.MVSibling) int { return compareDots(a.Dot, b.Dot) })
		for n, k := range r.Context {
			mv.Context[n] = int64(k)
		}
		c.contexts[req.Key] = r.Context
		out = mv
	case store.OpWrite:
		var w store.MVRWrite
		if err := json.Unmarshal(resp.Value, &w); err != nil {
			return history.Value{}, fmt.Errorf("mvr write reply %s: %w", resp.Value, err)
		}
		if _, _, err := checkers.ParseDot(w.Dot); err != nil {
			return history.Value{}, err
		}
		c.contexts[req.Key] = w.Context
		sent := make(map[string]int64, len(req.Context))
		for n, k := range req.Context {
			sent[n] = int64(k)
		}
		out = checkers.MVWrite{Value: json.RawMessage(op.Value.String()), Dot: w.Dot, Context: sent}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return history.Value{}, err
	}
	return history.Raw(b)
}

// compareDots orders two valid dots by node, then counter.
func compareDots(a, b string) int {
	an, ac, _ := checkers.ParseDot(a)
	bn, bc, _ := checkers.ParseDot(b)
	if c := strings.Compare(an, bn); c != 0 {
		return c
	}
	return cmp.Compare(ac, bc)
}

func orNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("null")
	}
	return v
}

func errText(r store.Response) string {
	if r.Message != "" {
		return string(r.Error) + ": " + r.Message
	}
	return string(r.Error)
}

// do sends req. sent is false only when the request certainly did not reach
// the node (the connection was refused), which makes the operation a fail;
// any later error (a timeout, a connection lost while waiting) is info.
func (c *Client) do(ctx context.Context, req store.Request) (resp store.Response, sent bool, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return resp, false, fmt.Errorf("encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.addr+"/v1/op", bytes.NewReader(body))
	if err != nil {
		return resp, false, err
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(hr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return resp, false, fmt.Errorf("node %s unreachable: %w", c.addr, err)
		}
		if ctx.Err() != nil {
			return resp, true, fmt.Errorf("timeout after %v", c.opts.Timeout)
		}
		return resp, true, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return resp, true, fmt.Errorf("read response: %w", err)
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return resp, true, fmt.Errorf("node %s answered %d with %q", c.addr, res.StatusCode, bytes.TrimSpace(data))
	}
	return resp, true, nil
}

// Roaming is a client that sends each operation to the next node in turn,
// carrying one session token across them (when Sessions is set): the way an
// application behind a load balancer meets a replicated store.
type Roaming struct {
	clients []*Client
	next    int
	session *store.Session
}

// NewRoaming returns a roaming client over the nodes at addrs.
func NewRoaming(addrs []string, o Options) *Roaming {
	r := &Roaming{}
	contexts := map[string]map[string]uint64{} // one client: one context per key
	for _, a := range addrs {
		c := New(a, o)
		c.contexts = contexts
		r.clients = append(r.clients, c)
	}
	return r
}

// Invoke performs op on the next node.
func (r *Roaming) Invoke(ctx context.Context, op history.Op) history.Op {
	c := r.clients[r.next%len(r.clients)]
	r.next++
	c.session = r.session
	done := c.Invoke(ctx, op)
	r.session = c.session
	return done
}
