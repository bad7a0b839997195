package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"testing"
)

// FuzzDecodeValueAgreesWithEncodingJSON holds the hand-written decoder to
// encoding/json: any text encoding/json accepts must decode, and writing the
// value back must give JSON that encoding/json reads as the same thing.
func FuzzDecodeValueAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`null`, `7`, `-12`, `1.5`, `1e3`, `99999999999999999999`, `"a"`, `"\u00e9\n"`, "\"\xff\"",
		`[1,[2,[3]],"x",null]`, `{"n1":["n2","n3"]}`, `true`, ` [ 1 , 2 ] `, `[]`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := decodeNumbers(b)
		if werr != nil {
			if _, err := decodeValue(b); err == nil {
				t.Fatalf("decodeValue accepted %q, which encoding/json rejects", b)
			}
			return
		}
		v, err := decodeValue(b)
		if err != nil {
			t.Fatalf("decodeValue(%q): %v", b, err)
		}
		got, err := decodeNumbers(v.AppendJSON(nil))
		if err != nil {
			t.Fatalf("value %q re-encoded as invalid JSON %q: %v", b, v.AppendJSON(nil), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %q as %s, which reads back as %#v, want %#v", b, v, got, want)
		}
	})
}

// decodeNumbers decodes b with encoding/json, numbers kept exact and
// integers normalised (so -0 and 0 compare equal).
func decodeNumbers(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("text after the value")
	}
	var norm func(any) any
	norm = func(x any) any {
		switch x := x.(type) {
		case json.Number:
			// Integers compare by value (-0 is 0); other numbers are kept
			// verbatim by both decoders, so they compare by text.
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return strconv.FormatInt(n, 10)
			}
			return string(x)
		case []any:
			for i := range x {
				x[i] = norm(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = norm(x[k])
			}
		}
		return x
	}
	return norm(x), nil
}

func BenchmarkDecodeOp(b *testing.B) {
	line := []byte(`{"index":12,"time":1539000,"process":3,"type":"ok","f":"cas","key":"k1","value":[7,9],"node":"n2"}`)
	names := newInterner()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeOp(line, names); err != nil {
			b.Fatal(err)
		}
	}
}
