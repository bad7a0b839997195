package checkers

import (
	"encoding/json"
	"fmt"
)

// This file is the saga workload's protocol: the operations a coordinator
// sends (each one operation of the history, its key the saga's id), what
// each must do on the system under test, and the shape of the state the
// final reads return, which the saga checker judges. docs/sagas.md is its
// reference; every system that runs the saga workload implements these
// operations, each atomically.
//
// A booking is three services: inventory (reserve, compensated by
// release), payment (charge, compensated by refund) and shipment (confirm,
// the pivot: a saga whose shipment is confirmed goes forward; cancel
// fences it off for good). Every step and every compensation is idempotent
// by the saga's id, and leaves a tombstone when it finds nothing to undo,
// so that a late step of a coordinator presumed dead cannot land after the
// saga was compensated.
const (
	// FSagaInit sets up the inventory: value {"stock":[n0,n1,...]} (the
	// stock of items 0, 1, ...). It fails when the system already holds
	// saga state (an earlier run's); ok returns the same value.
	FSagaInit = "saga-init"
	// FSagaBegin writes a saga's log record: value
	// {"item":i,"qty":q,"price":p,"owner":"p3"}; the record starts at
	// epoch 1, status "running", no steps. A record that exists with the
	// same owner is ok (a retried begin); with another owner it fails.
	FSagaBegin = "saga-begin"
	// FSagaLog appends a step to a saga's log and sets its status: value
	// {"epoch":e,"step":"charge","status":"running"}. It fails ("fenced")
	// unless the record's epoch is e: a coordinator whose saga another
	// one claimed cannot write its log any more.
	FSagaLog = "saga-log"
	// FSagaClaim takes a saga over for recovery: value
	// {"epoch":e,"owner":"p9"} sets the record's epoch to e and its owner,
	// if its epoch is e-1 and its status is not final (done or
	// compensated). ok returns the record (a [SagaRecord]); otherwise it
	// fails.
	FSagaClaim = "saga-claim"
	// FSagaPending lists the log records whose status is not final: ok
	// returns a JSON array of [SagaRecord]. Its key is empty.
	FSagaPending = "saga-pending"
	// FSagaRead reads every service's state and the saga log: ok returns
	// a [SagaState]. The final reads are saga-reads, one per node.
	FSagaRead = "saga-read"

	// FReserve reserves stock: value {"item":i,"qty":q,"decline":false}.
	// A reservation of the saga that holds is ok (a retry); one released
	// fails ("released"); with none, decline fails ("declined"), stock
	// below q fails ("out of stock"), else stock[i] -= q and the
	// reservation is recorded, state "reserved".
	FReserve = "reserve"
	// FRelease undoes a reservation: value {"item":i,"qty":q}. A
	// reservation that holds goes back to stock (state "released"); one
	// released is ok; with none, a tombstone (qty 0, state "released") is
	// recorded, so that a late reserve fails.
	FRelease = "release"
	// FCharge charges the saga's price: value {"amount":a,"decline":false}.
	// A payment charged is ok; one refunded fails ("refunded"); with none,
	// decline fails ("declined"), else the payment is recorded (state
	// "charged") and the ledger gets {"saga","kind":"charge","amount"}.
	FCharge = "charge"
	// FRefund undoes a charge: value {"amount":a,"dedupe":true}. A
	// payment charged becomes "refunded" and the ledger gets a "refund"
	// entry; one refunded is ok and changes nothing; with none, a tombstone
	// (amount 0, state "refunded") is recorded, so that a late charge
	// fails. With "dedupe":false (--saga-bug double-refund) a payment
	// already refunded gets another refund entry in the ledger: the bug
	// of a compensation that is not idempotent.
	FRefund = "refund"
	// FConfirm confirms the shipment, the saga's pivot: value
	// {"decline":false}. A shipment confirmed is ok; one cancelled fails
	// ("cancelled"); with none, decline fails ("declined") and records
	// nothing, else it is recorded "confirmed".
	FConfirm = "confirm"
	// FCancel fences the shipment off: with none, it records "cancelled";
	// ok returns the shipment's state as a string, "cancelled" or
	// "confirmed" (a confirmed shipment stays confirmed, and the saga must
	// then go forward). Its value is null.
	FCancel = "cancel"
)

// The statuses of a saga's log record.
const (
	SagaRunning      = "running"
	SagaCompensating = "compensating"
	SagaDone         = "done"
	SagaCompensated  = "compensated"
)

// SagaFs are the saga workload's operation functions.
var SagaFs = []string{FSagaInit, FSagaBegin, FSagaLog, FSagaClaim, FSagaPending, FSagaRead, FReserve, FRelease, FCharge, FRefund, FConfirm, FCancel}

// SagaRecord is a saga's log record.
type SagaRecord struct {
	Saga   string `json:"saga"`
	Owner  string `json:"owner"`
	Epoch  int64  `json:"epoch"`
	Status string `json:"status"`
	Item   int64  `json:"item"`
	Qty    int64  `json:"qty"`
	Price  int64  `json:"price"`
	// Steps are the log's entries in the order they were written: a
	// step's name ("reserve", "charge", "confirm", "release", "refund",
	// "cancel") or a decision ("compensate", "done", "compensated",
	// "claimed").
	Steps []string `json:"steps"`
}

// Reservation is the inventory's record of a saga.
type Reservation struct {
	Item  int64  `json:"item"`
	Qty   int64  `json:"qty"`
	State string `json:"state"` // "reserved" or "released"
}

// Payment is the payment service's record of a saga.
type Payment struct {
	Amount int64  `json:"amount"`
	State  string `json:"state"` // "charged" or "refunded"
}

// LedgerEntry is one movement of money: a charge or a refund.
type LedgerEntry struct {
	Saga   string `json:"saga"`
	Kind   string `json:"kind"` // "charge" or "refund"
	Amount int64  `json:"amount"`
}

// SagaState is what a saga-read returns: every service's state and the
// saga log, as one node holds them. Maps are keyed by saga id; Ledger is
// in the order the entries were written (any order is fine for the
// checker).
type SagaState struct {
	Stock        []int64                `json:"stock"`
	Reservations map[string]Reservation `json:"reservations"`
	Payments     map[string]Payment     `json:"payments"`
	Ledger       []LedgerEntry          `json:"ledger"`
	Shipments    map[string]string      `json:"shipments"` // "confirmed" or "cancelled"
	Log          map[string]SagaRecord  `json:"log"`
}

// SagaArgs are the fields of a saga step's value; each step uses some.
type SagaArgs struct {
	Item    int64  `json:"item,omitempty"`
	Qty     int64  `json:"qty,omitempty"`
	Price   int64  `json:"price,omitempty"`
	Amount  int64  `json:"amount,omitempty"`
	Decline bool   `json:"decline,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Epoch   int64  `json:"epoch,omitempty"`
	Step    string `json:"step,omitempty"`
	Status  string `json:"status,omitempty"`
	// Dedupe is a refund's: false only under --saga-bug double-refund.
	// It is a pointer so that an absent field means true.
	Dedupe *bool   `json:"dedupe,omitempty"`
	Stock  []int64 `json:"stock,omitempty"`
}

// Deduped reports whether a refund dedupes (the default).
func (a SagaArgs) Deduped() bool { return a.Dedupe == nil || *a.Dedupe }

// ParseSagaArgs reads a saga step's value (a JSON object; null for
// cancel, pending and read).
func ParseSagaArgs(js []byte) (SagaArgs, error) {
	var a SagaArgs
	if len(js) == 0 || string(js) == "null" {
		return a, nil
	}
	if err := json.Unmarshal(js, &a); err != nil {
		return a, fmt.Errorf("a saga step's value must be a JSON object of its arguments: %w", err)
	}
	return a, nil
}

// ParseSagaState reads a saga-read's value.
func ParseSagaState(js []byte) (SagaState, error) {
	var s SagaState
	if err := json.Unmarshal(js, &s); err != nil {
		return s, fmt.Errorf("a saga-read's value must be the saga state object: %w", err)
	}
	return s, nil
}
