// Package store is ecstore, eccheck's own replicated key-value store with
// tunable consistency. Every mode has a known guarantee, so eccheck's
// checkers can be proven on both sides: configurations that must pass and
// configurations that must fail, each for a known reason.
//
// A Node serves a JSON client API over HTTP and talks to its peers over the
// network: HTTP messages for the lww, hlc and primary modes, Raft's own TCP
// transport for the raft mode. Nodes run one per process (`eccheck store
// serve`, as in a container) or several in one process (LocalCluster, the
// in-process backend), where a shared Faults value can cut, delay and pause
// their traffic.
package store

import "encoding/json"

// Op names a client operation.
type Op string

// The client operations.
const (
	OpRead        Op = "read"         // register read
	OpWrite       Op = "write"        // register write
	OpCAS         Op = "cas"          // register compare-and-set
	OpSetAdd      Op = "set-add"      // add an element to a set
	OpSetRead     Op = "set-read"     // read a whole set
	OpCounterAdd  Op = "counter-add"  // add a delta to a counter
	OpCounterRead Op = "counter-read" // read a counter
)

// Request is a client operation, the body of POST /v1/op.
type Request struct {
	Op Op `json:"op"`
	// Key is required, except for a saga operation that names no saga
	// (OpSaga).
	Key string `json:"key"`
	// Value is the value written, the element added, the delta (an
	// integer) added, a transaction, or a saga command (SagaCommand).
	Value json.RawMessage `json:"value,omitempty"`
	// Old is the value a CAS expects.
	Old json.RawMessage `json:"old,omitempty"`
	// Context is, for a register write in mvr mode, the causal context
	// (node -> highest counter) of the client's last read or write of Key:
	// the write supersedes the siblings it covers and no others. Empty: a
	// client that saw nothing of the key.
	Context map[string]uint64 `json:"context,omitempty"`
	// Session, when present, is the token of the last state the client
	// saw; a node waits (up to its session bound) until it has caught up
	// with it before answering, or answers ErrSession.
	Session *Session `json:"session,omitempty"`
	// RequestID, when present on a counter add, is an idempotency key:
	// the add is applied at most once per key (a retry of an add that was
	// applied only acknowledges it). The key is recorded atomically with
	// the add: in the same lock (lww, hlc, primary) or the same log entry
	// (raft).
	RequestID string `json:"request_id,omitempty"`
}

// ErrorKind classifies a failed operation so a client can tell whether it
// certainly did not happen.
type ErrorKind string

// The error kinds. Only ErrIndeterminate leaves the outcome unknown.
const (
	// ErrCASMismatch: the register did not hold the expected value; the CAS
	// certainly did not happen.
	ErrCASMismatch ErrorKind = "cas-mismatch"
	// ErrUnavailable: the node refused before doing anything (no quorum
	// reachable, not the primary, shutting down); certainly not applied.
	ErrUnavailable ErrorKind = "unavailable"
	// ErrNotLeader: this node cannot serve the operation; Leader names the
	// node that can, if known. Certainly not applied.
	ErrNotLeader ErrorKind = "not-leader"
	// ErrSession: the node did not catch up with the client's session
	// within its bound; certainly not applied.
	ErrSession ErrorKind = "session-timeout"
	// ErrIndeterminate: the operation may or may not have taken effect
	// (a write reached fewer than W replicas before the deadline, a Raft
	// apply timed out after being proposed).
	ErrIndeterminate ErrorKind = "indeterminate"
	// ErrBadRequest: the request was malformed; nothing happened.
	ErrBadRequest ErrorKind = "bad-request"
	// ErrRefused: the saga protocol refused the operation (OpSaga);
	// Message is its reason ("declined", "fenced: epoch 3"). Nothing
	// happened.
	ErrRefused ErrorKind = "refused"
)

// Definite reports whether an error of kind k means the operation
// certainly did not take effect.
func (k ErrorKind) Definite() bool { return k != ErrIndeterminate }

// Response answers a Request.
type Response struct {
	// Value is what a read returned: the register's value (null when never
	// written; an MVRRead in mvr mode), a set's elements (an array), a
	// counter's total (an integer); what a transaction read; what a saga
	// operation returns. For a register write in mvr mode it is an
	// MVRWrite. For a CAS that failed with ErrCASMismatch it is the value
	// the register held, when the mode knows it.
	Value json.RawMessage `json:"value,omitempty"`
	// Session is the client's token updated with what this operation saw
	// or wrote; pass it with the next request for session guarantees.
	Session *Session `json:"session,omitempty"`
	// Node is the node that coordinated the operation.
	Node string `json:"node"`
	// Error is empty on success.
	Error   ErrorKind `json:"error,omitempty"`
	Message string    `json:"message,omitempty"`
	// Leader names the node to retry with, for ErrNotLeader.
	Leader string `json:"leader,omitempty"`
}

// Session is a client's session token: per key, the newest version the
// client has written or read. Stamps compare by Stamp.Less; a raft or
// primary node uses the Index field of its stamps.
type Session struct {
	Seen map[string]Stamp `json:"seen"`
}

// Observe records that the client saw version s of key, keeping the newest.
func (s *Session) Observe(key string, st Stamp) {
	if s.Seen == nil {
		s.Seen = make(map[string]Stamp)
	}
	if old, ok := s.Seen[key]; !ok || old.Less(st) {
		s.Seen[key] = st
	}
}

// Merge folds o into s.
func (s *Session) Merge(o *Session) {
	if o == nil {
		return
	}
	for k, st := range o.Seen {
		s.Observe(k, st)
	}
}

// MVRRead is what a register read returns in mvr mode: every sibling
// (concurrent write) the replicas asked hold, sorted by dot, and their
// causal context, the version vector of every write they have seen, kept
// or superseded. A register never written reads no siblings and an empty
// context.
type MVRRead struct {
	Siblings []MVRSibling      `json:"siblings"`
	Context  map[string]uint64 `json:"context"`
}

// MVRSibling is one value of a multi-value register and its dot,
// "node:counter": the counter-th write of the key its node coordinated.
type MVRSibling struct {
	Value json.RawMessage `json:"value"`
	Dot   string          `json:"dot"`
}

// MVRWrite is what a register write returns in mvr mode: the write's dot,
// and the context to send with the client's next write of the key (the
// write's context with the new dot).
type MVRWrite struct {
	Dot     string            `json:"dot"`
	Context map[string]uint64 `json:"context"`
}

// Stamp is a version of a register: the wall-clock (lww) or hybrid logical
// (hlc) time of its write, broken by the writing node's id, or a log index
// (raft, primary).
type Stamp struct {
	Wall    int64  `json:"w,omitempty"` // nanoseconds since the epoch, on the writer's (skewed) clock
	Logical uint32 `json:"l,omitempty"` // HLC counter
	Node    string `json:"n,omitempty"` // tie-break: the coordinating node
	Index   uint64 `json:"i,omitempty"` // log position (raft, primary); compared first
}

// Less orders stamps: index, then wall time, then logical counter, then
// node id. Last-write-wins keeps the greatest.
func (s Stamp) Less(o Stamp) bool {
	switch {
	case s.Index != o.Index:
		return s.Index < o.Index
	case s.Wall != o.Wall:
		return s.Wall < o.Wall
	case s.Logical != o.Logical:
		return s.Logical < o.Logical
	}
	return s.Node < o.Node
}

// IsZero reports whether s is the stamp of a never-written register.
func (s Stamp) IsZero() bool { return s == Stamp{} }

// Status is what GET /v1/health reports.
type Status struct {
	ID     string `json:"id"`
	Mode   string `json:"mode"`
	Role   string `json:"role,omitempty"`   // leader, follower, primary, candidate
	Leader string `json:"leader,omitempty"` // the node this one believes leads
	Ready  bool   `json:"ready"`
	// ClockOffsetNs is the offset the nemesis set on this node's clock.
	ClockOffsetNs int64 `json:"clock_offset_ns"`
	Paused        bool  `json:"paused,omitempty"`
	// DelaysMs are the delays, in milliseconds, that POST /v1/admin/delay
	// put on this node's messages to each peer (containers only).
	DelaysMs map[string]int64 `json:"delays_ms,omitempty"`
	Detail   string           `json:"detail,omitempty"`
}

// ClockRequest is the body of POST /v1/admin/clock.
type ClockRequest struct {
	OffsetNs int64   `json:"offset_ns"`
	DriftPPM float64 `json:"drift_ppm,omitempty"`
}

// DelayRequest is the body of POST /v1/admin/delay: delay this node's
// messages to Peer (every peer when empty) by Ms milliseconds; 0 removes
// the delay. Only a node with no in-process fault state (one in its own
// container) accepts it.
type DelayRequest struct {
	Peer string `json:"peer,omitempty"`
	Ms   int64  `json:"ms"`
}
