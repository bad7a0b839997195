// This file holds the raft mode's client operations: checking a request,
// serving it on the leader (raft commands, read-index reads) or forwarding
// it there, and waiting on raft's futures.

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// raftForward is a client operation a follower hands to the leader.
type raftForward struct {
	Request Request `json:"request"`
	// TimeoutNs is how long the leader has to answer.
	TimeoutNs int64 `json:"timeout_ns"`
}

func (e *raftEngine) peer(ctx context.Context, from, kind string, body []byte) (any, error) {
	if kind != "forward" {
		return nil, fmt.Errorf("raft: unknown peer message %q", kind)
	}
	var fw raftForward
	if err := json.Unmarshal(body, &fw); err != nil {
		return nil, fmt.Errorf("decode forwarded request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(fw.TimeoutNs))
	defer cancel()
	if resp, ok := validateRaftRequest(&fw.Request); !ok {
		return resp, nil
	}
	resp := e.serve(ctx, fw.Request, true)
	resp.Node = e.cfg.ID
	return resp, nil
}

func (e *raftEngine) do(ctx context.Context, req Request) Response {
	if resp, ok := validateRaftRequest(&req); !ok {
		return resp
	}
	return e.serve(ctx, req, false)
}

// validateRaftRequest checks a request and puts its values in canonical
// form, so that every replica stores the same bytes.
func validateRaftRequest(req *Request) (Response, bool) {
	canon := func(what string, v json.RawMessage) (json.RawMessage, error) {
		c, err := canonical(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return json.RawMessage(c), nil
	}
	var err error
	switch req.Op {
	case OpRead, OpSetRead, OpCounterRead:
	case OpWrite, OpSetAdd:
		req.Value, err = canon("value", req.Value)
	case OpCAS:
		if req.Old, err = canon("old value", req.Old); err == nil {
			req.Value, err = canon("new value", req.Value)
		}
	case OpCounterAdd:
		_, err = delta(req.Value)
	case OpTxn, OpRWTxn:
		if _, err = parseTxn(req.Op, req.Value); err == nil {
			req.Value, err = canon("transaction", req.Value)
		}
	case OpSaga:
		var op sagaOp
		if op, err = parseSaga(req.Key, req.Value); err == nil {
			req.Value = op.raw
		}
	default:
		return badRequest("unknown operation %q", req.Op), false
	}
	if err != nil {
		return badRequest("%s %s: %v", req.Op, req.Key, err), false
	}
	return Response{}, true
}

// serve runs an operation on the leader: here when this node leads,
// otherwise forwarded (unless it was forwarded already: operations hop at
// most once). It retries while every attempt certainly did nothing and the
// deadline allows.
func (e *raftEngine) serve(ctx context.Context, req Request, forwarded bool) Response {
	r := e.raft.Load()
	if r == nil {
		return Response{Error: ErrUnavailable, Message: "raft is not running yet", Session: req.Session}
	}
	hint := ""
	for {
		_, leader := r.LeaderWithID()
		if leader != "" {
			hint = string(leader)
		}
		switch {
		case r.State() == raft.Leader:
			resp := e.local(ctx, r, req)
			if resp.Error != ErrNotLeader || forwarded {
				return resp
			}
			// Leadership moved before the operation reached the log.
		case forwarded:
			return Response{Error: ErrNotLeader, Leader: hint, Message: "this node is not the raft leader", Session: req.Session}
		case leader != "" && string(leader) != e.cfg.ID:
			resp, retry := e.forward(ctx, string(leader), req)
			if !retry {
				return resp
			}
		}
		select {
		case <-ctx.Done():
			return Response{Error: ErrNotLeader, Leader: hint, Message: "no raft leader answered before the deadline", Session: req.Session}
		case <-e.stopCh:
			return Response{Error: ErrUnavailable, Message: "node is stopping", Session: req.Session}
		case <-time.After(raftRetryEvery):
		}
	}
}

// forward hands req to the leader. retry is true when the operation
// certainly did not happen and another leader may take it.
func (e *raftEngine) forward(ctx context.Context, leader string, req Request) (resp Response, retry bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(e.cfg.RequestTimeout)
	}
	left := time.Until(dl)
	// The leader answers a little before our deadline, so that its answer
	// can travel back in time.
	margin := min(max(left/10, 20*time.Millisecond), 200*time.Millisecond)
	if left-margin < 10*time.Millisecond {
		return Response{Error: ErrNotLeader, Leader: leader, Message: "no time left to forward to the leader", Session: req.Session}, false
	}
	fctx, cancel := context.WithDeadline(ctx, dl)
	defer cancel()
	err := e.peers.Call(fctx, leader, "forward", raftForward{Request: req, TimeoutNs: int64(left - margin)}, &resp)
	if err == nil {
		return resp, resp.Error == ErrNotLeader
	}
	write := req.Op != OpRead && req.Op != OpSetRead && req.Op != OpCounterRead && !sagaReadOnly(req)
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		// Never delivered: try again, maybe with a new leader.
		return Response{Error: ErrUnavailable, Leader: leader, Message: "forward to leader: " + err.Error(), Session: req.Session}, true
	case write:
		return Response{Error: ErrIndeterminate, Leader: leader, Message: "forward to leader: " + err.Error(), Session: req.Session}, false
	}
	return Response{Error: ErrUnavailable, Leader: leader, Message: "forward to leader: " + err.Error(), Session: req.Session}, false
}

// local serves an operation on this node, the leader.
func (e *raftEngine) local(ctx context.Context, r *raft.Raft, req Request) Response {
	sess := &Session{}
	sess.Merge(req.Session)
	if st, ok := sess.Seen[req.Key]; ok && st.Index > 0 {
		wctx, cancel := context.WithTimeout(ctx, e.cfg.SessionWait)
		caught := e.fsm.waitLevel(wctx, st.Index)
		cancel()
		if !caught {
			return Response{Error: ErrSession, Session: sess, Message: fmt.Sprintf("state has not reached index %d of the session", st.Index)}
		}
	}
	if isTxn(req.Op) {
		// One log entry: its reads and writes happen at one point.
		res, kind, msg := e.apply(ctx, r, raftCommand{Op: req.Op, Value: req.Value})
		switch {
		case kind != "":
			return Response{Error: kind, Message: msg, Session: sess}
		case res.Err != "":
			return Response{Error: ErrBadRequest, Message: res.Err, Session: sess}
		}
		return Response{Value: res.Value, Session: sess}
	}
	if req.Op == OpSaga {
		// One log entry, reads included: each operation happens at one
		// point between its call and its answer.
		res, kind, msg := e.apply(ctx, r, raftCommand{Op: OpSaga, Key: req.Key, Value: req.Value})
		switch {
		case kind != "":
			return Response{Error: kind, Message: msg, Session: sess}
		case res.Err != "":
			return Response{Error: ErrBadRequest, Message: res.Err, Session: sess}
		case res.Refused != "":
			return Response{Error: ErrRefused, Message: res.Refused, Session: sess}
		}
		return Response{Value: res.Value, Session: sess}
	}
	switch req.Op {
	case OpRead, OpSetRead, OpCounterRead:
		if kind, msg := e.readIndex(ctx, r); kind != "" {
			return Response{Error: kind, Message: msg, Session: sess}
		}
		v, idx := e.fsm.read(req.Op, req.Key)
		if idx > 0 {
			sess.Observe(req.Key, Stamp{Index: idx})
		}
		return Response{Value: v, Session: sess}
	}
	cmd := raftCommand{Op: req.Op, Key: req.Key, Value: req.Value, Old: req.Old}
	if req.Op == OpCounterAdd {
		cmd.Value, cmd.RequestID = nil, req.RequestID
		cmd.Delta, _ = delta(req.Value) // checked by validateRaftRequest
	}
	res, kind, msg := e.apply(ctx, r, cmd)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	if res.Index > 0 {
		sess.Observe(req.Key, Stamp{Index: res.Index})
	}
	switch {
	case res.Err != "":
		return Response{Error: ErrBadRequest, Message: res.Err, Session: sess}
	case req.Op == OpCAS && !res.Swapped:
		return Response{Error: ErrCASMismatch, Value: res.Value, Session: sess, Message: "register holds " + string(res.Value)}
	}
	return Response{Session: sess}
}

// apply proposes a command and waits for the state machine's answer.
func (e *raftEngine) apply(ctx context.Context, r *raft.Raft, cmd raftCommand) (raftResult, ErrorKind, string) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return raftResult{}, ErrBadRequest, "encode command: " + err.Error()
	}
	f, err := e.call(ctx, func() raft.Future { return r.Apply(data, timeLeft(ctx)) }, nil)
	switch {
	case errors.Is(err, errStopping):
		return raftResult{}, ErrUnavailable, err.Error()
	case err == nil:
		res, ok := f.(raft.ApplyFuture).Response().(raftResult)
		if !ok {
			return raftResult{}, ErrIndeterminate, fmt.Sprintf("unexpected state machine answer %T", f.(raft.ApplyFuture).Response())
		}
		return res, "", ""
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it was appended to the log.
		return raftResult{}, ErrNotLeader, err.Error()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// Never handed to raft's main loop.
		return raftResult{}, ErrUnavailable, err.Error()
	case ctx.Err() != nil:
		return raftResult{}, ErrIndeterminate, "raft did not commit before the deadline"
	}
	return raftResult{}, ErrIndeterminate, err.Error()
}

// readIndex makes this leader's state machine fit for a linearizable read:
// see the raft mode's comment in raft.go. It returns an error kind (definite:
// a read changes nothing) when it cannot.
func (e *raftEngine) readIndex(ctx context.Context, r *raft.Raft) (ErrorKind, string) {
	term := r.CurrentTerm()
	if r.State() != raft.Leader {
		return ErrNotLeader, "lost leadership"
	}
	if e.barrierTerm.Load() != term {
		if err := e.termBarrier(ctx, r, term); err != nil {
			return readErr(err)
		}
	}
	idx := r.CommitIndex()
	if _, err := e.call(ctx, r.VerifyLeader, nil); err != nil {
		return readErr(err)
	}
	if r.CurrentTerm() != term || r.State() != raft.Leader {
		return ErrNotLeader, "lost leadership while confirming it"
	}
	if !e.fsm.waitLevel(ctx, idx) {
		return ErrUnavailable, fmt.Sprintf("state machine did not apply index %d before the deadline", idx)
	}
	return "", ""
}

func readErr(err error) (ErrorKind, string) {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		return ErrNotLeader, err.Error()
	}
	return ErrUnavailable, "confirm leadership: " + err.Error()
}

// termBarrier commits a Barrier in term, so that the commit index covers
// everything earlier leaders committed.
func (e *raftEngine) termBarrier(ctx context.Context, r *raft.Raft, term uint64) error {
	_, err := e.call(ctx, func() raft.Future { return r.Barrier(timeLeft(ctx)) }, func(f raft.Future) {
		// A barrier resolves once the state machine has applied every
		// entry before it; it is not a command, so the state machine now
		// stands at its index too. (Done here, not by the caller, so that
		// it happens even when the caller gave up waiting.)
		if ix, ok := f.(raft.IndexFuture); ok {
			e.fsm.raiseFloor(ix.Index())
		}
	})
	if err != nil {
		return err
	}
	if r.CurrentTerm() == term {
		for {
			old := e.barrierTerm.Load()
			if old >= term || e.barrierTerm.CompareAndSwap(old, term) {
				break
			}
		}
	}
	return nil
}

// call asks raft for a future (mk) and waits for its answer within ctx;
// ok, when set, runs once the future succeeds, even after ctx ended. It
// returns errStopping, having asked nothing, once the node is stopping.
// The waiting goroutine ends when raft answers, which stop makes sure of
// (settle).
func (e *raftEngine) call(ctx context.Context, mk func() raft.Future, ok func(raft.Future)) (raft.Future, error) {
	e.futMu.Lock()
	if e.stopping {
		e.futMu.Unlock()
		return nil, errStopping
	}
	e.futures++
	e.futMu.Unlock()
	f := mk()
	done := make(chan error, 1)
	go func() {
		err := f.Error()
		if err == nil && ok != nil {
			ok(f)
		}
		e.futMu.Lock()
		e.futures--
		e.futMu.Unlock()
		done <- err
	}()
	select {
	case err := <-done:
		return f, err
	case <-ctx.Done():
		return f, ctx.Err()
	}
}

// timeLeft is the time until ctx's deadline (0, no limit, without one).
func timeLeft(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(time.Until(dl), time.Millisecond)
}
