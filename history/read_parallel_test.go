package history

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// bigHistory writes n operations of a few processes as JSONL, every
// seventh line without its index, with a blank line now and then.
func bigHistory(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		p := i / 2 % 5
		typ := "invoke"
		if i%2 == 1 {
			typ = "ok"
		}
		op := i / 2
		if op%7 == 3 {
			fmt.Fprintf(&b, `{"time":%d,"process":%d,"type":%q,"f":"txn","value":[["append","k%d",%d],["r","k%d",null]]}`+"\n", i, p, typ, op%13, op, op%11)
		} else {
			fmt.Fprintf(&b, `{"index":%d,"time":%d,"process":%d,"type":%q,"f":"write","key":"k%d","value":%d}`+"\n", i, i, p, typ, op%13, op)
		}
		if i%1000 == 999 {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

func opsText(h History) string {
	var b []byte
	for _, op := range h {
		b = op.AppendJSON(b)
		b = append(b, '\n')
	}
	return string(b)
}

// The parallel reader gives what the sequential one gives: the same
// operations, indexes from line order, the same warning for a truncated
// last line and the same error, with its line, for a bad one.
func TestReadParallelMatchesSequential(t *testing.T) {
	good := bigHistory(60_000) // about 5 chunks
	bad := bytes.Replace(good, []byte(`"index":40001,`), []byte(`"index":"x",`), 1)
	truncated := append(bytes.Clone(good[:len(good)-1]), []byte(`{"time":99999,"process":1,"ty`)...)
	for name, in := range map[string][]byte{"good": good, "bad line": bad, "truncated last line": truncated} {
		t.Run(name, func(t *testing.T) {
			hs, ws, errS := readJSONL(bytes.NewReader(in), "h.jsonl", 0)
			hp, wp, errP := readJSONLParallel(bytes.NewReader(in), "h.jsonl", 0, 3)
			if fmt.Sprint(errS) != fmt.Sprint(errP) {
				t.Fatalf("errors differ:\nsequential %v\nparallel   %v", errS, errP)
			}
			if strings.Join(ws, "|") != strings.Join(wp, "|") {
				t.Fatalf("warnings differ:\nsequential %q\nparallel   %q", ws, wp)
			}
			if opsText(hs) != opsText(hp) {
				t.Fatalf("histories differ: %d and %d ops", len(hs), len(hp))
			}
			if name == "good" && len(hp) != 60_000 {
				t.Fatalf("read %d ops of 60000", len(hp))
			}
			t.Logf("%d ops, %d warnings, error %v", len(hp), len(wp), errP)
		})
	}
}
