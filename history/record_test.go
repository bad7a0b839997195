package history

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRecorderConcurrent(t *testing.T) {
	const (
		workers = 16
		pairs   = 2000 // per worker
	)
	path := filepath.Join(t.TempDir(), "history.jsonl")
	r, err := Create(path, KeepInMemory())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := Process(w)
			key := "k" + strconv.Itoa(w%4)
			for i := range pairs {
				v := Int(int64(w*pairs + i))
				r.Record(Op{Process: p, Type: Invoke, F: "write", Key: key, Value: v})
				r.Record(Op{Process: p, Type: OK, F: "write", Key: key, Value: v, Node: "n1"})
			}
		}()
	}
	wg.Wait()
	if n := r.Len(); n != workers*pairs*2 {
		t.Errorf("Len = %d, want %d", n, workers*pairs*2)
	}
	mem := r.History()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	h, warnings, err := ReadFile(path) // validates
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	if len(h) != workers*pairs*2 {
		t.Fatalf("read %d ops, want %d", len(h), workers*pairs*2)
	}
	seen := make(map[int64]int) // value -> completions
	for i, op := range h {
		if op.Index != int64(i) {
			t.Fatalf("op %d has index %d", i, op.Index)
		}
		if i > 0 && op.Time < h[i-1].Time {
			t.Fatalf("op %d: time %d before %d", i, op.Time, h[i-1].Time)
		}
		if !opEqual(op, mem[i]) {
			t.Fatalf("op %d in the file %+v differs from memory %+v", i, op, mem[i])
		}
		if op.Type == OK {
			n, _ := op.Value.AsInt()
			seen[n]++
		}
	}
	for v := range int64(workers * pairs) {
		if seen[v] != 1 {
			t.Fatalf("value %d completed %d times, want once", v, seen[v])
		}
	}
}

func TestRecorderRecordReturnsStampedOp(t *testing.T) {
	r, err := Create(filepath.Join(t.TempDir(), "h.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before := r.Now()
	a := r.Record(Op{Process: 0, Type: Invoke, F: "read", Index: 99, Time: -5})
	b := r.Record(Op{Process: 0, Type: OK, F: "read"})
	if a.Index != 0 || b.Index != 1 || a.Time < before || b.Time < a.Time || a.Time > r.Now() {
		t.Errorf("stamped ops %+v, %+v", a, b)
	}
	if len(r.History()) != 0 {
		t.Error("History is not empty without KeepInMemory")
	}
}

func TestRecorderRecordAfterClosePanics(t *testing.T) {
	r, err := Create(filepath.Join(t.TempDir(), "h.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Record after Close did not panic")
		}
	}()
	r.Record(Op{Process: 0, Type: Invoke, F: "read"})
}

func TestRecorderCreateError(t *testing.T) {
	_, err := Create(filepath.Join(t.TempDir(), "missing-dir", "h.jsonl"))
	if err == nil || !strings.HasPrefix(err.Error(), "create history: ") {
		t.Errorf("Create in a missing directory: err = %v", err)
	}
}

// crashEnv names the history file a child process of TestRecorderCrash
// records to until it is killed.
const crashEnv = "ECCHECK_RECORDER_CRASH_CHILD"

// recordUntilKilled is the child's side of TestRecorderCrash: it records
// pairs of ops in bursts and, after each burst, prints the index of the
// last op recorded.
func recordUntilKilled(path string) {
	r, err := Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	deadline := time.Now().Add(20 * time.Second) // never outlive a lost parent
	for i := int64(0); time.Now().Before(deadline); {
		var last Op
		for range 20 {
			r.Record(Op{Process: 0, Type: Invoke, F: "write", Key: "k", Value: Int(i)})
			last = r.Record(Op{Process: 0, Type: OK, F: "write", Key: "k", Value: Int(i)})
			i++
		}
		fmt.Printf("%d\n", last.Index)
		time.Sleep(time.Millisecond)
	}
	os.Exit(4)
}

func TestRecorderCrash(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		recordUntilKilled(path)
		return
	}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecorderCrash$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type progress struct {
		at    time.Time
		index int64
	}
	var (
		mu      sync.Mutex
		reports []progress
		started = make(chan struct{})
		readErr = make(chan error, 1)
	)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			n, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
			if err != nil {
				continue // test framework chatter
			}
			mu.Lock()
			reports = append(reports, progress{time.Now(), n})
			mu.Unlock()
			if first {
				close(started)
				first = false
			}
		}
		readErr <- sc.Err()
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the child never reported progress")
	}
	time.Sleep(300 * time.Millisecond)
	killedAt := time.Now()
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-readErr

	// The recorder writes its buffer every SyncInterval (100 ms); give it
	// twice that: every op reported 200 ms before the kill must be in the file.
	const margin = 2 * SyncInterval
	mu.Lock()
	var must int64 = -1
	for _, p := range reports {
		if p.at.Before(killedAt.Add(-margin)) {
			must = p.index
		}
	}
	nReports := len(reports)
	mu.Unlock()
	if must < 0 {
		t.Fatalf("no progress report 200 ms before the kill (%d reports)", nReports)
	}

	h, warnings, err := ReadFile(path)
	if err != nil {
		t.Fatalf("reading the history of a killed recorder: %v", err)
	}
	if len(warnings) > 1 {
		t.Errorf("warnings: %q", warnings)
	}
	t.Logf("child recorded at least %d ops 200 ms before the kill; the file holds %d (%d warnings)", must+1, len(h), len(warnings))
	if int64(len(h)) <= must {
		t.Fatalf("file holds %d ops; op %d, reported 200 ms before the kill, is missing", len(h), must)
	}
	for i, op := range h {
		if op.Index != int64(i) || (i > 0 && op.Time < h[i-1].Time) {
			t.Fatalf("op %d out of order: %+v", i, op)
		}
	}
}

func BenchmarkRecorder(b *testing.B) {
	op := Op{Process: 3, Type: OK, F: "write", Key: "key-17", Value: Int(123456), Node: "n2"}
	run := func(b *testing.B, parallel bool, opts ...RecorderOption) {
		r, err := Create(filepath.Join(b.TempDir(), "history.jsonl"), opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r.Record(op)
				}
			})
		} else {
			for range b.N {
				r.Record(op)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("single", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
	b.Run("single-in-memory", func(b *testing.B) { run(b, false, KeepInMemory()) })
}
