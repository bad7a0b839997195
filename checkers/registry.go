package checkers

import (
	"context"
	"fmt"
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
)

// Workloads lists the workloads in the order help text shows them.
var Workloads = []Workload{WorkloadRegister, WorkloadSet, WorkloadCounter}

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
	var writes, adds, listReads, intReads, reads int
	for _, o := range ops {
		switch o.F {
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
			}
		}
	}
	switch {
	case writes > 0 && adds > 0:
		return "", fmt.Errorf("the history mixes register writes (%d) and adds (%d); name the workload with --workload", writes, adds)
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
	return "", fmt.Errorf("the history has no read, write, cas or add operations, so no checker applies")
}

// Checker is a named checker and the workloads it applies to.
type Checker struct {
	Name      string
	Doc       string
	Workloads []Workload
	Run       Func
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
	{Name: LinearizableName, Workloads: []Workload{WorkloadRegister}, Run: Linearizable,
		Doc: "every operation appears to take effect at one instant between its call and return (Porcupine, per key)"},
	{Name: NameReadYourWrites, Workloads: []Workload{WorkloadRegister}, Run: ReadYourWrites,
		Doc: "a process never reads a value older than its own acknowledged write"},
	{Name: NameMonotonicReads, Workloads: []Workload{WorkloadRegister}, Run: MonotonicReads,
		Doc: "a process never reads a value older than one it already read"},
	{Name: NameLostWrites, Workloads: []Workload{WorkloadRegister, WorkloadSet}, Run: LostWrites,
		Doc: "no acknowledged write or add is missing from the final state"},
	{Name: NameStaleness, Workloads: []Workload{WorkloadRegister}, Run: Staleness,
		Doc: "how long after a write finished reads still returned older values (ms)"},
	{Name: NameCounter, Workloads: []Workload{WorkloadCounter}, Run: Counter,
		Doc: "every read lies within what acknowledged and possibly-applied adds allow"},
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
	r = c.Run(ctx, in, opt)
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
	type flags struct{ write, add, listRead, intRead bool }
	byKey := map[string]*flags{}
	for _, o := range ops {
		f := byKey[o.Key]
		if f == nil {
			f = &flags{}
			byKey[o.Key] = f
		}
		switch o.F {
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
				}
			}
		}
	}
	kind := map[string]Workload{}
	for k, f := range byKey {
		switch {
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
	out := map[Workload][]history.Operation{}
	for _, o := range ops {
		w := kind[o.Key]
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
