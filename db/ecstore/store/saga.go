// This file holds the saga workload's services as one state machine:
// inventory (reserve, release), payment (charge, refund), shipment
// (confirm, cancel) and the coordinators' log, with the rules of
// checkers/saga_protocol.go. Applying an operation is a pure function of
// the state and the operation, so replicas that apply the same operations
// in the same order hold the same state: the raft mode applies each one as
// one log entry (saga-read and saga-pending too, which makes them
// linearizable); the primary mode applies it on the primary and logs those
// that changed something for its followers to replay.

package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/eccheck/eccheck/checkers"
)

// OpSaga is an operation of the saga workload: Value is a [SagaCommand],
// Key the saga's id (empty for saga-init, saga-pending and saga-read). A
// successful Response's Value is what the protocol returns (the record of
// saga-claim, the records of saga-pending, the state of saga-read, the
// shipment's state of cancel), empty for the others. An operation the
// protocol refuses fails with ErrRefused, the protocol's reason
// ("declined", "fenced: epoch 3") its Message. Only the raft and primary
// modes run it.
const OpSaga Op = "saga"

// SagaCommand is the Value of an [OpSaga] request.
type SagaCommand struct {
	// F is one of checkers.SagaFs.
	F string `json:"f"`
	// Args is the operation's value, a JSON object of checkers.SagaArgs
	// (null for cancel, saga-pending and saga-read).
	Args json.RawMessage `json:"args,omitempty"`
}

// sagaOp is a parsed saga operation; raw is its command in the form the
// log carries.
type sagaOp struct {
	f    string
	key  string
	args checkers.SagaArgs
	raw  json.RawMessage
}

// readOnly reports whether op changes nothing whatever the state.
func (op sagaOp) readOnly() bool {
	return op.f == checkers.FSagaRead || op.f == checkers.FSagaPending
}

// parseSaga reads an OpSaga request's key and value. It refuses what no
// state could apply: an unknown function, arguments that are not a JSON
// object of the protocol's fields, a missing saga id, owner or stock.
func parseSaga(key string, v json.RawMessage) (sagaOp, error) {
	var cmd SagaCommand
	if err := json.Unmarshal(orNullJSON(v), &cmd); err != nil {
		return sagaOp{}, fmt.Errorf("a saga operation is {\"f\": ..., \"args\": {...}}: %w", err)
	}
	if !slices.Contains(checkers.SagaFs, cmd.F) {
		return sagaOp{}, fmt.Errorf("unknown saga operation %q (want one of %v)", cmd.F, checkers.SagaFs)
	}
	args, err := checkers.ParseSagaArgs(cmd.Args)
	if err != nil {
		return sagaOp{}, fmt.Errorf("%s: %w", cmd.F, err)
	}
	op := sagaOp{f: cmd.F, key: key, args: args}
	keyless := cmd.F == checkers.FSagaInit || op.readOnly()
	switch {
	case !keyless && key == "":
		return sagaOp{}, fmt.Errorf("%s: the key is the saga's id, and it is empty", cmd.F)
	case cmd.F == checkers.FSagaInit && len(args.Stock) == 0:
		return sagaOp{}, fmt.Errorf("%s: no stock given", cmd.F)
	case cmd.F == checkers.FSagaInit && slices.ContainsFunc(args.Stock, func(n int64) bool { return n < 0 }):
		return sagaOp{}, fmt.Errorf("%s: a stock below zero in %v", cmd.F, args.Stock)
	case (cmd.F == checkers.FSagaBegin || cmd.F == checkers.FSagaClaim) && args.Owner == "":
		return sagaOp{}, fmt.Errorf("%s: no owner", cmd.F)
	case args.Item < 0 || args.Qty < 0 || args.Price < 0 || args.Amount < 0:
		return sagaOp{}, fmt.Errorf("%s: an item, quantity, price or amount below zero", cmd.F)
	case args.Status != "" && !slices.Contains([]string{checkers.SagaRunning, checkers.SagaCompensating, checkers.SagaDone, checkers.SagaCompensated}, args.Status):
		return sagaOp{}, fmt.Errorf("%s: unknown status %q", cmd.F, args.Status)
	}
	if cmd.Args != nil {
		c, err := canonical(cmd.Args)
		if err != nil {
			return sagaOp{}, fmt.Errorf("%s: %w", cmd.F, err)
		}
		cmd.Args = json.RawMessage(c)
	}
	op.raw, err = json.Marshal(cmd)
	if err != nil {
		return sagaOp{}, fmt.Errorf("encode %s: %w", cmd.F, err)
	}
	return op, nil
}

// sagaReadOnly reports whether req is a saga operation that changes
// nothing (saga-read, saga-pending): one whose forward failed is then
// certainly not applied.
func sagaReadOnly(req Request) bool {
	if req.Op != OpSaga {
		return false
	}
	op, err := parseSaga(req.Key, req.Value)
	return err == nil && op.readOnly()
}

// sagaResult is what applying a saga operation did.
type sagaResult struct {
	// Value is an ok's value, for the operations that return one.
	Value json.RawMessage
	// Refused is why the protocol refused the operation, which then
	// changed nothing.
	Refused string
	// Changed reports whether the state changed.
	Changed bool
}

// The states of a service's record of a saga.
const (
	sagaReserved  = "reserved"
	sagaReleased  = "released"
	sagaCharged   = "charged"
	sagaRefunded  = "refunded"
	sagaConfirmed = "confirmed"
	sagaCancelled = "cancelled"
)

// newSagaState returns the state of a store that has run no saga.
func newSagaState() *checkers.SagaState {
	st := &checkers.SagaState{}
	normalizeSaga(st)
	return st
}

// normalizeSaga makes every map and slice of st non-nil, so that the
// state reads as {} and [] rather than null.
func normalizeSaga(st *checkers.SagaState) {
	if st.Stock == nil {
		st.Stock = []int64{}
	}
	if st.Reservations == nil {
		st.Reservations = map[string]checkers.Reservation{}
	}
	if st.Payments == nil {
		st.Payments = map[string]checkers.Payment{}
	}
	if st.Ledger == nil {
		st.Ledger = []checkers.LedgerEntry{}
	}
	if st.Shipments == nil {
		st.Shipments = map[string]string{}
	}
	if st.Log == nil {
		st.Log = map[string]checkers.SagaRecord{}
	}
	for id, r := range st.Log {
		if r.Steps == nil {
			r.Steps = []string{}
			st.Log[id] = r
		}
	}
}

// sagaHeld reports whether st holds any saga state: an initialized
// inventory or any service's or the log's record.
func sagaHeld(st *checkers.SagaState) bool {
	return len(st.Stock) > 0 || len(st.Reservations) > 0 || len(st.Payments) > 0 || len(st.Ledger) > 0 ||
		len(st.Shipments) > 0 || len(st.Log) > 0
}

func sagaFinal(status string) bool {
	return status == checkers.SagaDone || status == checkers.SagaCompensated
}

// applySaga applies op to st, as checkers/saga_protocol.go says each
// operation does. st must be normalized (newSagaState, normalizeSaga).
func applySaga(st *checkers.SagaState, op sagaOp) sagaResult {
	a, id := op.args, op.key
	refuse := func(format string, args ...any) sagaResult {
		return sagaResult{Refused: fmt.Sprintf(format, args...)}
	}
	changed := sagaResult{Changed: true}
	switch op.f {
	case checkers.FSagaInit:
		if sagaHeld(st) {
			return refuse("exists: the store holds saga state")
		}
		st.Stock = slices.Clone(a.Stock)
		return changed

	case checkers.FSagaBegin:
		if rec, ok := st.Log[id]; ok {
			if rec.Owner == a.Owner {
				return sagaResult{} // a retried begin
			}
			return refuse("exists: saga %s is owned by %s", id, rec.Owner)
		}
		st.Log[id] = checkers.SagaRecord{Saga: id, Owner: a.Owner, Epoch: 1, Status: checkers.SagaRunning,
			Item: a.Item, Qty: a.Qty, Price: a.Price, Steps: []string{}}
		return changed

	case checkers.FSagaLog:
		rec, ok := st.Log[id]
		switch {
		case !ok:
			return refuse("no saga %s", id)
		case rec.Epoch != a.Epoch:
			return refuse("fenced: epoch %d", rec.Epoch)
		}
		if a.Step != "" {
			rec.Steps = append(slices.Clip(rec.Steps), a.Step)
		}
		if a.Status != "" {
			rec.Status = a.Status
		}
		st.Log[id] = rec
		return changed

	case checkers.FSagaClaim:
		rec, ok := st.Log[id]
		switch {
		case !ok:
			return refuse("no saga %s", id)
		case sagaFinal(rec.Status) || rec.Epoch != a.Epoch-1:
			return refuse("not claimable: epoch %d, status %s", rec.Epoch, rec.Status)
		}
		rec.Epoch, rec.Owner = a.Epoch, a.Owner
		st.Log[id] = rec
		return sagaResult{Value: mustJSON(rec), Changed: true}

	case checkers.FSagaPending:
		pending := []checkers.SagaRecord{}
		for _, rec := range st.Log {
			if !sagaFinal(rec.Status) {
				pending = append(pending, rec)
			}
		}
		sort.Slice(pending, func(i, j int) bool { return pending[i].Saga < pending[j].Saga })
		return sagaResult{Value: mustJSON(pending)}

	case checkers.FSagaRead:
		return sagaResult{Value: mustJSON(st)}

	case checkers.FReserve:
		if r, ok := st.Reservations[id]; ok {
			if r.State == sagaReleased {
				return refuse("released")
			}
			return sagaResult{} // a retry: it holds
		}
		switch {
		case a.Decline:
			return refuse("declined")
		case a.Item >= int64(len(st.Stock)):
			return refuse("no item %d", a.Item)
		case st.Stock[a.Item] < a.Qty:
			return refuse("out of stock")
		}
		st.Stock[a.Item] -= a.Qty
		st.Reservations[id] = checkers.Reservation{Item: a.Item, Qty: a.Qty, State: sagaReserved}
		return changed

	case checkers.FRelease:
		r, ok := st.Reservations[id]
		switch {
		case ok && r.State == sagaReleased:
			return sagaResult{}
		case ok:
			if r.Item < int64(len(st.Stock)) {
				st.Stock[r.Item] += r.Qty
			}
			r.State = sagaReleased
			st.Reservations[id] = r
		default:
			// A tombstone: a reserve that comes late finds it and fails.
			st.Reservations[id] = checkers.Reservation{Item: a.Item, Qty: 0, State: sagaReleased}
		}
		return changed

	case checkers.FCharge:
		if p, ok := st.Payments[id]; ok {
			if p.State == sagaRefunded {
				return refuse("refunded")
			}
			return sagaResult{}
		}
		if a.Decline {
			return refuse("declined")
		}
		st.Payments[id] = checkers.Payment{Amount: a.Amount, State: sagaCharged}
		st.Ledger = append(st.Ledger, checkers.LedgerEntry{Saga: id, Kind: "charge", Amount: a.Amount})
		return changed

	case checkers.FRefund:
		p, ok := st.Payments[id]
		switch {
		case ok && p.State == sagaRefunded && a.Deduped():
			return sagaResult{}
		case ok && p.State == sagaRefunded:
			// --saga-bug double-refund: the compensation is not
			// idempotent, and pays the refund again.
			st.Ledger = append(st.Ledger, checkers.LedgerEntry{Saga: id, Kind: "refund", Amount: p.Amount})
		case ok:
			p.State = sagaRefunded
			st.Payments[id] = p
			st.Ledger = append(st.Ledger, checkers.LedgerEntry{Saga: id, Kind: "refund", Amount: p.Amount})
		default:
			// A tombstone: a charge that comes late finds it and fails.
			st.Payments[id] = checkers.Payment{Amount: 0, State: sagaRefunded}
		}
		return changed

	case checkers.FConfirm:
		switch st.Shipments[id] {
		case sagaConfirmed:
			return sagaResult{}
		case sagaCancelled:
			return refuse("cancelled")
		}
		if a.Decline {
			return refuse("declined")
		}
		st.Shipments[id] = sagaConfirmed
		return changed

	case checkers.FCancel:
		if s, ok := st.Shipments[id]; ok {
			return sagaResult{Value: mustJSON(s)}
		}
		st.Shipments[id] = sagaCancelled
		return sagaResult{Value: mustJSON(sagaCancelled), Changed: true}
	}
	// parseSaga lets no other function through.
	panic(fmt.Sprintf("saga operation %q passed parseSaga", op.f))
}

// mustJSON encodes v, which is one of the saga state's own types and
// always encodes.
func mustJSON(v any) json.RawMessage {
	js, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return js
}
