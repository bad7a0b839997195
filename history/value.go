package history

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unsafe"
)

// Kind is the shape of a [Value].
type Kind uint8

// The kinds of value an operation can carry.
const (
	KindNil    Kind = iota // JSON null: a read of a never-written key, or no value
	KindInt                // an integer that fits in int64
	KindString             // a JSON string
	KindList               // a JSON array: a CAS pair, a set read, a Jepsen tuple
	KindOther              // any other JSON (objects, floats, booleans), kept verbatim
)

// Value is the value of an operation: what was written, what was read, a CAS
// pair [old, new], or the elements of a set. Scalars (nil, integers, strings)
// compare with [Value.Scalar]; anything else is kept as it was written.
//
// The zero Value is nil.
//
// A Value is 24 bytes, not the 56 of a struct with a string, a slice and
// an integer side by side: a history of transactions holds tens of
// millions of them (every micro-operation is a list of three), and their
// size decided how fast such a history could be read.
type Value struct {
	// p points at the bytes of a string (KindString, and the raw JSON of
	// KindOther) or at the first element of a list (KindList); n is then
	// their length, and the integer itself for KindInt.
	p    unsafe.Pointer
	n    int64
	kind Kind
}

// emptyList is where an empty list points, so that it reads back as an
// empty (not nil) slice.
var emptyList [1]Value

// Nil returns the nil value.
func Nil() Value { return Value{} }

// Int returns an integer value.
func Int(n int64) Value { return Value{kind: KindInt, n: n} }

// String returns a string value.
func String(s string) Value {
	return Value{kind: KindString, p: unsafe.Pointer(unsafe.StringData(s)), n: int64(len(s))}
}

// other returns a value of KindOther holding the JSON text js.
func other(js string) Value {
	return Value{kind: KindOther, p: unsafe.Pointer(unsafe.StringData(js)), n: int64(len(js))}
}

// List returns a list value holding vs (not a copy).
func List(vs ...Value) Value {
	if len(vs) == 0 {
		return Value{kind: KindList, p: unsafe.Pointer(&emptyList[0])}
	}
	return Value{kind: KindList, p: unsafe.Pointer(unsafe.SliceData(vs)), n: int64(len(vs))}
}

// str returns the string of a KindString value, or the JSON text of a
// KindOther one; "" otherwise.
func (v Value) str() string {
	if v.kind != KindString && v.kind != KindOther || v.n == 0 {
		return ""
	}
	return unsafe.String((*byte)(v.p), int(v.n))
}

// list returns the elements of a list; nil for any other kind.
func (v Value) list() []Value {
	if v.kind != KindList {
		return nil
	}
	return unsafe.Slice((*Value)(v.p), int(v.n))[:v.n:v.n]
}

// num returns the integer of a KindInt value; 0 otherwise.
func (v Value) num() int64 {
	if v.kind != KindInt {
		return 0
	}
	return v.n
}

// Ints returns a list value of integers.
func Ints(ns ...int64) Value {
	vs := make([]Value, len(ns))
	for i, n := range ns {
		vs[i] = Int(n)
	}
	return List(vs...)
}

// Raw returns a value holding arbitrary JSON, kept verbatim. Valid JSON null,
// integers, strings and arrays are decoded into their own kinds instead.
func Raw(js []byte) (Value, error) {
	var v Value
	err := v.UnmarshalJSON(js)
	return v, err
}

// Kind reports the shape of v.
func (v Value) Kind() Kind { return v.kind }

// IsNil reports whether v is nil.
func (v Value) IsNil() bool { return v.kind == KindNil }

// AsInt returns v as an integer, and whether it is one.
func (v Value) AsInt() (int64, bool) { return v.num(), v.kind == KindInt }

// AsString returns v as a string, and whether it is one.
func (v Value) AsString() (string, bool) {
	if v.kind != KindString {
		return "", false
	}
	return v.str(), true
}

// AsList returns the elements of v, and whether it is a list.
func (v Value) AsList() ([]Value, bool) { return v.list(), v.kind == KindList }

// Pair returns the two elements of a two-element list, such as a CAS
// [old, new], and whether v is one.
func (v Value) Pair() (Value, Value, bool) {
	if v.kind != KindList || v.n != 2 {
		return Value{}, Value{}, false
	}
	l := v.list()
	return l[0], l[1], true
}

// IsScalar reports whether v is nil, an integer or a string.
func (v Value) IsScalar() bool { return v.kind <= KindString }

// Scalar is a comparable form of a scalar [Value], fit to be a map key.
type Scalar struct {
	kind Kind
	num  int64
	str  string
}

// Scalar returns the comparable form of v. Lists and other values map to a
// Scalar holding their JSON text, so two equal lists give equal Scalars.
func (v Value) Scalar() Scalar {
	switch v.kind {
	case KindNil, KindInt, KindString:
		return Scalar{kind: v.kind, num: v.num(), str: v.str()}
	default:
		return Scalar{kind: KindOther, str: v.String()}
	}
}

// IsNil reports whether s is the nil value.
func (s Scalar) IsNil() bool { return s.kind == KindNil }

// Value returns s as a Value.
func (s Scalar) Value() Value {
	if s.kind == KindOther {
		v, err := Raw([]byte(s.str))
		if err != nil {
			return other(s.str)
		}
		return v
	}
	switch s.kind {
	case KindInt:
		return Int(s.num)
	case KindString:
		return String(s.str)
	}
	return Value{}
}

// String returns the JSON text of s.
func (s Scalar) String() string { return s.Value().String() }

// Equal reports whether v and w are the same value.
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case KindNil:
		return true
	case KindInt:
		return v.n == w.n
	case KindString, KindOther:
		return v.str() == w.str()
	default:
		vl, wl := v.list(), w.list()
		if len(vl) != len(wl) {
			return false
		}
		for i := range vl {
			if !vl[i].Equal(wl[i]) {
				return false
			}
		}
		return true
	}
}

// String returns the JSON text of v.
func (v Value) String() string { return string(v.AppendJSON(nil)) }

// AppendJSON appends the JSON text of v to b.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.kind {
	case KindNil:
		return append(b, "null"...)
	case KindInt:
		return strconv.AppendInt(b, v.n, 10)
	case KindString:
		return appendJSONString(b, v.str())
	case KindList:
		b = append(b, '[')
		for i, e := range v.list() {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.AppendJSON(b)
		}
		return append(b, ']')
	default:
		return append(b, v.str()...)
	}
}

// MarshalJSON implements [json.Marshaler].
func (v Value) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

// UnmarshalJSON implements [json.Unmarshaler].
func (v *Value) UnmarshalJSON(b []byte) error {
	val, err := decodeValue(b)
	if err != nil {
		return err
	}
	*v = val
	return nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	js, _ := json.Marshal(s) // a Go string always marshals
	return append(b, js...)
}

// ParseValue parses the JSON text of a value; a convenience for tests and
// flags.
func ParseValue(s string) (Value, error) {
	var v Value
	if err := v.UnmarshalJSON([]byte(strings.TrimSpace(s))); err != nil {
		return Value{}, fmt.Errorf("parse value %q: %w", s, err)
	}
	return v, nil
}
