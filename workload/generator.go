// Package workload makes the operations of a test and drives them: the
// generators (register, set, session, counter, and the transactions of
// list-append and rw-register) produce invocations with unique values on
// rotating keys, and Run has concurrent workers perform
// them through clients while a nemesis injects faults, recording every
// invocation and completion into the history, then heals, waits and reads
// every key from every node in a final phase.
package workload

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// The workloads.
const (
	Register = "register" // reads, writes of unique values and CAS on rotating keys
	Set      = "set"      // unique adds and periodic full reads
	Session  = "session"  // each client writes a key and reads it back through any node
	Counter  = "counter"  // adds and reads
	// ListAppend is transactions of 1 to 4 micro-operations, appends of
	// unique elements and reads of whole lists, over a few keys that
	// rotate (Elle's list-append).
	ListAppend = "list-append"
	// RWRegister is transactions of 1 to 4 micro-operations, writes of
	// values unique per key and reads of registers, over a few keys that
	// rotate (Elle's rw-register).
	RWRegister = "rw-register"
	// Saga is bookings across three services (inventory, payment,
	// shipment), each a saga of steps and compensations driven by a
	// coordinator that keeps a log in the store (saga.go).
	Saga = "saga"
)

// Names lists the workloads in help order.
var Names = []string{Register, Session, Set, Counter, ListAppend, RWRegister, Saga}

// Transactional reports whether a workload's operations are transactions
// (f txn) rather than single-key operations.
func Transactional(workload string) bool {
	return workload == ListAppend || workload == RWRegister
}

// txnKeys is how many keys a transactional group works on at once.
const txnKeys = 3

// rwWritesPerKey bounds how many times one worker writes one key of
// rw-register: past it, the worker's micro-operations on the key are
// reads. A key then holds at most groupSize*rwWritesPerKey writes, few
// enough that a checker can order them from what reads saw.
const rwWritesPerKey = 12

// Kind is the data type a workload works on: what its clients must speak.
func Kind(workload string) string {
	switch workload {
	case Set:
		return "set"
	case Counter:
		return "counter"
	case ListAppend, RWRegister, Saga:
		return workload
	}
	return "register"
}

// ParseWorkloads parses "register,session,set". list-append and
// rw-register do not go together: their transactions have no key, and
// their micro-operations are what tells one workload's history from the
// other's.
func ParseWorkloads(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" || seen[w] {
			continue
		}
		ok := false
		for _, n := range Names {
			ok = ok || n == w
		}
		if !ok {
			return nil, fmt.Errorf("unknown workload %q (want %s)", w, strings.Join(Names, ", "))
		}
		seen[w] = true
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload named (want some of %s)", strings.Join(Names, ", "))
	}
	if seen[ListAppend] && seen[RWRegister] {
		return nil, fmt.Errorf("%s and %s in one run: transactions have no key, so a history holds one transactional workload; run them apart", ListAppend, RWRegister)
	}
	return out, nil
}

// Generator makes one workload's operations. Each worker gets its own
// stream, a pure function of the seed and the worker's number, so the
// same seed gives the same operations whatever the timing.
type Generator struct {
	name string
	// groupSize workers share each key; a key serves opsPerKey operations
	// of each worker before the group moves on to a fresh key (Jepsen's
	// independent keys), so every key's history stays small.
	groupSize int
	opsPerKey int
	workers   int
	prefix    string // of its keys: r, s, set, c
	// Saga configures the saga workload (its generator's only).
	Saga SagaOptions

	mu   sync.Mutex
	keys map[string]bool
}

// NewGenerator returns the generator of a workload for workers workers.
func NewGenerator(name string, workers int) (*Generator, error) {
	g := &Generator{name: name, workers: workers, keys: map[string]bool{}}
	switch name {
	case Register:
		g.groupSize, g.opsPerKey, g.prefix = 5, 60, "r"
	case Session:
		g.groupSize, g.opsPerKey, g.prefix = 3, 30, "s"
	case Set:
		g.groupSize, g.opsPerKey, g.prefix = 5, 200, "set"
	case Counter:
		g.groupSize, g.opsPerKey, g.prefix = 5, 1<<30, "c"
	case ListAppend:
		// Each group's transactions share txnKeys keys per epoch: at most
		// opsPerKey*groupSize*4 appends per key, about a tenth of that on
		// average.
		g.groupSize, g.opsPerKey, g.prefix = 5, 40, "l"
	case RWRegister:
		// The same rotation, with fewer transactions per epoch, and at
		// most rwWritesPerKey writes of a key by each worker: at most
		// groupSize*rwWritesPerKey writes per key.
		g.groupSize, g.opsPerKey, g.prefix = 5, 20, "rw"
	case Saga:
		// Sagas have no rotating keys: one final read of the whole state
		// per node.
		g.groupSize, g.opsPerKey, g.prefix = 1, 1, "saga"
		g.Saga = DefaultSagaOptions()
		g.keys["sagas"] = true
	default:
		return nil, fmt.Errorf("unknown workload %q", name)
	}
	if workers < 1 {
		return nil, fmt.Errorf("workload %s: %d workers", name, workers)
	}
	return g, nil
}

// Name returns the workload's name.
func (g *Generator) Name() string { return g.name }

// Keys returns every key the generator has handed out, sorted: what the
// final phase reads.
func (g *Generator) Keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.keys))
	for k := range g.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (g *Generator) use(key string) {
	g.mu.Lock()
	g.keys[key] = true
	g.mu.Unlock()
}

// Stream is one worker's sequence of operations.
type Stream struct {
	g      *Generator
	worker int
	rng    *rand.Rand
	n      int                      // operations issued
	seq    int64                    // values issued
	last   map[string]history.Value // the value this worker last wrote, per key
	phase  int                      // session workload: write, read, read
	writes map[string]int           // rw-register: the worker's writes per key of this epoch
	epoch  string                   // rw-register: the first key of the epoch writes counts
}

// Stream returns worker's stream; seed and worker decide it entirely.
func (g *Generator) Stream(seed uint64, worker int) *Stream {
	return &Stream{g: g, worker: worker, rng: rand.New(rand.NewPCG(seed, uint64(worker)+1)), last: map[string]history.Value{}, writes: map[string]int{}}
}

// value returns a value no other worker or call writes.
func (s *Stream) value() history.Value {
	s.seq++
	return history.Int(s.seq*int64(s.g.workers) + int64(s.worker) + 1)
}

// key is the key of the worker's group for its current epoch.
func (s *Stream) key() string {
	group := s.worker / s.g.groupSize
	epoch := s.n / s.g.opsPerKey
	return s.g.prefix + strconv.Itoa(group) + "-" + strconv.Itoa(epoch)
}

// Next returns the worker's next invocation (F, Key, Value; the runner
// fills in the process).
func (s *Stream) Next() history.Op {
	key := s.key()
	s.n++
	s.g.use(key)
	op := history.Op{Type: history.Invoke, Key: key}
	switch s.g.name {
	case Register:
		switch r := s.rng.IntN(100); {
		case r < 50:
			op.F = "read"
		case r < 80:
			op.F = "write"
			op.Value = s.value()
			s.last[key] = op.Value
		default:
			// Expect the value this worker last wrote (nil at first): a pure
			// function of the seed, unlike the values reads return.
			op.F = "cas"
			nv := s.value()
			op.Value = history.List(s.last[key], nv)
			s.last[key] = nv
		}
	case Session:
		// Write, then read it back twice (through whatever node the client
		// roams to).
		if s.phase == 0 {
			op.F, op.Value = "write", s.value()
		} else {
			op.F = "read"
		}
		s.phase = (s.phase + 1) % 3
	case Set:
		if s.rng.IntN(10) == 0 {
			op.F = "read"
		} else {
			op.F, op.Value = "add", s.value()
		}
	case Counter:
		if s.rng.IntN(5) == 0 {
			op.F = "read"
		} else {
			op.F, op.Value = "add", history.Int(int64(1+s.rng.IntN(5)))
		}
	case ListAppend, RWRegister:
		// A transaction over the group's keys of this epoch (the first
		// named key), with no key of its own: half its micro-operations
		// reads, half appends (list-append) or writes (rw-register).
		op.Key = ""
		if key != s.epoch {
			// The worker never comes back to an earlier epoch's keys.
			clear(s.writes)
			s.epoch = key
		}
		mops := make([]history.Value, 1+s.rng.IntN(4))
		for i := range mops {
			k := key
			if j := s.rng.IntN(txnKeys); j > 0 {
				k = key + "." + strconv.Itoa(j)
			}
			s.g.use(k)
			write := s.rng.IntN(2) == 0
			switch {
			case write && s.g.name == ListAppend:
				mops[i] = history.List(history.String("append"), history.String(k), s.value())
			case write && s.writes[k] < rwWritesPerKey:
				s.writes[k]++
				mops[i] = history.List(history.String("w"), history.String(k), s.value())
			default:
				mops[i] = history.List(history.String("r"), history.String(k), history.Nil())
			}
		}
		op.F, op.Value = "txn", history.List(mops...)
	}
	return op
}

// FinalRead is the final phase's read of key: a plain read, or for the
// transactional workloads a transaction that reads the key.
func (g *Generator) FinalRead(key string) history.Op {
	if g.name == Saga {
		return history.Op{F: checkers.FSagaRead}
	}
	if Transactional(g.name) {
		return history.Op{F: "txn", Value: history.List(history.List(history.String("r"), history.String(key), history.Nil()))}
	}
	return history.Op{F: "read", Key: key}
}
