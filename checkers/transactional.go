package checkers

import (
	"context"
	"fmt"
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
// opt.ConsistencyModel (strict-serializable by default), as Elle does for
// list-append: each read of a key reveals a prefix of the key's version
// order (the order of its appends); from those it infers write-write,
// write-read and read-write dependencies between transactions (and the
// real-time order, for strict-serializable), finds the cycles of that
// graph and names them after Adya (G0, G1c, G-single, G-nonadjacent,
// G2-item), beside the anomalies that need no cycle (aborted and
// intermediate reads, lost updates, internal inconsistency, duplicate and
// garbage elements, reads that disagree on a key's order). A transaction
// that ended info counts only when a read saw one of its appends; its
// reads are unknown. A search that runs out of its budget leaves the
// verdict unknown, naming what it could not decide.
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
	var ops []history.Operation
	for _, o := range in.Ops {
		if o.F == FTxn {
			ops = append(ops, o)
		}
	}
	kind, err := txnKind(ops)
	switch {
	case err != nil:
		r.Verdict, r.Reason = Unknown, err.Error()
		return r
	case kind == WorkloadRWRegister:
		r.Verdict, r.Reason = Unknown, "rw-register transactions (micro-operation w) are not checked yet: only list-append ones are"
		return r
	}
	txns := make([]*txn, 0, len(ops))
	for _, o := range ops {
		t, err := parseTxn(o)
		if err != nil {
			r.Verdict, r.Reason = Unknown, err.Error()
			return r
		}
		txns = append(txns, t)
	}
	budget := opt.CycleBudget
	if budget <= 0 {
		budget = defaultCycleBudget
	}
	a := &listAppend{txns: txns, model: model, forbid: prohibited(model), res: &r, budget: budget, allowed: map[string]int{}}
	if err := a.run(ctx); err != nil {
		r.Verdict, r.Reason = Unknown, err.Error()
		return r
	}
	a.finish(model)
	return r
}

// listAppend is one run of the list-append inference.
type listAppend struct {
	txns   []*txn
	model  string
	forbid map[string]bool
	res    *Result
	budget int

	// writer of each key's element: the transaction and the element's
	// place among that transaction's appends to the key.
	writer map[string]map[history.Scalar]elemWriter
	// appends of each transaction to each key, in its order.
	appends []map[string][]history.Scalar
	// reads of each key by ok transactions: every read (for the version
	// order) and the external ones (the state the transaction found).
	reads    map[string][]keyRead
	external map[string][]keyRead
	// order is each key's version order (its longest read), pos the
	// place of each element in it; keys whose reads disagree have none.
	order map[string][]history.Scalar
	pos   map[string]map[history.Scalar]int
	// in says which transactions are nodes of the graph: ok ones, and
	// info ones a read saw.
	in []bool
	g  *depGraph

	counts    map[string]int // anomalies found, by kind, prohibited or not
	allowed   map[string]int // anomalies found that the model allows
	undecided []string       // what a search could not decide
	inCycle   []bool         // transactions already in a reported cycle
}

type elemWriter struct {
	t, i int
	last bool // the transaction's last append to the key
}

type keyRead struct {
	t    int
	list []history.Scalar
}

// anomaly records an anomaly of kind: as a violation when the model
// forbids it, else counted as allowed.
func (a *listAppend) anomaly(kind string, ts []int, explanation string) {
	a.cycleAnomaly(kind, ts, explanation, nil)
}

// cycleAnomaly is anomaly with the edges of a cycle.
func (a *listAppend) cycleAnomaly(kind string, ts []int, explanation string, cycle []CycleEdge) {
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[kind]++
	if !a.forbid[kind] {
		a.allowed[kind]++
		return
	}
	refs := make([]OpRef, 0, len(ts))
	for _, t := range ts {
		refs = append(refs, Ref(a.txns[t].op))
	}
	a.res.Add(Anomaly{Kind: kind, Ops: refs, Explanation: explanation, Cycle: cycle})
}

func (a *listAppend) name(t int) string { return a.txns[t].name() }

func scalars(v history.Value) ([]history.Scalar, bool) {
	if v.IsNil() {
		return nil, true
	}
	items, ok := v.AsList()
	if !ok {
		return nil, false
	}
	out := make([]history.Scalar, len(items))
	for i, it := range items {
		if !it.IsScalar() {
			return nil, false
		}
		out[i] = it.Scalar()
	}
	return out, true
}

func scalarsText(s []history.Scalar) string {
	vs := make([]history.Value, len(s))
	for i, x := range s {
		vs[i] = x.Value()
	}
	return listText(history.List(vs...))
}

func (a *listAppend) run(ctx context.Context) error {
	n := len(a.txns)
	a.writer = map[string]map[history.Scalar]elemWriter{}
	a.appends = make([]map[string][]history.Scalar, n)
	for ti, t := range a.txns {
		for _, m := range t.mops {
			if m.f != MopAppend {
				continue
			}
			if a.appends[ti] == nil {
				a.appends[ti] = map[string][]history.Scalar{}
			}
			ws := a.writer[m.key]
			if ws == nil {
				ws = map[history.Scalar]elemWriter{}
				a.writer[m.key] = ws
			}
			if prev, dup := ws[m.arg]; dup {
				return fmt.Errorf("element %s is appended to key %s by both %s and %s: list-append needs elements unique per key to infer the order of versions", m.arg, m.key, a.name(prev.t), t.name())
			}
			ws[m.arg] = elemWriter{t: ti, i: len(a.appends[ti][m.key])}
			a.appends[ti][m.key] = append(a.appends[ti][m.key], m.arg)
		}
	}
	for key, ws := range a.writer {
		for x, w := range ws {
			w.last = w.i == len(a.appends[w.t][key])-1
			ws[x] = w
		}
	}
	a.reads = map[string][]keyRead{}
	a.external = map[string][]keyRead{}
	for ti, t := range a.txns {
		if t.op.Type != history.OK {
			continue
		}
		if err := a.readsOf(ti, t); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.versionOrders()
	a.nodes()
	a.g = newDepGraph(n)
	a.dependencies()
	if a.model == ModelStrictSerializable {
		a.realtime()
	}
	return a.cycles(ctx)
}

// readsOf walks transaction ti's micro-operations: each key's state as
// the transaction should see it (what it read, then its own appends), the
// reads that disagree (internal), and each key's external read.
func (a *listAppend) readsOf(ti int, t *txn) error {
	type state struct {
		known bool
		base  []history.Scalar // the last read, when known
		own   []history.Scalar // appends since the last read (or the start)
	}
	// Under read committed and read uncommitted each statement may see
	// what others committed since the last one (a non-repeatable read is
	// allowed): a later read must then only extend the earlier one, with
	// the transaction's own appends since in order. Under the stronger
	// models it must be exactly the earlier read and those appends.
	weak := a.model == ModelReadCommitted || a.model == ModelReadUncommitted
	st := map[string]*state{}
	for i, m := range t.mops {
		s := st[m.key]
		if s == nil {
			s = &state{}
			st[m.key] = s
		}
		switch m.f {
		case MopAppend:
			s.own = append(s.own, m.arg)
		case MopRead:
			l, ok := scalars(m.res)
			if !ok {
				return fmt.Errorf("op %d: micro-operation %d read key %s as %s: a list-append read returns a list of elements", t.op.Invoke, i, m.key, m.res)
			}
			a.reads[m.key] = append(a.reads[m.key], keyRead{t: ti, list: l})
			if s.known {
				want := append(slices.Clone(s.base), s.own...)
				switch {
				case !weak && !slices.Equal(l, want):
					a.anomaly(AnomalyInternal, []int{ti}, fmt.Sprintf("%s read key %s as %s, but its earlier reads and appends make it %s", t.name(), m.key, scalarsText(l), scalarsText(want)))
				case weak && !(len(l) >= len(s.base) && slices.Equal(l[:len(s.base)], s.base) && subsequence(s.own, l[len(s.base):])):
					a.anomaly(AnomalyInternal, []int{ti}, fmt.Sprintf("%s read key %s as %s, which does not extend its earlier read %s with its own appends %s", t.name(), m.key, scalarsText(l), scalarsText(s.base), scalarsText(s.own)))
				}
				s.base, s.own = slices.Clone(l), nil
				continue
			}
			s.known = true
			own := s.own
			s.base, s.own = slices.Clone(l), nil
			if len(own) > 0 {
				if len(l) < len(own) || !slices.Equal(l[len(l)-len(own):], own) {
					a.anomaly(AnomalyInternal, []int{ti}, fmt.Sprintf("%s appended %s to key %s, then read it as %s, which does not end with its own appends", t.name(), scalarsText(own), m.key, scalarsText(l)))
					continue
				}
				l = l[:len(l)-len(own)]
			}
			if x, future := a.ownElement(ti, m.key, l); future {
				a.anomaly(AnomalyFutureRead, []int{ti}, fmt.Sprintf("%s read key %s as %s, with %s, which it appends only later", t.name(), m.key, scalarsText(l), x))
				continue
			}
			a.external[m.key] = append(a.external[m.key], keyRead{t: ti, list: l})
		}
	}
	return nil
}

// subsequence reports whether xs appear in ys in order.
func subsequence(xs, ys []history.Scalar) bool {
	j := 0
	for _, y := range ys {
		if j < len(xs) && y == xs[j] {
			j++
		}
	}
	return j == len(xs)
}

// ownElement finds an element of l that transaction ti appends to key.
func (a *listAppend) ownElement(ti int, key string, l []history.Scalar) (history.Scalar, bool) {
	for _, x := range l {
		if w, ok := a.writer[key][x]; ok && w.t == ti {
			return x, true
		}
	}
	return history.Scalar{}, false
}

// versionOrders checks every read's elements (duplicates, garbage,
// aborted and intermediate reads) and takes each key's longest read as
// its version order, when every read of the key is a prefix of it.
func (a *listAppend) versionOrders() {
	a.order = map[string][]history.Scalar{}
	a.pos = map[string]map[history.Scalar]int{}
	keys := make([]string, 0, len(a.reads))
	for k := range a.reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		rs := a.reads[key]
		ok := true
		longest := -1
		for ri, r := range rs {
			seen := map[history.Scalar]bool{}
			for _, x := range r.list {
				if seen[x] {
					a.anomaly(AnomalyDuplicate, []int{r.t}, fmt.Sprintf("%s read key %s as %s, which holds %s twice", a.name(r.t), key, scalarsText(r.list), x))
					ok = false
					break
				}
				seen[x] = true
			}
			for _, x := range r.list {
				w, found := a.writer[key][x]
				switch {
				case !found:
					a.anomaly(AnomalyGarbage, []int{r.t}, fmt.Sprintf("%s read key %s as %s, but no transaction appended %s to it", a.name(r.t), key, scalarsText(r.list), x))
					ok = false
				case a.txns[w.t].op.Type == history.Fail:
					a.anomaly(AnomalyG1a, []int{r.t, w.t}, fmt.Sprintf("%s read key %s as %s, with %s, which %s appended and which failed (aborted read)", a.name(r.t), key, scalarsText(r.list), x, a.name(w.t)))
				}
			}
			if longest < 0 || len(r.list) > len(rs[longest].list) {
				longest = ri
			}
		}
		if !ok {
			continue
		}
		v := rs[longest].list
		for _, r := range rs {
			if len(r.list) > len(v) || !slices.Equal(r.list, v[:len(r.list)]) {
				a.anomaly(AnomalyIncompatible, []int{r.t, rs[longest].t}, fmt.Sprintf("%s read key %s as %s and %s as %s: neither is a prefix of the other, so they disagree on the order of its appends", a.name(r.t), key, scalarsText(r.list), a.name(rs[longest].t), scalarsText(v)))
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		a.order[key] = v
		p := make(map[history.Scalar]int, len(v))
		for i, x := range v {
			p[x] = i
		}
		a.pos[key] = p
		for _, r := range a.external[key] {
			if len(r.list) == 0 {
				continue
			}
			x := r.list[len(r.list)-1]
			if w := a.writer[key][x]; w.t != r.t && !w.last && a.txns[w.t].op.Type != history.Fail {
				next := a.appends[w.t][key][w.i+1]
				a.anomaly(AnomalyG1b, []int{r.t, w.t}, fmt.Sprintf("%s read key %s as %s, ending with %s, which %s appended before appending %s: it read a state %s left in the middle (intermediate read)", a.name(r.t), key, scalarsText(r.list), x, a.name(w.t), next, a.name(w.t)))
			}
		}
	}
}

// nodes decides which transactions are in the graph: the ok ones, and
// the info ones whose appends a read saw (they happened).
func (a *listAppend) nodes() {
	a.in = make([]bool, len(a.txns))
	for ti, t := range a.txns {
		a.in[ti] = t.op.Type == history.OK
	}
	for key, p := range a.pos {
		for x := range p {
			if w := a.writer[key][x]; a.txns[w.t].op.Type == history.Info {
				a.in[w.t] = true
			}
		}
	}
}

// dependencies adds the ww, wr and rw edges of every key with a version
// order, and reports lost updates.
func (a *listAppend) dependencies() {
	keys := make([]string, 0, len(a.order))
	for k := range a.order {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		v, p := a.order[key], a.pos[key]
		ws := a.writer[key]
		for i := 1; i < len(v); i++ {
			wa, wb := ws[v[i-1]].t, ws[v[i]].t
			if wa != wb && a.in[wa] && a.in[wb] {
				a.g.add(wa, wb, depWW, &why{key: key, y: v[i-1], x: v[i]})
			}
		}
		// Appends no read saw, by transactions that happened (ok ones,
		// and info ones a read saw elsewhere), come after every element
		// read, in an order nobody saw.
		var unseen []int
		for x, w := range ws {
			if _, seen := p[x]; !seen && a.in[w.t] && !slices.Contains(unseen, w.t) {
				unseen = append(unseen, w.t)
			}
		}
		slices.Sort(unseen)
		if len(v) > 0 {
			last := ws[v[len(v)-1]].t
			for _, u := range unseen {
				if u != last && a.in[last] {
					a.g.add(last, u, depWW, &why{key: key, y: v[len(v)-1], unseen: true})
				}
			}
		}
		byVersion := map[int][]int{}
		for _, r := range a.external[key] {
			if len(r.list) > 0 {
				w := ws[r.list[len(r.list)-1]].t
				if w != r.t && a.in[w] {
					a.g.add(w, r.t, depWR, &why{key: key, x: r.list[len(r.list)-1], list: r.list})
				}
			}
			if len(r.list) < len(v) {
				w := ws[v[len(r.list)]].t
				if w != r.t && a.in[w] {
					a.g.add(r.t, w, depRW, &why{key: key, x: v[len(r.list)], list: r.list})
				}
			} else {
				for _, u := range unseen {
					if u != r.t {
						a.g.add(r.t, u, depRW, &why{key: key, list: r.list, unseen: true})
					}
				}
			}
			if len(a.appends[r.t][key]) > 0 {
				byVersion[len(r.list)] = append(byVersion[len(r.list)], r.t)
			}
		}
		lens := make([]int, 0, len(byVersion))
		for l := range byVersion {
			lens = append(lens, l)
		}
		slices.Sort(lens)
		for _, l := range lens {
			if ts := byVersion[l]; len(ts) > 1 {
				names := make([]string, len(ts))
				for i, t := range ts {
					names[i] = a.name(t)
				}
				a.anomaly(AnomalyLostUpdate, ts, fmt.Sprintf("%s all read key %s as %s and all appended to it: whichever came later should have seen the others' appends (lost update)", strings.Join(names, ", "), key, scalarsText(v[:l])))
			}
		}
	}
}

// realtime adds the real-time order through barrier nodes: one per
// completion in time order, each transaction linked to its completion's
// barrier and from the last barrier before its invocation.
func (a *listAppend) realtime() {
	type done struct {
		t   int
		ret int64
	}
	var ds []done
	for ti, t := range a.txns {
		if a.in[ti] && t.op.Return != history.Open {
			ds = append(ds, done{ti, t.op.Return})
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].ret < ds[j].ret })
	barriers := make([]int, len(ds))
	for i, d := range ds {
		barriers[i] = a.g.addNode()
		a.g.add(d.t, barriers[i], depRT, nil)
		if i > 0 {
			a.g.add(barriers[i-1], barriers[i], depRT, nil)
		}
	}
	for ti, t := range a.txns {
		if !a.in[ti] {
			continue
		}
		// The last completion strictly before the invocation.
		i := sort.Search(len(ds), func(i int) bool { return ds[i].ret >= t.op.Call }) - 1
		if i >= 0 {
			a.g.add(barriers[i], ti, depRT, nil)
		}
	}
}
