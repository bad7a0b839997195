package checkers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// nilVersion stands for a key's initial state (never written) among the
// value ids of rw-register.
const nilVersion = -1

// regExtRead is the external read of a key by a transaction that completed
// ok: the version it found, before any write of its own.
type regExtRead struct {
	t, key int32
	x      int32 // the value id read, or nilVersion
}

// regOrder says that version y follows version x of key (x may be
// nilVersion): the transaction that wrote y read x first.
type regOrder struct {
	key, x, y int32
}

// regState is one run of the rw-register inference. A read names the
// write it saw (values are unique per key), which gives the wr
// dependencies; the order of a key's versions is never read whole, so it
// is inferred only as far as the history shows it:
//
//   - the initial state (null) precedes every write;
//   - a transaction that read x and then wrote y installs y after x. Any
//     version order that put y before x would make the writer of x
//     depend on the transaction and the transaction read from it: a G1c
//     cycle, which every model from read committed up rules out. Under
//     read uncommitted this rule is not used.
//
// Writes that nothing orders stay unordered: the checker finds the cycles
// that these orders imply, no more (as Elle does without assuming
// linearizable or sequential keys). A transaction's last write to a key
// is its version; reading an earlier one is an intermediate read (G1b).
type regState struct {
	*txnCheck
	reads  []regExtRead
	orders []regOrder
}

// rwRegister infers the dependencies of an rw-register history.
func (c *txnCheck) rwRegister(ctx context.Context) error {
	r := &regState{txnCheck: c}
	c.explain = r.explainEdge
	var st txnKeys
	for t := range c.ops {
		if c.okTxn(t) {
			if err := r.readsOf(t, &st); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.in = make([]bool, c.n())
	for t := range c.ops {
		c.in[t] = c.okTxn(t)
	}
	for _, rd := range r.reads {
		if rd.x != nilVersion && c.info(c.writer(rd.x)) {
			c.in[c.writer(rd.x)] = true
		}
	}
	c.graph(r.dependencies)
	return ctx.Err()
}

// readsOf walks transaction t's micro-operations: a read after the
// transaction's own write must return it, a read after a read must
// return the same (except under read committed and read uncommitted),
// and the first read of a key, before any write, is external.
func (r *regState) readsOf(t int, st *txnKeys) error {
	st.reset()
	weak := r.weak()
	mops := r.mopsOf(t)
	if len(mops) > 64 {
		st.s = make([]keyState, 0, len(mops))
	}
	var ext, later []external
	for i, m := range mops {
		s := st.get(m.key)
		if m.f == fWrite {
			s.wrote = m.val
			continue
		}
		if m.f != fRead {
			continue
		}
		v := m.res
		if !v.IsScalar() {
			return fmt.Errorf("op %d: micro-operation %d read key %s as %s: an rw-register read returns one value (or null)", r.ops[t].Invoke, i, r.keyName(m.key), v)
		}
		key := r.keyName(m.key)
		switch {
		case s.wrote >= 0:
			if !sameScalar(v, r.valArg[s.wrote]) {
				r.anomaly(AnomalyInternal, []int{t}, fmt.Sprintf("%s wrote %s to key %s, then read it as %s", r.name(t), r.valText(s.wrote), key, v))
			}
			continue
		case s.known:
			if !sameScalar(v, &s.base[0]) {
				if !weak {
					r.anomaly(AnomalyInternal, []int{t}, fmt.Sprintf("%s read key %s as %s, then as %s, with no write of its own between", r.name(t), key, &s.base[0], v))
				} else if x, ok := r.resolve(t, m.key, v); ok {
					// Read committed: a later statement saw a newer
					// version, which must be one that can be read.
					later = append(later, external{m.key, x})
				}
			}
			s.base = []history.Value{*v}
			continue
		}
		s.known, s.base = true, []history.Value{*v}
		if x, ok := r.resolve(t, m.key, v); ok {
			ext = append(ext, external{m.key, x})
		}
	}
	for _, e := range later {
		r.reads = append(r.reads, regExtRead{t: int32(t), key: e.key, x: e.x})
	}
	for _, e := range ext {
		r.reads = append(r.reads, regExtRead{t: int32(t), key: e.key, x: e.x})
		if s := st.get(e.key); s.wrote >= 0 && r.model != ModelReadUncommitted {
			r.orders = append(r.orders, regOrder{key: e.key, x: e.x, y: s.wrote})
		}
	}
	return nil
}

// external is a read of a key's version x (or nilVersion) by a
// transaction.
type external struct {
	key int32
	x   int32
}

// resolve finds the version transaction t read as v from key, reporting
// what no model allows (garbage, a future read) and what the model may
// rule out (aborted and intermediate reads); ok is false when the read
// names no version a dependency can come from.
func (r *regState) resolve(t int, k int32, v *history.Value) (x int32, ok bool) {
	if v.IsNil() {
		return nilVersion, true
	}
	key := r.keyName(k)
	x = r.lookupVal(k, v)
	if x < 0 {
		r.anomaly(AnomalyGarbage, []int{t}, fmt.Sprintf("%s read key %s as %s, but no transaction wrote %s to it", r.name(t), key, v, v))
		return x, false
	}
	w := r.writer(x)
	switch {
	case w == t:
		// A retried request's earlier attempt may have written it: a
		// double application, not a read of the future.
		if !r.retried(t) {
			r.anomaly(AnomalyFutureRead, []int{t}, fmt.Sprintf("%s read key %s as %s, which it writes only later", r.name(t), key, v))
		}
		return x, false
	case r.failed(w):
		r.anomaly(AnomalyG1a, []int{t, w}, fmt.Sprintf("%s read key %s as %s, which %s wrote and which failed (aborted read)", r.name(t), key, v, r.name(w)))
	case r.valNext[x] >= 0:
		r.anomaly(AnomalyG1b, []int{t, w}, fmt.Sprintf("%s read key %s as %s, which %s wrote before writing %s over it: it read a state %s left in the middle (intermediate read)", r.name(t), key, v, r.name(w), r.valText(r.valNext[x]), r.name(w)))
	}
	return x, true
}

// dependencies adds the wr edges of every read, the ww and rw edges of
// the orders the history shows, and reports lost updates.
func (r *regState) dependencies() {
	// succ lists the versions known to follow each value (orders from a
	// value), and first the writes of each key that no version known to
	// have happened precedes: the successors of its initial state.
	slices.SortFunc(r.orders, func(a, b regOrder) int {
		if a.key != b.key {
			return int(a.key - b.key)
		}
		return int(a.x - b.x)
	})
	preceded := make([]bool, len(r.valKey))
	succOf := map[int32][]int32{}
	for _, o := range r.orders {
		if o.x == nilVersion {
			continue
		}
		succOf[o.x] = append(succOf[o.x], o.y)
		if r.in[r.writer(o.x)] {
			preceded[o.y] = true
			r.edge(r.writer(o.x), gedge{to: int32(r.writer(o.y)), key: o.key, a: o.x, b: o.y, kind: depWW})
		}
	}
	var first map[int32][]int32
	for _, rd := range r.reads {
		if rd.x == nilVersion && first == nil {
			first = map[int32][]int32{}
			for y, k := range r.valKey {
				if r.valNext[y] < 0 && !preceded[y] && r.in[r.valTxn[y]] {
					first[k] = append(first[k], int32(y))
				}
			}
		}
		if rd.x != nilVersion {
			r.edge(r.writer(rd.x), gedge{to: rd.t, key: rd.key, a: rd.x, kind: depWR})
			for _, y := range succOf[rd.x] {
				r.edge(int(rd.t), gedge{to: int32(r.writer(y)), key: rd.key, a: rd.x, b: y, kind: depRW})
			}
			continue
		}
		for _, y := range first[rd.key] {
			r.edge(int(rd.t), gedge{to: int32(r.writer(y)), key: rd.key, a: nilVersion, b: y, kind: depRW})
		}
	}
	if !r.g.counting {
		r.lostUpdates()
	}
}

// lostUpdates reports transactions that read one version of a key and
// all wrote it.
func (r *regState) lostUpdates() {
	for i := 0; i < len(r.orders); {
		j := i
		for j < len(r.orders) && r.orders[j].key == r.orders[i].key && r.orders[j].x == r.orders[i].x {
			j++
		}
		if j-i > 1 {
			var ts []int
			var names []string
			for _, o := range r.orders[i:j] {
				ts = append(ts, r.writer(o.y))
				names = append(names, r.name(r.writer(o.y)))
			}
			o := r.orders[i]
			r.anomaly(AnomalyLostUpdate, ts, fmt.Sprintf("%s all read key %s as %s and all wrote it: whichever came later should have seen the others' writes (lost update)", strings.Join(names, ", "), r.keyName(o.key), r.versionText(o.x)))
		}
		i = j
	}
}

func (r *regState) versionText(x int32) string {
	if x == nilVersion {
		return "null"
	}
	return r.valText(x)
}

// explainEdge says what an rw-register dependency rests on.
func (r *regState) explainEdge(from int32, e gedge) string {
	f, to, key := r.name(int(from)), r.name(int(e.to)), r.keyName(e.key)
	switch e.kind {
	case depWW:
		return fmt.Sprintf("%s wrote %s to key %s, and %s read it before writing %s over it (ww)", f, r.valText(e.a), key, to, r.valText(e.b))
	case depWR:
		return fmt.Sprintf("%s wrote %s to key %s and %s read it (wr)", f, r.valText(e.a), key, to)
	}
	if e.a == nilVersion {
		return fmt.Sprintf("%s read key %s as null, before any write, and %s wrote %s to it (rw)", f, key, to, r.valText(e.b))
	}
	return fmt.Sprintf("%s read key %s as %s, and %s, which read it too, wrote %s over it (rw)", f, key, r.valText(e.a), to, r.valText(e.b))
}
