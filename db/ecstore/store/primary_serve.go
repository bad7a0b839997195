// This file holds the primary mode's client operations: served from this
// node's state, or forwarded to the primary, with session waits.

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

func (p *primaryEngine) do(ctx context.Context, req Request) Response {
	return p.serve(ctx, req, false)
}

func isWriteOp(op Op) bool {
	return op == OpWrite || op == OpCAS || op == OpSetAdd || op == OpCounterAdd
}

// serve performs a client operation here, or forwards it to the primary
// (unless it was forwarded already).
func (p *primaryEngine) serve(ctx context.Context, req Request, forwarded bool) Response {
	var (
		value, old string // canonical JSON
		d          int64
		saga       sagaOp
		err        error
	)
	switch req.Op {
	case OpRead, OpSetRead, OpCounterRead:
	case OpWrite, OpSetAdd:
		if req.Op == OpSetAdd && len(req.Value) == 0 {
			return badRequest("set add without an element")
		}
		if value, err = canonical(req.Value); err != nil {
			return badRequest("value: %v", err)
		}
	case OpCAS:
		if value, err = canonical(req.Value); err != nil {
			return badRequest("value: %v", err)
		}
		if old, err = canonical(req.Old); err != nil {
			return badRequest("old value: %v", err)
		}
	case OpCounterAdd:
		if d, err = delta(req.Value); err != nil {
			return badRequest("%v", err)
		}
	case OpSaga:
		if saga, err = parseSaga(req.Key, req.Value); err != nil {
			return badRequest("%v", err)
		}
	default:
		return badRequest("unknown operation %q", req.Op)
	}
	write := isWriteOp(req.Op) || req.Op == OpSaga && !saga.readOnly()

	p.mu.Lock()
	isPrimary, leader, hasCopy := p.isPrimary, p.leader, p.hasCopy
	p.mu.Unlock()
	if !isPrimary && (write || p.cfg.PrimaryReads == "primary") {
		switch {
		case forwarded:
			return Response{Error: ErrNotLeader, Leader: leader, Message: fmt.Sprintf("%s is not the primary", p.self)}
		case leader == "":
			return Response{Error: ErrUnavailable, Message: "no known primary"}
		}
		return p.forward(ctx, leader, req, write)
	}
	if !isPrimary && !hasCopy {
		return Response{Error: ErrUnavailable, Message: "this node has no copy of the data yet"}
	}

	if req.Session != nil {
		if need := req.Session.Seen[req.Key].Index; need > 0 && !p.waitApplied(ctx, need) {
			return Response{Error: ErrSession, Session: req.Session,
				Message: fmt.Sprintf("not caught up with the session's index %d of epoch %d within %v", need&primaryIndexMask, need>>primaryIndexBits, p.cfg.SessionWait)}
		}
	}

	p.mu.Lock()
	if write && !p.isPrimary {
		leader := p.leader
		p.mu.Unlock()
		return Response{Error: ErrNotLeader, Leader: leader, Message: fmt.Sprintf("%s stepped down before applying", p.self)}
	}
	var (
		resp  Response
		stamp uint64
	)
	switch req.Op {
	case OpRead:
		r := p.regs[req.Key]
		resp.Value, stamp = orNullJSON(r.Value), r.Stamp
	case OpWrite:
		stamp = p.appendLocked(pEntry{Kind: OpWrite, Key: req.Key, Value: json.RawMessage(value)})
	case OpCAS:
		r := p.regs[req.Key]
		cur := orNullJSON(r.Value)
		if string(cur) != old {
			resp = Response{Error: ErrCASMismatch, Value: cur, Message: fmt.Sprintf("register holds %s, not %s", cur, old)}
			stamp = r.Stamp
			break
		}
		stamp = p.appendLocked(pEntry{Kind: OpWrite, Key: req.Key, Value: json.RawMessage(value)})
	case OpSetAdd:
		stamp = p.appendLocked(pEntry{Kind: OpSetAdd, Key: req.Key, Value: json.RawMessage(value)})
	case OpSetRead:
		var elems []string
		if set := p.sets[req.Key]; set != nil {
			elems = make([]string, 0, len(set.Elems))
			for e := range set.Elems {
				elems = append(elems, e)
			}
			stamp = set.Stamp
		}
		slices.Sort(elems)
		resp.Value = json.RawMessage("[" + strings.Join(elems, ",") + "]")
	case OpCounterAdd:
		stamp = p.appendLocked(pEntry{Kind: OpCounterAdd, Key: req.Key, Delta: d, Request: req.RequestID})
	case OpCounterRead:
		c := p.counters[req.Key]
		resp.Value, stamp = json.RawMessage(fmt.Sprint(c.Total)), c.Stamp
	case OpSaga:
		var res sagaResult
		res, stamp = p.sagaLocked(saga)
		resp.Value = res.Value
		if res.Refused != "" {
			resp = Response{Error: ErrRefused, Message: res.Refused}
		}
	}
	if write && resp.Error == "" {
		p.notifyLocked()
	}
	p.mu.Unlock()

	resp.Session = &Session{}
	resp.Session.Merge(req.Session)
	if stamp != 0 {
		resp.Session.Observe(req.Key, Stamp{Index: stamp})
	}
	return resp
}

func orNullJSON(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return nullJSON
	}
	return v
}

// waitApplied waits until this node has applied the entry stamped need (or
// a later one), up to the session bound.
func (p *primaryEngine) waitApplied(ctx context.Context, need uint64) bool {
	t := time.NewTimer(p.cfg.SessionWait)
	defer t.Stop()
	for {
		p.mu.Lock()
		ok, ch := p.posLocked() >= need, p.changed
		p.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// forward sends a client request to the primary and relays its answer.
func (p *primaryEngine) forward(ctx context.Context, to string, req Request, write bool) Response {
	var resp Response
	err := p.e.peers.Call(ctx, to, pKindForward, req, &resp)
	if err == nil {
		return resp
	}
	kind := forwardError(err)
	if !write {
		kind = ErrUnavailable // a read changed nothing either way
	}
	return Response{Error: kind, Leader: to, Message: fmt.Sprintf("forward to primary %s: %v", to, err)}
}

// forwardError classifies a failed forward: ErrUnavailable when the
// primary certainly did not act on it (the connection was refused, or it
// answered with an error status, which it does only before acting), else
// ErrIndeterminate (no reply, or the connection broke after the request
// went out).
func forwardError(err error) ErrorKind {
	var (
		opErr  *net.OpError
		urlErr *url.Error
		synErr *json.SyntaxError
		typErr *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, ErrNoReply):
		return ErrIndeterminate
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ErrUnavailable
	case errors.As(err, &urlErr), errors.As(err, &synErr), errors.As(err, &typErr):
		return ErrIndeterminate
	}
	return ErrUnavailable
}
