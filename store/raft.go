package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// The raft mode: every node runs a hashicorp/raft instance whose replicated
// state machine (raftFSM) holds the registers, sets and counters. The log
// and the stable store live in one bolt file (raft-boltdb) and snapshots in
// a file snapshot store, all under Config.DataDir, so a killed and restarted
// node keeps its log, its term and its vote. Raft's traffic runs over its
// TCP NetworkTransport on a stream layer of our own (raftStream) that wraps
// every connection with WrapConn, so in-process partitions and pauses cut
// consensus traffic too.
//
// Who serves what:
//   - The leader serves every operation. Writes, CAS and adds are raft
//     commands; a CAS is decided inside the state machine, so it is atomic.
//   - A follower forwards each client operation to the leader it knows over
//     a peer message (kind "forward") carrying the request's remaining time,
//     so clients may talk to any node, as with etcd. When it knows no leader
//     it waits for one until the request's deadline, then answers
//     ErrNotLeader (with the leader it last heard of, if any). We forward
//     rather than redirect because the adapter binds each client to one
//     node, and a redirect would make every operation on a follower fail.
//   - Reads are linearizable by the read-index protocol (Raft thesis
//     §6.4): the leader makes sure it has committed an entry of its current
//     term (a Barrier, once per term), notes its commit index, confirms it
//     is still the leader with VerifyLeader (a heartbeat round answered by a
//     quorum), and reads its state machine once that has applied the noted
//     index. Why that is linearizable: a write acknowledged before the read
//     began was committed in this leader's term or an earlier one (a later
//     leader would need a quorum that had moved past this term before the
//     read began, yet a quorum confirmed this term after it began), so it
//     is at or below the noted commit index; and the state read holds only
//     committed entries. A deposed leader fails VerifyLeader and never
//     serves from stale state. VerifyLeader alone would not do: a new
//     leader's commit index lags until it commits an entry of its own term,
//     so it could miss what its predecessor committed; hence the per-term
//     Barrier. And "applied" is the state machine's own count (raft's
//     AppliedIndex counts entries handed to it, not yet applied), raised by
//     each command it applies and each barrier it passes.
//
// Stopping (a kill, in the local cluster) closes every raft connection
// first, as a crash would, then waits a bounded time for raft to answer the
// requests in flight (settle), shuts raft down and closes the bolt file, so
// that a restart in the same process can open it again.
//
// Outcomes: ErrNotLeader and ErrLeadershipTransferInProgress from Apply
// mean raft never appended the entry, and ErrEnqueueTimeout that it never
// took it (hashicorp/raft answers these before the entry reaches the log),
// so those are definite; every other failure after Apply was called (lost
// leadership, shutdown, the deadline) is ErrIndeterminate. A forwarded
// write that gets no reply is ErrIndeterminate; a forwarded read that fails
// is a definite failure, since a read changes nothing.

// Raft timing for a cluster on one machine or one LAN: elections settle in
// a few hundred milliseconds.
const (
	raftHeartbeatTimeout   = 200 * time.Millisecond
	raftElectionTimeout    = 200 * time.Millisecond
	raftLeaderLeaseTimeout = 150 * time.Millisecond
	raftCommitTimeout      = 5 * time.Millisecond
	// raftIOTimeout bounds one RPC's I/O on the transport.
	raftIOTimeout = 2 * time.Second
	// raftHelloTimeout bounds the connection hello (the dialer's node id).
	raftHelloTimeout = 2 * time.Second
	// raftRetryEvery is how often a node without a usable leader looks again.
	raftRetryEvery = 15 * time.Millisecond
	// raftSettleTimeout bounds how long stopping waits for raft to answer
	// the requests in flight (settle).
	raftSettleTimeout = 2 * time.Second
)

// raftHello starts every raft connection: the dialer's node id follows on
// the same line.
const raftHello = "ecstore-raft "

// raftEngine is the raft mode of one node.
type raftEngine struct {
	env
	fsm *raftFSM

	raft   atomic.Pointer[raft.Raft]
	stream *raftStream
	trans  *raft.NetworkTransport
	store  *raftboltdb.BoltStore

	// barrierTerm is the latest term in which this node, as leader, saw a
	// Barrier of that term commit (what reads need before they trust the
	// commit index).
	barrierTerm atomic.Uint64

	// futures counts the raft futures someone waits on; once stopping, no
	// new one is made (see call).
	futMu    sync.Mutex
	futures  int
	stopping bool

	quiet    atomic.Bool // set on stop: raft's parting complaints are not logged
	stopCh   chan struct{}
	stopOnce sync.Once
}

// errStopping: the node is stopping and asked raft nothing.
var errStopping = errors.New("node is stopping")

func newRaft(e env) (engine, error) {
	if e.cfg.DataDir == "" {
		return nil, errors.New("raft mode needs a data directory")
	}
	if e.cfg.RaftListen == "" {
		return nil, errors.New("raft mode needs a raft listen address")
	}
	return &raftEngine{env: e, fsm: newRaftFSM(), stopCh: make(chan struct{})}, nil
}

// logger returns raft's logger: warnings and errors to the node's log.
func (e *raftEngine) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Warn,
		Output:      logfWriter{logf: e.logf, quiet: &e.quiet},
		DisableTime: true,
	})
}

// logfWriter turns hclog's lines into calls of a Logf.
type logfWriter struct {
	logf  func(string, ...any)
	quiet *atomic.Bool
}

func (w logfWriter) Write(p []byte) (int, error) {
	if !w.quiet.Load() {
		w.logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// raftConfig is the raft configuration of this node.
func (e *raftEngine) raftConfig(log hclog.Logger) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(e.cfg.ID)
	c.HeartbeatTimeout = raftHeartbeatTimeout
	c.ElectionTimeout = raftElectionTimeout
	c.LeaderLeaseTimeout = raftLeaderLeaseTimeout
	c.CommitTimeout = raftCommitTimeout
	// Snapshot often enough that a restarted node replays little, and
	// keep enough log that a briefly absent follower catches up from it.
	c.SnapshotThreshold = 4096
	c.SnapshotInterval = 5 * time.Second
	c.TrailingLogs = 2048
	c.Logger = log
	return c
}

// membership is the cluster's fixed configuration: every node a voter.
func (e *raftEngine) membership() raft.Configuration {
	var conf raft.Configuration
	conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(e.cfg.ID), Address: raft.ServerAddress(e.cfg.RaftListen)})
	for id, addr := range e.cfg.RaftPeers {
		if id != e.cfg.ID {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
		}
	}
	sort.Slice(conf.Servers, func(i, j int) bool { return conf.Servers[i].ID < conf.Servers[j].ID })
	return conf
}

func (e *raftEngine) start(ctx context.Context) error {
	if err := os.MkdirAll(e.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("raft data dir: %w", err)
	}
	log := e.logger()
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(e.cfg.DataDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second},
	})
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	e.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(e.cfg.DataDir, 2, log.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("open raft snapshots: %w", err)
	}
	stream, err := newRaftStream(e.cfg)
	if err != nil {
		return err
	}
	e.stream = stream
	e.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: raftIOTimeout,
		Logger:  log.Named("net"),
	})
	conf := e.raftConfig(log)
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	if !existing {
		// Every node bootstraps with the same configuration: the documented
		// safe way to start a fixed cluster (a node that already has state
		// never bootstraps again).
		if err := raft.BootstrapCluster(conf, store, store, snaps, e.trans, e.membership()); err != nil {
			return fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	r, err := raft.NewRaft(conf, e.fsm, store, store, snaps, e.trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	e.raft.Store(r)
	return nil
}

func (e *raftEngine) stop() error {
	var errs []error
	e.stopOnce.Do(func() {
		close(e.stopCh)
		e.quiet.Store(true)
		// Close the connections first, as a crash would: a raft goroutine
		// held by a paused peer's connection then returns at once.
		if e.stream != nil {
			errs = append(errs, e.stream.Close())
		}
		if r := e.raft.Load(); r != nil {
			e.settle(raftSettleTimeout)
			errs = append(errs, r.Shutdown().Error())
		}
		if e.trans != nil {
			errs = append(errs, e.trans.Close())
		}
		if e.store != nil {
			errs = append(errs, e.store.Close())
		}
	})
	return errors.Join(errs...)
}

// settle stops new raft requests and waits, up to d, until raft has
// answered every future someone waits on. Why: hashicorp/raft never
// answers a future still queued when it shuts down (a VerifyLeader in its
// buffered channel, a committed entry queued for the state machine), and
// the goroutine waiting on it (call) would wait forever. With the
// connections closed, raft answers the rest soon: what committed is
// applied, and what cannot commit fails when the leader steps down for
// want of a quorum (LeaderLeaseTimeout).
func (e *raftEngine) settle(d time.Duration) {
	e.futMu.Lock()
	e.stopping = true
	e.futMu.Unlock()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		e.futMu.Lock()
		n := e.futures
		e.futMu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *raftEngine) status(s *Status) {
	r := e.raft.Load()
	if r == nil {
		s.Role = "starting"
		return
	}
	st := r.State()
	s.Role = strings.ToLower(st.String())
	_, id := r.LeaderWithID()
	s.Leader = string(id)
	s.Ready = id != "" && st != raft.Shutdown
	s.Detail = fmt.Sprintf("term %d, commit index %d, applied index %d", r.CurrentTerm(), r.CommitIndex(), e.fsm.applied())
}

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
	write := req.Op != OpRead && req.Op != OpSetRead && req.Op != OpCounterRead
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
		cmd.Value = nil
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
// see the package comment of this file. It returns an error kind (definite:
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

// raftCommand is one entry of the raft log.
type raftCommand struct {
	Op    Op              `json:"op"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"` // canonical JSON
	Old   json.RawMessage `json:"old,omitempty"`   // canonical JSON (cas)
	Delta int64           `json:"delta,omitempty"` // counter-add
}

// raftResult is the state machine's answer to a command.
type raftResult struct {
	// Index is the log index of the version the key now holds (for a CAS
	// that did not swap, the version it found).
	Index   uint64
	Swapped bool
	// Value is what a CAS found instead of the expected value.
	Value json.RawMessage
	// Err names a command the state machine could not apply (nothing
	// changed).
	Err string
}

// raftFSM is the replicated state machine.
type raftFSM struct {
	mu      sync.Mutex
	st      fsmState
	floor   uint64        // a barrier index the state machine has reached
	changed chan struct{} // closed when the level rises, if anyone waits
	waiting bool
}

// fsmState is the whole state, as a snapshot holds it.
type fsmState struct {
	Registers map[string]fsmRegister `json:"registers"`
	Sets      map[string]fsmSet      `json:"sets"`
	Counters  map[string]fsmCounter  `json:"counters"`
	// Applied is the index of the last command applied.
	Applied uint64 `json:"applied"`
}

type fsmRegister struct {
	Value json.RawMessage `json:"value"`
	Index uint64          `json:"index"`
}

type fsmSet struct {
	Elems map[string]bool `json:"elems"` // canonical JSON of each element
	Index uint64          `json:"index"`
}

type fsmCounter struct {
	Total int64  `json:"total"`
	Index uint64 `json:"index"`
}

func emptyFSMState() fsmState {
	return fsmState{Registers: map[string]fsmRegister{}, Sets: map[string]fsmSet{}, Counters: map[string]fsmCounter{}}
}

func newRaftFSM() *raftFSM {
	return &raftFSM{st: emptyFSMState(), changed: make(chan struct{})}
}

var _ raft.FSM = (*raftFSM)(nil)

// Apply implements raft.FSM.
func (f *raftFSM) Apply(l *raft.Log) any {
	var cmd raftCommand
	err := json.Unmarshal(l.Data, &cmd)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.advance(l.Index)
	if err != nil {
		return raftResult{Err: "decode command: " + err.Error()}
	}
	switch cmd.Op {
	case OpWrite:
		f.st.Registers[cmd.Key] = fsmRegister{Value: cmd.Value, Index: l.Index}
		return raftResult{Index: l.Index, Swapped: true}
	case OpCAS:
		cur, ok := f.st.Registers[cmd.Key]
		if !ok {
			cur.Value = nullJSON
		}
		if !sameValue(cur.Value, cmd.Old) {
			return raftResult{Index: cur.Index, Value: cur.Value}
		}
		f.st.Registers[cmd.Key] = fsmRegister{Value: cmd.Value, Index: l.Index}
		return raftResult{Index: l.Index, Swapped: true}
	case OpSetAdd:
		s, ok := f.st.Sets[cmd.Key]
		if !ok {
			s.Elems = map[string]bool{}
		}
		s.Elems[string(cmd.Value)] = true
		s.Index = l.Index
		f.st.Sets[cmd.Key] = s
		return raftResult{Index: l.Index}
	case OpCounterAdd:
		c := f.st.Counters[cmd.Key]
		c.Total += cmd.Delta
		c.Index = l.Index
		f.st.Counters[cmd.Key] = c
		return raftResult{Index: l.Index}
	}
	return raftResult{Err: fmt.Sprintf("unknown command %q", cmd.Op)}
}

// advance records that the command at index was applied; f.mu is held.
func (f *raftFSM) advance(index uint64) {
	if index > f.st.Applied {
		f.st.Applied = index
	}
	f.wake()
}

// wake tells the waiters that the level rose; f.mu is held.
func (f *raftFSM) wake() {
	if f.waiting {
		close(f.changed)
		f.changed = make(chan struct{})
		f.waiting = false
	}
}

// raiseFloor records that the state machine has applied everything before
// the barrier at index.
func (f *raftFSM) raiseFloor(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index > f.floor {
		f.floor = index
		f.wake()
	}
}

// applied is the log index of the last command applied.
func (f *raftFSM) applied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Applied
}

// waitLevel waits until the state stands at index or later, within ctx.
func (f *raftFSM) waitLevel(ctx context.Context, index uint64) bool {
	for {
		f.mu.Lock()
		if max(f.st.Applied, f.floor) >= index {
			f.mu.Unlock()
			return true
		}
		f.waiting = true
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// read returns a key's value as a read op reports it, and the log index
// of the version read (0 for a never-written key).
func (f *raftFSM) read(op Op, key string) (json.RawMessage, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case OpSetRead:
		s := f.st.Sets[key]
		elems := make([]string, 0, len(s.Elems))
		for el := range s.Elems {
			elems = append(elems, el)
		}
		sort.Strings(elems)
		return json.RawMessage("[" + strings.Join(elems, ",") + "]"), s.Index
	case OpCounterRead:
		c := f.st.Counters[key]
		return json.RawMessage(fmt.Sprint(c.Total)), c.Index
	}
	reg, ok := f.st.Registers[key]
	if !ok {
		return nullJSON, 0
	}
	return reg.Value, reg.Index
}

// Snapshot implements raft.FSM: the whole state, encoded now (it is small),
// written out later.
func (f *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := json.Marshal(f.st)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return fsmSnapshot(data), nil
}

// Restore implements raft.FSM.
func (f *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st fsmState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	if st.Registers == nil || st.Sets == nil || st.Counters == nil {
		return errors.New("decode snapshot: part of the state is missing")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	f.wake()
	return nil
}

// fsmSnapshot is an encoded state.
type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// raftStream is the raft transport's stream layer: TCP connections that
// open with a hello naming the dialing node, each wrapped by WrapConn so
// that partitions and pauses act on raft's traffic.
type raftStream struct {
	ln     net.Listener
	addr   net.Addr
	self   string
	faults Faults
	ids    map[string]string // raft address -> node id
	ready  chan net.Conn     // accepted connections past their hello
	done   chan struct{}

	mu     sync.Mutex
	open   map[io.Closer]struct{} // every live connection
	closed bool
	wg     sync.WaitGroup
}

var _ raft.StreamLayer = (*raftStream)(nil)

func newRaftStream(cfg Config) (*raftStream, error) {
	ln, err := net.Listen("tcp", cfg.RaftListen)
	if err != nil {
		return nil, fmt.Errorf("raft listen: %w", err)
	}
	s := &raftStream{
		ln: ln, addr: ln.Addr(), self: cfg.ID, faults: cfg.Faults,
		ids:   map[string]string{},
		ready: make(chan net.Conn),
		done:  make(chan struct{}),
		open:  map[io.Closer]struct{}{},
	}
	// Advertise the configured address (the one in the raft configuration)
	// when it names a host and port, rather than a wildcard listener's.
	if host, port, err := net.SplitHostPort(cfg.RaftListen); err == nil && port != "0" {
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			s.addr = advertised(cfg.RaftListen)
		}
	}
	for id, a := range cfg.RaftPeers {
		s.ids[a] = id
	}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

// advertised is a listener's address as the cluster knows it.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }

// track registers a live connection; false once the stream is closed.
func (s *raftStream) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	return true
}

func (s *raftStream) untrack(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
}

// swap replaces a tracked connection by its wrapper.
func (s *raftStream) swap(raw io.Closer, wrapped io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, raw)
	if s.closed {
		return false
	}
	s.open[wrapped] = struct{}{}
	return true
}

func (s *raftStream) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Go(func() { s.handshake(c) })
	}
}

// handshake reads an accepted connection's hello and hands the wrapped
// connection to Accept.
func (s *raftStream) handshake(c net.Conn) {
	fail := func() {
		s.untrack(c)
		c.Close()
	}
	_ = c.SetReadDeadline(time.Now().Add(raftHelloTimeout))
	// Byte by byte, so that nothing after the line is consumed.
	var line []byte
	b := make([]byte, 1)
	for len(line) < 128 {
		if _, err := c.Read(b); err != nil {
			fail()
			return
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	peer, ok := strings.CutPrefix(string(line), raftHello)
	if !ok || !s.knows(peer) {
		fail()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	w := s.wrap(c, peer)
	if !s.swap(c, w) {
		w.Close()
		return
	}
	select {
	case s.ready <- w:
	case <-s.done:
		w.Close()
	}
}

func (s *raftStream) knows(id string) bool {
	for _, known := range s.ids {
		if known == id {
			return true
		}
	}
	return false
}

func (s *raftStream) wrap(c net.Conn, peer string) *raftConn {
	return &raftConn{Conn: WrapConn(c, s.faults, s.self, peer), s: s, faults: s.faults, self: s.self, peer: peer, closed: make(chan struct{})}
}

// Accept implements net.Listener.
func (s *raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Addr implements net.Listener.
func (s *raftStream) Addr() net.Addr { return s.addr }

// Close implements net.Listener: it stops listening and closes every
// connection, accepted or dialed.
func (s *raftStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	open := s.open
	s.open = map[io.Closer]struct{}{}
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range open {
		c.Close()
	}
	s.wg.Wait()
	return err
}

// Dial implements raft.StreamLayer.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	peer, ok := s.ids[string(address)]
	if !ok {
		return nil, fmt.Errorf("raft dial %s: no node has that address", address)
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if !s.track(c) {
		c.Close()
		return nil, net.ErrClosed
	}
	w := s.wrap(c, peer)
	if !s.swap(c, w) {
		w.Close()
		return nil, net.ErrClosed
	}
	if timeout > 0 {
		_ = w.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := w.Write([]byte(raftHello + s.self + "\n")); err != nil {
		w.Close()
		return nil, fmt.Errorf("raft dial %s: hello: %w", peer, err)
	}
	_ = w.SetWriteDeadline(time.Time{})
	return w, nil
}

// raftConn is a raft connection: the fault-wrapped connection, plus a
// pause gate that, unlike WrapConn's, gives up at the connection's
// deadline or when it is closed, so a paused peer cannot hold a raft
// goroutine (or a shutdown) forever.
type raftConn struct {
	net.Conn
	s          *raftStream
	faults     Faults
	self, peer string
	closeOnce  sync.Once
	closed     chan struct{}
	rdl, wdl   atomic.Int64 // deadlines, unix ns; 0 for none
}

// cancelled is a context that has ended, for polling WaitRunning.
var cancelled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (c *raftConn) gate(deadline int64) error {
	f := c.faults
	if f == nil || (f.WaitRunning(cancelled, c.self) == nil && f.WaitRunning(cancelled, c.peer) == nil) {
		return nil
	}
	base, stop := context.WithCancel(context.Background())
	defer stop()
	ctx := base
	if deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(base, time.Unix(0, deadline))
		defer cancel()
	}
	go func() { // ends when gate returns, at the latest
		select {
		case <-c.closed:
			stop()
		case <-base.Done():
		}
	}()
	if f.WaitRunning(ctx, c.self) == nil && f.WaitRunning(ctx, c.peer) == nil {
		return nil
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	return os.ErrDeadlineExceeded
}

func (c *raftConn) Read(b []byte) (int, error) {
	if err := c.gate(c.rdl.Load()); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *raftConn) Write(b []byte) (int, error) {
	if err := c.gate(c.wdl.Load()); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func unixNs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (c *raftConn) SetDeadline(t time.Time) error {
	c.rdl.Store(unixNs(t))
	c.wdl.Store(unixNs(t))
	return c.Conn.SetDeadline(t)
}

func (c *raftConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(unixNs(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *raftConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(unixNs(t))
	return c.Conn.SetWriteDeadline(t)
}

func (c *raftConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.s.untrack(c)
		err = c.Conn.Close()
	})
	return err
}
