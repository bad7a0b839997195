package checkers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// NameTransactional is the transactional checker's name.
const NameTransactional = "transactional"

// The consistency models the transactional checker holds a history to,
// strongest first.
const (
	ModelStrictSerializable = "strict-serializable"
	ModelSerializable       = "serializable"
	ModelSnapshotIsolation  = "snapshot-isolation"
	ModelRepeatableRead     = "repeatable-read"
	ModelReadCommitted      = "read-committed"
	ModelReadUncommitted    = "read-uncommitted"
)

// Models lists the consistency models, strongest first.
var Models = []string{ModelStrictSerializable, ModelSerializable, ModelSnapshotIsolation, ModelRepeatableRead, ModelReadCommitted, ModelReadUncommitted}

// The anomalies the transactional checker names.
const (
	AnomalyG0           = "G0"            // a cycle of write dependencies
	AnomalyG1a          = "G1a"           // aborted read: a read saw what a failed transaction wrote
	AnomalyG1b          = "G1b"           // intermediate read: a read saw a state a transaction left behind
	AnomalyG1c          = "G1c"           // a cycle of write and read dependencies
	AnomalyGSingle      = "G-single"      // a cycle with exactly one anti-dependency (read skew)
	AnomalyGNonadjacent = "G-nonadjacent" // a cycle whose anti-dependencies are never adjacent
	AnomalyG2Item       = "G2-item"       // a cycle with adjacent anti-dependencies (write skew)
	AnomalyLostUpdate   = "lost-update"   // two transactions read one version and both wrote the key
	AnomalyInternal     = "internal"      // a transaction did not read its own earlier reads and writes
	AnomalyDuplicate    = "duplicate-elements"
	AnomalyGarbage      = "garbage-read"       // a read saw an element nobody appended
	AnomalyIncompatible = "incompatible-order" // two reads disagree on a key's order
	AnomalyFutureRead   = "future-read"        // a transaction read an element it appended only later
	realtimeSuffix      = "-realtime"
	defaultCycleBudget  = 20_000_000
)

// prohibited returns the anomalies a model rules out. Every model rules
// out the anomalies no database may show (internal inconsistency,
// duplicates, garbage, incompatible orders).
func prohibited(model string) map[string]bool {
	always := []string{AnomalyInternal, AnomalyDuplicate, AnomalyGarbage, AnomalyIncompatible, AnomalyFutureRead}
	var more []string
	switch model {
	case ModelReadUncommitted:
		more = []string{AnomalyG0}
	case ModelReadCommitted:
		more = []string{AnomalyG0, AnomalyG1a, AnomalyG1b, AnomalyG1c}
	case ModelSnapshotIsolation:
		more = []string{AnomalyG0, AnomalyG1a, AnomalyG1b, AnomalyG1c, AnomalyGSingle, AnomalyGNonadjacent, AnomalyLostUpdate}
	case ModelRepeatableRead, ModelSerializable:
		more = []string{AnomalyG0, AnomalyG1a, AnomalyG1b, AnomalyG1c, AnomalyGSingle, AnomalyGNonadjacent, AnomalyG2Item, AnomalyLostUpdate}
	default: // strict-serializable
		more = []string{AnomalyG0, AnomalyG1a, AnomalyG1b, AnomalyG1c, AnomalyGSingle, AnomalyGNonadjacent, AnomalyG2Item, AnomalyLostUpdate}
		for _, c := range []string{AnomalyG0, AnomalyG1c, AnomalyGSingle, AnomalyGNonadjacent, AnomalyG2Item} {
			more = append(more, c+realtimeSuffix)
		}
	}
	out := map[string]bool{}
	for _, a := range append(always, more...) {
		out[a] = true
	}
	return out
}

// CheckModel says why model is not a consistency model eccheck knows.
func CheckModel(model string) error {
	if model == "" || slices.Contains(Models, model) {
		return nil
	}
	return fmt.Errorf("unknown consistency model %q (want %s)", model, strings.Join(Models, ", "))
}

// Transactional checks a history of transactions (f txn) against
// opt.ConsistencyModel (strict-serializable by default), as Elle does.
// In list-append, each read of a key reveals a prefix of the key's
// version order (the order of its appends); in rw-register, a read names
// the write it saw (values are unique per key) and the versions are
// ordered only as far as the history shows (see rwRegister). From those
// it infers write-write, write-read and read-write dependencies between
// transactions (and the real-time order, for strict-serializable), finds
// the cycles of that graph and names them after Adya (G0, G1c, G-single,
// G-nonadjacent, G2-item), beside the anomalies that need no cycle
// (aborted and intermediate reads, lost updates, internal inconsistency,
// duplicate and garbage elements, reads that disagree on a key's order).
// A transaction that ended info counts only when a read saw one of its
// writes; its reads are unknown. A search that runs out of its budget
// leaves the verdict unknown, naming what it could not decide.
func Transactional(ctx context.Context, in Input, opt Options) Result {
	r := Result{Checker: NameTransactional, Verdict: Valid, Stats: map[string]float64{}}
	model := opt.ConsistencyModel
	if model == "" {
		model = ModelStrictSerializable
	}
	if err := CheckModel(model); err != nil {
		r.Verdict, r.Reason = Unknown, err.Error()
		return r
	}
	s, err := parseTxns(in.Ops)
	if err != nil {
		r.Verdict, r.Reason = Unknown, err.Error()
		return r
	}
	budget := opt.CycleBudget
	if budget <= 0 {
		budget = defaultCycleBudget
	}
	c := &txnCheck{txnSet: s, model: model, forbid: prohibited(model), res: &r, budget: budget, allowed: map[string]int{}, counts: map[string]int{}}
	if s.writes > 0 {
		err = c.rwRegister(ctx)
	} else {
		err = c.listAppend(ctx)
	}
	if err == nil {
		err = c.cycles(ctx)
	}
	if err != nil {
		r.Verdict, r.Reason = Unknown, err.Error()
		return r
	}
	c.finish()
	return r
}

// txnCheck is one run of the transactional checker: the transactions,
// the dependency graph an inference (list-append or rw-register) built,
// and what was found.
type txnCheck struct {
	*txnSet
	model  string
	forbid map[string]bool
	res    *Result
	budget int

	// in says which transactions are nodes of the graph: ok ones, and
	// info ones a read saw.
	in []bool
	g  *depGraph
	// explain says what a dependency edge rests on, in a sentence.
	explain func(from int32, e gedge) string

	counts    map[string]int // anomalies found, by kind, prohibited or not
	allowed   map[string]int // anomalies found that the model allows
	undecided []string       // what a search could not decide
	inCycle   []bool         // transactions already in a reported cycle
}

// weak reports whether the model lets a transaction's statements see
// what others committed since its last one (read committed and read
// uncommitted: a non-repeatable read is allowed).
func (c *txnCheck) weak() bool {
	return c.model == ModelReadCommitted || c.model == ModelReadUncommitted
}

// anomaly records an anomaly of kind: as a violation when the model
// forbids it, else counted as allowed.
func (c *txnCheck) anomaly(kind string, ts []int, explanation string) {
	c.cycleAnomaly(kind, ts, explanation, nil)
}

// cycleAnomaly is anomaly with the edges of a cycle.
func (c *txnCheck) cycleAnomaly(kind string, ts []int, explanation string, cycle []CycleEdge) {
	c.counts[kind]++
	if !c.forbid[kind] {
		c.allowed[kind]++
		return
	}
	refs := make([]OpRef, 0, len(ts))
	for _, t := range ts {
		refs = append(refs, Ref(*c.ops[t]))
	}
	c.res.Add(Anomaly{Kind: kind, Ops: refs, Explanation: explanation, Cycle: cycle})
}

// edge adds the dependency a -e.kind-> e.to between transactions, unless
// it is a loop or one of them is not a node.
func (c *txnCheck) edge(a int, e gedge) {
	if a == int(e.to) || !c.in[a] || !c.in[e.to] {
		return
	}
	c.g.add(a, e)
}

// graph builds the dependency graph: the edges dependencies adds (it
// runs twice, see [buildGraph]), and for strict-serializable the
// real-time order.
func (c *txnCheck) graph(dependencies func()) {
	var ds []completion
	if c.model == ModelStrictSerializable {
		ds = c.completions()
	}
	c.g = buildGraph(c.n(), func(g *depGraph) {
		c.g = g
		dependencies()
		if ds != nil {
			c.realtime(ds)
		}
	})
}

// completion is when a transaction of the graph returned.
type completion struct {
	t   int32
	ret int64
}

// completions lists the completions of the graph's transactions in time
// order.
func (c *txnCheck) completions() []completion {
	ds := make([]completion, 0, c.n())
	for t, o := range c.ops {
		if c.in[t] && o.Return != history.Open {
			ds = append(ds, completion{int32(t), o.Return})
		}
	}
	slices.SortFunc(ds, func(x, y completion) int { return cmp.Compare(x.ret, y.ret) })
	return ds
}

// realtime adds the real-time order through barrier nodes: one per
// completion in time order (ds), each transaction linked to its
// completion's barrier and from the last barrier before its invocation.
func (c *txnCheck) realtime(ds []completion) {
	first := c.g.nodes
	for i, d := range ds {
		b := c.g.addNode()
		c.g.barrier(int(d.t), b)
		if i > 0 {
			c.g.barrier(b-1, b)
		}
	}
	for t := range c.ops {
		if !c.in[t] {
			continue
		}
		// The last completion strictly before the invocation.
		call := c.call(t)
		i := sort.Search(len(ds), func(i int) bool { return ds[i].ret >= call }) - 1
		if i >= 0 {
			c.g.barrier(first+i, t)
		}
	}
}

// finish fills the result's figures, summary and verdict.
func (c *txnCheck) finish() {
	r := c.res
	var ok, info, fail int
	for _, o := range c.ops {
		switch o.Type {
		case history.OK:
			ok++
		case history.Info:
			info++
		case history.Fail:
			fail++
		}
	}
	r.Stats["transactions"] = float64(len(c.ops))
	r.Stats["ok"], r.Stats["info"], r.Stats["fail"] = float64(ok), float64(info), float64(fail)
	r.Stats["keys"] = float64(c.keys())
	edges := map[depKind]int{}
	for v := 0; v < c.g.txns; v++ {
		for _, e := range c.g.out(int32(v)) {
			if int(e.to) < c.g.txns {
				edges[e.kind]++
			}
		}
	}
	for _, k := range []depKind{depWW, depWR, depRW} {
		r.Stats["edges_"+k.String()] = float64(edges[k])
	}
	for kind, n := range c.counts {
		r.Stats["found_"+kind] = float64(n)
	}
	var found []string
	for _, kind := range slices.Sorted(maps.Keys(c.counts)) {
		mark := ""
		if !c.forbid[kind] {
			mark = ", allowed"
		}
		found = append(found, fmt.Sprintf("%s ×%d%s", kind, c.counts[kind], mark))
	}
	workload := WorkloadListAppend
	if c.writes > 0 {
		workload = WorkloadRWRegister
	}
	head := fmt.Sprintf("%d %s %s over %d %s, checked for %s", len(c.ops), workload, plural(len(c.ops), "transaction"), c.keys(), plural(c.keys(), "key"), c.model)
	switch {
	case r.Verdict == Invalid:
		r.Summary = head + ": " + strings.Join(found, ", ")
	case len(c.undecided) > 0:
		r.Verdict = Unknown
		r.Reason = strings.Join(c.undecided, "; ") + "; no anomaly found elsewhere"
		r.Summary = head + ": undecided"
	case len(found) > 0:
		r.Summary = head + ": none it rules out (" + strings.Join(found, ", ") + ")"
	default:
		r.Summary = head + ": no anomaly"
	}
}

// plural is word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
