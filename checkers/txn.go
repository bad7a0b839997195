package checkers

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/eccheck/eccheck/history"
)

// FTxn is the operation function of a transaction: its value is a list of
// micro-operations, ["append", key, element], ["r", key, null] (completed
// as ["r", key, [elements...]] in list-append, or ["r", key, value] in
// rw-register) and ["w", key, value].
const FTxn = "txn"

// The micro-operation functions.
const (
	MopAppend = "append"
	MopRead   = "r"
	MopWrite  = "w"
)

// The micro-operation functions as numbers.
const (
	fAppend uint8 = iota
	fRead
	fWrite
)

// tmop is one micro-operation of a transaction, compact: its key and its
// element or written value as ids of the [txnSet]'s tables, and a read's
// result (only in a transaction that completed ok) pointing into the
// history itself, never copied.
type tmop struct {
	res *history.Value
	key int32
	val int32 // an append's element or a write's value; -1 for a read
	f   uint8
}

// txnSet is the transactions of a history in flat arrays: a million
// transactions are a few dozen allocations, not tens of millions. Keys
// and written values are interned: a key is a number (keyText gives its
// JSON text back), and each written value of a key (an appended element
// or a written register value, unique per key) is a number too, with the
// transaction that wrote it.
type txnSet struct {
	ops      []*history.Operation
	mopStart []int32 // transaction t's micro-operations are mops[mopStart[t]:mopStart[t+1]]
	mops     []tmop

	intKeys map[int64]int32
	strKeys map[string]int32
	keyText []string

	// ints lists each key's integer values sorted, key k's in
	// ints[intOff[k]:intOff[k+1]] (a binary search in a few cache lines
	// beats a map of millions of entries); strVals maps string values.
	ints    []intEntry
	intOff  []int32
	strVals map[strVal]int32
	valKey  []int32
	valArg  []*history.Value // the value as the history wrote it
	valTxn  []int32          // the transaction that wrote it
	valNext []int32          // the same transaction's next write to the key, or -1
	// keyVals lists each key's values: key k's are
	// keyVals[keyValOff[k]:keyValOff[k+1]].
	keyVals, keyValOff []int32

	appends, writes, readMops int
	// firstCall is, for a transaction that stands for a retried request,
	// the invocation of the request's first attempt (an earlier attempt
	// may have been applied already); retried marks such transactions.
	firstCall map[int]int64
}

// call is when transaction t was invoked: for a retried request, when its
// first attempt was.
func (s *txnSet) call(t int) int64 {
	if c, ok := s.firstCall[t]; ok {
		return c
	}
	return s.ops[t].Call
}

// retried reports whether transaction t stands for a request attempted
// more than once.
func (s *txnSet) retried(t int) bool {
	_, ok := s.firstCall[t]
	return ok
}

type intEntry struct {
	n  int64
	id int32
}

type strVal struct {
	key int32
	s   string
}

func (s *txnSet) n() int                 { return len(s.ops) }
func (s *txnSet) mopsOf(t int) []tmop    { return s.mops[s.mopStart[t]:s.mopStart[t+1]] }
func (s *txnSet) typ(t int) history.Type { return s.ops[t].Type }
func (s *txnSet) name(t int) string      { return fmt.Sprintf("T%d", s.ops[t].Invoke) }
func (s *txnSet) valText(v int32) string { return s.valArg[v].String() }
func (s *txnSet) writer(v int32) int     { return int(s.valTxn[v]) }
func (s *txnSet) keyName(k int32) string { return s.keyText[k] }
func (s *txnSet) failed(t int) bool      { return s.ops[t].Type == history.Fail }
func (s *txnSet) keys() int              { return len(s.keyText) }
func (s *txnSet) info(t int) bool        { return s.ops[t].Type == history.Info }
func (s *txnSet) okTxn(t int) bool       { return s.ops[t].Type == history.OK }
func (s *txnSet) lookupKey(k history.Value) int32 {
	if n, ok := k.AsInt(); ok {
		if id, ok := s.intKeys[n]; ok {
			return id
		}
		id := int32(len(s.keyText))
		s.intKeys[n] = id
		s.keyText = append(s.keyText, strconv.FormatInt(n, 10))
		return id
	}
	str, _ := k.AsString()
	if id, ok := s.strKeys[str]; ok {
		return id
	}
	id := int32(len(s.keyText))
	s.strKeys[str] = id
	s.keyText = append(s.keyText, k.String())
	return id
}

// lookupVal finds the id of the scalar v written to key: -1 when nobody
// wrote it (or it is not a scalar that can be written).
func (s *txnSet) lookupVal(key int32, v *history.Value) int32 {
	if n, ok := v.AsInt(); ok {
		seg := s.ints[s.intOff[key]:s.intOff[key+1]]
		if len(seg) <= 16 {
			for _, e := range seg {
				if e.n == n {
					return e.id
				}
			}
			return -1
		}
		if i, found := slices.BinarySearchFunc(seg, n, func(e intEntry, n int64) int { return cmp.Compare(e.n, n) }); found {
			return seg[i].id
		}
		return -1
	}
	if str, ok := v.AsString(); ok {
		if id, ok := s.strVals[strVal{key, str}]; ok {
			return id
		}
	}
	return -1
}

// attemptRank orders the outcomes of a request's attempts: the one that
// stands for the request is the highest.
func attemptRank(t history.Type) int {
	switch t {
	case history.OK:
		return 2
	case history.Info:
		return 1
	}
	return 0
}

// parseTxns reads the micro-operations of the txn operations of ops. A
// value written twice to one key (by two transactions, or twice by one)
// is an error: both workloads need written values unique per key to tell
// versions apart.
func parseTxns(ops []history.Operation) (*txnSet, error) {
	s := &txnSet{intKeys: map[int64]int32{}, strKeys: map[string]int32{}, strVals: map[strVal]int32{}}
	// The attempts of a retried request (eccheck test --retry) are one
	// logical transaction: the one that certainly happened (ok) stands for
	// them, else the first that may have (info), else the first. Another
	// attempt applied too shows in the data (an element twice: the
	// duplicates checker names the request).
	var rep map[string]int
	var attempts map[string]int
	var first map[string]int64
	for i := range ops {
		if o := &ops[i]; o.F == FTxn && o.Request != "" {
			if rep == nil {
				rep, attempts, first = map[string]int{}, map[string]int{}, map[string]int64{}
			}
			j, seen := rep[o.Request]
			if !seen || attemptRank(o.Type) > attemptRank(ops[j].Type) {
				rep[o.Request] = i
			}
			if c, ok := first[o.Request]; !ok || o.Call < c {
				first[o.Request] = o.Call
			}
			attempts[o.Request]++
		}
	}
	take := func(i int) bool {
		return ops[i].F == FTxn && (ops[i].Request == "" || rep[ops[i].Request] == i)
	}
	var txns, mops int
	for i := range ops {
		if take(i) {
			txns++
			items, _ := ops[i].Value.AsList()
			mops += len(items)
		}
	}
	s.ops = make([]*history.Operation, 0, txns)
	for i := range ops {
		if take(i) {
			if r := ops[i].Request; r != "" && attempts[r] > 1 {
				if s.firstCall == nil {
					s.firstCall = map[int]int64{}
				}
				s.firstCall[len(s.ops)] = first[r]
			}
			s.ops = append(s.ops, &ops[i])
		}
	}
	// Sized for about half the micro-operations writing, so that a
	// million transactions grow no table on the way.
	s.mopStart = make([]int32, 1, len(s.ops)+1)
	s.mops = make([]tmop, 0, mops)
	s.valKey = make([]int32, 0, mops/2)
	s.valArg = make([]*history.Value, 0, mops/2)
	s.valTxn = make([]int32, 0, mops/2)
	s.valNext = make([]int32, 0, mops/2)
	for t, o := range s.ops {
		items, ok := o.Value.AsList()
		if !ok {
			return nil, fmt.Errorf("op %d: a txn's value must be a list of micro-operations, not %s", o.Invoke, o.Value)
		}
		for i := range items {
			if err := s.parseMop(t, o, i, &items[i]); err != nil {
				return nil, err
			}
		}
		s.mopStart = append(s.mopStart, int32(len(s.mops)))
	}
	if s.appends > 0 && s.writes > 0 {
		return nil, fmt.Errorf("the transactions both append (%d) and write (%d): a history is list-append or rw-register, not both", s.appends, s.writes)
	}
	return s, s.index()
}

// index groups the values by key and sorts each key's integer values,
// which finds a value written twice.
func (s *txnSet) index() error {
	s.keyVals, s.keyValOff = groupBy(len(s.valKey), s.keys(), func(i int) int32 { return s.valKey[i] })
	s.ints = make([]intEntry, 0, len(s.valKey))
	s.intOff = make([]int32, s.keys()+1)
	for k := 0; k < s.keys(); k++ {
		start := len(s.ints)
		for _, id := range s.keyVals[s.keyValOff[k]:s.keyValOff[k+1]] {
			if n, ok := s.valArg[id].AsInt(); ok {
				s.ints = append(s.ints, intEntry{n, id})
			}
		}
		seg := s.ints[start:]
		slices.SortFunc(seg, func(x, y intEntry) int {
			if c := cmp.Compare(x.n, y.n); c != 0 {
				return c
			}
			return cmp.Compare(x.id, y.id)
		})
		for i := 1; i < len(seg); i++ {
			if seg[i].n == seg[i-1].n {
				return s.duplicate(seg[i-1].id, seg[i].id)
			}
		}
		s.intOff[k+1] = int32(len(s.ints))
	}
	return nil
}

// duplicate says that values first and again are one value written twice.
func (s *txnSet) duplicate(first, again int32) error {
	k := s.valKey[first]
	what, need, verb := "element", "list-append needs elements unique per key to infer the order of versions", "appended"
	if s.writes > 0 {
		what, need, verb = "value", "rw-register needs values unique per key to tell which write a read saw", "written"
	}
	return fmt.Errorf("%s %s is %s to key %s by both %s and %s: %s", what, s.valArg[first], verb, s.keyText[k], s.name(s.writer(first)), s.name(s.writer(again)), need)
}

func (s *txnSet) parseMop(t int, o *history.Operation, i int, it *history.Value) error {
	parts, ok := it.AsList()
	if !ok || len(parts) != 3 {
		return fmt.Errorf("op %d: micro-operation %d is %s, want [f, key, value]", o.Invoke, i, it)
	}
	fs, _ := parts[0].AsString()
	var f uint8
	switch fs {
	case MopAppend:
		f = fAppend
	case MopRead:
		f = fRead
	case MopWrite:
		f = fWrite
	default:
		return fmt.Errorf("op %d: micro-operation %d is %s: want f append, r or w", o.Invoke, i, it)
	}
	k := parts[1]
	if k.Kind() != history.KindString && k.Kind() != history.KindInt {
		return fmt.Errorf("op %d: micro-operation %d is %s: a key is a string or an integer", o.Invoke, i, it)
	}
	m := tmop{f: f, key: s.lookupKey(k), val: -1}
	if f == fRead {
		s.readMops++
		if o.Type == history.OK {
			m.res = &parts[2]
		}
		s.mops = append(s.mops, m)
		return nil
	}
	v := &parts[2]
	if !v.IsScalar() || v.IsNil() {
		return fmt.Errorf("op %d: micro-operation %d is %s: an element or a value is an integer or a string", o.Invoke, i, it)
	}
	if f == fAppend {
		s.appends++
	} else {
		s.writes++
	}
	id := int32(len(s.valKey))
	if str, isStr := v.AsString(); isStr {
		// Integers are indexed once all are read (see index).
		if prev, dup := s.strVals[strVal{m.key, str}]; dup {
			s.valTxn = append(s.valTxn[:id], int32(t)) // for the message
			s.valKey, s.valArg = append(s.valKey[:id], m.key), append(s.valArg[:id], v)
			return s.duplicate(prev, id)
		}
		s.strVals[strVal{m.key, str}] = id
	}
	// Link the transaction's previous write to the key to this one.
	for j := len(s.mops) - 1; j >= int(s.mopStart[t]); j-- {
		if p := s.mops[j]; p.key == m.key && p.val >= 0 {
			s.valNext[p.val] = id
			break
		}
	}
	m.val = id
	s.valKey = append(s.valKey, m.key)
	s.valArg = append(s.valArg, v)
	s.valTxn = append(s.valTxn, int32(t))
	s.valNext = append(s.valNext, -1)
	s.mops = append(s.mops, m)
	return nil
}

// txnKind says which transactional workload the micro-operations of ops
// are: list-append when they append, rw-register when they write; "" when
// neither (reads only), and an error when both.
func txnKind(ops []history.Operation) (Workload, error) {
	var appends, writes int
	for i := range ops {
		if ops[i].F == FTxn {
			a, w := txnCounts(&ops[i].Value)
			appends, writes = appends+a, writes+w
		}
	}
	return kindOf(appends, writes)
}

// txnCounts counts the appends and the writes of a transaction's value.
func txnCounts(v *history.Value) (appends, writes int) {
	items, _ := v.AsList()
	for i := range items {
		parts, _ := items[i].AsList()
		if len(parts) == 0 {
			continue
		}
		switch f, _ := parts[0].AsString(); f {
		case MopAppend:
			appends++
		case MopWrite:
			writes++
		}
	}
	return appends, writes
}

func kindOf(appends, writes int) (Workload, error) {
	switch {
	case appends > 0 && writes > 0:
		return "", fmt.Errorf("the transactions both append (%d) and write (%d): a history is list-append or rw-register, not both", appends, writes)
	case writes > 0:
		return WorkloadRWRegister, nil
	case appends > 0:
		return WorkloadListAppend, nil
	}
	return "", nil
}

// listText renders a read's list briefly, for explanations.
func listText(v history.Value) string {
	items, ok := v.AsList()
	if !ok {
		return v.String()
	}
	if len(items) <= 8 {
		return v.String()
	}
	parts := make([]string, 0, 7)
	for _, it := range items[:3] {
		parts = append(parts, it.String())
	}
	parts = append(parts, "...")
	for _, it := range items[len(items)-3:] {
		parts = append(parts, it.String())
	}
	return "[" + strings.Join(parts, ",") + "] (" + fmt.Sprint(len(items)) + " elements)"
}

// valuesText renders a list of values briefly.
func valuesText(vs []history.Value) string { return listText(history.List(vs...)) }

// sameScalar reports whether two scalar values are equal.
func sameScalar(a, b *history.Value) bool {
	if an, ok := a.AsInt(); ok {
		bn, ok := b.AsInt()
		return ok && an == bn
	}
	return a.Scalar() == b.Scalar()
}
