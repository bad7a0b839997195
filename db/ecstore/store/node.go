package store

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The replication modes.
const (
	ModeLWW     = "lww"     // any node coordinates; W of N replicas stamped with the coordinator's wall clock; reads ask R and keep the newest
	ModeHLC     = "hlc"     // as lww, with stamps from a hybrid logical clock carried on every message
	ModeMVR     = "mvr"     // replicated as lww, registers keep concurrent writes as siblings under dotted version vectors
	ModePrimary = "primary" // one primary, asynchronous followers, failover by promotion
	ModeRaft    = "raft"    // consensus through hashicorp/raft; reads confirmed by the leader
)

// Modes lists the modes, for help text and flag checks.
var Modes = []string{ModeLWW, ModeHLC, ModeMVR, ModePrimary, ModeRaft}

// Set implementations for lww, hlc and mvr.
const (
	SetORSet   = "orset"    // an observed-remove set CRDT: concurrent adds all survive
	SetLWWBlob = "lww-blob" // the whole set as one last-write-wins value, updated by read-modify-write: concurrent adds overwrite each other
)

// Counter implementations for lww, hlc and mvr.
const (
	CounterPN = "pn" // a PN-Counter: increments and decrements per actor
	CounterG  = "g"  // a G-Counter: increments per actor only; a negative add is refused
)

// dynamoMode reports whether mode runs on the Dynamo-style engine
// (lww.go): any node coordinates, N/W/R quorums, CRDT counters and sets.
func dynamoMode(mode string) bool { return mode == ModeLWW || mode == ModeHLC || mode == ModeMVR }

// Config configures one node.
type Config struct {
	// ID names the node (n1, n2, ...).
	ID string
	// Listen is the host:port of the node's HTTP API, for clients and for
	// peers. Port 0 picks a free port (see Node.Addr).
	Listen string
	// Peers maps the other nodes' ids to their HTTP host:port.
	Peers map[string]string
	// Mode is one of Modes.
	Mode string
	// Token is the cluster's secret. When set, the peer endpoints
	// (/v1/peer/...) and the admin endpoints (/v1/admin/clock,
	// /v1/admin/delay) refuse a request that does not carry it in the
	// X-Eccheck-Token header (401), and the node sends it with its own
	// requests to its peers. The client API and the health probe stay
	// open. On a network others share (hosts over SSH) a cluster must
	// have one: anyone who reaches a node could otherwise move its clock
	// or write into its replicas.
	Token string

	// N is how many nodes replicate each key (lww, hlc, mvr); 0 means
	// all. W and R are the write and read quorums; 0 means 1.
	N, W, R int
	// AntiEntropy is how often a node pushes its state to its peers
	// (lww, hlc, mvr); 0 means 1s, negative disables it.
	AntiEntropy time.Duration
	// SetImpl is SetORSet (the default) or SetLWWBlob (lww and hlc only).
	SetImpl string
	// CounterImpl is CounterPN (the default) or CounterG (lww, hlc, mvr).
	CounterImpl string

	// PrimaryReads is "any" (the default: a node answers reads from its own
	// copy) or "primary" (reads go to the primary) in primary mode.
	PrimaryReads string
	// FailoverTimeout is how long followers wait without hearing from the
	// primary before the lowest-id reachable node promotes itself
	// (primary); 0 means 1s.
	FailoverTimeout time.Duration

	// RaftListen is the host:port of the node's Raft TCP transport, and
	// RaftPeers the other nodes' (raft); empty means the HTTP port + 1000.
	RaftListen string
	RaftPeers  map[string]string
	// DataDir holds what the mode persists (the Raft log, stable store and
	// snapshots). Required for raft.
	DataDir string

	// SessionWait bounds how long a node waits to catch up with a client's
	// session token before answering ErrSession; 0 means 1s.
	SessionWait time.Duration
	// RequestTimeout bounds an operation's peer round trips inside the
	// store; 0 means 1s. Past it a write that reached fewer than W
	// replicas is ErrIndeterminate.
	RequestTimeout time.Duration

	// ClockFile, when set, holds the clock offset ("+90s", "-250ms"); the
	// node re-reads it every 100 ms (how the nemesis skews a container).
	ClockFile string
	// Faults, when set, is the in-process fault state (LocalNet).
	Faults Faults
	// Logf logs; nil means the standard logger with the node id.
	Logf func(format string, args ...any)
}

func (c *Config) setDefaults() error {
	if c.ID == "" {
		return errors.New("node id is empty")
	}
	if c.Mode == "" {
		c.Mode = ModeLWW
	}
	known := false
	for _, m := range Modes {
		known = known || m == c.Mode
	}
	if !known {
		return fmt.Errorf("unknown mode %q (want %s)", c.Mode, strings.Join(Modes, ", "))
	}
	total := len(c.Peers) + 1
	if c.N == 0 {
		c.N = total
	}
	if c.W == 0 {
		c.W = 1
	}
	if c.R == 0 {
		c.R = 1
	}
	if c.N > total || c.W > c.N || c.R > c.N || c.N < 1 || c.W < 1 || c.R < 1 {
		return fmt.Errorf("need 1 <= W, R <= N <= nodes; got N=%d W=%d R=%d with %d nodes", c.N, c.W, c.R, total)
	}
	if c.AntiEntropy == 0 {
		c.AntiEntropy = time.Second
	}
	if c.SetImpl == "" {
		c.SetImpl = SetORSet
	}
	if c.SetImpl != SetORSet && c.SetImpl != SetLWWBlob {
		return fmt.Errorf("unknown set implementation %q (want orset or lww-blob)", c.SetImpl)
	}
	if c.SetImpl == SetLWWBlob && c.Mode == ModeMVR {
		return errors.New("set implementation lww-blob keeps a set in a last-write-wins register, which mvr mode does not have; use orset")
	}
	if c.CounterImpl == "" {
		c.CounterImpl = CounterPN
	}
	switch {
	case c.CounterImpl != CounterPN && c.CounterImpl != CounterG:
		return fmt.Errorf("unknown counter implementation %q (want pn or g)", c.CounterImpl)
	case c.CounterImpl == CounterG && !dynamoMode(c.Mode):
		return fmt.Errorf("counter implementation g is for modes lww, hlc and mvr, not %s", c.Mode)
	}
	if c.PrimaryReads == "" {
		c.PrimaryReads = "any"
	}
	if c.PrimaryReads != "any" && c.PrimaryReads != "primary" {
		return fmt.Errorf("primary reads %q: want any or primary", c.PrimaryReads)
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = time.Second
	}
	if c.SessionWait == 0 {
		c.SessionWait = time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Second
	}
	if c.Mode == ModeRaft {
		if c.DataDir == "" {
			return errors.New("raft mode needs a data directory (--data-dir)")
		}
		if c.RaftListen == "" {
			a, err := plus1000(c.Listen)
			if err != nil {
				return fmt.Errorf("raft listen address: %w", err)
			}
			c.RaftListen = a
		}
		if c.RaftPeers == nil {
			c.RaftPeers = map[string]string{}
			for id, addr := range c.Peers {
				a, err := plus1000(addr)
				if err != nil {
					return fmt.Errorf("raft address of %s: %w", id, err)
				}
				c.RaftPeers[id] = a
			}
		}
	}
	if c.Logf == nil {
		l := log.New(os.Stderr, "ecstore "+c.ID+": ", log.LstdFlags|log.Lmicroseconds)
		c.Logf = l.Printf
	}
	return nil
}

func plus1000(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%q has no fixed port to add 1000 to; give the raft address", hostport)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1000)), nil
}

// engine is one replication mode. A Node hands it client operations and
// peer messages; it answers through Response errors, never panics on bad
// input.
type engine interface {
	// start begins background work and returns once the engine can serve.
	start(ctx context.Context) error
	// stop ends background work and releases what the engine holds (files,
	// listeners). A stopped engine is not started again: a restart makes a
	// new one.
	stop() error
	// do serves a client operation; ctx carries the request's deadline.
	do(ctx context.Context, req Request) Response
	// peer serves a message of kind from node from, returning the reply's
	// JSON.
	peer(ctx context.Context, from, kind string, body []byte) (any, error)
	// status fills the mode-specific part of the node's status.
	status(s *Status)
}

// env is what an engine gets from its node.
type env struct {
	cfg   Config
	clock *Clock
	peers *Peers
	logf  func(string, ...any)
}

// newEngine makes the engine of cfg.Mode.
func newEngine(e env) (engine, error) {
	switch e.cfg.Mode {
	case ModeLWW:
		return newLWW(e, false)
	case ModeHLC:
		return newLWW(e, true)
	case ModeMVR:
		return newLWW(e, false)
	case ModePrimary:
		return newPrimary(e)
	case ModeRaft:
		return newRaft(e)
	}
	return nil, fmt.Errorf("unknown mode %q", e.cfg.Mode)
}

// Node is one ecstore node.
type Node struct {
	cfg    Config
	clock  *Clock
	eng    engine
	ln     net.Listener
	srv    *http.Server
	stopCh chan struct{}
	wg     sync.WaitGroup
	// own is the node's own fault state when cfg.Faults is nil (a node in
	// its own container): only the delays set through POST
	// /v1/admin/delay, which its peer messages obey.
	own *LocalNet
}

// NewNode checks cfg and makes a node; Start runs it.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.ID, err)
	}
	n := &Node{cfg: cfg, clock: NewClock(), stopCh: make(chan struct{})}
	if cfg.Faults == nil {
		n.own = NewLocalNet()
	}
	return n, nil
}

// Clock returns the node's clock, for in-process skew.
func (n *Node) Clock() *Clock { return n.clock }

// Config returns the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// Addr returns the host:port the node's HTTP API listens on.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// Start listens and starts the mode's engine; it returns once the node can
// serve (for raft, once its Raft instance runs; a leader may come later).
func (n *Node) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("node %s: listen: %w", n.cfg.ID, err)
	}
	n.ln = ln
	if n.cfg.ClockFile != "" {
		n.wg.Go(func() { n.clock.WatchFile(n.cfg.ClockFile, 100*time.Millisecond, n.stopCh, n.cfg.Logf) })
	}
	var pf Faults = n.own
	if n.cfg.Faults != nil {
		pf = n.cfg.Faults
	}
	peers := NewPeers(n.cfg.ID, n.cfg.Peers, pf)
	peers.token = n.cfg.Token
	eng, err := newEngine(env{cfg: n.cfg, clock: n.clock, peers: peers, logf: n.cfg.Logf})
	if err != nil {
		ln.Close()
		return fmt.Errorf("node %s: %w", n.cfg.ID, err)
	}
	n.eng = eng
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/op", n.handleOp)
	mux.HandleFunc("POST /v1/peer/{kind}", n.authorized(n.handlePeer))
	mux.HandleFunc("GET /v1/health", n.handleHealth)
	mux.HandleFunc("POST /v1/admin/clock", n.authorized(n.handleClock))
	mux.HandleFunc("POST /v1/admin/delay", n.authorized(n.handleDelay))
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.wg.Go(func() {
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.cfg.Logf("serve: %v", err)
		}
	})
	if err := eng.start(ctx); err != nil {
		n.Close()
		return fmt.Errorf("node %s: start %s: %w", n.cfg.ID, n.cfg.Mode, err)
	}
	return nil
}

// Close stops the node: the listener, open connections and the engine.
func (n *Node) Close() error {
	select {
	case <-n.stopCh:
		return nil
	default:
	}
	close(n.stopCh)
	var errs []error
	if n.srv != nil {
		errs = append(errs, n.srv.Close())
	}
	if n.eng != nil {
		errs = append(errs, n.eng.stop())
	}
	n.wg.Wait()
	return errors.Join(errs...)
}

// waitRunning holds a request while the node is paused.
func (n *Node) waitRunning(ctx context.Context) error {
	if n.cfg.Faults == nil {
		return nil
	}
	return n.cfg.Faults.WaitRunning(ctx, n.cfg.ID)
}

func (n *Node) handleOp(w http.ResponseWriter, r *http.Request) {
	if err := n.waitRunning(r.Context()); err != nil {
		return // the client gave up while the node was paused
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, Response{Node: n.cfg.ID, Error: ErrBadRequest, Message: "decode request: " + err.Error()})
		return
	}
	switch {
	case req.Op == OpSaga && n.cfg.Mode != ModeRaft && n.cfg.Mode != ModePrimary:
		writeJSON(w, http.StatusBadRequest, Response{Node: n.cfg.ID, Error: ErrBadRequest,
			Message: fmt.Sprintf("saga operations run in modes %s and %s, not %s", ModeRaft, ModePrimary, n.cfg.Mode)})
		return
	case isTxn(req.Op) && n.cfg.Mode == ModeMVR:
		writeJSON(w, http.StatusBadRequest, Response{Node: n.cfg.ID, Error: ErrBadRequest,
			Message: "transactions run in modes lww, hlc, primary and raft, not mvr: a transaction's reads need one value per register"})
		return
	case req.Key == "" && req.Op != OpSaga:
		writeJSON(w, http.StatusBadRequest, Response{Node: n.cfg.ID, Error: ErrBadRequest, Message: "request has no key"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), n.cfg.RequestTimeout+n.cfg.SessionWait)
	defer cancel()
	var resp Response
	if _, raftMode := n.eng.(*raftEngine); isTxn(req.Op) && !raftMode {
		resp = sequentialTxn(ctx, n.eng.do, req)
	} else {
		resp = n.eng.do(ctx, req)
	}
	resp.Node = n.cfg.ID
	writeJSON(w, statusOf(resp.Error), resp)
}

// statusOf maps an error kind to an HTTP status, for people reading logs
// with curl; clients read the error kind.
func statusOf(k ErrorKind) int {
	switch k {
	case "":
		return http.StatusOK
	case ErrCASMismatch, ErrRefused:
		return http.StatusConflict
	case ErrBadRequest:
		return http.StatusBadRequest
	case ErrIndeterminate:
		return http.StatusGatewayTimeout
	case ErrNotLeader:
		return http.StatusMisdirectedRequest
	}
	return http.StatusServiceUnavailable
}

// TokenHeader carries the cluster's secret (Config.Token).
const TokenHeader = "X-Eccheck-Token"

// authorized refuses a request without the cluster's token, when the
// node has one, before h reads anything of it.
func (n *Node) authorized(h http.HandlerFunc) http.HandlerFunc {
	if n.cfg.Token == "" {
		return h
	}
	want := []byte(n.cfg.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), want) != 1 {
			http.Error(w, "node "+n.cfg.ID+": "+r.URL.Path+" needs the cluster's token in the "+TokenHeader+" header", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (n *Node) handlePeer(w http.ResponseWriter, r *http.Request) {
	if err := n.waitRunning(r.Context()); err != nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	reply, err := n.eng.peer(r.Context(), r.Header.Get(fromHeader), r.PathValue("kind"), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// Status reports the node's state.
func (n *Node) Status() Status {
	s := Status{ID: n.cfg.ID, Mode: n.cfg.Mode, ClockOffsetNs: int64(n.clock.Offset())}
	if ln, ok := n.cfg.Faults.(*LocalNet); ok {
		s.Paused = ln.Paused(n.cfg.ID)
	}
	if n.own != nil {
		for _, p := range slices.Sorted(maps.Keys(n.cfg.Peers)) {
			if d := n.own.Delay(n.cfg.ID, p); d > 0 {
				if s.DelaysMs == nil {
					s.DelaysMs = map[string]int64{}
				}
				s.DelaysMs[p] = d.Milliseconds()
			}
		}
	}
	if n.eng != nil {
		n.eng.status(&s)
	}
	return s
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Status())
}

func (n *Node) handleClock(w http.ResponseWriter, r *http.Request) {
	var req ClockRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "decode clock request: "+err.Error(), http.StatusBadRequest)
		return
	}
	n.clock.Set(time.Duration(req.OffsetNs), req.DriftPPM)
	writeJSON(w, http.StatusOK, n.Status())
}

// handleDelay sets the delay of this node's messages to one peer (or to
// every peer when the request names none); 0 removes it. Only a node with
// no shared in-process fault state has delays of its own: an in-process
// node answers 409, as its cluster's LocalNet sets them.
func (n *Node) handleDelay(w http.ResponseWriter, r *http.Request) {
	if n.own == nil {
		http.Error(w, "node "+n.cfg.ID+" obeys its in-process cluster's fault state: set delays there", http.StatusConflict)
		return
	}
	var req DelayRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "decode delay request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Ms < 0 {
		http.Error(w, fmt.Sprintf("delay of %d ms: want 0 or more", req.Ms), http.StatusBadRequest)
		return
	}
	peers := slices.Sorted(maps.Keys(n.cfg.Peers))
	if req.Peer != "" {
		if _, ok := n.cfg.Peers[req.Peer]; !ok || req.Peer == n.cfg.ID {
			http.Error(w, fmt.Sprintf("node %s has no peer %q", n.cfg.ID, req.Peer), http.StatusBadRequest)
			return
		}
		peers = []string{req.Peer}
	}
	for _, p := range peers {
		if p != n.cfg.ID {
			n.own.SetDelay(n.cfg.ID, p, time.Duration(req.Ms)*time.Millisecond)
		}
	}
	writeJSON(w, http.StatusOK, n.Status())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
