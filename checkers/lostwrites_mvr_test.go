package checkers

import (
	"context"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// mvOp is one operation of a multi-value register history, run alone.
type mvOp struct {
	f, inv, done string // JSON of the invocation's and the completion's values
	typ          history.Type
	final        bool
	node         string
}

func mvHistory(t *testing.T, ops ...mvOp) Input {
	t.Helper()
	var h history.History
	for i, o := range ops {
		inv, err := history.Raw([]byte(o.inv))
		if err != nil {
			t.Fatal(err)
		}
		done := inv
		if o.done != "" {
			if done, err = history.Raw([]byte(o.done)); err != nil {
				t.Fatal(err)
			}
		}
		p := history.Process(i)
		h = append(h,
			history.Op{Index: int64(len(h)), Time: int64(2 * i), Process: p, Type: history.Invoke, F: o.f, Key: "k", Value: inv, Final: o.final, Node: o.node},
			history.Op{Index: int64(len(h) + 1), Time: int64(2*i + 1), Process: p, Type: o.typ, F: o.f, Key: "k", Value: done, Final: o.final, Node: o.node})
	}
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	return NewInput(h)
}

func mvWrite(v, dot string) mvOp { return mvWriteAfter(v, dot, `{}`) }

// mvWriteAfter is a write that carried the context ctx.
func mvWriteAfter(v, dot, ctx string) mvOp {
	return mvOp{f: FWrite, inv: v, done: `{"value":` + v + `,"dot":"` + dot + `","context":` + ctx + `}`, typ: history.OK}
}

func mvFinal(node, js string) mvOp {
	return mvOp{f: FRead, inv: "null", done: js, typ: history.OK, final: true, node: node}
}

func TestLostWritesMultiValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []mvOp
		kind string // "" when valid
		says string
	}{
		{"concurrent writes kept as siblings", []mvOp{
			mvWrite("1", "n1:1"), mvWrite("2", "n2:1"),
			mvFinal("n1", `{"siblings":[{"value":1,"dot":"n1:1"},{"value":2,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`),
			mvFinal("n2", `{"siblings":[{"value":1,"dot":"n1:1"},{"value":2,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`),
		}, "", ""},
		{"superseded by a write that saw it", []mvOp{
			mvWrite("1", "n1:1"), mvWrite("2", "n2:1"), mvWriteAfter("3", "n1:2", `{"n1":1,"n2":1}`),
			mvFinal("n1", `{"siblings":[{"value":3,"dot":"n1:2"}],"context":{"n1":2,"n2":1}}`),
		}, "", ""},
		{"an info write's value may be a sibling", []mvOp{
			mvWrite("1", "n1:1"), {f: FWrite, inv: "5", typ: history.Info},
			mvFinal("n1", `{"siblings":[{"value":1,"dot":"n1:1"},{"value":5,"dot":"n3:1"}],"context":{"n1":1,"n3":1}}`),
		}, "", ""},
		{"lost: neither a sibling nor seen", []mvOp{
			mvWrite("1", "n1:1"), mvWrite("2", "n2:1"),
			mvFinal("n1", `{"siblings":[{"value":2,"dot":"n2:1"}],"context":{"n2":1}}`),
		}, KindLostWrite, "the write of 1 to k (op 0, dot n1:1) was acknowledged, but the final read on n1"},
		{"lost though the store's context covers it: no write carried that context", []mvOp{
			// A store that applied 2 with its own context {n1:1} instead
			// of the client's empty one dropped 1 and still covers it.
			mvWrite("1", "n1:1"), mvWrite("2", "n1:2"),
			mvFinal("n1", `{"siblings":[{"value":2,"dot":"n1:2"}],"context":{"n1":2}}`),
		}, KindLostWrite, "no write of the history carried a context covering n1:1"},
		{"an info write invoked later may have superseded it", []mvOp{
			mvWrite("1", "n1:1"), {f: FWrite, inv: "5", typ: history.Info},
			mvFinal("n1", `{"siblings":[{"value":5,"dot":"n1:2"}],"context":{"n1":2}}`),
		}, "", ""},
		{"final reads disagree", []mvOp{
			mvWrite("1", "n1:1"), mvWrite("2", "n2:1"),
			mvFinal("n1", `{"siblings":[{"value":1,"dot":"n1:1"},{"value":2,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`),
			mvFinal("n2", `{"siblings":[{"value":2,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`),
		}, KindDivergence, "holds dots [n1:1,n2:1]"},
		{"a sibling nobody wrote", []mvOp{
			mvWrite("1", "n1:1"),
			mvFinal("n1", `{"siblings":[{"value":1,"dot":"n1:1"},{"value":9,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`),
		}, KindUnknownFinalValue, "sibling 9@n2:1"},
		{"keys in another order (an EDN import sorts them)", []mvOp{
			mvWrite("1", "n1:1"),
			mvFinal("n1", `{"context":{"n1":1},"siblings":[{"dot":"n1:1","value":1}]}`),
		}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := mvHistory(t, tc.ops...)
			if w, err := InferWorkload(in.Ops); err != nil || w != WorkloadMVRegister {
				t.Fatalf("inferred %q, %v; want mv-register", w, err)
			}
			r := LostWrites(context.Background(), in, Options{})
			if tc.kind == "" {
				if r.Verdict != Valid {
					t.Fatalf("verdict %s, want valid: %+v", r.Verdict, r.Anomalies)
				}
				return
			}
			if r.Verdict != Invalid {
				t.Fatalf("verdict %s, want invalid", r.Verdict)
			}
			for _, a := range r.Anomalies {
				if a.Kind == tc.kind && strings.Contains(a.Explanation, tc.says) {
					return
				}
			}
			t.Fatalf("no %s saying %q: %+v", tc.kind, tc.says, r.Anomalies)
		})
	}
}

// Siblings are counted, and only lost-writes runs on multi-value
// registers (linearizability and the session guarantees are about single
// values).
func TestMultiValueStatsAndCheckers(t *testing.T) {
	in := mvHistory(t, mvWrite("1", "n1:1"), mvWrite("2", "n2:1"),
		mvOp{f: FRead, inv: "null", done: `{"siblings":[{"value":1,"dot":"n1:1"},{"value":2,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`, typ: history.OK},
		mvFinal("n1", `{"siblings":[{"value":1,"dot":"n1:1"},{"value":2,"dot":"n2:1"}],"context":{"n1":1,"n2":1}}`))
	r := LostWrites(context.Background(), in, Options{})
	if r.Stats["reads_with_siblings"] != 2 || r.Stats["siblings_max"] != 2 || r.Stats["final_siblings_max"] != 2 || r.Stats["lost"] != 0 {
		t.Errorf("stats %v", r.Stats)
	}
	cs := ForWorkload(WorkloadMVRegister)
	if len(cs) != 1 || cs[0].Name != NameLostWrites {
		t.Errorf("checkers of mv-register: %v", cs)
	}
}
