package checkers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// readRec is a read of a key by a transaction that completed ok.
type readRec struct {
	list []history.Value // what it returned, in the history
	t    int32
	key  int32
	// ext is the length of the external read (what the transaction found
	// before its own appends) for its first read of the key; extNone for
	// a later read, extFuture for one that saw the transaction's own
	// later append (future-read: no dependency comes from it).
	ext int32
}

const (
	extNone   = -1
	extFuture = -2
)

// listState is one run of the list-append inference.
type listState struct {
	*txnCheck
	reads []readRec
	// byKey lists the reads of each key: key k's are
	// reads[byKey[keyOff[k]:keyOff[k+1]]].
	byKey, keyOff []int32
	// order is each key's version order (its longest read) as value ids,
	// orderOf[k] its span in order ({-1, -1} when the key's reads
	// disagree or there is none); pos is each value's place in it.
	order   []int32
	orderOf [][2]int32
	pos     []int32
}

// listAppend infers the dependencies of a list-append history.
func (c *txnCheck) listAppend(ctx context.Context) error {
	a := &listState{txnCheck: c, reads: make([]readRec, 0, c.readMops)}
	c.explain = a.explainEdge
	var st txnKeys
	for t := range c.ops {
		if c.okTxn(t) {
			if err := a.readsOf(t, &st); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.byKey, a.keyOff = groupBy(len(a.reads), c.keys(), func(i int) int32 { return a.reads[i].key })
	a.versionOrders()
	a.nodes()
	c.graph(a.dependencies)
	return ctx.Err()
}

// groupBy lists 0..n-1 grouped by key (stably): the members of key k are
// out[off[k]:off[k+1]].
func groupBy(n, keys int, key func(int) int32) (out, off []int32) {
	off = make([]int32, keys+1)
	for i := 0; i < n; i++ {
		off[key(i)+1]++
	}
	for k := 1; k <= keys; k++ {
		off[k] += off[k-1]
	}
	next := slices.Clone(off[:keys])
	out = make([]int32, n)
	for i := 0; i < n; i++ {
		k := key(i)
		out[next[k]] = int32(i)
		next[k]++
	}
	return out, off
}

// keyState is a key's state inside one transaction, as the transaction
// should see it: its last read (when it read the key) and its own writes
// since.
type keyState struct {
	key       int32
	known     bool
	base      []history.Value // the last read
	own       []int32         // appends (or writes) since the last read, or since the start
	firstRead int             // the record of the first read (list-append), -1 before it
	readAt    int             // the micro-operation of the first read
	// For rw-register: the value the transaction last wrote, -1 for none.
	wrote int32
}

// txnKeys holds the key states of one transaction, reused from one
// transaction to the next (a transaction touches few keys: a linear
// search beats a map).
type txnKeys struct{ s []keyState }

func (k *txnKeys) reset() { k.s = k.s[:0] }

func (k *txnKeys) get(key int32) *keyState {
	for i := range k.s {
		if k.s[i].key == key {
			return &k.s[i]
		}
	}
	if len(k.s) < cap(k.s) {
		k.s = k.s[:len(k.s)+1]
		s := &k.s[len(k.s)-1]
		*s = keyState{key: key, own: s.own[:0], firstRead: -1, wrote: -1}
		return s
	}
	k.s = append(k.s, keyState{key: key, firstRead: -1, wrote: -1})
	return &k.s[len(k.s)-1]
}

// readsOf walks transaction t's micro-operations: each key's state as
// the transaction should see it (what it read, then its own appends), the
// reads that disagree (internal), and each key's external read.
func (a *listState) readsOf(t int, st *txnKeys) error {
	// Under read committed and read uncommitted each statement may see
	// what others committed since the last one (a non-repeatable read is
	// allowed): a later read must then only extend the earlier one, with
	// the transaction's own appends since in order. Under the stronger
	// models it must be exactly the earlier read and those appends.
	weak := a.weak()
	st.reset()
	mops := a.mopsOf(t)
	if len(mops) > 64 {
		// A long transaction: index its keys.
		st.s = make([]keyState, 0, len(mops))
	}
	for i, m := range mops {
		s := st.get(m.key)
		if m.f == fAppend {
			s.own = append(s.own, m.val)
			continue
		}
		var l []history.Value
		if !m.res.IsNil() {
			var ok bool
			l, ok = m.res.AsList()
			if !ok || slices.ContainsFunc(l, func(v history.Value) bool { return !v.IsScalar() }) {
				return fmt.Errorf("op %d: micro-operation %d read key %s as %s: a list-append read returns a list of elements", a.ops[t].Invoke, i, a.keyName(m.key), m.res)
			}
		}
		a.reads = append(a.reads, readRec{list: l, t: int32(t), key: m.key, ext: extNone})
		if s.known {
			switch {
			case !weak && !a.extends(l, s.base, s.own, true):
				a.anomaly(AnomalyInternal, []int{t}, fmt.Sprintf("%s read key %s as %s, but its earlier reads and appends make it %s", a.name(t), a.keyName(m.key), valuesText(l), a.joinText(s.base, s.own)))
			case weak && !a.extends(l, s.base, s.own, false):
				a.anomaly(AnomalyInternal, []int{t}, fmt.Sprintf("%s read key %s as %s, which does not extend its earlier read %s with its own appends %s", a.name(t), a.keyName(m.key), valuesText(l), valuesText(s.base), a.idsText(s.own)))
			}
			s.base, s.own = l, s.own[:0]
			continue
		}
		s.known = true
		own := s.own
		s.base, s.own = l, s.own[:0]
		if len(own) > 0 {
			if !a.endsWith(l, own) {
				a.anomaly(AnomalyInternal, []int{t}, fmt.Sprintf("%s appended %s to key %s, then read it as %s, which does not end with its own appends", a.name(t), a.idsText(own), a.keyName(m.key), valuesText(l)))
				continue
			}
		}
		s.firstRead, s.readAt = len(a.reads)-1, i
		a.reads[s.firstRead].ext = int32(len(l) - len(own))
	}
	// A first read that holds an element the transaction appends only
	// after it read the future.
	for _, s := range st.s {
		if s.firstRead < 0 {
			continue
		}
		r := &a.reads[s.firstRead]
		ext := r.list[:r.ext]
		for _, m := range mops[s.readAt+1:] {
			if m.f != fAppend || m.key != s.key {
				continue
			}
			if j := slices.IndexFunc(ext, func(v history.Value) bool { return sameScalar(&v, a.valArg[m.val]) }); j >= 0 {
				// A retried request's earlier attempt may have appended
				// it: a double application (the element then shows twice),
				// not a read of the future.
				if !a.retried(t) {
					a.anomaly(AnomalyFutureRead, []int{t}, fmt.Sprintf("%s read key %s as %s, with %s, which it appends only later", a.name(t), a.keyName(s.key), valuesText(ext), ext[j]))
				}
				r.ext = extFuture
				break
			}
		}
	}
	return nil
}

// extends reports whether l is base followed by own (exact), or base
// followed by a list holding own in order (not exact).
func (a *listState) extends(l, base []history.Value, own []int32, exact bool) bool {
	if len(l) < len(base) || exact && len(l) != len(base)+len(own) {
		return false
	}
	for i := range base {
		if !sameScalar(&l[i], &base[i]) {
			return false
		}
	}
	j := 0
	for i := len(base); i < len(l) && j < len(own); i++ {
		if sameScalar(&l[i], a.valArg[own[j]]) {
			j++
		} else if exact {
			return false
		}
	}
	return j == len(own)
}

// endsWith reports whether l ends with the values own.
func (a *listState) endsWith(l []history.Value, own []int32) bool {
	if len(l) < len(own) {
		return false
	}
	tail := l[len(l)-len(own):]
	for i, v := range own {
		if !sameScalar(&tail[i], a.valArg[v]) {
			return false
		}
	}
	return true
}

func (a *listState) idsText(ids []int32) string {
	vs := make([]history.Value, len(ids))
	for i, id := range ids {
		vs[i] = *a.valArg[id]
	}
	return valuesText(vs)
}

func (a *listState) joinText(base []history.Value, own []int32) string {
	vs := slices.Clone(base)
	for _, id := range own {
		vs = append(vs, *a.valArg[id])
	}
	return valuesText(vs)
}

// orderText renders the first n elements of key k's version order.
func (a *listState) orderText(k int32, n int32) string {
	span := a.orderOf[k]
	return a.idsText(a.order[span[0] : span[0]+n])
}

// keyOrder returns key k's version order, ok false when it has none.
func (a *listState) keyOrder(k int32) ([]int32, bool) {
	span := a.orderOf[k]
	if span[0] < 0 {
		return nil, false
	}
	return a.order[span[0]:span[1]], true
}

// badElem is an element of a read that no database may return: garbage
// (nobody appended it), a duplicate, or an aborted read (G1a).
type badElem struct {
	at   int
	kind string
	id   int32
}

// versionOrders checks every read's elements (duplicates, garbage,
// aborted and intermediate reads) and takes each key's longest read as
// its version order, when every read of the key is a prefix of it. Only
// the longest read's elements are looked up: a read that is a prefix of
// it holds what it holds.
func (a *listState) versionOrders() {
	a.orderOf = make([][2]int32, a.keys())
	a.pos = make([]int32, len(a.valKey))
	a.order = make([]int32, 0, len(a.valKey))
	for i := range a.pos {
		a.pos[i] = -1
	}
	var bad []badElem
	for k := int32(0); k < int32(a.keys()); k++ {
		a.orderOf[k] = [2]int32{-1, -1}
		rs := a.byKey[a.keyOff[k]:a.keyOff[k+1]]
		if len(rs) == 0 {
			continue
		}
		longest := rs[0]
		for _, ri := range rs {
			if len(a.reads[ri].list) > len(a.reads[longest].list) {
				longest = ri
			}
		}
		L := a.reads[longest].list
		start := int32(len(a.order))
		bad = a.elements(k, L, true, bad[:0])
		ok := !slices.ContainsFunc(bad, func(b badElem) bool { return b.kind != AnomalyG1a })
		incompatible := int32(-1)
		for _, ri := range rs {
			r := &a.reads[ri]
			if len(r.list) <= len(L) && slices.EqualFunc(r.list, L[:len(r.list)], func(x, y history.Value) bool { return sameScalar(&x, &y) }) {
				for _, b := range bad {
					if b.at < len(r.list) {
						a.badRead(r, b)
					}
				}
				continue
			}
			if incompatible < 0 {
				incompatible = ri
			}
			for _, b := range a.elements(k, r.list, false, nil) {
				a.badRead(r, b)
				ok = ok && b.kind == AnomalyG1a
			}
		}
		if ok && incompatible >= 0 {
			r := &a.reads[incompatible]
			a.anomaly(AnomalyIncompatible, []int{int(r.t), int(a.reads[longest].t)}, fmt.Sprintf("%s read key %s as %s and %s as %s: neither is a prefix of the other, so they disagree on the order of its appends", a.name(int(r.t)), a.keyName(k), valuesText(r.list), a.name(int(a.reads[longest].t)), valuesText(L)))
			ok = false
		}
		if !ok {
			for _, id := range a.order[start:] {
				if id >= 0 {
					a.pos[id] = -1
				}
			}
			a.order = a.order[:start]
			continue
		}
		a.orderOf[k] = [2]int32{start, int32(len(a.order))}
		v := a.order[start:]
		for _, ri := range rs {
			r := &a.reads[ri]
			if r.ext <= 0 {
				continue
			}
			x := v[r.ext-1]
			if w := a.writer(x); w != int(r.t) && a.valNext[x] >= 0 && !a.failed(w) {
				a.anomaly(AnomalyG1b, []int{int(r.t), w}, fmt.Sprintf("%s read key %s as %s, ending with %s, which %s appended before appending %s: it read a state %s left in the middle (intermediate read)", a.name(int(r.t)), a.keyName(k), valuesText(r.list[:r.ext]), a.valText(x), a.name(w), a.valText(a.valNext[x]), a.name(w)))
			}
		}
	}
}

// elements looks up the elements of l, a read of key k, and returns what
// is wrong with them: each garbage element, the first duplicate, each
// element a failed transaction appended. With record, l is the key's
// candidate version order: its ids go to a.order and a.pos.
func (a *listState) elements(k int32, l []history.Value, record bool, bad []badElem) []badElem {
	dup := false
	var seen map[int32]bool
	if !record {
		seen = map[int32]bool{}
	}
	for i := range l {
		id := a.lookupVal(k, &l[i])
		if record {
			a.order = append(a.order, id)
		}
		if id < 0 {
			bad = append(bad, badElem{at: i, kind: AnomalyGarbage, id: -1})
			continue
		}
		again := seen[id]
		if record {
			again = a.pos[id] >= 0
		}
		if again && !dup {
			dup = true
			bad = append(bad, badElem{at: i, kind: AnomalyDuplicate, id: id})
		}
		if record && !again {
			a.pos[id] = int32(i)
		}
		if !record {
			seen[id] = true
		}
		if a.failed(a.writer(id)) {
			bad = append(bad, badElem{at: i, kind: AnomalyG1a, id: id})
		}
	}
	return bad
}

// badRead reports what is wrong with an element of read r.
func (a *listState) badRead(r *readRec, b badElem) {
	t, key, list := int(r.t), a.keyName(r.key), valuesText(r.list)
	switch b.kind {
	case AnomalyDuplicate:
		a.anomaly(AnomalyDuplicate, []int{t}, fmt.Sprintf("%s read key %s as %s, which holds %s twice", a.name(t), key, list, r.list[b.at]))
	case AnomalyGarbage:
		a.anomaly(AnomalyGarbage, []int{t}, fmt.Sprintf("%s read key %s as %s, but no transaction appended %s to it", a.name(t), key, list, r.list[b.at]))
	case AnomalyG1a:
		w := a.writer(b.id)
		a.anomaly(AnomalyG1a, []int{t, w}, fmt.Sprintf("%s read key %s as %s, with %s, which %s appended and which failed (aborted read)", a.name(t), key, list, r.list[b.at], a.name(w)))
	}
}

// nodes decides which transactions are in the graph: the ok ones, and
// the info ones whose appends a read saw (they happened).
func (a *listState) nodes() {
	a.in = make([]bool, a.n())
	for t := range a.ops {
		a.in[t] = a.okTxn(t)
	}
	for k := int32(0); k < int32(a.keys()); k++ {
		v, _ := a.keyOrder(k)
		for _, x := range v {
			if w := a.writer(x); a.info(w) {
				a.in[w] = true
			}
		}
	}
}

// appendsTo reports whether transaction t appends to key k.
func (a *listState) appendsTo(t int, k int32) bool {
	return slices.ContainsFunc(a.mopsOf(t), func(m tmop) bool { return m.f == fAppend && m.key == k })
}

// dependencies adds the ww, wr and rw edges of every key with a version
// order, and reports lost updates.
func (a *listState) dependencies() {
	var unseen []int
	type version struct{ n, t int32 }
	var byVersion []version
	for k := int32(0); k < int32(a.keys()); k++ {
		v, ok := a.keyOrder(k)
		if !ok {
			continue
		}
		for i := 1; i < len(v); i++ {
			a.edge(a.writer(v[i-1]), gedge{to: int32(a.writer(v[i])), key: k, a: v[i-1], b: v[i], kind: depWW})
		}
		// Appends no read saw, by transactions that happened (ok ones,
		// and info ones a read saw elsewhere), come after every element
		// read, in an order nobody saw.
		unseen = unseen[:0]
		for _, x := range a.keyVals[a.keyValOff[k]:a.keyValOff[k+1]] {
			if w := a.writer(x); a.pos[x] < 0 && a.in[w] && !slices.Contains(unseen, w) {
				unseen = append(unseen, w)
			}
		}
		slices.Sort(unseen)
		if len(v) > 0 {
			last := a.writer(v[len(v)-1])
			for _, u := range unseen {
				a.edge(last, gedge{to: int32(u), key: k, a: v[len(v)-1], b: -1, kind: depWW, unseen: true})
			}
		}
		byVersion = byVersion[:0]
		for _, ri := range a.byKey[a.keyOff[k]:a.keyOff[k+1]] {
			r := &a.reads[ri]
			if r.ext < 0 {
				continue
			}
			t, n := int(r.t), r.ext
			if n > 0 {
				a.edge(a.writer(v[n-1]), gedge{to: r.t, key: k, a: v[n-1], b: n, kind: depWR})
			}
			if int(n) < len(v) {
				a.edge(t, gedge{to: int32(a.writer(v[n])), key: k, a: n, b: v[n], kind: depRW})
			} else {
				for _, u := range unseen {
					a.edge(t, gedge{to: int32(u), key: k, a: n, b: -1, kind: depRW, unseen: true})
				}
			}
			if a.appendsTo(t, k) {
				byVersion = append(byVersion, version{n, r.t})
			}
		}
		slices.SortStableFunc(byVersion, func(x, y version) int { return int(x.n - y.n) })
		for i := 0; i < len(byVersion); {
			j := i
			for j < len(byVersion) && byVersion[j].n == byVersion[i].n {
				j++
			}
			if j-i > 1 && !a.g.counting {
				ts := make([]int, 0, j-i)
				names := make([]string, 0, j-i)
				for _, x := range byVersion[i:j] {
					ts = append(ts, int(x.t))
					names = append(names, a.name(int(x.t)))
				}
				a.anomaly(AnomalyLostUpdate, ts, fmt.Sprintf("%s all read key %s as %s and all appended to it: whichever came later should have seen the others' appends (lost update)", strings.Join(names, ", "), a.keyName(k), a.orderText(k, byVersion[i].n)))
			}
			i = j
		}
	}
}

// explainEdge says what a list-append dependency rests on.
func (a *listState) explainEdge(from int32, e gedge) string {
	f, to, key := a.name(int(from)), a.name(int(e.to)), a.keyName(e.key)
	switch {
	case e.kind == depWW && e.unseen:
		return fmt.Sprintf("%s appended %s to key %s, and %s appended after it an element no read saw (ww)", f, a.valText(e.a), key, to)
	case e.kind == depWW:
		return fmt.Sprintf("%s appended %s to key %s and %s appended %s right after it (ww)", f, a.valText(e.a), key, to, a.valText(e.b))
	case e.kind == depWR:
		return fmt.Sprintf("%s appended %s to key %s and %s read it as %s, ending there (wr)", f, a.valText(e.a), key, to, a.orderText(e.key, e.b))
	case e.kind == depRW && e.unseen:
		return fmt.Sprintf("%s read key %s as %s and %s appended to it an element no read saw, later (rw)", f, key, a.orderText(e.key, e.a), to)
	}
	return fmt.Sprintf("%s read key %s as %s and %s appended %s, the next element (rw)", f, key, a.orderText(e.key, e.a), to, a.valText(e.b))
}
