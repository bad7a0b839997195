package e2e

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// runEtcd runs eccheck test --db etcd with --etcd-read read (see
// [dockertest.RunSystem]).
func runEtcd(t *testing.T, read string, args ...string) (int, results.Report, history.History) {
	t.Helper()
	code, rep, cfg, h := dockertest.RunSystem(t, dockertest.Run{DB: "etcd", LogMarks: []string{"etcd"}}, append([]string{"--etcd-read", read}, args...)...)
	if cfg.Settings["etcd_read"] != read {
		t.Errorf("etcd/test.json/etcd_read %s recorded: %+v", read, cfg.Settings)
	}
	return code, rep, h
}

// frozen reports whether a fault's error is the engine's refusal to
// freeze a container (cgroup v1 with some storage drivers), which the
// nemesis records and the run survives.
func frozen(op history.Op) bool { return strings.Contains(op.Error, "freeze") }

// Linearizable reads (etcd's default) under partitions, kills and
// pauses, over three seeds, each with a partition shape of its own
// (halves, ring, one-way; isolate is the serializable test's): every
// operation is linearizable, no acknowledged write or add is lost, the
// counter stays within its bounds, exit 0. Each run ends once its faults
// were carried out, and the test checks in the history that each kind
// was.
func TestLinearizableUnderFaults(t *testing.T) {
	for _, run := range []struct{ seed, shape string }{{"1", "halves"}, {"2", "ring"}, {"3", "one-way"}} {
		t.Run("seed"+run.seed+"-"+run.shape, func(t *testing.T) {
			code, rep, h := runEtcd(t, "linearizable", "--workload", "register,session,set,counter",
				"--nemesis", "partition,kill,pause", "--partition-shapes", run.shape, "--nemesis-cycles", "3", "--nemesis-interval", "2s", "--time-limit", "5m", "--seed", run.seed)
			done := map[string]bool{}
			for _, op := range history.Faults(h) {
				if !strings.HasPrefix(op.F, "start-") {
					continue
				}
				if op.Error != "" && !frozen(op) {
					t.Errorf("etcd/faults/%s carried out: %s", op.F, op.Error)
				}
				done[strings.TrimPrefix(op.F, "start-")] = true
			}
			for _, kind := range []string{"partition", "kill", "pause"} {
				if !done[kind] {
					t.Fatalf("etcd/faults/setup: no %s in the history (%v)", kind, done)
				}
			}
			if code != dockertest.ExitValid {
				t.Fatalf("etcd/linearizable reads under faults/exit 0: exit %d, results %+v", code, rep.Results)
			}
			checked := map[string]bool{}
			for _, r := range rep.Results {
				if r.Verdict != "valid" {
					t.Errorf("etcd/linearizable reads under faults/%s: %s: %s", r.Checker, r.Verdict, r.Summary)
				}
				name, _, _ := strings.Cut(r.Checker, " (") // "lost-writes (set)"
				checked[name+"/"+string(r.Workload)] = true
			}
			for _, c := range []string{"linearizable/register", "lost-writes/register", "lost-writes/set", "read-your-writes/register", "monotonic-reads/register", "counter/counter"} {
				if !checked[c] {
					t.Errorf("etcd/linearizable reads under faults/%s ran: only %v", c, checked)
				}
			}
		})
	}
}

// Serializable reads with one member cut off: the cut-off member keeps
// answering reads from what it has, while the majority takes new writes,
// so its reads miss writes acknowledged before they began. The anomaly is
// made, not hoped for: the test finds in the history reads on the cut-off
// member that returned a value certainly older than one the majority wrote
// after the cut (it cannot have the new value), then asserts that the
// checkers see them. Short operation timeouts and a bounded rate keep the
// cut-off member's workers reading rather than waiting on writes that
// cannot commit; 9 workers make two keys that every member writes.
func TestSerializableReadsStale(t *testing.T) {
	code, rep, h := runEtcd(t, "serializable", "--workload", "register", "--nemesis", "partition", "--partition-shapes", "isolate",
		"--nemesis-cycles", "1", "--nemesis-interval", "5s", "--time-limit", "5m", "--concurrency", "9", "--rate", "45", "--op-timeout", "300ms", "--seed", "5")
	if n := staleByConstruction(t, h); n == 0 {
		t.Fatalf("etcd/serializable/setup: no read on the cut-off member returned a value certainly older than a write the majority acknowledged after the cut; the stale read cannot be shown")
	} else {
		reads, _ := dockertest.Stat(rep, "staleness", "reads")
		stale, _ := dockertest.Stat(rep, "staleness", "stale_reads")
		t.Logf("%d reads on the cut-off member returned a value certainly older than a write the majority acknowledged after the cut; the staleness checker counts %v stale reads of %v", n, stale, reads)
	}
	if code != dockertest.ExitInvalid {
		t.Fatalf("etcd/serializable reads, a member cut off/exit 1: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"linearizable": "invalid"})
	if p, ok := dockertest.Stat(rep, "staleness", "stale_p99_ms"); !ok || p <= 0 {
		t.Errorf("etcd/serializable reads, a member cut off/stale p99 above 0: %v (%v)", p, ok)
	}
}

// staleByConstruction counts the ok reads on the member the partition cut
// off, invoked during the cut, that returned a value certainly older than
// a write the majority acknowledged after the cut began and before the
// read began: the initial nil, or a value whose write had finished, or
// which a read had returned, before that write began. The cut-off member
// cannot have the majority's write; the staleness checker counts exactly
// such reads. (A value written by an info operation that no read had
// returned yet may have taken effect after the majority's write, so it
// does not count: when the member cut off was the leader, its last writes
// are such values.)
func staleByConstruction(t *testing.T, h history.History) int {
	t.Helper()
	var cut, heal history.Op
	for _, op := range history.Faults(h) {
		switch {
		case op.F == "start-partition" && cut.F == "":
			cut = op
		case op.F == "stop-partition" && cut.F != "" && heal.F == "":
			heal = op
		}
	}
	if cut.F == "" || heal.F == "" || cut.Error != "" {
		t.Fatalf("etcd/serializable/setup: no partition carried out and healed: %+v, %+v", cut, heal)
	}
	// The isolated member is the one that drops the packets of all others.
	var isolated string
	var grudge map[string][]string
	if err := json.Unmarshal([]byte(cut.Value.String()), &grudge); err != nil {
		t.Fatalf("etcd/serializable/setup: partition %s: %v", cut.Value, err)
	}
	for n, drops := range grudge {
		if len(drops) == len(grudge)-1 {
			isolated = n
		}
	}
	ops := history.Pair(h)
	// effect is when the value v of key had certainly taken effect.
	effect := func(key string, v history.Value) int64 {
		if v.IsNil() {
			return math.MinInt64
		}
		at := int64(math.MaxInt64)
		for _, o := range ops {
			if o.Key != key || o.Type != history.OK {
				continue
			}
			if o.F == "read" && o.Value.Equal(v) || (o.F == "write" || o.F == "cas") && slices.ContainsFunc(written(o), v.Equal) {
				at = min(at, o.Return)
			}
		}
		return at
	}
	n := 0
	for _, r := range ops {
		if r.F != "read" || r.Type != history.OK || r.Node != isolated || r.Call < cut.Time || r.Call > heal.Time {
			continue
		}
		for _, w := range ops {
			if w.Key == r.Key && (w.F == "write" || w.F == "cas") && w.Type == history.OK && w.Node != isolated &&
				w.Call > cut.Time && w.Return < r.Call && effect(r.Key, r.Value) < w.Call {
				n++
				break
			}
		}
	}
	return n
}

// written is the value a write or CAS wrote.
func written(w history.Operation) []history.Value {
	if w.F == "cas" {
		_, nv, _ := w.Value.Pair()
		return []history.Value{nv}
	}
	return []history.Value{w.Value}
}
