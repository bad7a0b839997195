package history

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestValueJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string // JSON text
		kind Kind
		out  string // canonical JSON text
	}{
		{"json/null/nil", `null`, KindNil, `null`},
		{"json/null-with-space/nil", "  null\n", KindNil, `null`},
		{"json/zero/int", `0`, KindInt, `0`},
		{"json/negative/int", `-7`, KindInt, `-7`},
		{"json/negative-zero/int", `-0`, KindInt, `0`},
		{"json/max-int64/int", strconv.FormatInt(math.MaxInt64, 10), KindInt, strconv.FormatInt(math.MaxInt64, 10)},
		{"json/min-int64/int", strconv.FormatInt(math.MinInt64, 10), KindInt, strconv.FormatInt(math.MinInt64, 10)},
		{"json/beyond-int64/other", `9223372036854775808`, KindOther, `9223372036854775808`},
		{"json/below-int64/other", `-9223372036854775809`, KindOther, `-9223372036854775809`},
		{"json/huge-integer/other", `123456789012345678901234567890`, KindOther, `123456789012345678901234567890`},
		{"json/float/other", `1.5`, KindOther, `1.5`},
		{"json/exponent/other", `1e3`, KindOther, `1e3`},
		{"json/true/other", `true`, KindOther, `true`},
		{"json/plain-string/string", `"abc"`, KindString, `"abc"`},
		{"json/empty-string/string", `""`, KindString, `""`},
		{"json/escapes/string", `"q\" b\\ n\n t\t u\u0001"`, KindString, `"q\" b\\ n\n t\t u\u0001"`},
		{"json/unicode/string", `"é ☃"`, KindString, `"é ☃"`},
		{"json/unicode-escape/string", `"\u00e9"`, KindString, `"é"`},
		{"json/html-characters/string", `"<a&b>"`, KindString, `"<a&b>"`},
		{"json/empty-array/list", `[]`, KindList, `[]`},
		{"json/nested-array/list", `[1, [2, [3, null]], "a", {"k": 1}]`, KindList, `[1,[2,[3,null]],"a",{"k":1}]`},
		{"json/cas-pair/list", `[7,9]`, KindList, `[7,9]`},
		{"json/object/other-compacted", `{"n1": ["n2", "n3"],  "b": {"c": null}}`, KindOther, `{"n1":["n2","n3"],"b":{"c":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseValue(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if v.Kind() != tt.kind || v.String() != tt.out {
				t.Fatalf("ParseValue(%s) = %s (kind %d), want %s (kind %d)", tt.in, v, v.Kind(), tt.out, tt.kind)
			}
			// Marshal and unmarshal again through encoding/json.
			b, err := json.Marshal(struct{ V Value }{v})
			if err != nil {
				t.Fatal(err)
			}
			var back struct{ V Value }
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !back.V.Equal(v) || back.V.Scalar() != v.Scalar() {
				t.Errorf("round trip of %s gave %s", v, back.V)
			}
		})
	}
}

func TestValueJSONInvalid(t *testing.T) {
	for _, in := range []string{"", "   ", "nul", "-", "01", "-01", "+1", "1.", `"abc`, `[1,`, `{`, `{"a":}`, `tru`, `[1]]`} {
		t.Run("json/invalid/"+strconv.Quote(in)+"/error", func(t *testing.T) {
			if v, err := ParseValue(in); err == nil {
				t.Errorf("ParseValue(%q) = %s, want an error", in, v)
			}
		})
	}
}

func TestValueInvalidUTF8(t *testing.T) {
	// encoding/json replaces invalid UTF-8 with U+FFFD; the fast path must
	// agree, or a value would change when written and read again.
	in := "\"a\xffb\""
	v, err := ParseValue(in)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := v.AsString()
	if s != "a\uFFFDb" {
		t.Errorf("ParseValue(%q) = %q, want %q", in, s, "a\uFFFDb")
	}
	back, err := ParseValue(v.String())
	if err != nil || !back.Equal(v) {
		t.Errorf("round trip gave %s, %v", back, err)
	}
}

func TestValueConstructors(t *testing.T) {
	if !Nil().IsNil() || !(Value{}).IsNil() || Nil().String() != "null" {
		t.Error("Nil is not the zero value")
	}
	if n, ok := Int(5).AsInt(); !ok || n != 5 {
		t.Errorf("Int(5).AsInt() = %d, %v", n, ok)
	}
	if _, ok := String("5").AsInt(); ok {
		t.Error(`String("5").AsInt() reports an int`)
	}
	if s, ok := String("x").AsString(); !ok || s != "x" {
		t.Errorf(`String("x").AsString() = %q, %v`, s, ok)
	}
	if got := List().String(); got != "[]" {
		t.Errorf("List() = %s, want []", got)
	}
	if got := Ints(1, 2, 3).String(); got != "[1,2,3]" {
		t.Errorf("Ints(1,2,3) = %s", got)
	}
	if l, ok := Ints(4, 5).AsList(); !ok || len(l) != 2 || !l[1].Equal(Int(5)) {
		t.Errorf("Ints(4,5).AsList() = %v, %v", l, ok)
	}
	old, nw, ok := Ints(7, 9).Pair()
	if !ok || !old.Equal(Int(7)) || !nw.Equal(Int(9)) {
		t.Errorf("Ints(7,9).Pair() = %s, %s, %v", old, nw, ok)
	}
	for _, v := range []Value{Int(1), Ints(1), Ints(1, 2, 3), String("ab")} {
		if _, _, ok := v.Pair(); ok {
			t.Errorf("%s.Pair() reports a pair", v)
		}
	}
	for v, want := range map[*Value]bool{{}: true, ptr(Int(1)): true, ptr(String("")): true, ptr(Ints()): false, ptr(mustParse(t, `{}`)): false} {
		if v.IsScalar() != want {
			t.Errorf("%s.IsScalar() = %v, want %v", *v, !want, want)
		}
	}
	raw, err := Raw([]byte(`{"a": 1}`))
	if err != nil || raw.Kind() != KindOther || raw.String() != `{"a":1}` {
		t.Errorf("Raw = %s (kind %d), %v", raw, raw.Kind(), err)
	}
	if _, err := Raw([]byte(`{"a"`)); err == nil {
		t.Error("Raw of invalid JSON gave no error")
	}
}

func ptr(v Value) *Value { return &v }

func mustParse(t *testing.T, s string) Value {
	t.Helper()
	v, err := ParseValue(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValueEqualAndScalar(t *testing.T) {
	tests := []struct {
		name  string
		a, b  Value
		equal bool
	}{
		{"equal/nil-nil/equal", Nil(), Value{}, true},
		{"equal/same-int/equal", Int(3), Int(3), true},
		{"equal/different-int/not", Int(3), Int(4), false},
		{"equal/int-and-string/not", Int(1), String("1"), false},
		{"equal/nil-and-zero/not", Nil(), Int(0), false},
		{"equal/nil-and-empty-string/not", Nil(), String(""), false},
		{"equal/same-list/equal", Ints(1, 2), List(Int(1), Int(2)), true},
		{"equal/list-order/not", Ints(1, 2), Ints(2, 1), false},
		{"equal/list-length/not", Ints(1, 2), Ints(1, 2, 3), false},
		{"equal/nested-list/equal", List(Ints(1), String("a")), mustParse(t, `[[1],"a"]`), true},
		{"equal/same-object/equal", mustParse(t, `{"a": 1}`), mustParse(t, `{"a":1}`), true},
		{"equal/different-object/not", mustParse(t, `{"a":1}`), mustParse(t, `{"a":2}`), false},
		{"equal/big-integers/equal", mustParse(t, `99999999999999999999`), mustParse(t, `99999999999999999999`), true},
		{"equal/list-and-object/not", Ints(1), mustParse(t, `{"1":1}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.equal {
				t.Errorf("%s.Equal(%s) = %v", tt.a, tt.b, got)
			}
			if got := tt.b.Equal(tt.a); got != tt.equal {
				t.Errorf("%s.Equal(%s) = %v (not symmetric)", tt.b, tt.a, got)
			}
			if got := tt.a.Scalar() == tt.b.Scalar(); got != tt.equal {
				t.Errorf("Scalar(%s) == Scalar(%s) is %v, want %v", tt.a, tt.b, got, tt.equal)
			}
		})
	}
}

func TestScalar(t *testing.T) {
	// Scalars are map keys: equal values land on one entry.
	seen := map[Scalar]int{}
	for _, v := range []Value{Int(1), mustParse(t, "1"), String("1"), Nil(), Ints(1, 2), mustParse(t, "[1, 2]")} {
		seen[v.Scalar()]++
	}
	if len(seen) != 4 || seen[Int(1).Scalar()] != 2 || seen[Ints(1, 2).Scalar()] != 2 {
		t.Errorf("scalar map = %v", seen)
	}
	if !Nil().Scalar().IsNil() || Int(0).Scalar().IsNil() {
		t.Error("Scalar.IsNil is wrong")
	}
	for _, v := range []Value{Nil(), Int(-4), String("x\"y"), Ints(1, 2), List(String("a"), Nil()), mustParse(t, `{"k":[1]}`), mustParse(t, `1.25`)} {
		s := v.Scalar()
		if back := s.Value(); !back.Equal(v) {
			t.Errorf("Scalar(%s).Value() = %s", v, back)
		}
		if s.String() != v.String() {
			t.Errorf("Scalar(%s).String() = %s", v, s.String())
		}
	}
}

func TestValueAppendJSON(t *testing.T) {
	b := []byte("prefix:")
	b = List(String("é\n"), Int(-1), Nil()).AppendJSON(b)
	if got := string(b); got != `prefix:["é\n",-1,null]` {
		t.Errorf("AppendJSON = %s", got)
	}
	if !json.Valid([]byte(String("\x00\x1f\"\\\u2028").String())) {
		t.Error("String with control characters is not valid JSON")
	}
	if s := String(strings.Repeat("a", 100)).String(); len(s) != 102 {
		t.Errorf("long simple string rendered as %d bytes", len(s))
	}
}
