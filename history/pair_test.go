package history

import (
	"testing"
)

// hb builds a history for tests: each op gets its position as index and ten
// times its position as time.
func hb(ops ...Op) History {
	h := make(History, len(ops))
	for i, op := range ops {
		op.Index, op.Time = int64(i), int64(i)*10
		h[i] = op
	}
	return h
}

func inv(p Process, f string, v Value) Op { return Op{Process: p, Type: Invoke, F: f, Value: v} }
func done(p Process, t Type, f string, v Value) Op {
	return Op{Process: p, Type: t, F: f, Value: v}
}

func TestPair(t *testing.T) {
	tests := []struct {
		name string
		h    History
		want []Operation
	}{
		{
			"pair/ok-read/takes-completion-value",
			hb(inv(1, "read", Nil()), done(1, OK, "read", Int(5))),
			[]Operation{{Process: 1, F: "read", Type: OK, Value: Int(5), Call: 0, Return: 10, Invoke: 0, Complete: 1}},
		},
		{
			"pair/ok-read-of-nil/takes-nil",
			hb(inv(1, "read", Int(9)), done(1, OK, "read", Nil())),
			[]Operation{{Process: 1, F: "read", Type: OK, Value: Nil(), Call: 0, Return: 10, Invoke: 0, Complete: 1}},
		},
		{
			"pair/ok-write-without-value/keeps-invocation-value",
			hb(inv(1, "write", Int(3)), done(1, OK, "write", Nil())),
			[]Operation{{Process: 1, F: "write", Type: OK, Value: Int(3), Call: 0, Return: 10, Invoke: 0, Complete: 1}},
		},
		{
			"pair/ok-add-with-value/takes-completion-value",
			hb(inv(1, "add", Int(3)), done(1, OK, "add", Int(4))),
			[]Operation{{Process: 1, F: "add", Type: OK, Value: Int(4), Call: 0, Return: 10, Invoke: 0, Complete: 1}},
		},
		{
			"pair/info-write/keeps-invocation-value-and-open-return",
			hb(inv(2, "write", Int(7)), Op{Process: 2, Type: Info, F: "write", Value: Int(8), Error: "timeout", Node: "n2"}),
			[]Operation{{Process: 2, F: "write", Type: Info, Value: Int(7), Call: 0, Return: Open, Invoke: 0, Complete: 1, Error: "timeout", Node: "n2"}},
		},
		{
			"pair/fail-cas/keeps-invocation-value-and-return",
			hb(inv(3, "cas", Ints(1, 2)), done(3, Fail, "cas", Nil())),
			[]Operation{{Process: 3, F: "cas", Type: Fail, Value: Ints(1, 2), Call: 0, Return: 10, Invoke: 0, Complete: 1}},
		},
		{
			"pair/never-completed/info-with-open-return",
			hb(inv(4, "write", Int(1))),
			[]Operation{{Process: 4, F: "write", Type: Info, Value: Int(1), Call: 0, Return: Open, Invoke: 0, Complete: -1}},
		},
		{
			"pair/nemesis/skipped",
			hb(Op{Process: Nemesis, Type: Info, F: "partition"}, inv(1, "read", Nil()), Op{Process: Nemesis, Type: Info, F: "partition"}, done(1, OK, "read", Int(2))),
			[]Operation{{Process: 1, F: "read", Type: OK, Value: Int(2), Call: 10, Return: 30, Invoke: 1, Complete: 3}},
		},
		{
			"pair/interleaved/invocation-order",
			hb(inv(1, "write", Int(1)), inv(2, "read", Nil()), done(2, OK, "read", Int(1)), done(1, OK, "write", Int(1))),
			[]Operation{
				{Process: 1, F: "write", Type: OK, Value: Int(1), Call: 0, Return: 30, Invoke: 0, Complete: 3},
				{Process: 2, F: "read", Type: OK, Value: Int(1), Call: 10, Return: 20, Invoke: 1, Complete: 2},
			},
		},
		{
			"pair/final-on-invocation/propagates",
			hb(Op{Process: 1, Type: Invoke, F: "read", Key: "k", Final: true}, Op{Process: 1, Type: OK, F: "read", Key: "k", Value: Int(1)}),
			[]Operation{{Process: 1, F: "read", Key: "k", Type: OK, Value: Int(1), Call: 0, Return: 10, Invoke: 0, Complete: 1, Final: true}},
		},
		{
			"pair/final-on-completion/propagates",
			hb(Op{Process: 1, Type: Invoke, F: "read", Key: "k"}, Op{Process: 1, Type: OK, F: "read", Key: "k", Value: Int(1), Final: true}),
			[]Operation{{Process: 1, F: "read", Key: "k", Type: OK, Value: Int(1), Call: 0, Return: 10, Invoke: 0, Complete: 1, Final: true}},
		},
		{
			"pair/node-on-invocation-only/kept",
			hb(Op{Process: 1, Type: Invoke, F: "read", Node: "n1"}, done(1, OK, "read", Int(1))),
			[]Operation{{Process: 1, F: "read", Type: OK, Value: Int(1), Call: 0, Return: 10, Invoke: 0, Complete: 1, Node: "n1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.h); err != nil {
				t.Fatalf("test history is invalid: %v", err)
			}
			got := Pair(tt.h)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d operations, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if !operationEqual(got[i], tt.want[i]) {
					t.Errorf("operation %d = %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func operationEqual(a, b Operation) bool {
	return a.Process == b.Process && a.F == b.F && a.Key == b.Key && a.Type == b.Type && a.Value.Equal(b.Value) &&
		a.Call == b.Call && a.Return == b.Return && a.Invoke == b.Invoke && a.Complete == b.Complete &&
		a.Node == b.Node && a.Error == b.Error && a.Final == b.Final
}

func TestOperationPredicates(t *testing.T) {
	ops := Pair(hb(inv(1, "write", Int(1)), done(1, OK, "write", Nil()), inv(2, "write", Int(2)), done(2, Info, "write", Nil()), inv(3, "read", Nil())))
	want := []struct{ ok, indeterminate bool }{{true, false}, {false, true}, {false, true}}
	for i, w := range want {
		if ops[i].OK() != w.ok || ops[i].Indeterminate() != w.indeterminate {
			t.Errorf("operation %d (%s): OK %v Indeterminate %v, want %v %v", i, ops[i].Type, ops[i].OK(), ops[i].Indeterminate(), w.ok, w.indeterminate)
		}
	}
}

func TestPairPanicsOnInvalidHistory(t *testing.T) {
	for name, h := range map[string]History{
		"pair/completion-without-invocation/panics": hb(done(1, OK, "read", Nil())),
		"pair/two-invocations/panics":               hb(inv(1, "read", Nil()), inv(1, "read", Nil())),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Pair did not panic")
				}
			}()
			Pair(h)
		})
	}
}

func TestFaults(t *testing.T) {
	h := hb(Op{Process: Nemesis, Type: Info, F: "start"}, inv(1, "read", Nil()), Op{Process: Nemesis, Type: Info, F: "stop"})
	f := Faults(h)
	if len(f) != 2 || f[0].F != "start" || f[1].F != "stop" {
		t.Errorf("Faults = %+v", f)
	}
}
