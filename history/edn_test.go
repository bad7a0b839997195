package history

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"olympos.io/encoding/edn"
)

// knossosExpected is one line of testdata/knossos/expected.txt.
type knossosExpected struct {
	path        string
	verdict     string
	ops         int
	invocations int
}

func readKnossosExpected(t *testing.T) []knossosExpected {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "knossos", "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []knossosExpected
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 4 {
			t.Fatalf("expected.txt: malformed line %q", line)
		}
		ops, err1 := strconv.Atoi(fs[2])
		inv, err2 := strconv.Atoi(fs[3])
		if err1 != nil || err2 != nil || (fs[1] != "valid" && fs[1] != "invalid") {
			t.Fatalf("expected.txt: malformed line %q", line)
		}
		out = append(out, knossosExpected{path: fs[0], verdict: fs[1], ops: ops, invocations: inv})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReadEDNKnossos(t *testing.T) {
	expected := readKnossosExpected(t)
	listed := make(map[string]bool)
	var good, bad int
	for _, e := range expected {
		listed[e.path] = true
		if e.verdict == "valid" {
			good++
		} else {
			bad++
		}
		t.Run("knossos/"+e.path+"/imports", func(t *testing.T) {
			h, warnings, err := ReadFile(filepath.Join("testdata", "knossos", e.path))
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %v", warnings)
			}
			if len(h) != e.ops {
				t.Errorf("got %d ops, want %d", len(h), e.ops)
			}
			invocations := 0
			for i, op := range h {
				if op.Type == Invoke {
					invocations++
				}
				if op.Index != int64(i) || op.Time != int64(i) {
					t.Errorf("op %d: index %d time %d, want both %d (Knossos files have neither)", i, op.Index, op.Time, i)
				}
				if op.Key != "" || op.Process == Nemesis {
					t.Errorf("op %d: key %q process %s, want a single-register client op", i, op.Key, op.Process)
				}
				switch op.F {
				case "read", "write":
					if !op.Value.IsScalar() {
						t.Errorf("op %d: %s value %s is not a scalar", i, op.F, op.Value)
					}
				case "cas":
					if _, _, ok := op.Value.Pair(); !ok {
						t.Errorf("op %d: cas value %s is not a pair", i, op.Value)
					}
				default:
					t.Errorf("op %d: unexpected f %q", i, op.F)
				}
			}
			if invocations != e.invocations {
				t.Errorf("got %d invocations, want %d", invocations, e.invocations)
			}
			if len(Pair(h)) != e.invocations {
				t.Errorf("Pair gave %d operations, want %d", len(Pair(h)), e.invocations)
			}
		})
	}
	if good == 0 || bad == 0 {
		t.Errorf("expected.txt lists %d good and %d bad histories; want some of each", good, bad)
	}
	// Every history in the directory has an expected verdict.
	files, err := filepath.Glob(filepath.Join("testdata", "knossos", "*", "*.edn"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join("testdata", "knossos"), f)
		if !listed[filepath.ToSlash(rel)] {
			t.Errorf("%s has no line in expected.txt", rel)
		}
	}
}

func TestReadEDNKnossosDetails(t *testing.T) {
	h, _, err := ReadFile(filepath.Join("testdata", "knossos", "bad", "immediate-failure.edn"))
	if err != nil {
		t.Fatal(err)
	}
	// {:type :fail, :process 101, :f :write, :value 3, :error [:temporarily-unavailable nil]}
	if got := h[2]; got.Type != Fail || got.Process != 101 || got.F != "write" || !got.Value.Equal(Int(3)) || got.Error != "[:temporarily-unavailable nil]" {
		t.Errorf("op 2 = %+v", got)
	}
	ops := Pair(h)
	if len(ops) != 2 || ops[0].F != "read" || !ops[0].Value.Equal(Int(3)) || ops[0].Return != 3 {
		t.Errorf("read operation = %+v", ops[0])
	}
}

func TestReadEDNJepsenIndependent(t *testing.T) {
	h, _, err := ReadFile(filepath.Join("testdata", "jepsen", "independent.edn"))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 11 {
		t.Fatalf("got %d ops, want 11", len(h))
	}
	want := []struct {
		index   int
		time    int64
		process Process
		typ     Type
		f, key  string
		value   string
		err     string
		node    string
	}{
		{0, 1000000, 0, Invoke, "write", "1", `3`, "", ""},
		{1, 1200000, 1, Invoke, "read", "2", `null`, "", ""},
		{3, 3000000, Nemesis, Info, "start", "", `null`, "", ""},
		{4, 3100000, Nemesis, Info, "start", "", `["isolated",{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}]`, "", ""},
		{6, 5000000, 0, Invoke, "cas", "1", `[3,4]`, "", ""},
		{7, 6000000, 0, Fail, "cas", "1", `[3,4]`, "precondition-failed", ""},
		{9, 9000000, 1, Info, "read", "1", `null`, `[:timeout "no reply in 5000 ms"]`, "n2"},
		{10, 9500000, 6, Invoke, "write", "2", `7`, "", ""},
	}
	for _, w := range want {
		op := h[w.index]
		if op.Index != int64(w.index) || op.Time != w.time || op.Process != w.process || op.Type != w.typ ||
			op.F != w.f || op.Key != w.key || op.Value.String() != w.value || op.Error != w.err || op.Node != w.node {
			t.Errorf("op %d = %+v (value %s)\nwant %+v", w.index, op, op.Value, w)
		}
	}
}

func TestReadEDNShapes(t *testing.T) {
	t.Run("edn/jepsen-records/read-as-maps", func(t *testing.T) {
		h, _, err := ReadFile(filepath.Join("testdata", "jepsen", "records.edn"))
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 4 || h[0].F != "add" || h[0].Time != 2000 || h[3].Index != 3 {
			t.Fatalf("history = %+v", h)
		}
		// An EDN set becomes a list in a stable order.
		if got := h[3].Value.String(); got != "[1,2,3]" {
			t.Errorf("set read = %s, want [1,2,3]", got)
		}
	})
	t.Run("edn/elle-transactions/not-independent", func(t *testing.T) {
		h, _, err := ReadFile(filepath.Join("testdata", "jepsen", "elle-append.edn"))
		if err != nil {
			t.Fatal(err)
		}
		if h[1].Key != "" {
			t.Errorf("key = %q, want none: a transaction of two micro-ops is not a [key value] tuple", h[1].Key)
		}
		if got := h[1].Value.String(); got != `[["append",5,1],["r",5,[1]]]` {
			t.Errorf("value = %s", got)
		}
	})
	t.Run("edn/empty-input/empty-history", func(t *testing.T) {
		for _, in := range []string{"", "  \n", "; only a comment\n", "[]", "( )\n"} {
			h, err := ReadEDN(strings.NewReader(in), "empty.edn")
			if err != nil || len(h) != 0 {
				t.Errorf("ReadEDN(%q) = %v, %v; want an empty history", in, h, err)
			}
		}
	})
	t.Run("edn/comments-commas-and-discards/skipped", func(t *testing.T) {
		in := "; a Jepsen history\n{:type :invoke, :f :read, :process 0, :time 1},\n#_{:type :bogus}\n;; between\n{:type :ok, :f :read, :process 0, :time 2, :value 5} ; trailing\n#_ 42"
		h, err := ReadEDN(strings.NewReader(in), "c.edn")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 || !h[1].Value.Equal(Int(5)) {
			t.Errorf("history = %+v", h)
		}
	})
	t.Run("edn/big-integer-time/fits", func(t *testing.T) {
		in := "{:type :invoke, :f :read, :process 0, :time 12N}\n{:type :ok, :f :read, :process 0, :time 13N, :value 1N}"
		h, err := ReadEDN(strings.NewReader(in), "n.edn")
		if err != nil {
			t.Fatal(err)
		}
		if h[1].Time != 13 || !h[1].Value.Equal(Int(1)) {
			t.Errorf("history = %+v", h)
		}
	})
	t.Run("edn/brackets-in-strings-comments-and-characters/not-nesting", func(t *testing.T) {
		many := strings.Repeat("[", 20_000)
		in := "; " + many + "\n{:type :invoke, :f :read, :process 0, :time 1, :value [\\[ \\( \\{], :error \"" + many + "\\\" [\"}"
		h, err := ReadEDN(strings.NewReader(in), "s.edn")
		if err != nil {
			t.Fatal(err)
		}
		if h[0].Value.String() != `["[","(","{"]` || len(h[0].Error) != 20_003 {
			t.Errorf("op = %s, error of %d bytes", h[0].Value, len(h[0].Error))
		}
	})
	t.Run("edn/string-process-and-type/accepted", func(t *testing.T) {
		in := `{"type" "invoke", "f" "start", "process" "nemesis", "time" 1}`
		h, err := ReadEDN(strings.NewReader(in), "s.edn")
		if err != nil {
			t.Fatal(err)
		}
		if h[0].Process != Nemesis || h[0].Type != Invoke || h[0].F != "start" {
			t.Errorf("op = %+v", h[0])
		}
	})
}

func TestReadEDNIndependentOption(t *testing.T) {
	yes, no := true, false
	plain := "{:type :invoke, :f :write, :value [1 3], :process 0, :time 1}\n{:type :ok, :f :write, :value [1 3], :process 0, :time 2}\n"
	tests := []struct {
		name    string
		in      string
		opt     *bool
		key     string
		value   string
		wantErr string
	}{
		{"independent/detected/split", plain, nil, "1", "3", ""},
		{"independent/forced-off/kept-whole", plain, &no, "", "[1,3]", ""},
		{"independent/forced-on/split", plain, &yes, "1", "3", ""},
		{"independent/keyword-key/name", "{:type :invoke, :f :write, :value [:x 3], :process 0, :time 1}", nil, "x", "3", ""},
		{"independent/string-key/text", `{:type :invoke, :f :write, :value ["k 1" 3], :process 0, :time 1}`, nil, "k 1", "3", ""},
		{"independent/register-read-of-nil/not-detected", "{:type :invoke, :f :read, :value nil, :process 0, :time 1}\n{:type :invoke, :f :write, :value [1 3], :process 1, :time 2}", nil, "", "[1,3]", ""},
		{"independent/cas-without-inner-pair/not-detected", "{:type :invoke, :f :cas, :value [1 3], :process 0, :time 1}", nil, "", "[1,3]", ""},
		{"independent/cas-with-inner-pair/detected", "{:type :invoke, :f :cas, :value [1 [3 4]], :process 0, :time 1}", nil, "1", "[3,4]", ""},
		{"independent/nemesis-only/not-detected", "{:type :info, :f :kill, :value [1 3], :process :nemesis, :time 1}", nil, "", "[1,3]", ""},
		{"independent/forced-on-with-plain-value/error", "{:type :invoke, :f :read, :value nil, :process 0, :time 1}", &yes, "", "", "not an independent [key value] tuple"},
		{"independent/forced-on-with-vector-key/error", "{:type :invoke, :f :read, :value [[1] nil], :process 0, :time 1}", &yes, "", "", "not an independent [key value] tuple"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadEDNWith(strings.NewReader(tt.in), "i.edn", EDNOptions{Independent: tt.opt})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			last := h[len(h)-1]
			if last.Key != tt.key || last.Value.String() != tt.value {
				t.Errorf("last op key %q value %s, want key %q value %s", last.Key, last.Value, tt.key, tt.value)
			}
		})
	}
}

func TestReadEDNErrors(t *testing.T) {
	ok := "{:type :invoke, :f :read, :process 0, :time 1}\n"
	tests := []struct {
		name string
		in   string
		line int    // 0: not a *LineError
		want string // substring of the message
	}{
		{"errors/unbalanced-vector-in-value/names-line", ok + ok[:len(ok)-2] + " :value [1 2}\n", 2, "op 1: invalid EDN"},
		{"errors/truncated-map/names-line", ok + "\n{:type :ok, :f :read, :process 0,", 3, "op 1: invalid EDN"},
		{"errors/missing-type/names-op", ok + "{:f :read, :process 1, :time 2}\n", 2, "op 1: missing :type"},
		{"errors/unknown-type/names-op", "{:type :log, :f :read, :process 1, :time 2}", 1, `unknown type "log"`},
		{"errors/missing-f/names-op", "{:type :invoke, :process 1, :time 2}", 1, "missing :f"},
		{"errors/negative-process/names-op", "{:type :invoke, :f :read, :process -1, :time 2}", 1, ":process must be a non-negative integer or :nemesis, got -1"},
		{"errors/keyword-process/names-op", "{:type :invoke, :f :read, :process :client, :time 2}", 1, `got "client"`},
		{"errors/missing-process/names-op", "{:type :invoke, :f :read, :time 2}", 1, "got nil"},
		{"errors/negative-time/names-op", "{:type :invoke, :f :read, :process 0, :time -5}", 1, ":time must be a non-negative integer"},
		{"errors/float-time/names-op", "{:type :invoke, :f :read, :process 0, :time 1.5}", 1, ":time must be a non-negative integer"},
		{"errors/string-index/names-op", `{:type :invoke, :f :read, :process 0, :time 1, :index "a"}`, 1, ":index must be an integer"},
		{"errors/time-on-some-ops-only/names-op", ok + "{:type :ok, :f :read, :process 0}", 2, "no :time, while other ops have one"},
		{"errors/not-a-map/names-op", ok + "42\n", 2, "op 1: invalid EDN"},
		{"errors/unknown-tag/names-op", ok + "#my.Op{:type :ok}\n", 2, "op 1: invalid EDN"},
		{"errors/unclosed-vector/names-opening-line", "\n[" + ok + ok, 4, "the [ opened on line 2 is not closed"},
		{"errors/data-after-vector/names-line", "[" + ok + "]\n" + ok, 3, "unexpected data after the ]"},
		{"errors/namespaced-keyword/names-op", "{:type ::invoke, :f :read, :process 0, :time 1}", 1, "op 0: invalid EDN"},
		// The decoder would overflow the stack, which is fatal.
		{"errors/value-nested-too-deep/error", ok + "{:type :ok, :f :read, :process 0, :time 2, :value " + strings.Repeat("[", 200_000) + strings.Repeat("]", 200_000) + "}\n", 2, "nested more than 10000 deep"},
		{"errors/ops-nested-too-deep/error", strings.Repeat("[", 20_000), 1, "nested more than 10000 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadEDN(strings.NewReader(tt.in), "bad.edn")
			if err == nil {
				t.Fatal("no error")
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v (%T), want a *LineError", err, err)
			}
			if le.File != "bad.edn" || le.Line != tt.line {
				t.Errorf("err at %s:%d, want bad.edn:%d (%v)", le.File, le.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "bad.edn:") {
				t.Errorf("err = %q, want it to start with the file and contain %q", err, tt.want)
			}
		})
	}
}

func TestReadEDNValidation(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		want string
	}{
		{"validate/completion-without-invocation/names-line", "{:type :invoke, :f :read, :process 0}\n\n{:type :ok, :f :read, :process 1}\n", 3, "has no invocation in flight"},
		{"validate/two-in-flight/names-line", "{:type :invoke, :f :read, :process 0}\n{:type :invoke, :f :write, :process 0, :value 1}", 2, "still in flight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadEDN(strings.NewReader(tt.in), "v.edn")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v (%T), want a *ValidationError", err, err)
			}
			if ve.File != "v.edn" || ve.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q (line %d), want v.edn line %d containing %q", err, ve.Line, tt.line, tt.want)
			}
		})
	}
}

// Jepsen journals ops from several threads in :index order, so :time may
// step back between lines; the reader keeps the order, lifts such a time to
// the one before it and warns once. Ops out of :index order in the file are
// put in :index order.
func TestReadEDNTimeStepsBack(t *testing.T) {
	t.Run("edn/time steps back/kept in order, time lifted, one warning", func(t *testing.T) {
		in := `{:type :invoke, :f :read, :process 0, :time 5000, :index 0}
{:type :invoke, :f :write, :process 1, :value 1, :time 4000, :index 1}
{:type :ok, :f :read, :process 0, :value nil, :time 6000, :index 2}
{:type :ok, :f :write, :process 1, :value 1, :time 5500, :index 3}`
		var warnings []string
		h, err := ReadEDNWith(strings.NewReader(in), "j.edn", EDNOptions{Warn: func(w string) { warnings = append(warnings, w) }})
		if err != nil {
			t.Fatal(err)
		}
		var times []int64
		for _, op := range h {
			times = append(times, op.Time)
		}
		if !slices.Equal(times, []int64{5000, 5000, 6000, 6000}) || h[1].F != "write" {
			t.Fatalf("times %v, ops %v: want [5000 5000 6000 6000] in file order", times, h)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "2 op(s) have a :time earlier") || !strings.Contains(warnings[0], "1µs") {
			t.Fatalf("warnings %q: want one counting 2 steps, the largest 1µs", warnings)
		}
	})
	t.Run("edn/out of index order/read in index order with a warning", func(t *testing.T) {
		in := `[{:type :ok, :f :read, :process 0, :value 1, :index 1}
{:type :invoke, :f :read, :process 0, :index 0}]`
		var warnings []string
		h, err := ReadEDNWith(strings.NewReader(in), "r.edn", EDNOptions{Warn: func(w string) { warnings = append(warnings, w) }})
		if err != nil || len(h) != 2 || h[0].Type != Invoke || len(warnings) != 1 {
			t.Fatalf("h %v, err %v, warnings %q", h, err, warnings)
		}
	})
	t.Run("edn/key field/kept as the key", func(t *testing.T) {
		h, err := ReadEDN(strings.NewReader(`{:process 0, :type :invoke, :f :get, :key "5", :value nil}`), "kv.edn")
		if err != nil || h[0].Key != "5" || h[0].F != "get" {
			t.Fatalf("h %v, err %v", h, err)
		}
	})
}

func TestEDNValue(t *testing.T) {
	tests := []struct {
		name string
		edn  string
		kind Kind
		json string
	}{
		{"value/nil/nil", "nil", KindNil, "null"},
		{"value/integer/int", "-42", KindInt, "-42"},
		{"value/big-integer-that-fits/int", "7N", KindInt, "7"},
		{"value/big-integer/other", "123456789012345678901234567890N", KindOther, "123456789012345678901234567890"},
		{"value/string/string", `"a \"quoted\"\nline"`, KindString, `"a \"quoted\"\nline"`},
		{"value/keyword/string-without-colon", ":not-found", KindString, `"not-found"`},
		{"value/symbol/string", "foo", KindString, `"foo"`},
		{"value/character/string", `\x`, KindString, `"x"`},
		{"value/vector/list", `[1 "a" :b nil]`, KindList, `[1,"a","b",null]`},
		{"value/list/list", `(1 (2))`, KindList, `[1,[2]]`},
		{"value/empty-vector/list", `[]`, KindList, `[]`},
		{"value/set/sorted-list", `#{3 1 2 "x" :a}`, KindList, `[1,2,3,"a","x"]`},
		{"value/set-of-vectors/sorted-list", `#{[2] [1]}`, KindList, `[[1],[2]]`},
		{"value/map/object-with-sorted-keys", `{:b 1, "a" [2 3], 7 nil}`, KindOther, `{"7":null,"a":[2,3],"b":1}`},
		{"value/map-with-vector-key/object", `{[1 2] :x}`, KindOther, `{"[1,2]":"x"}`},
		{"value/float/other", "1.5", KindOther, "1.5"},
		{"value/boolean/other", "true", KindOther, "true"},
		{"value/tagged/untagged-value", `#my/tag [1]`, KindList, `[1]`},
		{"value/instant/string", `#inst "2024-01-02T03:04:05Z"`, KindString, `"2024-01-02T03:04:05Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x any
			if err := edn.UnmarshalString(tt.edn, &x); err != nil {
				t.Fatal(err)
			}
			v := ednValue(x)
			if v.Kind() != tt.kind || v.String() != tt.json {
				t.Errorf("ednValue(%s) = %s (kind %d), want %s (kind %d)", tt.edn, v, v.Kind(), tt.json, tt.kind)
			}
			// The JSONL reader must read the rendering back as the same value.
			back, err := ParseValue(v.String())
			if err != nil || !back.Equal(v) {
				t.Errorf("ParseValue(%s) = %s, %v; want the same value", v, back, err)
			}
		})
	}
}

func TestEDNErrorText(t *testing.T) {
	tests := []struct {
		name, edn, want string
	}{
		{"error/string/as-is", `"connection refused"`, "connection refused"},
		{"error/keyword/name", `:timeout`, "timeout"},
		{"error/nil/empty", `nil`, ""},
		{"error/vector/edn-text", `[:temporarily-unavailable nil]`, "[:temporarily-unavailable nil]"},
		{"error/multiline-map/one-line", "{:type :timeout,\n   :msg \"two  spaces\"}", `{:type :timeout, :msg "two  spaces"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "{:type :invoke, :f :read, :process 0, :time 1, :error " + tt.edn + "}"
			h, err := ReadEDN(strings.NewReader(in), "e.edn")
			if err != nil {
				t.Fatal(err)
			}
			if h[0].Error != tt.want {
				t.Errorf("error = %q, want %q", h[0].Error, tt.want)
			}
		})
	}
}

func FuzzReadEDN(f *testing.F) {
	for _, path := range []string{
		"testdata/jepsen/independent.edn",
		"testdata/jepsen/records.edn",
		"testdata/jepsen/elle-append.edn",
		"testdata/knossos/bad/bad-analysis.edn",
		"testdata/knossos/bad/rethink-fail-minimal.edn",
		"testdata/knossos/bad/immediate-failure.edn",
		"testdata/knossos/good/cas-register-bug.edn",
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{:type :invoke, :f :read, :value #{1 [2] {:a #inst "2020-01-01T00:00:00Z"}}, :process 0, :error {:via [{:type java.net.SocketTimeoutException}]}}`))
	f.Add([]byte("#_ {:a 1} [#jepsen.history.Op{:type :info, :f :kill, :process :nemesis, :value 12N}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadEDN(bytes.NewReader(data), "fuzz.edn")
		if err != nil {
			return
		}
		if err := Validate(h); err != nil {
			t.Fatalf("ReadEDN returned an invalid history: %v", err)
		}
		// What EDN import gives must survive the JSONL format.
		var buf bytes.Buffer
		for _, op := range h {
			buf.Write(op.AppendJSON(nil))
			buf.WriteByte('\n')
		}
		back, warnings, err := Read(&buf, "fuzz.jsonl")
		if err != nil || len(warnings) != 0 || len(back) != len(h) {
			t.Fatalf("JSONL of the imported history does not read back: %v %v\n%s", err, warnings, buf.Bytes())
		}
		for i := range h {
			if !opEqual(back[i], h[i]) {
				t.Fatalf("op %d changed through JSONL:\n%+v\n%+v", i, h[i], back[i])
			}
		}
	})
}
