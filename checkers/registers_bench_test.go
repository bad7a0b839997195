package checkers

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/synth"
)

// bench1MConfig is the synthetic history the register benchmarks share:
// one million history lines (500,000 operations), 10 clients, 1000 keys.
var bench1MConfig = synth.RegisterConfig{
	Ops: 1_000_000, Keys: 1000, Clients: 10, Seed: 1,
	CASProb: 0.1, StaleProb: 0.05, InfoProb: 0.01, FailProb: 0.01,
}

var bench1M = sync.OnceValue(func() history.History { return synth.Register(bench1MConfig) })

// benchPerHistoryOp runs fn b.N times and reports its time and allocated
// bytes per line of a history of n lines, the units of the performance
// targets ("no more than twice the decode time; about 200 bytes per
// operation").
func benchPerHistoryOp(b *testing.B, n int, fn func()) {
	b.Helper()
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fn()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/histop")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(n), "B/histop")
}

func benchRegisterChecker(b *testing.B, check Func) {
	h := bench1M()
	in := NewInput(h)
	var res Result
	benchPerHistoryOp(b, len(h), func() { res = check(context.Background(), in, Options{}) })
	b.Logf("%s on %d lines: %s", res.Checker, len(h), res.Summary)
}

func BenchmarkReadYourWrites1M(b *testing.B) { benchRegisterChecker(b, ReadYourWrites) }
func BenchmarkMonotonicReads1M(b *testing.B) { benchRegisterChecker(b, MonotonicReads) }
func BenchmarkStaleness1M(b *testing.B)      { benchRegisterChecker(b, Staleness) }

// BenchmarkPair1M times pairing the history into an Input, which the
// checkers above receive ready-made.
func BenchmarkPair1M(b *testing.B) {
	h := bench1M()
	benchPerHistoryOp(b, len(h), func() { NewInput(h) })
}

// BenchmarkDecode1M times history.ReadFile of the same history written as
// JSONL: the yardstick of the checker targets.
func BenchmarkDecode1M(b *testing.B) {
	h := bench1M()
	path := filepath.Join(b.TempDir(), "history.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	var buf []byte
	for _, op := range h {
		buf = append(op.AppendJSON(buf[:0]), '\n')
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if fi, err := os.Stat(path); err == nil {
		b.SetBytes(fi.Size())
	}
	benchPerHistoryOp(b, len(h), func() {
		got, _, err := history.ReadFile(path)
		if err != nil || len(got) != len(h) {
			b.Fatalf("read %d of %d lines: %v", len(got), len(h), err)
		}
	})
}
