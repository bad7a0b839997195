package sagatest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// Memory is the saga protocol in memory, under one lock: the reference
// the conformance suite holds itself to, and the system of the saga
// workload's unit tests. Lost, when set, makes an operation of the
// client's choosing apply and then end info, as a timeout would.
type Memory struct {
	mu  sync.Mutex
	st  checkers.SagaState
	ini bool
	// Lost reports whether the answer of an applied operation is lost
	// (its completion info).
	Lost func(op history.Op) bool
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{st: checkers.SagaState{
		Reservations: map[string]checkers.Reservation{},
		Payments:     map[string]checkers.Payment{},
		Ledger:       []checkers.LedgerEntry{},
		Shipments:    map[string]string{},
		Log:          map[string]checkers.SagaRecord{},
	}}
}

// Invoke makes Memory a workload.Client: any number of them share it.
func (m *Memory) Invoke(ctx context.Context, op history.Op) history.Op {
	if ctx.Err() != nil {
		op.Type, op.Error = history.Info, ctx.Err().Error()
		return op
	}
	v, err := m.apply(op)
	if err != nil {
		op.Type, op.Error = history.Fail, err.Error()
		return op
	}
	if m.Lost != nil && m.Lost(op) {
		op.Type, op.Error = history.Info, "timeout (the answer was lost)"
		return op
	}
	op.Type, op.Value = history.OK, v
	return op
}

func raw(x any) history.Value {
	b, err := json.Marshal(x)
	if err != nil {
		panic(err)
	}
	v, err := history.Raw(b)
	if err != nil {
		panic(err)
	}
	return v
}

func (m *Memory) apply(op history.Op) (history.Value, error) {
	a, err := checkers.ParseSagaArgs([]byte(op.Value.String()))
	if err != nil {
		return history.Nil(), err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, id := &m.st, op.Key
	switch op.F {
	case checkers.FSagaInit:
		if m.ini {
			return history.Nil(), fmt.Errorf("exists: the store holds saga state")
		}
		m.ini, st.Stock = true, slices.Clone(a.Stock)
		return raw(checkers.SagaArgs{Stock: st.Stock}), nil
	case checkers.FSagaBegin:
		if r, ok := st.Log[id]; ok {
			if r.Owner == a.Owner {
				return history.Nil(), nil
			}
			return history.Nil(), fmt.Errorf("exists: saga %s is owned by %s", id, r.Owner)
		}
		st.Log[id] = checkers.SagaRecord{Saga: id, Owner: a.Owner, Epoch: 1, Status: checkers.SagaRunning, Item: a.Item, Qty: a.Qty, Price: a.Price, Steps: []string{}}
	case checkers.FSagaLog:
		r, ok := st.Log[id]
		if !ok || r.Epoch != a.Epoch {
			return history.Nil(), fmt.Errorf("fenced: epoch %d", r.Epoch)
		}
		r.Steps = append(slices.Clone(r.Steps), a.Step)
		r.Status = a.Status
		st.Log[id] = r
	case checkers.FSagaClaim:
		r, ok := st.Log[id]
		if !ok || r.Epoch != a.Epoch-1 || r.Status == checkers.SagaDone || r.Status == checkers.SagaCompensated {
			return history.Nil(), fmt.Errorf("not claimable: epoch %d, status %s", r.Epoch, r.Status)
		}
		r.Epoch, r.Owner = a.Epoch, a.Owner
		st.Log[id] = r
		return raw(r), nil
	case checkers.FSagaPending:
		out := []checkers.SagaRecord{}
		for _, k := range slices.Sorted(maps.Keys(st.Log)) {
			if r := st.Log[k]; r.Status != checkers.SagaDone && r.Status != checkers.SagaCompensated {
				out = append(out, r)
			}
		}
		return raw(out), nil
	case checkers.FSagaRead:
		return raw(st), nil
	case checkers.FReserve:
		if r, ok := st.Reservations[id]; ok {
			if r.State == "reserved" {
				return history.Nil(), nil
			}
			return history.Nil(), fmt.Errorf("released")
		}
		switch {
		case a.Decline:
			return history.Nil(), fmt.Errorf("declined")
		case a.Item < 0 || int(a.Item) >= len(st.Stock):
			return history.Nil(), fmt.Errorf("no item %d", a.Item)
		case st.Stock[a.Item] < a.Qty:
			return history.Nil(), fmt.Errorf("out of stock")
		}
		st.Stock[a.Item] -= a.Qty
		st.Reservations[id] = checkers.Reservation{Item: a.Item, Qty: a.Qty, State: "reserved"}
	case checkers.FRelease:
		r, ok := st.Reservations[id]
		switch {
		case !ok:
			st.Reservations[id] = checkers.Reservation{Item: a.Item, State: "released"}
		case r.State == "reserved":
			st.Stock[r.Item] += r.Qty
			r.State = "released"
			st.Reservations[id] = r
		}
	case checkers.FCharge:
		if p, ok := st.Payments[id]; ok {
			if p.State == "charged" {
				return history.Nil(), nil
			}
			return history.Nil(), fmt.Errorf("refunded")
		}
		if a.Decline {
			return history.Nil(), fmt.Errorf("declined")
		}
		st.Payments[id] = checkers.Payment{Amount: a.Amount, State: "charged"}
		st.Ledger = append(st.Ledger, checkers.LedgerEntry{Saga: id, Kind: "charge", Amount: a.Amount})
	case checkers.FRefund:
		p, ok := st.Payments[id]
		switch {
		case !ok:
			st.Payments[id] = checkers.Payment{State: "refunded"}
		case p.State == "charged" || !a.Deduped():
			p.State = "refunded"
			st.Payments[id] = p
			st.Ledger = append(st.Ledger, checkers.LedgerEntry{Saga: id, Kind: "refund", Amount: p.Amount})
		}
	case checkers.FConfirm:
		switch st.Shipments[id] {
		case "confirmed":
			return history.Nil(), nil
		case "cancelled":
			return history.Nil(), fmt.Errorf("cancelled")
		}
		if a.Decline {
			return history.Nil(), fmt.Errorf("declined")
		}
		st.Shipments[id] = "confirmed"
	case checkers.FCancel:
		if st.Shipments[id] == "" {
			st.Shipments[id] = "cancelled"
		}
		return history.String(st.Shipments[id]), nil
	default:
		return history.Nil(), fmt.Errorf("the saga workload has no operation %q", op.F)
	}
	return history.Nil(), nil
}
