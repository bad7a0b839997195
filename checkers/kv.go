package checkers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/eccheck/eccheck/history"
)

// Key-value functions, as Porcupine's and Jepsen's kv tests write them:
// get returns a key's string, put replaces it, append appends to it.
const (
	FGet    = "get"
	FPut    = "put"
	FAppend = "append"
)

// kvKind is what a kv operation does in the model.
type kvKind uint8

const (
	kvGet kvKind = iota
	kvPut
	kvAppend
)

// kvOp is the Input of a Porcupine operation of the kv model.
type kvOp struct {
	kind  kvKind
	value string // what a get returned, or what a put or append writes
	pos   int    // position in Input.Ops
	part  int    // the key's partition
}

// kvModel is one key's string, initially empty, as Porcupine's kv model
// has it: a get must return the string, a put replaces it, an append
// appends to it. Every step is refused once stop is set.
func kvModel(stop *atomic.Bool) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return "" },
		Step: func(state, input, _ any) (bool, any) {
			if stop.Load() {
				return false, state
			}
			s, o := state.(string), input.(*kvOp)
			switch o.kind {
			case kvGet:
				return o.value == s, s
			case kvPut:
				return true, o.value
			default:
				return true, s + o.value
			}
		},
		DescribeOperation: func(input, _ any) string {
			o := input.(*kvOp)
			return fmt.Sprintf("%s %q", kvName(o.kind), o.value)
		},
		DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
	}
}

func kvName(k kvKind) string {
	return [...]string{FGet, FPut, FAppend}[k]
}

// kvText is the string a kv operation's value stands for: a string as it
// is, nil as the empty string (a key never written), anything else as its
// JSON text.
func kvText(v history.Value) string {
	if s, ok := v.AsString(); ok {
		return s
	}
	if v.IsNil() {
		return ""
	}
	return v.String()
}

// kvLinearizable checks the get, put and append operations of in, per key,
// with Porcupine and the kv model: the linearizable checker of the kv
// workload. Failed operations and indeterminate gets are dropped;
// indeterminate puts and appends may take effect at any time after their
// call, or never. Each key that is not linearizable is an anomaly citing
// the end of the longest valid order Porcupine found and the operation it
// could not place. A timeout or a cancelled ctx makes the verdict unknown.
func kvLinearizable(ctx context.Context, in Input, opt Options) Result {
	start := time.Now()
	res := Result{Checker: LinearizableName, Verdict: Valid, Stats: map[string]float64{}}
	byKey := map[string][]porcupine.Operation{}
	var last int64
	dropped := 0
	for i := range in.Ops {
		o := &in.Ops[i]
		var kind kvKind
		switch o.F {
		case FGet:
			kind = kvGet
		case FPut:
			kind = kvPut
		case FAppend:
			kind = kvAppend
		default:
			continue
		}
		if o.Type == history.Fail || o.Type == history.Info && kind == kvGet {
			dropped++
			continue
		}
		if err := checkTimes(o); err != nil {
			res.Verdict, res.Summary = Unknown, "unknown: invalid input"
			res.Reason = fmt.Sprintf("refused to check: %v (Porcupine would give a wrong answer on such input)", err)
			return res
		}
		po := porcupine.Operation{ClientId: int(o.Process), Input: &kvOp{kind: kind, value: kvText(o.Value), pos: i}, Call: o.Call, Return: o.Return}
		last = max(last, o.Call)
		if o.Type == history.OK {
			last = max(last, o.Return)
		}
		byKey[o.Key] = append(byKey[o.Key], po)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Open-ended operations return after every other event.
	ops := 0
	for _, k := range keys {
		for j := range byKey[k] {
			if in.Ops[byKey[k][j].Input.(*kvOp).pos].Type != history.OK {
				byKey[k][j].Return = last + 1
			}
		}
		ops += len(byKey[k])
	}
	res.Stats["keys_checked"] = float64(len(keys))
	res.Stats["ops_checked"] = float64(ops)
	res.Stats["ops_dropped"] = float64(dropped)
	defer func() { res.Stats["elapsed_ms"] = float64(time.Since(start).Microseconds()) / 1000 }()

	runCtx, stop, release := searchBound(ctx, opt.Timeout)
	defer release()
	parts := make([][]porcupine.Operation, len(keys))
	var flat []porcupine.Operation
	for i, k := range keys {
		parts[i] = byKey[k]
		for j := range parts[i] {
			parts[i][j].Input.(*kvOp).part = i
		}
		flat = append(flat, parts[i]...)
	}
	// First pass: every key at once, as Porcupine partitions it, which
	// stops at the first key it proves not linearizable.
	all := kvModel(stop)
	all.Partition = func(ops []porcupine.Operation) [][]porcupine.Operation {
		out := make([][]porcupine.Operation, len(keys))
		for _, o := range ops {
			p := o.Input.(*kvOp).part
			out[p] = append(out[p], o)
		}
		return out
	}
	if porcupine.CheckOperationsTimeout(all, flat, 0) == porcupine.Ok {
		res.Summary = fmt.Sprintf("%d keys linearizable (%d get/put/append ops)", len(keys), ops)
		return res
	}
	if stop.Load() {
		res.Verdict, res.Summary = Unknown, fmt.Sprintf("unknown: %d keys not decided", len(keys))
		res.Reason = fmt.Sprintf("linearizability search stopped before it ended (timeout %v)", opt.Timeout)
		res.Stats["keys_unknown"] = float64(len(keys))
		return res
	}
	// Second pass, to name every failing key: a key that is not
	// linearizable can take Porcupine long to prove so, so this pass has
	// a budget of its own; keys it leaves undecided are named as such.
	res.Verdict = Invalid
	var naming atomic.Bool
	budget := kvNamingBudget
	if opt.Timeout > 0 {
		budget = min(budget, opt.Timeout)
	}
	timer := time.AfterFunc(budget, func() { naming.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(runCtx, func() { naming.Store(true) })()
	verdicts := checkKeys(kvModel(&naming), parts, &naming)
	var failed, undecided []string
	for p, v := range verdicts {
		switch v {
		case Unknown:
			undecided = append(undecided, keys[p])
		case Invalid:
			failed = append(failed, keys[p])
			if len(failed) <= maxWitnessKeys && !naming.Load() {
				res.Add(kvWitness(in.Ops, keys[p], parts[p], &naming))
			} else {
				res.Add(Anomaly{Kind: "nonlinearizable", Key: keys[p], Explanation: fmt.Sprintf("%s: no order of its %d operations consistent with real time explains them all (no witness computed)", keyPhrase(keys[p]), len(parts[p]))})
			}
		}
	}
	res.Stats["keys_failed"] = float64(len(failed))
	res.Stats["keys_unknown"] = float64(len(undecided))
	switch {
	case len(failed) == 0:
		res.Reason = fmt.Sprintf("Porcupine proved a key not linearizable, but naming it took longer than %v", budget)
		res.Summary = fmt.Sprintf("not linearizable (%d keys, none named within %v)", len(keys), budget)
	default:
		res.Summary = fmt.Sprintf("%d of %d keys not linearizable: %s", len(failed), len(keys), quoteKeys(failed, 3))
		if len(undecided) > 0 {
			res.Summary += fmt.Sprintf(" (%d undecided)", len(undecided))
			res.Reason = fmt.Sprintf("%d keys were not decided within %v", len(undecided), budget)
		}
	}
	return res
}

// kvNamingBudget bounds the kv checker's pass that names the failing keys
// once one is proved to fail.
const kvNamingBudget = 10 * time.Second

// kvWitness explains a failing key from Porcupine's longest partial
// linearization: the operations it placed last, the value they leave, and
// the first operation (by return) it could not place after them.
func kvWitness(ops []history.Operation, key string, part []porcupine.Operation, stop *atomic.Bool) Anomaly {
	a := Anomaly{Kind: "nonlinearizable", Key: key}
	var best []int
	if _, info := porcupine.CheckOperationsVerbose(kvModel(stop), part, 0); !stop.Load() {
		if partials := info.PartialLinearizations(); len(partials) > 0 {
			for _, l := range partials[0] {
				if len(l) > len(best) {
					best = l
				}
			}
		}
	}
	state := ""
	placed := make([]bool, len(part))
	for _, id := range best {
		o := part[id].Input.(*kvOp)
		switch o.kind {
		case kvPut:
			state = o.value
		case kvAppend:
			state += o.value
		}
		placed[id] = true
	}
	stuck := -1
	for id := range part {
		if !placed[id] && (stuck < 0 || part[id].Return < part[stuck].Return) {
			stuck = id
		}
	}
	cite := slices.Clone(best[max(0, len(best)-witnessTail):])
	if stuck >= 0 {
		cite = append(cite, stuck)
	}
	for _, id := range cite {
		a.Ops = append(a.Ops, Ref(ops[part[id].Input.(*kvOp).pos]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: no order of its %d operations consistent with real time explains them all; the longest valid order Porcupine found places %d, leaving %q", keyPhrase(key), len(part), len(best), state)
	if stuck >= 0 {
		o := &ops[part[stuck].Input.(*kvOp).pos]
		fmt.Fprintf(&b, ", and then cannot place the %s of %s by process %v (op %d)", o.F, o.Value, o.Process, o.Invoke)
	}
	a.Explanation = b.String()
	return a
}
