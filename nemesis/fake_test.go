package nemesis

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

var errBoom = errors.New("boom")

// fakeCluster is a Cluster that keeps the fault state in memory, logs every
// call, and fails the calls named in fail.
type fakeCluster struct {
	mu        sync.Mutex
	nodes     []string
	grudge    map[string][]string
	clocks    map[string]time.Duration
	killed    map[string]bool
	paused    map[string]bool
	calls     []string
	clockSets int
	fail      map[string]error // call ("kill n2", "heal") -> error it returns
	times     map[string]int   // calls in fail that fail only so many more times
	block     chan struct{}    // when set, Heal waits for it to close
}

var _ Cluster = (*fakeCluster)(nil)

func newFake(n int) *fakeCluster {
	f := &fakeCluster{clocks: map[string]time.Duration{}, killed: map[string]bool{}, paused: map[string]bool{}, fail: map[string]error{}}
	for i := 1; i <= n; i++ {
		f.nodes = append(f.nodes, "n"+strconv.Itoa(i))
	}
	return f
}

// call logs a call and returns the error it should fail with, if any. The
// caller holds f.mu.
func (f *fakeCluster) call(name string) error {
	f.calls = append(f.calls, name)
	err := f.fail[name]
	if n, ok := f.times[name]; ok && err != nil {
		if n <= 1 {
			delete(f.fail, name)
			delete(f.times, name)
		} else {
			f.times[name] = n - 1
		}
	}
	return err
}

func (f *fakeCluster) known(node string) error {
	if !slices.Contains(f.nodes, node) {
		return fmt.Errorf("no node %q", node)
	}
	return nil
}

func (f *fakeCluster) Nodes() []string { return slices.Clone(f.nodes) }

func (f *fakeCluster) Partition(g map[string][]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("partition"); err != nil {
		return err
	}
	for a, bs := range g {
		for _, b := range append([]string{a}, bs...) {
			if err := f.known(b); err != nil {
				return err
			}
		}
	}
	f.grudge = map[string][]string{}
	for a, bs := range g {
		f.grudge[a] = slices.Clone(bs)
	}
	return nil
}

func (f *fakeCluster) Heal() error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("heal"); err != nil {
		return err
	}
	f.grudge = nil
	return nil
}

func (f *fakeCluster) SetClock(node string, offset time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clockSets++
	if err := f.fail["clock "+node+" "+offset.String()]; err != nil {
		return err
	}
	if err := f.known(node); err != nil {
		return err
	}
	f.clocks[node] = offset
	return nil
}

func (f *fakeCluster) set(verb string, m map[string]bool, node string, to bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(verb + " " + node); err != nil {
		return err
	}
	if err := f.known(node); err != nil {
		return err
	}
	m[node] = to
	return nil
}

func (f *fakeCluster) Kill(node string) error   { return f.set("kill", f.killed, node, true) }
func (f *fakeCluster) Start(node string) error  { return f.set("start", f.killed, node, false) }
func (f *fakeCluster) Pause(node string) error  { return f.set("pause", f.paused, node, true) }
func (f *fakeCluster) Resume(node string) error { return f.set("resume", f.paused, node, false) }

// setFail makes a call fail with err, or succeed again when err is nil.
func (f *fakeCluster) setFail(call string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, call)
	} else {
		f.fail[call] = err
	}
}

// failTimes makes a call fail with err its next n times, then succeed.
func (f *fakeCluster) failTimes(call string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.times == nil {
		f.times = map[string]int{}
	}
	f.fail[call], f.times[call] = err, n
}

// faults describes every fault in force; empty when the cluster is whole.
func (f *fakeCluster) faults() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if len(f.grudge) > 0 {
		out = append(out, fmt.Sprintf("grudge %v", f.grudge))
	}
	for _, node := range slices.Sorted(maps.Keys(f.clocks)) {
		if d := f.clocks[node]; d != 0 {
			out = append(out, fmt.Sprintf("clock %s %s", node, d))
		}
	}
	for _, node := range slices.Sorted(maps.Keys(f.killed)) {
		if f.killed[node] {
			out = append(out, "killed "+node)
		}
	}
	for _, node := range slices.Sorted(maps.Keys(f.paused)) {
		if f.paused[node] {
			out = append(out, "paused "+node)
		}
	}
	return out
}

func (f *fakeCluster) sets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clockSets
}

// opLog records nemesis operations the way a history.Recorder does: it
// numbers them and stamps them with a time.
type opLog struct {
	mu    sync.Mutex
	start time.Time
	ops   history.History
}

func newOpLog() *opLog { return &opLog{start: time.Now()} }

func (l *opLog) record(op history.Op) history.Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	op.Index = int64(len(l.ops))
	op.Time = int64(time.Since(l.start))
	l.ops = append(l.ops, op)
	return op
}

func (l *opLog) history() history.History {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// fs lists the f of each op, "start-kill stop-kill ...".
func fs(h history.History) string {
	var out []string
	for _, op := range h {
		out = append(out, op.F)
	}
	return strings.Join(out, " ")
}

// checkNemesisOps checks that h is a valid history made of nemesis info
// operations that survive a round trip through the JSONL format, and that
// each start is followed by the stop of the same kind.
func checkNemesisOps(t *testing.T, h history.History) {
	t.Helper()
	if err := history.Validate(h); err != nil {
		t.Fatalf("recorded ops are not a valid history: %v", err)
	}
	var open string
	for i, op := range h {
		if op.Process != history.Nemesis || op.Type != history.Info {
			t.Errorf("op %d: process %s type %s, want nemesis info", i, op.Process, op.Type)
		}
		kind, ok := strings.CutPrefix(op.F, "start-")
		switch {
		case ok && open != "":
			t.Errorf("op %d: %s while %s is in force", i, op.F, open)
		case ok:
			open = kind
		case op.F == "stop-"+open && op.Error != "" && open != "failover":
			// A stop that failed leaves the fault in force, for a retry
			// (a failover is never tried again).
		case op.F == "stop-"+open:
			open = ""
		default:
			t.Errorf("op %d: %s, but the fault in force is %q", i, op.F, open)
		}
		if !slices.Contains(Kinds(), strings.TrimPrefix(strings.TrimPrefix(op.F, "start-"), "stop-")) {
			t.Errorf("op %d: unknown f %q", i, op.F)
		}
	}
	if open != "" {
		t.Errorf("the history ends with %s in force", open)
	}
	var file bytes.Buffer
	for _, op := range h {
		file.Write(op.AppendJSON(nil))
		file.WriteByte('\n')
	}
	back, warnings, err := history.Read(&file, "nemesis.jsonl")
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the recorded ops do not read back as a history: %v %v", err, warnings)
	}
	if len(back) != len(h) {
		t.Fatalf("%d ops read back, %d recorded", len(back), len(h))
	}
	for i := range h {
		if a, b := back[i], h[i]; a.F != b.F || a.Process != b.Process || a.Type != b.Type || !a.Value.Equal(b.Value) || a.Error != b.Error {
			t.Errorf("op %d reads back as %+v, recorded %+v", i, a, b)
		}
	}
}

func TestMain(m *testing.M) {
	retryPause = time.Millisecond
	os.Exit(m.Run())
}
