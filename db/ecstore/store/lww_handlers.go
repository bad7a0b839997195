// This file holds the lww, hlc and mvr modes' client operations: register
// reads, writes and compare-and-set with sessions (mvr's registers are in
// lww_mvr.go), PN-counters and G-Counters, and sets (OR-set or one
// last-write-wins blob).

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (l *lww) do(ctx context.Context, req Request) Response {
	if !l.ready.Load() {
		return Response{Error: ErrUnavailable, Message: "node is not serving"}
	}
	sess := &Session{}
	sess.Merge(req.Session)
	if l.hlc != nil {
		for _, st := range sess.Seen {
			l.observe(&st)
		}
	}
	need := sess.Seen[req.Key]
	if need.Index != 0 {
		need = Stamp{} // a stamp from another mode's session means nothing here
	}
	switch {
	case l.mvr && req.Op == OpRead:
		return l.doMVRead(ctx, req, sess)
	case l.mvr && req.Op == OpWrite:
		return l.doMVWrite(ctx, req, sess)
	case l.mvr && req.Op == OpCAS:
		resp := badRequest("mvr registers have no compare-and-set")
		resp.Session = sess
		return resp
	}
	switch req.Op {
	case OpRead:
		return l.doRead(ctx, req, sess, need)
	case OpWrite:
		return l.doWrite(ctx, req, sess, need)
	case OpCAS:
		return l.doCAS(ctx, req, sess, need)
	case OpCounterAdd:
		return l.doCounterAdd(ctx, req, sess)
	case OpCounterRead:
		return l.doCounterRead(ctx, req, sess)
	case OpSetAdd:
		if l.cfg.SetImpl == SetLWWBlob {
			return l.doBlobAdd(ctx, req, sess)
		}
		return l.doSetAdd(ctx, req, sess)
	case OpSetRead:
		if l.cfg.SetImpl == SetLWWBlob {
			return l.doBlobRead(ctx, req, sess)
		}
		return l.doSetRead(ctx, req, sess)
	}
	return badRequest("unknown operation %q", req.Op)
}

// waitClock holds a write in lww mode until this node's wall clock has
// passed the session's stamp of the key, so that the write supersedes what
// the client saw; it gives up after SessionWait.
func (l *lww) waitClock(ctx context.Context, need Stamp) bool {
	if l.hlc != nil || need.IsZero() {
		return true // the HLC observed the session: its next stamp is greater
	}
	giveUp := time.Now().Add(l.cfg.SessionWait)
	for {
		gap := time.Duration(need.Wall - l.e.clock.Now() + 1)
		if gap <= 0 {
			return true
		}
		if time.Now().Add(gap).After(giveUp) {
			return false
		}
		select {
		case <-time.After(gap):
		case <-ctx.Done():
			return false
		case <-l.stopCh:
			return false
		}
	}
}

// writeRegister stamps v and writes it with W.
func (l *lww) writeRegister(ctx context.Context, key string, v json.RawMessage, need Stamp) (Stamp, ErrorKind, string) {
	if !l.waitClock(ctx, need) {
		return Stamp{}, ErrSession, fmt.Sprintf("this node's clock did not pass the session's version of %q within %v", key, l.cfg.SessionWait)
	}
	st := l.stamp()
	if st.Less(need) || st == need {
		return Stamp{}, ErrSession, fmt.Sprintf("this node's clock is behind the session's version of %q", key)
	}
	kind, msg := l.update(ctx, lwwItem{T: lwwOpWrite, K: key, V: v, S: &st})
	return st, kind, msg
}

func (l *lww) doRead(ctx context.Context, req Request, sess *Session, need Stamp) Response {
	v, kind, msg := l.readRegister(ctx, req.Key, need)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	if !v.S.IsZero() {
		sess.Observe(req.Key, v.S)
	}
	return Response{Value: v.V, Session: sess}
}

func (l *lww) doWrite(ctx context.Context, req Request, sess *Session, need Stamp) Response {
	v := lwwOrNull(req.Value)
	if _, err := canonical(v); err != nil {
		return badRequest("value: %v", err)
	}
	st, kind, msg := l.writeRegister(ctx, req.Key, v, need)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	sess.Observe(req.Key, st)
	return Response{Session: sess}
}

func (l *lww) doCAS(ctx context.Context, req Request, sess *Session, need Stamp) Response {
	nv := lwwOrNull(req.Value)
	if _, err := canonical(nv); err != nil {
		return badRequest("value: %v", err)
	}
	if _, err := canonical(req.Old); err != nil {
		return badRequest("old value: %v", err)
	}
	cur, kind, msg := l.readRegister(ctx, req.Key, need)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	if !cur.S.IsZero() {
		sess.Observe(req.Key, cur.S)
	}
	if !sameValue(cur.V, req.Old) {
		return Response{Error: ErrCASMismatch, Value: cur.V, Session: sess,
			Message: fmt.Sprintf("%q holds %s, not %s", req.Key, cur.V, lwwOrNull(req.Old))}
	}
	// Not atomic: another write may land between the read and this write,
	// and both CAS succeed, as in Dynamo-style stores without Paxos. With a
	// session, the write must also supersede the version just read, or a
	// skewed clock would let the CAS vanish under it.
	wneed := need
	if req.Session != nil && need.Less(cur.S) {
		wneed = cur.S
	}
	st, kind, msg := l.writeRegister(ctx, req.Key, nv, wneed)
	if kind != "" {
		// ErrIndeterminate when some replica may have it; ErrUnavailable or
		// ErrSession when certainly none does.
		return Response{Error: kind, Message: msg, Session: sess}
	}
	sess.Observe(req.Key, st)
	return Response{Session: sess}
}

func (l *lww) doCounterAdd(ctx context.Context, req Request, sess *Session) Response {
	d, err := delta(req.Value)
	if err != nil {
		return badRequest("%v", err)
	}
	if l.gCounter && d < 0 {
		resp := badRequest("a G-Counter only grows: it cannot add %d", d)
		resp.Session = sess
		return resp
	}
	// The increment lands in this node's slot at once, so that a later add
	// carries it even if this one reaches no replica: it is never
	// certainly undone, and fewer than W acks is always indeterminate.
	l.mineMu.Lock()
	sl := l.mine[req.Key]
	if req.RequestID == "" || !l.requests[req.RequestID] {
		if d >= 0 {
			sl.P += d
		} else {
			sl.N -= d
		}
		l.mine[req.Key] = sl
		if req.RequestID != "" {
			if l.requests == nil {
				l.requests = map[string]bool{}
			}
			l.requests[req.RequestID] = true
		}
	}
	// A retry of an applied add replicates the slot again, so that its
	// acknowledgement means what a first attempt's would.
	l.mineMu.Unlock()
	kind, msg := l.update(ctx, lwwItem{T: lwwOpCounterSlot, K: req.Key, A: l.actor, P: sl.P, N: sl.N})
	if kind == ErrUnavailable {
		kind = ErrIndeterminate
		msg += "; the increment stays in this node's slot and a later add carries it"
	}
	return Response{Error: kind, Message: msg, Session: sess}
}

func (l *lww) doCounterRead(ctx context.Context, req Request, sess *Session) Response {
	merged := map[string]lwwSlot{}
	_, _, kind, msg := l.quorumRead(ctx, lwwItem{T: lwwOpCounterRead, K: req.Key}, func(r lwwResult) {
		for a, sl := range r.rep.C {
			merged[a] = merged[a].merge(l.slot(sl))
		}
	}, nil)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	var total int64
	for _, sl := range merged {
		total += sl.P - sl.N
	}
	return Response{Value: json.RawMessage(strconv.FormatInt(total, 10)), Session: sess}
}

func (l *lww) doSetAdd(ctx context.Context, req Request, sess *Session) Response {
	c, err := canonical(req.Value)
	if err != nil {
		return badRequest("element: %v", err)
	}
	tag := l.actor + "." + strconv.FormatUint(l.seq.Add(1), 36)
	kind, msg := l.update(ctx, lwwItem{T: lwwOpSetAdd, K: req.Key, V: json.RawMessage(c), Tag: tag})
	return Response{Error: kind, Message: msg, Session: sess}
}

func (l *lww) doSetRead(ctx context.Context, req Request, sess *Session) Response {
	elems := map[string]bool{}
	_, _, kind, msg := l.quorumRead(ctx, lwwItem{T: lwwOpSetRead, K: req.Key}, func(r lwwResult) {
		for _, e := range r.rep.E {
			elems[string(e.V)] = true
		}
	}, nil)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	return Response{Value: lwwArray(elems), Session: sess}
}

// lwwArray makes a JSON array of canonical elements, in a stable order.
func lwwArray(elems map[string]bool) json.RawMessage {
	list := make([]string, 0, len(elems))
	for e := range elems {
		list = append(list, e)
	}
	sort.Strings(list)
	return json.RawMessage("[" + strings.Join(list, ",") + "]")
}

// doBlobAdd adds an element the way many applications keep a set in a
// last-write-wins store: read the whole set (R), add the element, write it
// back (W). Two concurrent adds read the same set, and the later stamp
// wins: the other add is silently lost.
func (l *lww) doBlobAdd(ctx context.Context, req Request, sess *Session) Response {
	c, err := canonical(req.Value)
	if err != nil {
		return badRequest("element: %v", err)
	}
	elems, kind, msg := l.readBlob(ctx, req.Key)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	elems[c] = true
	_, kind, msg = l.writeRegister(ctx, req.Key, lwwArray(elems), Stamp{})
	return Response{Error: kind, Message: msg, Session: sess}
}

func (l *lww) doBlobRead(ctx context.Context, req Request, sess *Session) Response {
	elems, kind, msg := l.readBlob(ctx, req.Key)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	return Response{Value: lwwArray(elems), Session: sess}
}

// readBlob reads a set kept as one register (R) and returns its canonical
// elements; a register that holds no array is ErrUnavailable.
func (l *lww) readBlob(ctx context.Context, key string) (map[string]bool, ErrorKind, string) {
	cur, kind, msg := l.readRegister(ctx, key, Stamp{})
	if kind != "" {
		return nil, kind, msg
	}
	elems, err := lwwBlobElems(cur.V)
	if err != nil {
		return nil, ErrUnavailable, fmt.Sprintf("set %q: %v", key, err)
	}
	return elems, "", ""
}

// lwwBlobElems parses a set kept as one JSON array (null: empty) into its
// canonical elements.
func lwwBlobElems(v json.RawMessage) (map[string]bool, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(lwwOrNull(v), &list); err != nil {
		return nil, fmt.Errorf("value %s is not an array: %w", v, err)
	}
	out := make(map[string]bool, len(list)+1)
	for _, e := range list {
		c, err := canonical(e)
		if err != nil {
			return nil, err
		}
		out[c] = true
	}
	return out, nil
}
