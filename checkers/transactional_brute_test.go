package checkers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

// bruteTxn is a transaction of a generated history, for the brute-force
// search: its micro-operations as recorded and its outcome and times.
type bruteTxn struct {
	typ       history.Type
	call, ret int64
	mops      []bruteMop
}

type bruteMop struct {
	read bool
	key  string
	elem int64   // an append's element
	seen []int64 // a read's result, as recorded
}

// serializableByBruteForce tries every subset of the info transactions
// and every order of the transactions taken (respecting real-time order
// when realtime is set), replaying list-append, and reports whether some
// order gives every ok transaction's reads as recorded.
func serializableByBruteForce(txs []bruteTxn, realtime bool) bool {
	var infos []int
	for i, t := range txs {
		if t.typ == history.Info {
			infos = append(infos, i)
		}
	}
	for mask := 0; mask < 1<<len(infos); mask++ {
		var take []int
		for i, t := range txs {
			switch t.typ {
			case history.OK:
				take = append(take, i)
			case history.Info:
				if mask&(1<<slices.Index(infos, i)) != 0 {
					take = append(take, i)
				}
			}
		}
		if permute(txs, take, 0, realtime) {
			return true
		}
	}
	return false
}

// permute tries the orders of take[k:] after take[:k].
func permute(txs []bruteTxn, take []int, k int, realtime bool) bool {
	if k == len(take) {
		return replay(txs, take)
	}
	for i := k; i < len(take); i++ {
		take[k], take[i] = take[i], take[k]
		okOrder := true
		if realtime {
			// Nothing placed later may have returned before take[k] began
			// (an info transaction never certainly returned).
			for _, j := range take[k+1:] {
				if txs[j].typ == history.OK && txs[j].ret < txs[take[k]].call {
					okOrder = false
					break
				}
			}
		}
		if okOrder && permute(txs, take, k+1, realtime) {
			take[k], take[i] = take[i], take[k]
			return true
		}
		take[k], take[i] = take[i], take[k]
	}
	return false
}

func replay(txs []bruteTxn, order []int) bool {
	state := map[string][]int64{}
	for _, i := range order {
		t := txs[i]
		for _, m := range t.mops {
			switch {
			case !m.read:
				state[m.key] = append(state[m.key], m.elem)
			case t.typ == history.OK && !slices.Equal(state[m.key], m.seen) && !(len(state[m.key]) == 0 && len(m.seen) == 0):
				return false
			}
		}
	}
	return true
}

// genBrute generates a small history: transactions run one at a time in
// a random order against a list-append store, some reads then corrupted
// (a random prefix of the key's final list instead), some transactions
// left info, and random overlapping times.
func genBrute(rng *rand.Rand) []bruteTxn {
	n := 2 + rng.IntN(4)
	keys := []string{"x", "y", "z"}[:2+rng.IntN(2)]
	txs := make([]bruteTxn, n)
	next := int64(1)
	for i := range txs {
		for j := 1 + rng.IntN(3); j > 0; j-- {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(2) == 0 {
				txs[i].mops = append(txs[i].mops, bruteMop{key: k, elem: next})
				next++
			} else {
				txs[i].mops = append(txs[i].mops, bruteMop{read: true, key: k})
			}
		}
		txs[i].typ = history.OK
		if rng.IntN(6) == 0 {
			txs[i].typ = history.Info
		}
		txs[i].call = int64(rng.IntN(100))
		txs[i].ret = txs[i].call + 1 + int64(rng.IntN(60))
	}
	state := map[string][]int64{}
	for _, i := range rng.Perm(n) {
		if txs[i].typ == history.Info && rng.IntN(2) == 0 {
			continue // it did not happen
		}
		for j := range txs[i].mops {
			m := &txs[i].mops[j]
			if m.read {
				m.seen = slices.Clone(state[m.key])
			} else {
				state[m.key] = append(state[m.key], m.elem)
			}
		}
	}
	for c := rng.IntN(3); c > 0; c-- {
		i := rng.IntN(n)
		for j := range txs[i].mops {
			if m := &txs[i].mops[j]; m.read && rng.IntN(2) == 0 {
				final := state[m.key]
				m.seen = slices.Clone(final[:rng.IntN(len(final)+1)])
			}
		}
	}
	return txs
}

// toHistory writes generated transactions as a history.
func toHistory(t *testing.T, txs []bruteTxn) history.History {
	t.Helper()
	var out []tx
	for _, x := range txs {
		var parts []string
		for _, m := range x.mops {
			if m.read {
				parts = append(parts, fmt.Sprintf("r %s %s", m.key, strings.ReplaceAll(fmt.Sprint(m.seen), " ", ",")))
			} else {
				parts = append(parts, fmt.Sprintf("append %s %d", m.key, m.elem))
			}
		}
		out = append(out, tx{typ: x.typ, call: x.call, ret: x.ret, mops: strings.Join(parts, "; ")})
	}
	return txnHistory(t, out...)
}

// The checker and a brute-force search over every serial order agree on
// small random histories, for serializable and for strict-serializable.
func TestTransactionalAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	counts := map[string]int{}
	for i := 0; i < bruteHistories; i++ {
		txs := genBrute(rng)
		h := toHistory(t, txs)
		for _, model := range []string{ModelSerializable, ModelStrictSerializable} {
			want := serializableByBruteForce(txs, model == ModelStrictSerializable)
			r := Transactional(context.Background(), NewInput(h), Options{ConsistencyModel: model})
			got := r.Verdict == Valid
			counts[fmt.Sprintf("%s/%v", model, want)]++
			if r.Verdict == Unknown || got != want {
				var lines []string
				for _, op := range h {
					lines = append(lines, fmt.Sprintf("  %d %v p%v %s", op.Time, op.Type, op.Process, op.Value))
				}
				t.Fatalf("history %d, %s: checker %s (%s; %v), brute force serializable %v\n%s", i, model, r.Verdict, r.Reason, r.Anomalies, want, strings.Join(lines, "\n"))
			}
		}
	}
	t.Logf("histories by model and brute-force verdict: %v", counts)
	for _, k := range []string{"serializable/true", "serializable/false", "strict-serializable/true", "strict-serializable/false"} {
		if counts[k] < 100 {
			t.Errorf("only %d histories of %s: the test does not exercise both sides", counts[k], k)
		}
	}
}

// bruteHistories is how many random histories the differential test
// checks.
var bruteHistories = 3000
