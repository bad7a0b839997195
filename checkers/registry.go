package checkers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// Workload is the kind of object a history operates on; it decides which
// checkers apply.
type Workload string

// The workloads eccheck knows.
const (
	WorkloadRegister Workload = "register" // read, write, cas on keys
	WorkloadSet      Workload = "set"      // add elements, read the whole set
	WorkloadCounter  Workload = "counter"  // add deltas, read the total
	WorkloadKV       Workload = "kv"       // get, put and append strings on keys (Porcupine's and Jepsen's kv tests)
	// WorkloadListAppend is transactions (f txn) of appends to lists and
	// reads of them, as Elle's list-append writes them.
	WorkloadListAppend Workload = "list-append"
	// WorkloadRWRegister is transactions (f txn) of writes and reads of
	// registers, as Elle's rw-register writes them.
	WorkloadRWRegister Workload = "rw-register"
	// WorkloadSaga is bookings run as sagas (saga_protocol.go): steps,
	// compensations and the saga log, judged from the final state.
	WorkloadSaga Workload = "saga"
	// WorkloadMVRegister is registers whose reads return siblings with
	// their causal context (ecstore --mode mvr; lostwrites_mvr.go).
	WorkloadMVRegister Workload = "mv-register"
)

// Workloads lists the workloads in the order help text shows them.
var Workloads = []Workload{WorkloadRegister, WorkloadSet, WorkloadCounter, WorkloadKV, WorkloadListAppend, WorkloadRWRegister, WorkloadSaga, WorkloadMVRegister}

// Fs returns the operation functions the checkers of workload w
// understand; an operation with any other f is not checked by them.
func (w Workload) Fs() []string {
	switch w {
	case WorkloadRegister:
		return []string{FRead, FWrite, FCAS}
	case WorkloadSet, WorkloadCounter:
		return []string{FAdd, FRead}
	case WorkloadKV:
		return []string{FGet, FPut, FAppend}
	case WorkloadListAppend, WorkloadRWRegister:
		return []string{FTxn}
	case WorkloadSaga:
		return SagaFs
	case WorkloadMVRegister:
		return []string{FRead, FWrite}
	}
	return nil
}

// UnderstoodOp reports whether some workload's checkers understand op: its
// function, and for a transaction, its micro-operations (list-append or
// rw-register, not both).
func UnderstoodOp(op history.Operation) bool {
	if op.F == FTxn {
		a, w := txnCounts(&op.Value)
		return a == 0 || w == 0
	}
	return Understood(op.F)
}

// Understood reports whether some workload's checkers understand
// operations with function f.
func Understood(f string) bool {
	for _, w := range Workloads {
		if slices.Contains(w.Fs(), f) {
			return true
		}
	}
	return false
}

// ParseWorkload parses a workload name.
func ParseWorkload(s string) (Workload, error) {
	for _, w := range Workloads {
		if string(w) == s {
			return w, nil
		}
	}
	return "", fmt.Errorf("unknown workload %q (want %s)", s, joinWorkloads())
}

func joinWorkloads() string {
	var b strings.Builder
	for i, w := range Workloads {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(w))
	}
	return b.String()
}

// InferWorkload guesses the workload from the operations: any write or cas
// makes it a register; adds with list-valued reads (or no reads) a set; adds
// with integer reads a counter; reads alone a register.
func InferWorkload(ops []history.Operation) (Workload, error) {
	var writes, adds, listReads, intReads, reads, kv, txns, sagas, mvReads int
	for _, o := range ops {
		if slices.Contains(SagaFs, o.F) {
			sagas++
			continue
		}
		switch o.F {
		case FTxn:
			txns++
		case FGet, FPut, FAppend:
			kv++
		case FWrite, FCAS:
			writes++
		case FAdd:
			adds++
		case FRead:
			reads++
			if o.Type != history.OK {
				continue
			}
			switch o.Value.Kind() {
			case history.KindList:
				listReads++
			case history.KindInt:
				intReads++
			case history.KindOther:
				if isMVRead(o.Value) {
					mvReads++
				}
			}
		}
	}
	switch {
	case sagas > 0 && txns+kv+writes+adds+reads > 0:
		return "", fmt.Errorf("the history mixes saga steps (%d) with other operations (%d); name the workload with --workload", sagas, txns+kv+writes+adds+reads)
	case sagas > 0:
		return WorkloadSaga, nil
	case txns > 0 && kv+writes+adds+reads > 0:
		return "", fmt.Errorf("the history mixes transactions (%d) with single-key operations (%d); check them apart", txns, kv+writes+adds+reads)
	case txns > 0:
		k, err := txnKind(ops)
		if err != nil {
			return "", err
		}
		if k == "" {
			k = WorkloadListAppend // reads only: nothing tells them apart
		}
		return k, nil
	case kv > 0 && writes+adds+reads > 0:
		return "", fmt.Errorf("the history mixes kv get/put/append (%d) with register or set operations (%d); name the workload with --workload", kv, writes+adds+reads)
	case kv > 0:
		return WorkloadKV, nil
	case writes > 0 && adds > 0:
		return "", fmt.Errorf("the history mixes register writes (%d) and adds (%d); name the workload with --workload", writes, adds)
	case writes > 0 && mvReads > 0:
		return WorkloadMVRegister, nil
	case writes > 0:
		return WorkloadRegister, nil
	case adds > 0 && listReads > 0 && intReads > 0:
		return "", fmt.Errorf("the history's reads return both lists (set) and integers (counter); name the workload with --workload")
	case adds > 0 && intReads > 0:
		return WorkloadCounter, nil
	case adds > 0:
		return WorkloadSet, nil
	case reads > 0:
		return WorkloadRegister, nil
	}
	return "", fmt.Errorf("the history has no read, write, cas, add, get, put, append, txn or saga operations, so no checker applies")
}

// Checker is a named checker and the workloads it applies to.
type Checker struct {
	Name      string
	Doc       string
	Workloads []Workload
	// Fs are the operation functions it checks. When its input holds
	// none, its verdict is unknown, never valid: it checked nothing.
	Fs  []string
	Run Func
	// Card is the title of the checker's column on the report card
	// (`eccheck matrix`), "" when it has none. Its results over several
	// workloads of one cell compose into one mark.
	Card string
	// CardStat, when set, makes the column show this figure of Stats (the
	// largest of the cell's results) instead of a mark.
	CardStat string
}

// Fits reports whether c applies to workload w.
func (c Checker) Fits(w Workload) bool {
	for _, x := range c.Workloads {
		if x == w {
			return true
		}
	}
	return false
}

var all = []Checker{
	{Name: LinearizableName, Workloads: []Workload{WorkloadRegister, WorkloadKV}, Run: linearizableAny, Card: "linearizable",
		Fs:  []string{FRead, FWrite, FCAS, FGet, FPut, FAppend},
		Doc: "every operation appears to take effect at one instant between its call and return (Porcupine, per key)"},
	{Name: NameReadYourWrites, Workloads: []Workload{WorkloadRegister}, Run: ReadYourWrites, Fs: []string{FRead, FWrite, FCAS}, Card: "read-your-writes",
		Doc: "a process never reads a value older than its own acknowledged write"},
	{Name: NameMonotonicReads, Workloads: []Workload{WorkloadRegister}, Run: MonotonicReads, Fs: []string{FRead, FWrite, FCAS}, Card: "monotonic reads",
		Doc: "a process never reads a value older than one it already read"},
	{Name: NameLostWrites, Workloads: []Workload{WorkloadRegister, WorkloadSet, WorkloadMVRegister}, Run: LostWrites, Fs: []string{FRead, FWrite, FCAS, FAdd}, Card: "lost writes",
		Doc: "no acknowledged write or add is missing from the final state"},
	{Name: NameStaleness, Workloads: []Workload{WorkloadRegister}, Run: Staleness, Fs: []string{FRead, FWrite, FCAS}, Card: "stale p99 ms", CardStat: "stale_p99_ms",
		Doc: "how long after a write finished reads still returned older values (ms)"},
	{Name: NameCounter, Workloads: []Workload{WorkloadCounter}, Run: Counter, Fs: []string{FAdd, FRead},
		Doc: "every read lies within what acknowledged and possibly-applied adds allow"},
	{Name: NameDuplicates, Workloads: []Workload{WorkloadCounter, WorkloadListAppend}, Run: Duplicates, Fs: []string{FAdd, FRead, FTxn}, Card: "duplicates",
		Doc: "no request was applied more than once, retries included: a counter above its requests counted once, an element twice in a list"},
	{Name: NameTransactional, Workloads: []Workload{WorkloadListAppend, WorkloadRWRegister}, Run: Transactional, Fs: []string{FTxn}, Card: "transactions",
		Doc: "no transaction read a state that the consistency model rules out: dependency cycles (G0, G1c, G-single, G-nonadjacent, G2-item) and aborted, intermediate, duplicate, garbage or out-of-order reads (list-append, rw-register)"},
	{Name: NameSaga, Workloads: []Workload{WorkloadSaga}, Run: Saga, Fs: []string{FSagaRead}, Card: "sagas",
		Doc: "after recovery every saga is fully applied or fully compensated, no step twice, and stock and money add up"},
}

// linearizableAny is the linearizable checker of either workload it fits:
// kv histories (get, put, append) go to the kv model, the rest to the
// register checker.
func linearizableAny(ctx context.Context, in Input, opt Options) Result {
	if in.Workload == WorkloadKV || in.Workload == "" && slices.ContainsFunc(in.Ops, func(o history.Operation) bool {
		return o.F == FGet || o.F == FPut || o.F == FAppend
	}) {
		return kvLinearizable(ctx, in, opt)
	}
	return Linearizable(ctx, in, opt)
}

// All returns every checker, in the order reports list them.
func All() []Checker { return append([]Checker(nil), all...) }

// Names returns the names of all checkers.
func Names() []string {
	out := make([]string, len(all))
	for i, c := range all {
		out[i] = c.Name
	}
	return out
}

// Lookup finds a checker by name.
func Lookup(name string) (Checker, error) {
	for _, c := range all {
		if c.Name == name {
			return c, nil
		}
	}
	names := Names()
	sort.Strings(names)
	return Checker{}, fmt.Errorf("unknown checker %q (known: %s)", name, strings.Join(names, ", "))
}

// ForWorkload returns the checkers that apply to w.
func ForWorkload(w Workload) []Checker {
	var out []Checker
	for _, c := range all {
		if c.Fits(w) {
			out = append(out, c)
		}
	}
	return out
}

// Run runs each checker on in, one after another, and returns their results
// in the same order. A checker that panics yields an unknown result naming
// the panic rather than taking the others down.
func Run(ctx context.Context, in Input, cs []Checker, opt Options) []Result {
	out := make([]Result, len(cs))
	for i, c := range cs {
		out[i] = runOne(ctx, in, c, opt)
	}
	return out
}

func runOne(ctx context.Context, in Input, c Checker, opt Options) (r Result) {
	defer func() {
		if p := recover(); p != nil {
			r = Result{Checker: c.Name, Verdict: Unknown, Reason: fmt.Sprintf("checker panicked: %v (a bug in eccheck; please report it with the history)", p)}
		}
	}()
	if err := ctx.Err(); err != nil {
		return Result{Checker: c.Name, Verdict: Unknown, Reason: "not run: " + err.Error()}
	}
	if len(c.Fs) > 0 && !slices.ContainsFunc(in.Ops, func(o history.Operation) bool { return slices.Contains(c.Fs, o.F) }) {
		return Result{Checker: c.Name, Workload: in.Workload, Verdict: Unknown, Stats: map[string]float64{"ops_checked": 0},
			Summary: "nothing to check",
			Reason:  fmt.Sprintf("nothing to check: no %s operations among the %d given", strings.Join(c.Fs, ", "), len(in.Ops))}
	}
	r = c.Run(ctx, in, opt)
	r.Workload = in.Workload
	if r.Checker == "" {
		r.Checker = c.Name
	}
	if r.Verdict == "" {
		r.Verdict = Unknown
	}
	return r
}

// SplitByWorkload groups the operations of a history that mixes workloads
// (as `eccheck test --workload register,set` records) by key: a key with
// writes or CAS is a register; a key with adds is a set when its reads
// return lists (or it has no reads) and a counter when they return
// integers; a key with only reads is a set when they return lists, and a
// register otherwise. Workloads come back in the order of Workloads; each
// group's operations keep their history order.
func SplitByWorkload(ops []history.Operation) (map[Workload][]history.Operation, []Workload) {
	type flags struct{ write, add, listRead, intRead, kv, mv bool }
	byKey := map[string]*flags{}
	for _, o := range ops {
		if o.F == FTxn || slices.Contains(SagaFs, o.F) {
			continue
		}
		f := byKey[o.Key]
		if f == nil {
			f = &flags{}
			byKey[o.Key] = f
		}
		switch o.F {
		case FGet, FPut, FAppend:
			f.kv = true
		case FWrite, FCAS:
			f.write = true
		case FAdd:
			f.add = true
		case FRead:
			if o.Type == history.OK {
				switch o.Value.Kind() {
				case history.KindList:
					f.listRead = true
				case history.KindInt:
					f.intRead = true
				case history.KindOther:
					f.mv = f.mv || isMVRead(o.Value)
				}
			}
		}
	}
	kind := map[string]Workload{}
	for k, f := range byKey {
		switch {
		case f.kv:
			kind[k] = WorkloadKV
		case f.mv:
			kind[k] = WorkloadMVRegister
		case f.write:
			kind[k] = WorkloadRegister
		case f.add && f.intRead && !f.listRead:
			kind[k] = WorkloadCounter
		case f.add, f.listRead:
			kind[k] = WorkloadSet
		default:
			kind[k] = WorkloadRegister
		}
	}
	// The transactions all go to one workload: a read-only one cannot
	// tell, and one history holding both kinds is refused by the checker.
	txns, err := txnKind(ops)
	if err != nil || txns == "" {
		txns = WorkloadListAppend
	}
	out := map[Workload][]history.Operation{}
	one, same := Workload(""), true
	for i := range ops {
		w := kind[ops[i].Key]
		if ops[i].F == FTxn {
			w = txns
		} else if slices.Contains(SagaFs, ops[i].F) {
			w = WorkloadSaga
		}
		if i == 0 {
			one = w
		}
		same = same && w == one
	}
	if same && len(ops) > 0 {
		// One workload (the common case): no copy of a million operations.
		out[one] = ops
		return out, []Workload{one}
	}
	for _, o := range ops {
		w := kind[o.Key]
		if o.F == FTxn {
			// A transaction spans keys of its own: list-append, or
			// rw-register when it writes.
			w = txns
		} else if slices.Contains(SagaFs, o.F) {
			w = WorkloadSaga // a saga's steps, keyed by saga
		}
		out[w] = append(out[w], o)
	}
	var order []Workload
	for _, w := range Workloads {
		if len(out[w]) > 0 {
			order = append(order, w)
		}
	}
	return out, order
}
