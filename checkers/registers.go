package checkers

import "github.com/eccheck/eccheck/history"

// Register functions, as eccheck's register workload and Jepsen's
// cas-register write them.
const (
	FRead  = "read"
	FWrite = "write"
	FCAS   = "cas"
	FAdd   = "add"
)

// Origin says where a value read from a register came from.
type Origin uint8

// The origins of a read value.
const (
	// FromWrite: exactly one write or CAS that may have taken effect wrote
	// the value.
	FromWrite Origin = iota
	// FromInitial: the value is nil, the register's initial value.
	FromInitial
	// FromSeveral: more than one operation wrote the value, so a read of it
	// does not name one write; checkers that need unique values skip it.
	FromSeveral
	// FromNowhere: no write that may have taken effect wrote the value
	// (it was never written, or only by writes that certainly failed).
	FromNowhere
)

// registerKey is one key's register operations, indexed for the
// register checkers. Positions refer to the Ops slice it was built from.
type registerKey struct {
	key string
	// writes are the writes and CASes that may have taken effect (OK or
	// Info), in invocation order.
	writes []int
	// reads are the successful reads, in invocation order.
	reads []int
	// writer maps a written value to the position of its write, or -1 when
	// several operations wrote it.
	writer map[history.Scalar]int
}

// writtenValue returns the value an operation writes: a write's value, or
// the new value of a CAS [old, new].
func writtenValue(o history.Operation) (history.Value, bool) {
	switch o.F {
	case FWrite:
		return o.Value, true
	case FCAS:
		_, nv, ok := o.Value.Pair()
		return nv, ok
	}
	return history.Value{}, false
}

// registers groups the register operations of ops by key, keys in order of
// first appearance.
func registers(ops []history.Operation) []*registerKey {
	byKey := make(map[string]*registerKey)
	var keys []*registerKey
	get := func(k string) *registerKey {
		rk := byKey[k]
		if rk == nil {
			rk = &registerKey{key: k, writer: make(map[history.Scalar]int)}
			byKey[k] = rk
			keys = append(keys, rk)
		}
		return rk
	}
	for i, o := range ops {
		switch {
		case o.F == FRead && o.Type == history.OK:
			rk := get(o.Key)
			rk.reads = append(rk.reads, i)
		case (o.F == FWrite || o.F == FCAS) && o.Type != history.Fail:
			v, ok := writtenValue(o)
			if !ok {
				continue
			}
			rk := get(o.Key)
			rk.writes = append(rk.writes, i)
			s := v.Scalar()
			if _, dup := rk.writer[s]; dup {
				rk.writer[s] = -1
			} else {
				rk.writer[s] = i
			}
		}
	}
	return keys
}

// origin says where value v of this key came from and, for FromWrite, the
// position of its write.
func (rk *registerKey) origin(v history.Value) (Origin, int) {
	if v.IsNil() {
		return FromInitial, -1
	}
	w, ok := rk.writer[v.Scalar()]
	switch {
	case !ok:
		return FromNowhere, -1
	case w < 0:
		return FromSeveral, -1
	}
	return FromWrite, w
}
