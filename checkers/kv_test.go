package checkers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/porcupinedata"
)

// TestKVLinearizable runs the kv model (get, put, append on strings, per
// key) on both sides: histories that must pass and histories that must
// fail, each for a known reason.
func TestKVLinearizable(t *testing.T) {
	for _, tc := range []struct {
		name, hist string
		want       Verdict
		why        string // in the explanation of a failure
	}{
		{"kv/put append get in order/valid", `
			0 invoke put  a "x"
			0 ok     put  a "x"
			1 invoke append a "y"
			1 ok     append a "y"
			2 invoke get  a null
			2 ok     get  a "xy"`, Valid, ""},
		{"kv/concurrent appends either order/valid", `
			0 invoke append a "x"
			1 invoke append a "y"
			0 ok     append a "x"
			1 ok     append a "y"
			2 invoke get a null
			2 ok     get a "yx"`, Valid, ""},
		{"kv/get of a never written key/empty string, valid", `
			0 invoke get b null
			0 ok     get b ""`, Valid, ""},
		{"kv/indeterminate append/may have happened, valid", `
			0 invoke append a "x"
			0 info   append a "x"
			1 invoke get a null
			1 ok     get a "x"`, Valid, ""},
		{"kv/get misses a finished append/invalid", `
			0 invoke put a "x"
			0 ok     put a "x"
			1 invoke append a "y"
			1 ok     append a "y"
			2 invoke get a null
			2 ok     get a "x"`, Invalid, `cannot place the get of "x"`},
		{"kv/append applied twice/invalid", `
			0 invoke append a "y"
			0 ok     append a "y"
			2 invoke get a null
			2 ok     get a "yy"`, Invalid, `key "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := regHist(t, tc.hist)
			in := NewInput(h)
			in.Workload = WorkloadKV
			r := Run(context.Background(), in, []Checker{mustLookup(t, LinearizableName)}, Options{})[0]
			if r.Verdict != tc.want || r.Workload != WorkloadKV {
				t.Fatalf("verdict %s (workload %s), want %s; %s %+v", r.Verdict, r.Workload, tc.want, r.Reason, r.Anomalies)
			}
			if tc.want == Invalid && (len(r.Anomalies) != 1 || !strings.Contains(r.Anomalies[0].Explanation, tc.why) || len(r.Anomalies[0].Ops) == 0) {
				t.Fatalf("anomalies %+v, want one citing ops and saying %q", r.Anomalies, tc.why)
			}
		})
	}
}

// TestKVPorcupineData checks Porcupine's own kv histories (get, put and
// append from Jepsen's kv test, EDN without an .edn name) and compares each
// verdict with the one their names give.
func TestKVPorcupineData(t *testing.T) {
	files := porcupinedata.KVFiles(t, porcupinedata.Dir(t))
	if len(files) != 6 {
		t.Fatalf("kv files %v: want 6", files)
	}
	for path, linearizable := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		want := Valid
		if !linearizable {
			want = Invalid
		}
		t.Run("kv/porcupine-"+name+"/"+string(want), func(t *testing.T) {
			h, _, err := history.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			w, err := InferWorkload(history.Pair(h))
			if err != nil || w != WorkloadKV {
				t.Fatalf("workload %s, %v; want kv", w, err)
			}
			in := NewInput(h)
			in.Workload = w
			r := Run(context.Background(), in, ForWorkload(w), Options{Timeout: time.Minute})[0]
			if r.Verdict != want {
				t.Fatalf("verdict %s, want %s: %s", r.Verdict, want, r.Summary)
			}
		})
	}
}

func mustLookup(t *testing.T, name string) Checker {
	t.Helper()
	c, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
