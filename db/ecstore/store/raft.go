// This file holds the raft engine itself: how the raft mode works, its
// timing, and the node type with its start, stop and status. The mode's
// other parts: raft_serve.go (client operations, forwarding, linearizable
// reads), raft_fsm.go (the replicated state machine) and raft_stream.go
// (the transport's fault-wrapped connections).

package store

import (
	"context"
	"errors"
	"fmt"
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
