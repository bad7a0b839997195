// This file holds the raft mode's replicated state machine: the commands of
// the raft log, the state they build (registers, sets, counters, the lists
// and registers of transactions, the saga workload's services), reads of
// it, and its snapshots.

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// raftCommand is one entry of the raft log.
type raftCommand struct {
	Op    Op              `json:"op"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"` // canonical JSON
	Old   json.RawMessage `json:"old,omitempty"`   // canonical JSON (cas)
	Delta int64           `json:"delta,omitempty"` // counter-add
	// RequestID is a counter add's idempotency key (Request.RequestID).
	RequestID string `json:"request_id,omitempty"`
}

// raftResult is the state machine's answer to a command.
type raftResult struct {
	// Index is the log index of the version the key now holds (for a CAS
	// that did not swap, the version it found).
	Index   uint64
	Swapped bool
	// Value is what a CAS found instead of the expected value, what a
	// transaction read, or what a saga operation returns.
	Value json.RawMessage
	// Refused is why the saga protocol refused a saga operation (nothing
	// changed).
	Refused string
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
	// Lists are the lists of list-append transactions (elements as JSON).
	Lists map[string][]json.RawMessage `json:"lists,omitempty"`
	// TxnRegisters are the registers of rw-register transactions (values
	// as JSON), apart from the register workload's Registers.
	TxnRegisters map[string]json.RawMessage `json:"txn_registers,omitempty"`
	// Requests are the idempotency keys of the counter adds applied, with
	// the index of the entry that applied each.
	Requests map[string]uint64 `json:"requests,omitempty"`
	// Saga is the saga workload's services and log; nil until a saga
	// operation is applied.
	Saga *checkers.SagaState `json:"saga,omitempty"`
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
		if cmd.RequestID != "" {
			if at, done := f.st.Requests[cmd.RequestID]; done {
				return raftResult{Index: at} // applied already: acknowledged, not again
			}
			if f.st.Requests == nil {
				f.st.Requests = map[string]uint64{}
			}
			f.st.Requests[cmd.RequestID] = l.Index
		}
		c := f.st.Counters[cmd.Key]
		c.Total += cmd.Delta
		c.Index = l.Index
		f.st.Counters[cmd.Key] = c
		return raftResult{Index: l.Index}
	case OpTxn, OpRWTxn:
		return f.txn(cmd, l.Index)
	case OpSaga:
		return f.saga(cmd, l.Index)
	}
	return raftResult{Err: fmt.Sprintf("unknown command %q", cmd.Op)}
}

// txn applies a list-append or rw-register transaction as one step:
// every read sees the lists or registers as the transaction's earlier
// appends or writes left them. A malformed transaction changes nothing.
// f.mu is held.
func (f *raftFSM) txn(cmd raftCommand, index uint64) raftResult {
	mops, err := parseTxn(cmd.Op, cmd.Value)
	if err != nil {
		return raftResult{Err: string(cmd.Op) + ": " + err.Error()}
	}
	if f.st.Lists == nil {
		f.st.Lists = map[string][]json.RawMessage{}
	}
	if f.st.TxnRegisters == nil {
		f.st.TxnRegisters = map[string]json.RawMessage{}
	}
	reads := map[int]history.Value{}
	for i, m := range mops {
		switch {
		case m.f == "append":
			f.st.Lists[m.key] = append(f.st.Lists[m.key], json.RawMessage(m.value.String()))
		case m.f == "w":
			f.st.TxnRegisters[m.key] = json.RawMessage(m.value.String())
		case cmd.Op == OpRWTxn:
			v, err := registerOf(f.st.TxnRegisters[m.key])
			if err != nil {
				return raftResult{Err: fmt.Sprintf("%s: stored value %s: %v", cmd.Op, f.st.TxnRegisters[m.key], err)}
			}
			reads[i] = v
		default:
			list := make([]history.Value, 0, len(f.st.Lists[m.key]))
			for _, e := range f.st.Lists[m.key] {
				v, err := history.ParseValue(string(e))
				if err != nil {
					return raftResult{Err: fmt.Sprintf("%s: stored element %s: %v", cmd.Op, e, err)}
				}
				list = append(list, v)
			}
			reads[i] = history.List(list...)
		}
	}
	return raftResult{Index: index, Value: completed(mops, reads)}
}

// saga applies a saga operation as one step. A malformed one changes
// nothing. f.mu is held.
func (f *raftFSM) saga(cmd raftCommand, index uint64) raftResult {
	op, err := parseSaga(cmd.Key, cmd.Value)
	if err != nil {
		return raftResult{Err: string(cmd.Op) + ": " + err.Error()}
	}
	if f.st.Saga == nil {
		f.st.Saga = newSagaState()
	}
	res := applySaga(f.st.Saga, op)
	return raftResult{Index: index, Value: res.Value, Refused: res.Refused}
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
	if st.Saga != nil {
		normalizeSaga(st.Saga)
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
