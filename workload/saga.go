package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// The saga workload: each worker is a coordinator that books an item
// through three services (reserve stock, charge its price, confirm its
// shipment), keeping its progress in a saga log in the store. A step
// declined (the failure rate decides which sagas, and where) makes it
// compensate in reverse order: cancel the shipment (the fence: a saga
// whose shipment is confirmed goes forward instead), refund, release.
// Coordinators die mid-saga (the kill rate); a recovery worker finds
// sagas that stopped moving in the log, claims them (a new epoch fences
// the first coordinator's log) and finishes them; the final phase does the
// same for every saga left unfinished, before the final reads. Every step
// is one operation of the history (checkers/saga_protocol.go), and the
// saga checker judges the final state.

// The bugs --saga-bug plants in the coordinator's compensation, so that a
// run shows the checker catching them.
const (
	// SagaBugSkipRefund compensates without the refund: a saga declined
	// after its charge keeps the customer's money.
	SagaBugSkipRefund = "skip-refund"
	// SagaBugDoubleRefund refunds without deduplication and delivers each
	// refund twice, as an at-least-once queue would.
	SagaBugDoubleRefund = "double-refund"
)

// SagaBugs lists the bugs --saga-bug takes.
var SagaBugs = []string{SagaBugSkipRefund, SagaBugDoubleRefund}

// SagaOptions configure the saga workload.
type SagaOptions struct {
	// Items and Stock are the inventory: Items items of Stock units each.
	Items int
	Stock int64
	// FailureRate is the share of sagas one of whose steps (reserve,
	// charge or confirm, evenly) the service declines.
	FailureRate float64
	// KillRate is the share of sagas whose coordinator dies after one of
	// its steps, leaving the saga to recovery.
	KillRate float64
	// Bug is "" or one of SagaBugs.
	Bug string
	// Lease is how long a saga must stay unchanged in the log before the
	// recovery worker takes it over.
	Lease time.Duration
	// StepAttempts bounds the attempts of a step that ended info (steps
	// are idempotent, so a coordinator retries them).
	StepAttempts int
}

// DefaultSagaOptions are the defaults of eccheck test.
func DefaultSagaOptions() SagaOptions {
	return SagaOptions{Items: 3, Stock: 200, FailureRate: 0.2, KillRate: 0.1, Lease: time.Second, StepAttempts: 3}
}

// WithDefaults fills what o leaves zero (items, stock, lease, attempts)
// with the defaults; zero rates stay zero (none).
func (o SagaOptions) WithDefaults() SagaOptions {
	d := DefaultSagaOptions()
	if o.Items <= 0 {
		o.Items = d.Items
	}
	if o.Stock <= 0 {
		o.Stock = d.Stock
	}
	if o.Lease <= 0 {
		o.Lease = d.Lease
	}
	if o.StepAttempts <= 0 {
		o.StepAttempts = d.StepAttempts
	}
	return o
}

// SagaSummary counts what the coordinators did.
type SagaSummary struct {
	Started     int64 `json:"started"`
	Completed   int64 `json:"completed"`
	Compensated int64 `json:"compensated"`
	// Declined counts the steps a service refused (declined, out of
	// stock); Failed those that failed otherwise (a node not the leader,
	// a refused connection): either way the saga compensates.
	Declined int64 `json:"declined"`
	Failed   int64 `json:"failed,omitempty"`
	// Killed counts coordinators that died mid-saga (the kill rate);
	// Abandoned sagas whose step stayed unknown after its attempts.
	Killed    int64 `json:"killed"`
	Abandoned int64 `json:"abandoned"`
	// Recovered counts sagas another coordinator claimed and finished,
	// during the workload and in the final phase; Unfinished those the
	// final phase could not finish.
	Recovered  int64 `json:"recovered"`
	Unfinished int64 `json:"unfinished"`
}

type sagaCounters struct {
	started, completed, compensated, declined, failed, killed, abandoned, recovered atomic.Int64
}

// sagaPlan is what the seed decides of one saga.
type sagaPlan struct {
	item, qty, price int64
	decline          string // "", "reserve", "charge" or "confirm"
	kill             string // "" or the step after which the coordinator dies
}

var sagaKillPoints = []string{checkers.FSagaBegin, checkers.FReserve, checkers.FCharge, checkers.FConfirm, "compensate"}

// nextSaga is the worker's next saga, a pure function of its stream.
func (s *Stream) nextSaga() sagaPlan {
	o := s.g.Saga
	p := sagaPlan{item: int64(s.rng.IntN(max(o.Items, 1))), qty: int64(1 + s.rng.IntN(3))}
	p.price = p.qty * (10 + p.item)
	if s.rng.Float64() < o.FailureRate {
		p.decline = []string{checkers.FReserve, checkers.FCharge, checkers.FConfirm}[s.rng.IntN(3)]
	}
	if s.rng.Float64() < o.KillRate {
		p.kill = sagaKillPoints[s.rng.IntN(len(sagaKillPoints))]
	}
	s.n++
	return p
}

// outcome is how a step ended, after its attempts.
type outcome int

const (
	stepOK outcome = iota
	stepFail
	stepUnknown
)

// sagaRun is what the coordinators of one run share.
type sagaRun struct {
	o      *Options
	c      *counters
	issued *atomic.Int64
	fresh  func() history.Process
	opts   SagaOptions
	n      sagaCounters
}

// coordinator runs sagas through one client.
type coordinator struct {
	r      *sagaRun
	client Client
	proc   history.Process
	name   string // of its incarnation: the owner in the log
	global int
	life   int
	seq    int
	// limited: its steps count toward MaxOps (the workers'; not the final
	// phase's recovery).
	limited bool
	stop    bool // MaxOps reached
}

func (co *coordinator) rename() {
	co.name = "c" + strconv.Itoa(co.global) + "." + strconv.Itoa(co.life)
}

// die is the coordinator crashing: its saga is left to recovery, and it
// comes back as a new incarnation on a fresh process.
func (co *coordinator) die() {
	co.r.n.killed.Add(1)
	co.life++
	co.rename()
	co.proc = co.r.fresh()
}

// call performs one step: an operation recorded in the history, retried
// while it ends info, at most StepAttempts times.
func (co *coordinator) call(ctx context.Context, f, saga string, args any) (history.Op, outcome) {
	var v history.Value
	if args != nil {
		js, err := json.Marshal(args)
		if err != nil {
			panic(fmt.Sprintf("saga step %s: %v", f, err))
		}
		if v, err = history.Raw(js); err != nil {
			panic(fmt.Sprintf("saga step %s: %v", f, err))
		}
	}
	inv := history.Op{Type: history.Invoke, F: f, Key: saga, Value: v, Request: saga + "/" + f + "/" + co.name, Attempt: 1}
	if saga == "" {
		inv.Request, inv.Attempt = "", 0
	}
	for {
		if co.limited && co.r.o.MaxOps > 0 && co.r.issued.Add(1) > co.r.o.MaxOps {
			co.stop = true
			return history.Op{}, stepUnknown
		}
		inv.Process = co.proc
		rec := co.r.o.Recorder.Record(inv)
		octx, cancel := context.WithTimeout(context.Background(), co.r.o.OpTimeout)
		done := co.client.Invoke(octx, rec)
		cancel()
		done.Process, done.F, done.Key = co.proc, f, saga
		done.Index, done.Time, done.Request, done.Attempt = 0, 0, "", 0
		done = co.r.o.Recorder.Record(done)
		co.r.c.count(done.Type)
		switch done.Type {
		case history.OK:
			return done, stepOK
		case history.Fail:
			return done, stepFail
		}
		co.proc = co.r.fresh() // the attempt may still be in flight
		if inv.Attempt == 0 || inv.Attempt >= co.r.opts.StepAttempts || ctx.Err() != nil || !backoff(ctx, inv.Attempt) {
			return done, stepUnknown
		}
		inv.Attempt++
		co.r.c.retries.Add(1)
	}
}

// log appends a step to the saga's log; false when the coordinator must
// stop: its epoch was fenced (another one claimed the saga). A log write
// that stayed unknown lets it go on: its steps are idempotent, and
// recovery reads the state, not only the log.
func (co *coordinator) log(ctx context.Context, saga string, epoch int64, step, status string) bool {
	_, out := co.call(ctx, checkers.FSagaLog, saga, checkers.SagaArgs{Epoch: epoch, Step: step, Status: status})
	return out != stepFail && !co.stop
}

// saga runs one saga to its end, its compensation, or the coordinator's
// death.
func (co *coordinator) saga(ctx context.Context, p sagaPlan) {
	co.seq++
	id := "s" + strconv.Itoa(co.global) + "." + strconv.Itoa(co.seq)
	r := &co.r.n
	_, out := co.call(ctx, checkers.FSagaBegin, id, checkers.SagaArgs{Item: p.item, Qty: p.qty, Price: p.price, Owner: co.name})
	switch out {
	case stepFail:
		return // never began
	case stepUnknown:
		r.abandoned.Add(1) // recovery finds it if it was written
		return
	}
	r.started.Add(1)
	if p.kill == checkers.FSagaBegin {
		co.die()
		return
	}
	const epoch = 1
	abandon := func() { r.abandoned.Add(1) }
	for _, step := range []struct {
		f    string
		args checkers.SagaArgs
	}{
		{checkers.FReserve, checkers.SagaArgs{Item: p.item, Qty: p.qty, Decline: p.decline == checkers.FReserve}},
		{checkers.FCharge, checkers.SagaArgs{Amount: p.price, Decline: p.decline == checkers.FCharge}},
		{checkers.FConfirm, checkers.SagaArgs{Decline: p.decline == checkers.FConfirm}},
	} {
		if co.stop || ctx.Err() != nil {
			return // the run ended mid-saga: the final phase finishes it
		}
		done, out := co.call(ctx, step.f, id, step.args)
		switch out {
		case stepUnknown:
			abandon()
			return
		case stepFail:
			if strings.Contains(done.Error, "declined") || strings.Contains(done.Error, "out of stock") {
				r.declined.Add(1)
			} else {
				r.failed.Add(1)
			}
			co.compensate(ctx, id, epoch, p.item, p.qty, p.price, p.kill == "compensate")
			return
		}
		if p.kill == step.f {
			co.die()
			return
		}
		status, entry := checkers.SagaRunning, step.f
		if step.f == checkers.FConfirm {
			status, entry = checkers.SagaDone, "done"
		}
		if !co.log(ctx, id, epoch, entry, status) {
			return
		}
	}
	r.completed.Add(1)
}

// compensate undoes a saga in reverse order: it cancels the shipment (if
// that finds it confirmed, the saga goes forward and is done), refunds
// and releases, each idempotent, and logs the saga compensated. die makes
// the coordinator die right after the cancel.
func (co *coordinator) compensate(ctx context.Context, id string, epoch, item, qty, price int64, die bool) (finished bool) {
	r := &co.r.n
	if !co.log(ctx, id, epoch, "compensate", checkers.SagaCompensating) {
		return false
	}
	done, out := co.call(ctx, checkers.FCancel, id, nil)
	if out != stepOK {
		r.abandoned.Add(1)
		return false
	}
	if s, _ := done.Value.AsString(); s == "confirmed" {
		// Past the pivot: the saga went forward after all.
		if co.log(ctx, id, epoch, "done", checkers.SagaDone) {
			r.completed.Add(1)
			return true
		}
		return false
	}
	if die {
		co.die()
		return false
	}
	if co.r.opts.Bug != SagaBugSkipRefund {
		args := checkers.SagaArgs{Amount: price}
		deliveries := 1
		if co.r.opts.Bug == SagaBugDoubleRefund {
			no := false
			args.Dedupe, deliveries = &no, 2
		}
		for range deliveries {
			if _, out := co.call(ctx, checkers.FRefund, id, args); out != stepOK {
				r.abandoned.Add(1)
				return false
			}
		}
	}
	if _, out := co.call(ctx, checkers.FRelease, id, checkers.SagaArgs{Item: item, Qty: qty}); out != stepOK {
		r.abandoned.Add(1)
		return false
	}
	if !co.log(ctx, id, epoch, "compensated", checkers.SagaCompensated) {
		return false
	}
	r.compensated.Add(1)
	return true
}

// recover claims a saga found unfinished in the log and finishes it: it
// compensates, unless the shipment was confirmed (then the saga is done).
func (co *coordinator) recover(ctx context.Context, rec checkers.SagaRecord) bool {
	done, out := co.call(ctx, checkers.FSagaClaim, rec.Saga, checkers.SagaArgs{Epoch: rec.Epoch + 1, Owner: co.name})
	if out != stepOK {
		return false
	}
	var got checkers.SagaRecord
	if err := json.Unmarshal([]byte(done.Value.String()), &got); err != nil || got.Saga == "" {
		got = rec
		got.Epoch = rec.Epoch + 1
	}
	if co.compensate(ctx, rec.Saga, got.Epoch, got.Item, got.Qty, got.Price, false) {
		co.r.n.recovered.Add(1)
		return true
	}
	return false
}

// pending lists the sagas the log holds unfinished; ok is false when the
// list could not be read.
func (co *coordinator) pending(ctx context.Context) ([]checkers.SagaRecord, bool) {
	done, out := co.call(ctx, checkers.FSagaPending, "", nil)
	if out != stepOK {
		return nil, false
	}
	var recs []checkers.SagaRecord
	if err := json.Unmarshal([]byte(done.Value.String()), &recs); err != nil {
		return nil, false
	}
	return recs, true
}

// newCoordinator makes a coordinator with a client of node.
func (r *sagaRun) newCoordinator(node string, global int, limited bool) (*coordinator, error) {
	cl, err := r.o.NewClient(Saga, node)
	if err != nil {
		return nil, err
	}
	co := &coordinator{r: r, client: cl, proc: r.fresh(), global: global, limited: limited}
	co.rename()
	return co, nil
}

// init sets the inventory up, before any worker starts.
func (r *sagaRun) init(ctx context.Context, node string) error {
	co, err := r.newCoordinator(node, -1, false)
	if err != nil {
		return err
	}
	stock := make([]int64, r.opts.Items)
	for i := range stock {
		stock[i] = r.opts.Stock
	}
	done, out := co.call(ctx, checkers.FSagaInit, "", checkers.SagaArgs{Stock: stock})
	if out != stepOK {
		return fmt.Errorf("saga-init on %s: %s %s (a cluster that holds an earlier run's sagas refuses it: start a fresh one)", node, done.Type, done.Error)
	}
	return nil
}

// watch is the recovery worker of the workload phase: every half lease it
// reads the pending sagas, and claims those unchanged (same epoch, same
// steps) for a lease.
func (r *sagaRun) watch(ctx context.Context, co *coordinator) {
	type seen struct {
		epoch int64
		steps int
		since time.Time
	}
	last := map[string]seen{}
	t := time.NewTicker(r.opts.Lease / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, ok := co.pending(ctx)
		if !ok {
			continue
		}
		now := time.Now()
		next := map[string]seen{}
		for _, rec := range recs {
			s, was := last[rec.Saga]
			if !was || s.epoch != rec.Epoch || s.steps != len(rec.Steps) {
				next[rec.Saga] = seen{rec.Epoch, len(rec.Steps), now}
				continue
			}
			next[rec.Saga] = s
			if now.Sub(s.since) >= r.opts.Lease && ctx.Err() == nil && !co.stop {
				co.recover(ctx, rec)
				delete(next, rec.Saga)
			}
		}
		last = next
	}
}

// finish is the final phase's recovery: every saga still unfinished in
// the log is claimed and finished, round after round (backing off from
// 250 ms to 2 s: right after the heal the cluster may still be electing)
// until none is left or eight rounds have passed. It returns how many
// were left.
func (r *sagaRun) finish(ctx context.Context, co *coordinator) (left int, err error) {
	wait := 250 * time.Millisecond
	for round := 0; round < 8 && ctx.Err() == nil; round++ {
		if round > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return left, ctx.Err()
			}
			wait = min(2*wait, 2*time.Second)
		}
		recs, ok := co.pending(ctx)
		if !ok {
			err = fmt.Errorf("the saga log's pending sagas could not be read")
			continue
		}
		err = nil
		left = 0
		for _, rec := range recs {
			if !co.recover(ctx, rec) {
				left++
			}
		}
		if left == 0 {
			return 0, nil
		}
	}
	return left, err
}

func (r *sagaRun) summary() *SagaSummary {
	return &SagaSummary{
		Started: r.n.started.Load(), Completed: r.n.completed.Load(), Compensated: r.n.compensated.Load(),
		Declined: r.n.declined.Load(), Failed: r.n.failed.Load(), Killed: r.n.killed.Load(), Abandoned: r.n.abandoned.Load(), Recovered: r.n.recovered.Load(),
	}
}
