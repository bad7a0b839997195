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

// Each rw-register anomaly has a history that must show it, and a
// neighbour that must not, under the model named ("w x 1; r x 1; r y
// nil" is a transaction that wrote x, read x back and read y unwritten).
func TestTransactionalRWRegisterAnomalies(t *testing.T) {
	for _, c := range []struct {
		name  string
		model string
		txs   []tx
		want  string // the anomaly kind; "" for valid
	}{
		// Under read uncommitted no write is ordered after the version its
		// transaction read (see regState), so G0 is sought from read
		// committed up.
		{"G0/each overwrote the other", ModelReadCommitted, []tx{
			ok("w x 1; r y 2; w y 3"), ok("r x 1; w x 2; w y 2")}, AnomalyG0},
		{"G0/none when one came first", ModelReadCommitted, []tx{
			ok("w x 1; w y 1"), ok("r x 1; w x 2; r y 1; w y 2")}, ""},
		{"G1c/each read the other's write", ModelReadCommitted, []tx{
			ok("w x 1; r y 1"), ok("w y 1; r x 1")}, AnomalyG1c},
		{"G1c/none when the information flows one way", ModelReadCommitted, []tx{
			ok("w x 1"), ok("r x 1; w y 1"), ok("r y 1")}, ""},
		{"G-single/read skew", ModelSnapshotIsolation, []tx{
			ok("w x 1; w y 1"), ok("r x nil; r y 1")}, AnomalyGSingle},
		{"G-single/none when both reads see the writer", ModelSnapshotIsolation, []tx{
			ok("w x 1; w y 1"), ok("r x 1; r y 1")}, ""},
		{"G2-item/write skew under serializable", ModelSerializable, []tx{
			ok("r x nil; r y nil; w x 1"), ok("r x nil; r y nil; w y 1")}, AnomalyG2Item},
		{"G2-item/write skew is allowed under snapshot isolation", ModelSnapshotIsolation, []tx{
			ok("r x nil; r y nil; w x 1"), ok("r x nil; r y nil; w y 1")}, ""},
		{"G2-item/none when one saw the other", ModelSerializable, []tx{
			ok("r x nil; r y nil; w x 1"), ok("r x 1; r y nil; w y 1")}, ""},
		{"lost-update/both read one version and wrote", ModelSnapshotIsolation, []tx{
			ok("r x nil; w x 1"), ok("r x nil; w x 2")}, AnomalyLostUpdate},
		{"lost-update/none when the second read the first", ModelSnapshotIsolation, []tx{
			ok("r x nil; w x 1"), ok("r x 1; w x 2")}, ""},
		{"realtime/a read after the write returned misses it", ModelStrictSerializable, []tx{
			timed(ok("w x 1"), 0, 10), timed(ok("r x nil"), 20, 30)}, AnomalyGSingle + realtimeSuffix},
		{"realtime/the same is serializable", ModelSerializable, []tx{
			timed(ok("w x 1"), 0, 10), timed(ok("r x nil"), 20, 30)}, ""},
		{"realtime/a read of an overwritten value after the overwrite returned", ModelStrictSerializable, []tx{
			timed(ok("w x 1"), 0, 10), timed(ok("r x 1; w x 2"), 20, 30), timed(ok("r x 1"), 40, 50)}, AnomalyGSingle + realtimeSuffix},
		{"realtime/none when it reads the overwrite", ModelStrictSerializable, []tx{
			timed(ok("w x 1"), 0, 10), timed(ok("r x 1; w x 2"), 20, 30), timed(ok("r x 2"), 40, 50)}, ""},
		{"G1a/aborted read", ModelReadCommitted, []tx{
			failed("w x 1"), ok("r x 1")}, AnomalyG1a},
		{"G1a/none when the writer's fate was open", ModelReadCommitted, []tx{
			indefinite("w x 1"), ok("r x 1")}, ""},
		{"G1b/intermediate read", ModelReadCommitted, []tx{
			ok("w x 1; w x 2"), ok("r x 1")}, AnomalyG1b},
		{"G1b/none when it read the final write", ModelReadCommitted, []tx{
			ok("w x 1; w x 2"), ok("r x 2")}, ""},
		{"internal/a read that forgot the transaction's write", ModelReadUncommitted, []tx{
			ok("w x 1; r x nil")}, AnomalyInternal},
		{"internal/none when it reads its own write", ModelReadUncommitted, []tx{
			ok("r x nil; w x 1; r x 1")}, ""},
		{"internal/a non-repeatable read breaks snapshot isolation", ModelSnapshotIsolation, []tx{
			ok("w x 2"), ok("r x nil; r x 2")}, AnomalyInternal},
		{"internal/a non-repeatable read is allowed under read committed", ModelReadCommitted, []tx{
			ok("w x 2"), ok("r x nil; r x 2")}, ""},
		{"garbage-read", ModelReadUncommitted, []tx{
			ok("w x 1"), ok("r x 9")}, AnomalyGarbage},
		{"future-read", ModelReadUncommitted, []tx{
			ok("r x 1; w x 1")}, AnomalyFutureRead},
		{"info/a write whose fate is open and nobody saw is no anomaly", ModelStrictSerializable, []tx{
			indefinite("w x 1"), timed(ok("r x nil"), 200, 300)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := expectAnomaly(t, c.model, c.want, c.txs...); !strings.Contains(r.Summary, "rw-register") {
				t.Errorf("summary %q does not name the workload", r.Summary)
			}
		})
	}
}

// A value written twice to one key is unknown: reads could not tell the
// writes apart.
func TestTransactionalRWRegisterDuplicateWrite(t *testing.T) {
	for _, h := range []history.History{
		txnHistory(t, ok("w x 1"), ok("w x 1")),
		txnHistory(t, ok(`w x "a"`), ok(`w x "a"`)),
	} {
		r := Transactional(context.Background(), NewInput(h), Options{})
		if r.Verdict != Unknown || !strings.Contains(r.Reason, "unique") || !strings.Contains(r.Reason, "written") {
			t.Fatalf("%s (%s), want unknown naming the value written twice", r.Verdict, r.Reason)
		}
	}
}

// regTxn is a transaction of a generated rw-register history: pairs of
// micro-operations, each a read of a key, or a read of a key followed by
// a write of it (read-modify-write).
type regTxn struct {
	typ       history.Type
	call, ret int64
	mops      []regMop
}

type regMop struct {
	write bool
	key   string
	val   int64 // a write's value; a read's result (0 for null)
}

// genRegister runs transactions of reads and read-modify-writes one at a
// time in a random order against a register store, then corrupts some
// reads (another version of the key, or null) and leaves some
// transactions info when infos is set.
func genRegister(rng *rand.Rand, infos bool) []regTxn {
	n := 2 + rng.IntN(4)
	keys := []string{"x", "y", "z"}[:2+rng.IntN(2)]
	txs := make([]regTxn, n)
	next := int64(1)
	versions := map[string][]int64{}
	for i := range txs {
		for j := 1 + rng.IntN(3); j > 0; j-- {
			k := keys[rng.IntN(len(keys))]
			txs[i].mops = append(txs[i].mops, regMop{key: k})
			if rng.IntN(2) == 0 {
				txs[i].mops = append(txs[i].mops, regMop{write: true, key: k, val: next})
				versions[k] = append(versions[k], next)
				next++
			}
		}
		txs[i].typ = history.OK
		if infos && rng.IntN(6) == 0 {
			txs[i].typ = history.Info
		}
		txs[i].call = int64(rng.IntN(100))
		txs[i].ret = txs[i].call + 1 + int64(rng.IntN(60))
	}
	state := map[string]int64{}
	for _, i := range rng.Perm(n) {
		if txs[i].typ == history.Info && rng.IntN(2) == 0 {
			continue // it did not happen
		}
		for j := range txs[i].mops {
			if m := &txs[i].mops[j]; m.write {
				state[m.key] = m.val
			} else {
				m.val = state[m.key]
			}
		}
	}
	for c := rng.IntN(3); c > 0; c-- {
		i := rng.IntN(n)
		for j := range txs[i].mops {
			if m := &txs[i].mops[j]; !m.write && rng.IntN(2) == 0 {
				vs := append([]int64{0}, versions[m.key]...)
				m.val = vs[rng.IntN(len(vs))]
			}
		}
	}
	return txs
}

// registerSerializable tries every subset of the info transactions and
// every order of those taken (respecting real-time order when realtime
// is set), and reports whether some order gives every ok transaction's
// reads as recorded.
func registerSerializable(txs []regTxn, realtime bool) bool {
	var infos []int
	for i, t := range txs {
		if t.typ == history.Info {
			infos = append(infos, i)
		}
	}
	var try func(take []int, k int) bool
	try = func(take []int, k int) bool {
		if k == len(take) {
			state := map[string]int64{}
			for _, i := range take {
				for _, m := range txs[i].mops {
					switch {
					case m.write:
						state[m.key] = m.val
					case txs[i].typ == history.OK && state[m.key] != m.val:
						return false
					}
				}
			}
			return true
		}
		for i := k; i < len(take); i++ {
			take[k], take[i] = take[i], take[k]
			okOrder := !realtime || !slices.ContainsFunc(take[k+1:], func(j int) bool {
				return txs[j].typ == history.OK && txs[j].ret < txs[take[k]].call
			})
			if okOrder && try(take, k+1) {
				take[k], take[i] = take[i], take[k]
				return true
			}
			take[k], take[i] = take[i], take[k]
		}
		return false
	}
	for mask := 0; mask < 1<<len(infos); mask++ {
		var take []int
		for i, t := range txs {
			if t.typ == history.OK || t.typ == history.Info && mask&(1<<slices.Index(infos, i)) != 0 {
				take = append(take, i)
			}
		}
		if try(take, 0) {
			return true
		}
	}
	return false
}

func rwHistory(t *testing.T, txs []regTxn) history.History {
	t.Helper()
	var out []tx
	for _, x := range txs {
		var parts []string
		for _, m := range x.mops {
			switch {
			case m.write:
				parts = append(parts, fmt.Sprintf("w %s %d", m.key, m.val))
			case m.val == 0:
				parts = append(parts, fmt.Sprintf("r %s nil", m.key))
			default:
				parts = append(parts, fmt.Sprintf("r %s %d", m.key, m.val))
			}
		}
		out = append(out, tx{typ: x.typ, call: x.call, ret: x.ret, mops: strings.Join(parts, "; ")})
	}
	return txnHistory(t, out...)
}

// On small random rw-register histories of reads and read-modify-writes
// the checker agrees with a brute-force search over every serial order:
// exactly when every transaction completed ok (each write then follows
// the version its transaction read, so the version order is known), and
// without a false alarm when some ended info (an info transaction's
// reads are unknown, so its writes are ordered by nothing: the checker
// may miss a cycle through them, never invent one).
func TestTransactionalRWRegisterAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	counts := map[string]int{}
	for i := 0; i < bruteHistories; i++ {
		infos := i%2 == 1
		txs := genRegister(rng, infos)
		h := rwHistory(t, txs)
		for _, model := range []string{ModelSerializable, ModelStrictSerializable} {
			want := registerSerializable(txs, model == ModelStrictSerializable)
			r := Transactional(context.Background(), NewInput(h), Options{ConsistencyModel: model})
			got := r.Verdict == Valid
			counts[fmt.Sprintf("%s/infos=%v/%v/checker=%v", model, infos, want, got)]++
			if r.Verdict == Unknown || got != want && (!infos || !got) {
				var lines []string
				for _, op := range h {
					lines = append(lines, fmt.Sprintf("  %d %v p%v %s", op.Time, op.Type, op.Process, op.Value))
				}
				t.Fatalf("history %d, %s: checker %s (%s; %v), brute force serializable %v\n%s", i, model, r.Verdict, r.Reason, r.Anomalies, want, strings.Join(lines, "\n"))
			}
		}
	}
	t.Logf("histories by model, infos, brute-force verdict and checker verdict: %v", counts)
	for _, model := range []string{"serializable", "strict-serializable"} {
		for _, want := range []bool{true, false} {
			if k := fmt.Sprintf("%s/infos=false/%v/checker=%v", model, want, want); counts[k] < 100 {
				t.Errorf("only %d histories of %s: the test does not exercise both sides", counts[k], k)
			}
		}
		if k := fmt.Sprintf("%s/infos=true/false/checker=false", model); counts[k] < 100 {
			t.Errorf("only %d histories of %s: with info transactions the checker finds too little", counts[k], k)
		}
	}
}
