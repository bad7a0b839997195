package checkers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// NameSaga is the name of the [Saga] checker.
const NameSaga = "saga"

// The anomalies of the saga checker.
const (
	// KindHalfFinishedSaga is a saga neither fully applied nor fully
	// compensated in the final state: a reservation held or a charge
	// unrefunded without a confirmed shipment, or a confirmed shipment
	// whose reservation or charge was undone.
	KindHalfFinishedSaga = "half-finished-saga"
	// KindDoubleCompensation is a step or a compensation applied twice: a
	// saga charged twice, refunded twice, or refunded more than charged.
	KindDoubleCompensation = "double-compensation"
	// KindLostStep is a step acknowledged ok whose record the final state
	// does not hold at all.
	KindLostStep = "lost-step"
	// KindBrokenInvariant is a business invariant that does not hold:
	// negative stock, stock plus reservations other than the initial
	// stock, money charged less refunded other than the price of the
	// confirmed bookings.
	KindBrokenInvariant = "broken-invariant"
	// KindUnknownSaga is state of a saga no operation of the history
	// began.
	KindUnknownSaga = "unknown-saga"
	// KindBrokenFence is two coordinators owning a saga at once, as the
	// history shows it: two claims of one epoch both acknowledged, or a
	// log write of an earlier epoch acknowledged after a later claim had
	// returned.
	KindBrokenFence = "broken-fence"
	// KindLogContradiction is a saga whose final log record says done
	// while its shipment is not confirmed, or compensated while it is.
	KindLogContradiction = "log-contradicts-state"
)

// Saga checks the saga workload (checkers/saga_protocol.go) from the final
// reads, each node's on its own: every saga is either fully applied
// (reservation held, charged once, shipment confirmed) or fully
// compensated (no reservation held, every charge refunded exactly once, no
// shipment confirmed); no step acknowledged ok is missing from the state;
// and the business invariants hold: no stock negative, each item's stock
// plus the quantities reserved equals its initial stock, and the money
// charged less the money refunded equals the price of the confirmed
// bookings. Each violation names the saga, its operations as the history
// recorded them, its log record, and the final state that breaks it.
//
// The verdict is unknown when no saga-init was acknowledged (the initial
// stock is unknown) or no final saga-read succeeded (there is no final
// state to judge).
func Saga(ctx context.Context, in Input, opt Options) Result {
	r := Result{Checker: NameSaga, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	if ops == nil && len(in.History) > 0 {
		ops = history.Pair(in.History)
	}
	var initial []int64
	var finals []int
	bySaga := map[string][]int{}
	var order []string
	for i := range ops {
		o := &ops[i]
		switch o.F {
		case FSagaInit:
			if o.Type == history.OK {
				a, err := ParseSagaArgs([]byte(o.Value.String()))
				if err != nil {
					return unknownSaga(r, fmt.Sprintf("saga-init at op %d: %v", o.Invoke, err))
				}
				initial = a.Stock
			}
		case FSagaRead:
			if o.Final && o.Type == history.OK {
				finals = append(finals, i)
			}
		case FSagaPending:
		default:
			if !slices.Contains(SagaFs, o.F) || o.Key == "" {
				continue
			}
			if _, ok := bySaga[o.Key]; !ok {
				order = append(order, o.Key)
			}
			bySaga[o.Key] = append(bySaga[o.Key], i)
		}
	}
	if initial == nil {
		return unknownSaga(r, "no saga-init was acknowledged, so the initial stock the invariants start from is unknown")
	}
	if len(finals) == 0 {
		return unknownSaga(r, "no final saga-read succeeded: there is no final state to judge (the final reads failed or the run was cut short)")
	}
	s := &sagaCheck{ops: ops, bySaga: bySaga, initial: initial, found: map[string]*sagaFinding{}}
	fences := s.fences(in.History, order)
	for _, f := range finals {
		if ctx.Err() != nil {
			return unknownSaga(r, "not finished: "+ctx.Err().Error())
		}
		st, err := ParseSagaState([]byte(ops[f].Value.String()))
		if err != nil {
			return unknownSaga(r, fmt.Sprintf("final saga-read at op %d on %s: %v", ops[f].Invoke, ops[f].Node, err))
		}
		s.judge(f, st, order)
	}
	for _, a := range fences {
		r.Add(a)
	}
	for _, k := range s.foundOrder {
		fd := s.found[k]
		a := fd.a
		a.Explanation += fmt.Sprintf(" (final state on %s)", strings.Join(fd.nodes, ", "))
		r.Add(a)
	}
	r.Stats = s.stats
	slices.Sort(s.undecided)
	s.undecided = slices.Compact(s.undecided)
	if len(s.undecided) > 0 {
		r.Stats["unfinished_sagas"] = float64(len(s.undecided))
		if r.Verdict == Valid {
			r.Verdict = Unknown
		}
		r.Reason = fmt.Sprintf("%d sagas were left half-finished with their log unfinished (the final recovery did not finish them: see the run's warnings), so nothing is said of them: %s", len(s.undecided), strings.Join(s.undecided[:min(len(s.undecided), 10)], ", "))
	}
	r.Stats["sagas"] = float64(len(order))
	r.Stats["final_reads"] = float64(len(finals))
	r.Summary = fmt.Sprintf("%d sagas: %.0f completed, %.0f compensated, %d anomalies", len(order), r.Stats["completed"], r.Stats["compensated"], r.AnomalyCount)
	return r
}

func unknownSaga(r Result, why string) Result {
	r.Verdict, r.Reason, r.Summary = Unknown, why, "unknown: "+why
	return r
}

type sagaFinding struct {
	a     Anomaly
	nodes []string
}

type sagaCheck struct {
	ops     []history.Operation
	bySaga  map[string][]int
	initial []int64
	// found merges one anomaly seen in several nodes' final states.
	found      map[string]*sagaFinding
	foundOrder []string
	stats      map[string]float64
	// undecided are sagas left half-finished with their log unfinished:
	// recovery did not finish them, so nothing is said of them.
	undecided []string
}

func (s *sagaCheck) add(final int, kind, saga, why string, opIdx []int) {
	node := s.ops[final].Node
	if node == "" {
		node = fmt.Sprintf("the read of op %d", s.ops[final].Invoke)
	}
	id := kind + "\x00" + saga + "\x00" + why
	if fd, ok := s.found[id]; ok {
		fd.nodes = append(fd.nodes, node)
		return
	}
	a := Anomaly{Kind: kind, Key: saga, Explanation: why}
	for _, i := range opIdx {
		a.Ops = append(a.Ops, Ref(s.ops[i]))
	}
	a.Ops = append(a.Ops, Ref(s.ops[final]))
	s.found[id] = &sagaFinding{a: a, nodes: []string{node}}
	s.foundOrder = append(s.foundOrder, id)
}

// steps describes a saga's operations as the history recorded them.
func (s *sagaCheck) steps(saga string) string {
	idx := s.bySaga[saga]
	if len(idx) == 0 {
		return "no operation of the history names it"
	}
	parts := make([]string, 0, len(idx))
	for _, i := range idx {
		o := &s.ops[i]
		p := o.F + " " + o.Type.String()
		if o.Type != history.OK && o.Error != "" {
			p += " (" + o.Error + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// firstOK returns the first operation of saga with function f that ended
// ok, or -1.
func (s *sagaCheck) firstOK(saga, f string) int {
	for _, i := range s.bySaga[saga] {
		if s.ops[i].F == f && s.ops[i].Type == history.OK {
			return i
		}
	}
	return -1
}

// cited picks the operations an anomaly about saga cites: at most 12 of
// its own.
func (s *sagaCheck) cited(saga string) []int {
	idx := s.bySaga[saga]
	if len(idx) > 12 {
		idx = idx[:12]
	}
	return idx
}

// judge checks one node's final state.
func (s *sagaCheck) judge(final int, st SagaState, order []string) {
	first := s.stats == nil
	if first {
		s.stats = map[string]float64{}
	}
	count := func(name string) {
		if first {
			s.stats[name]++
		}
	}
	type money struct{ charges, refunds, charged, refunded int64 }
	ledger := map[string]*money{}
	var charged, refunded int64
	for _, e := range st.Ledger {
		m := ledger[e.Saga]
		if m == nil {
			m = &money{}
			ledger[e.Saga] = m
		}
		switch e.Kind {
		case "charge":
			m.charges++
			m.charged += e.Amount
			charged += e.Amount
		case "refund":
			m.refunds++
			m.refunded += e.Amount
			refunded += e.Amount
		}
	}
	// Every saga the history or the state names.
	names := slices.Clone(order)
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	var extra []string
	for _, m := range []func(func(string)){
		func(f func(string)) {
			for k := range st.Reservations {
				f(k)
			}
		},
		func(f func(string)) {
			for k := range st.Payments {
				f(k)
			}
		},
		func(f func(string)) {
			for k := range st.Shipments {
				f(k)
			}
		},
		func(f func(string)) {
			for k := range ledger {
				f(k)
			}
		},
		func(f func(string)) {
			for k := range st.Log {
				f(k)
			}
		},
	} {
		m(func(k string) {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		})
	}
	sort.Strings(extra)
	for _, k := range extra {
		s.add(final, KindUnknownSaga, k, fmt.Sprintf("saga %s has state (%s) but no operation of the history began it", k, describeSagaState(k, st, ledger[k] != nil)), nil)
	}
	names = append(names, extra...)

	var confirmedPrice int64
	reserved := make([]int64, len(st.Stock))
	for _, saga := range names {
		res, hasRes := st.Reservations[saga]
		pay, hasPay := st.Payments[saga]
		ship := st.Shipments[saga]
		m := ledger[saga]
		if m == nil {
			m = &money{}
		}
		held := hasRes && res.State == "reserved"
		if held && res.Item >= 0 && res.Item < int64(len(reserved)) {
			reserved[res.Item] += res.Qty
		}
		rec, hasRec := st.Log[saga]
		logText := "no log record"
		if hasRec {
			logText = fmt.Sprintf("log %s at epoch %d, steps [%s]", rec.Status, rec.Epoch, strings.Join(rec.Steps, " "))
			if rec.Status != SagaDone && rec.Status != SagaCompensated {
				count("unfinished_in_log")
			}
		}
		state := describeSagaState(saga, st, ledger[saga] != nil)
		where := fmt.Sprintf("; history: %s; %s; final state: %s", s.steps(saga), logText, state)
		bad := false
		unfinished := hasRec && rec.Status != SagaDone && rec.Status != SagaCompensated
		report := func(kind, why string) {
			bad = true
			if kind == KindHalfFinishedSaga && unfinished {
				// The harness's recovery never finished this saga (its
				// log still says so): it is not the store's to answer for
				// a saga nobody completed.
				s.undecided = append(s.undecided, saga)
				return
			}
			s.add(final, kind, saga, "saga "+saga+" "+why+where, s.cited(saga))
		}
		if m.charges > 1 {
			report(KindDoubleCompensation, fmt.Sprintf("was charged %d times", m.charges))
		}
		if m.refunds > 1 {
			report(KindDoubleCompensation, fmt.Sprintf("was refunded %d times", m.refunds))
		}
		if m.refunds > m.charges {
			report(KindDoubleCompensation, fmt.Sprintf("was refunded %d times but charged %d", m.refunds, m.charges))
		}
		owes := m.charges > m.refunds
		switch {
		case hasRec && rec.Status == SagaDone && ship != "confirmed":
			report(KindLogContradiction, "is done by its log, but its shipment is not confirmed")
		case hasRec && rec.Status == SagaCompensated && ship == "confirmed":
			report(KindLogContradiction, "is compensated by its log, but its shipment is confirmed")
		}
		switch {
		case ship == "confirmed":
			price := pay.Amount
			if hasRec {
				price = rec.Price
			}
			confirmedPrice += price
			switch {
			case !held:
				report(KindHalfFinishedSaga, "has its shipment confirmed but its reservation is not held")
			case !owes || !hasPay || pay.State != "charged":
				report(KindHalfFinishedSaga, "has its shipment confirmed but no charge standing")
			}
			if !bad {
				count("completed")
			}
		case held && owes:
			report(KindHalfFinishedSaga, "holds its reservation and its charge but its shipment was never confirmed")
		case held:
			report(KindHalfFinishedSaga, "holds its reservation without a confirmed shipment (neither completed nor released)")
		case owes:
			report(KindHalfFinishedSaga, "was charged and never refunded, though its shipment was not confirmed")
		default:
			if !bad {
				count("compensated")
			}
		}
		// A reservation a release found missing is a tombstone (qty 0):
		// it does not keep an acknowledged reserve.
		for _, step := range []struct {
			f   string
			has bool
		}{{FReserve, hasRes && res.Qty > 0}, {FCharge, hasPay && m.charges > 0}, {FConfirm, ship == "confirmed"}} {
			if i := s.firstOK(saga, step.f); i >= 0 && !step.has {
				s.add(final, KindLostStep, saga, fmt.Sprintf("saga %s's %s was acknowledged ok (op %d) but the final state holds no record of it%s", saga, step.f, s.ops[i].Invoke, where), []int{i})
			}
		}
		if s.firstOK(saga, FSagaClaim) >= 0 {
			count("recovered")
		}
	}

	// The invariants.
	if len(st.Stock) != len(s.initial) {
		s.add(final, KindBrokenInvariant, "", fmt.Sprintf("the final state has stock for %d items, the saga-init set %d", len(st.Stock), len(s.initial)), nil)
	}
	for i := range min(len(st.Stock), len(s.initial)) {
		if st.Stock[i] < 0 {
			s.add(final, KindBrokenInvariant, "", fmt.Sprintf("item %d's stock is %d: negative", i, st.Stock[i]), nil)
		}
		if st.Stock[i]+reserved[i] != s.initial[i] {
			s.add(final, KindBrokenInvariant, "", fmt.Sprintf("item %d: stock %d plus %d reserved by held reservations is %d, not the initial stock %d", i, st.Stock[i], reserved[i], st.Stock[i]+reserved[i], s.initial[i]), nil)
		}
	}
	if charged-refunded != confirmedPrice {
		s.add(final, KindBrokenInvariant, "", fmt.Sprintf("money charged (%d) less refunded (%d) is %d, not %d, the price of the confirmed bookings", charged, refunded, charged-refunded, confirmedPrice), nil)
	}
	if first {
		s.stats["charged"], s.stats["refunded"] = float64(charged), float64(refunded)
	}
}

// describeSagaState says what the final state holds of a saga.
func describeSagaState(saga string, st SagaState, inLedger bool) string {
	var parts []string
	if r, ok := st.Reservations[saga]; ok {
		parts = append(parts, fmt.Sprintf("reservation %s (item %d, qty %d)", r.State, r.Item, r.Qty))
	} else {
		parts = append(parts, "no reservation")
	}
	if p, ok := st.Payments[saga]; ok {
		parts = append(parts, fmt.Sprintf("payment %s (%d)", p.State, p.Amount))
	} else {
		parts = append(parts, "no payment")
	}
	if inLedger {
		var es []string
		for _, e := range st.Ledger {
			if e.Saga == saga {
				es = append(es, fmt.Sprintf("%s %d", e.Kind, e.Amount))
			}
		}
		parts = append(parts, "ledger ["+strings.Join(es, ", ")+"]")
	}
	if sh, ok := st.Shipments[saga]; ok {
		parts = append(parts, "shipment "+sh)
	} else {
		parts = append(parts, "no shipment")
	}
	return strings.Join(parts, ", ")
}

// epochOf reads the epoch of a saga-log or saga-claim from its invocation
// (the line in h, when there is one) or its value.
func (s *sagaCheck) epochOf(h history.History, o *history.Operation) (int64, bool) {
	v := o.Value
	if o.Invoke >= 0 && o.Invoke < len(h) {
		v = h[o.Invoke].Value
	}
	a, err := ParseSagaArgs([]byte(v.String()))
	return a.Epoch, err == nil && a.Epoch > 0
}

// fences checks, from the history alone, that no two coordinators owned a
// saga at once: no two acknowledged claims of one epoch, and no log write
// of an earlier epoch acknowledged once a later claim had returned.
func (s *sagaCheck) fences(h history.History, order []string) []Anomaly {
	var out []Anomaly
	for _, saga := range order {
		claims := map[int64]int{} // epoch -> its first acknowledged claim
		for _, i := range s.bySaga[saga] {
			o := &s.ops[i]
			if o.F != FSagaClaim || o.Type != history.OK {
				continue
			}
			e, ok := s.epochOf(h, o)
			if !ok {
				continue
			}
			if j, dup := claims[e]; dup {
				out = append(out, Anomaly{Kind: KindBrokenFence, Key: saga, Ops: []OpRef{Ref(s.ops[j]), Ref(*o)},
					Explanation: fmt.Sprintf("saga %s was claimed at epoch %d twice, and both claims were acknowledged (ops %d and %d): two coordinators owned it at once", saga, e, s.ops[j].Invoke, o.Invoke)})
				continue
			}
			claims[e] = i
		}
		for _, i := range s.bySaga[saga] {
			o := &s.ops[i]
			if o.F != FSagaLog || o.Type != history.OK {
				continue
			}
			e, ok := s.epochOf(h, o)
			if !ok {
				continue
			}
			for _, ce := range slices.Sorted(maps.Keys(claims)) {
				if j := claims[ce]; ce > e && s.ops[j].Return != history.Open && s.ops[j].Return < o.Call {
					c := &s.ops[j]
					out = append(out, Anomaly{Kind: KindBrokenFence, Key: saga, Ops: []OpRef{Ref(*c), Ref(*o)},
						Explanation: fmt.Sprintf("saga %s's log write at epoch %d (op %d) was acknowledged after the claim of epoch %d (op %d) had returned: the claim did not fence the first coordinator off", saga, e, o.Invoke, ce, c.Invoke)})
					break
				}
			}
		}
	}
	return out
}
