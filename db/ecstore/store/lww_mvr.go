// This file holds the mvr mode's multi-value registers: their state (a
// dotted version vector set), its update and merge, and the register
// reads and writes. Everything else in mvr mode (placement, N/W/R
// quorums, outboxes, anti-entropy, counters and sets) is the lww engine's.

package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// In mvr mode a register keeps concurrent writes side by side instead of
// letting one overwrite the other, the way Riak does with allow_mult and
// dotted version vectors (Almeida, Baquero, Gonçalves, Preguiça, Fonte:
// "Scalable and Accurate Causality Tracking for Eventually Consistent
// Stores", 2014):
//
//   - A register's state is a set of siblings, each a value and its dot
//     (node, counter): the counter-th write of the key that node
//     coordinated. Beside them is the causal context, a version vector
//     (node -> highest counter seen) of every write the state has seen,
//     kept or superseded. A dot's node coordinated every lower counter of
//     the key too, and a state holding one of its writes has seen them all,
//     so one counter per node says it all: metadata stays bounded by the
//     number of nodes, with no per-write history.
//   - A client write carries the context of the client's last reply for
//     its key. Its coordinator, a replica of the key, makes the next dot
//     (its own node, its context entry + 1), drops the siblings the
//     write's context covers (the client saw them: the write supersedes
//     them), adds the new sibling and merges the write's context in; it
//     then sends the whole new state to the key's N replicas and answers
//     once W hold it. A coordinator that does not replicate the key hands
//     the write to a replica that does, as Riak's coordinating vnode.
//   - Replicas, reads (with R > 1), read repair and anti-entropy all merge
//     states the same way: a sibling survives unless the other side's
//     context covers its dot and the other side no longer holds it (it was
//     superseded there); contexts merge by the greatest counter per node.
//     The merge is commutative, associative and idempotent, so replicas
//     converge whatever the order messages arrive in.
//
// No timestamp decides anything: a skewed clock changes no outcome. Session
// tokens pass through untouched: a session would need a version vector per
// key, not a stamp, and mvr has none (eccheck refuses --sessions with it).
//
// A node restarts empty, so under its old name it would issue dots again
// that other replicas already hold with other values, and one of the two
// writes would vanish. A node therefore issues dots under its id the first
// time it runs on its data directory and under "id.2", "id.3", ... after
// each restart (mvrDotActor): the version vectors grow by one entry per
// restart, not per write.

// mvrDot names one write: the node (dot actor) that coordinated it and
// that node's count of the key's writes it coordinated.
type mvrDot struct {
	Node string `json:"n"`
	N    uint64 `json:"c"`
}

// String is the dot as clients see it: "n1:7".
func (d mvrDot) String() string { return d.Node + ":" + strconv.FormatUint(d.N, 10) }

// compareDots orders dots by node, then counter.
func compareDots(a, b mvrDot) int {
	if c := strings.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	return cmp.Compare(a.N, b.N)
}

// mvrVV is a version vector: per node, the highest counter seen. A state
// that has seen a node's counter c has seen all of its lower ones.
type mvrVV map[string]uint64

// covers reports whether the version vector has seen the write of d.
func (v mvrVV) covers(d mvrDot) bool { return v[d.Node] >= d.N }

// mvrSibling is one value of a multi-value register and its dot.
type mvrSibling struct {
	Dot mvrDot          `json:"d"`
	V   json.RawMessage `json:"v"`
}

// mvrState is a multi-value register: its siblings, sorted by dot with no
// dot twice, and its causal context, which covers every sibling. A state
// is never changed in place: updates and merges make a new one, so that
// one can be handed to a reply or a message while the key moves on.
type mvrState struct {
	Sibs []mvrSibling `json:"s,omitempty"`
	VV   mvrVV        `json:"vv,omitempty"`
}

// normalized returns the state with its invariants restored, for a state
// that came over the network: siblings sorted by dot with no dot twice,
// a context that covers them, no zero counters. A nil state is empty.
func (st *mvrState) normalized() mvrState {
	if st == nil {
		return mvrState{}
	}
	out := mvrState{VV: make(mvrVV, len(st.VV))}
	for n, c := range st.VV {
		if c > 0 {
			out.VV[n] = c
		}
	}
	sibs := slices.Clone(st.Sibs)
	slices.SortStableFunc(sibs, func(a, b mvrSibling) int { return compareDots(a.Dot, b.Dot) })
	for i, s := range sibs {
		if s.Dot.N == 0 || i > 0 && sibs[i-1].Dot == s.Dot {
			continue
		}
		out.Sibs = append(out.Sibs, s)
		out.VV[s.Dot.Node] = max(out.VV[s.Dot.Node], s.Dot.N)
	}
	return out
}

// mvrMerge merges two states (each normalized): a sibling survives unless
// the other side's context covers its dot and the other side does not
// hold it; contexts take the greatest counter per node.
func mvrMerge(a, b mvrState) mvrState {
	out := mvrState{VV: make(mvrVV, max(len(a.VV), len(b.VV)))}
	for n, c := range a.VV {
		out.VV[n] = c
	}
	for n, c := range b.VV {
		out.VV[n] = max(out.VV[n], c)
	}
	out.Sibs = make([]mvrSibling, 0, len(a.Sibs)+len(b.Sibs))
	i, j := 0, 0
	for i < len(a.Sibs) || j < len(b.Sibs) {
		c := 0
		switch {
		case i == len(a.Sibs):
			c = 1
		case j == len(b.Sibs):
			c = -1
		default:
			c = compareDots(a.Sibs[i].Dot, b.Sibs[j].Dot)
		}
		switch {
		case c < 0:
			if !b.VV.covers(a.Sibs[i].Dot) {
				out.Sibs = append(out.Sibs, a.Sibs[i])
			}
			i++
		case c > 0:
			if !a.VV.covers(b.Sibs[j].Dot) {
				out.Sibs = append(out.Sibs, b.Sibs[j])
			}
			j++
		default:
			// Both hold the write. One dot is one write, so the values are
			// equal; the smaller keeps the merge commutative regardless.
			s := a.Sibs[i]
			if string(b.Sibs[j].V) < string(s.V) {
				s = b.Sibs[j]
			}
			out.Sibs = append(out.Sibs, s)
			i++
			j++
		}
	}
	return out
}

// mvrEqual reports whether two normalized states are the same: the same
// dots and the same context.
func mvrEqual(a, b mvrState) bool {
	if len(a.Sibs) != len(b.Sibs) || len(a.VV) != len(b.VV) {
		return false
	}
	for i := range a.Sibs {
		if a.Sibs[i].Dot != b.Sibs[i].Dot {
			return false
		}
	}
	for n, c := range a.VV {
		if b.VV[n] != c {
			return false
		}
	}
	return true
}

// update coordinates a write of v by actor with the client's context ctx:
// the next dot of actor, the siblings ctx covers dropped, the new sibling
// added, ctx merged into the state's context. It returns the new state and
// the write's dot.
func (st mvrState) update(actor string, ctx mvrVV, v json.RawMessage) (mvrState, mvrDot) {
	out := mvrState{VV: make(mvrVV, len(st.VV)+len(ctx)+1)}
	maps.Copy(out.VV, st.VV)
	for n, c := range ctx {
		out.VV[n] = max(out.VV[n], c)
	}
	d := mvrDot{Node: actor, N: out.VV[actor] + 1}
	out.VV[actor] = d.N
	out.Sibs = make([]mvrSibling, 0, len(st.Sibs)+1)
	for _, s := range st.Sibs {
		if !ctx.covers(s.Dot) {
			out.Sibs = append(out.Sibs, s)
		}
	}
	at, _ := slices.BinarySearchFunc(out.Sibs, d, func(s mvrSibling, d mvrDot) int { return compareDots(s.Dot, d) })
	out.Sibs = slices.Insert(out.Sibs, at, mvrSibling{Dot: d, V: v})
	return out, d
}

// writeContext is the context a write's client sends with its next write
// of the key: what the client saw (ctx) and the write itself (d). A
// version vector cannot hold d alone: raising the entry of d's node to d
// also claims the lower dots of that node. When the new state st still
// holds such a dot the client never saw (another client's concurrent write
// through the same node), the context leaves d out instead, so that the
// client's next write keeps that sibling (and this one) rather than
// superseding a write it never saw.
func writeContext(ctx mvrVV, st mvrState, d mvrDot) map[string]uint64 {
	out := make(map[string]uint64, len(ctx)+1)
	maps.Copy(out, ctx)
	for _, s := range st.Sibs {
		if s.Dot.Node == d.Node && s.Dot.N > ctx[d.Node] && s.Dot.N < d.N {
			return out
		}
	}
	out[d.Node] = d.N
	return out
}

// read is the state as a client reads it.
func (st mvrState) read() MVRRead {
	r := MVRRead{Siblings: make([]MVRSibling, len(st.Sibs)), Context: make(map[string]uint64, len(st.VV))}
	for i, s := range st.Sibs {
		r.Siblings[i] = MVRSibling{Value: s.V, Dot: s.Dot.String()}
	}
	maps.Copy(r.Context, st.VV)
	return r
}

// mvrIncarnationFile, in a node's data directory, counts how many times
// the node started on it in mvr mode.
const mvrIncarnationFile = "mvr-incarnation"

// mvrDotActor returns the name the node's dots carry in this run: its id
// the first time it starts on its data directory, "id.K" on its K-th
// start (see the mode's comment). Without a data directory a node cannot
// tell a restart from a first start, and takes its id and start time.
func mvrDotActor(cfg Config) (string, error) {
	if cfg.DataDir == "" {
		return cfg.ID + "." + strconv.FormatInt(time.Now().UnixNano(), 36), nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return "", fmt.Errorf("mvr data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, mvrIncarnationFile)
	k := 0
	switch b, err := os.ReadFile(path); {
	case err == nil:
		if k, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || k < 1 {
			return "", fmt.Errorf("%s: %q is not a start count", path, b)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("mvr start count: %w", err)
	}
	k++
	if err := writeFileSync(path, []byte(strconv.Itoa(k)+"\n")); err != nil {
		return "", fmt.Errorf("mvr start count: %w", err)
	}
	if k == 1 {
		return cfg.ID, nil
	}
	return cfg.ID + "." + strconv.Itoa(k), nil
}

// writeFileSync writes a file through a temporary one, synced and renamed
// over it.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mvrWriteMsg hands a client's register write to a replica of its key to
// coordinate (peer message mvrWriteKind); the reply is a Response.
type mvrWriteMsg struct {
	K string          `json:"k"`
	V json.RawMessage `json:"v"`
	C mvrVV           `json:"c,omitempty"`
}

func (l *lww) doMVWrite(ctx context.Context, req Request, sess *Session) Response {
	v, err := canonical(req.Value)
	if err != nil {
		return badRequest("value: %v", err)
	}
	var resp Response
	if l.replicates(l.id, req.Key) {
		resp = l.coordinateMVWrite(ctx, req.Key, json.RawMessage(v), req.Context)
	} else {
		resp = l.forwardMVWrite(ctx, mvrWriteMsg{K: req.Key, V: json.RawMessage(v), C: req.Context})
	}
	resp.Session = sess
	return resp
}

// coordinateMVWrite performs a write of v with the client's context cctx
// on this node, a replica of key, and sends the new state to the key's
// replicas, waiting for W of them (this node is one).
func (l *lww) coordinateMVWrite(ctx context.Context, key string, v json.RawMessage, cctx mvrVV) Response {
	if !l.ready.Load() {
		return Response{Error: ErrUnavailable, Message: "node is not serving"}
	}
	if !l.replicates(l.id, key) {
		return Response{Error: ErrUnavailable, Message: fmt.Sprintf("node %s does not replicate %q", l.id, key)}
	}
	s := l.shard(key)
	s.mu.Lock()
	st, d := s.mv[key].update(l.dotActor, cctx, v)
	s.mv[key] = st
	s.mu.Unlock()
	kind, msg := l.update(ctx, lwwItem{T: mvrOpMerge, K: key, D: &st})
	if kind != "" {
		return Response{Error: kind, Message: msg}
	}
	body, err := json.Marshal(MVRWrite{Dot: d.String(), Context: writeContext(cctx, st, d)})
	if err != nil {
		panic(fmt.Sprintf("encode an mvr write's reply: %v", err)) // a struct of strings and integers always encodes
	}
	return Response{Value: body}
}

// forwardMVWrite hands a write to a replica of its key, the next in turn;
// a replica that certainly did not get it (unreachable, not serving) passes
// it to the next.
func (l *lww) forwardMVWrite(ctx context.Context, m mvrWriteMsg) Response {
	reps := l.replicas(m.K)
	k := int(l.spread.Add(1) % uint64(len(reps)))
	reps = append(reps[k:len(reps):len(reps)], reps[:k]...)
	// The replica coordinates within its RequestTimeout: wait a little
	// longer for its answer.
	deadline := time.Now().Add(l.cfg.RequestTimeout + l.cfg.RequestTimeout/2)
	if cd, ok := ctx.Deadline(); ok && cd.Before(deadline) {
		deadline = cd
	}
	var errs []string
	for _, r := range reps {
		cctx, cancel := context.WithDeadline(ctx, deadline)
		var resp Response
		err := l.e.peers.Call(cctx, r, mvrWriteKind, m, &resp)
		cancel()
		switch {
		case err == nil && resp.Error == ErrUnavailable:
			errs = append(errs, r+": "+resp.Message)
		case err == nil:
			return resp
		case lwwUndelivered(err):
			errs = append(errs, err.Error())
		default:
			return Response{Error: ErrIndeterminate, Message: fmt.Sprintf("replica %s coordinating the write did not answer: %v", r, err)}
		}
	}
	return Response{Error: ErrUnavailable, Message: fmt.Sprintf("no replica of %q took the write: %s", m.K, strings.Join(errs, "; "))}
}

func (l *lww) doMVRead(ctx context.Context, req Request, sess *Session) Response {
	st, kind, msg := l.readMV(ctx, req.Key)
	if kind != "" {
		return Response{Error: kind, Message: msg, Session: sess}
	}
	body, err := json.Marshal(st.read())
	if err != nil {
		panic(fmt.Sprintf("encode an mvr read: %v", err)) // its values are valid JSON
	}
	return Response{Value: body, Session: sess}
}

// mvrAnswer is a replica's answer to a multi-value register read.
type mvrAnswer struct {
	from string
	st   mvrState
}

// readMV reads key from R replicas and merges their states; the replicas
// that answered with less than the merge, late answers included, are sent
// it (read repair).
func (l *lww) readMV(ctx context.Context, key string) (mvrState, ErrorKind, string) {
	var merged mvrState
	seen := make([]mvrAnswer, 0, l.cfg.R)
	ask, late, kind, msg := l.quorumRead(ctx, lwwItem{T: mvrOpRead, K: key}, func(r lwwResult) {
		st := r.rep.D.normalized()
		merged = mvrMerge(merged, st)
		seen = append(seen, mvrAnswer{from: r.from, st: st})
	}, nil)
	if kind != "" {
		return mvrState{}, kind, msg
	}
	repair := func(a mvrAnswer) {
		if mvrEqual(a.st, merged) {
			return
		}
		it := lwwItem{T: mvrOpMerge, K: key, D: &merged}
		if a.from == l.id {
			l.apply(it)
		} else {
			l.out[a.from].push(&lwwPending{it: it, deadline: time.Now().Add(l.cfg.RequestTimeout)})
		}
	}
	for _, a := range seen {
		repair(a)
	}
	if len(merged.VV) > 0 {
		l.repairLate(ask, late, func(r lwwResult) { repair(mvrAnswer{from: r.from, st: r.rep.D.normalized()}) })
	}
	return merged, "", ""
}
