package workload_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// The harness's cost: the same operations against the same in-process lww
// cluster (3 nodes, W=1 R=1, 10 clients), once from a bare loop of client
// calls and once through workload.Run with recording; compare their
// ops/s. (Target: the harness adds at most 5%, and records at least 20k
// ops/s.)

const benchClients = 10

func benchCluster(b *testing.B) *store.LocalCluster {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := store.StartLocal(ctx, store.LocalOptions{Nodes: 3, DataDir: b.TempDir(),
		Node: store.Config{Mode: store.ModeLWW, W: 1, R: 1, Logf: func(string, ...any) {}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkBareClientLoop(b *testing.B) {
	c := benchCluster(b)
	b.ResetTimer()
	b.ReportMetric(bareLoop(c, b.N), "ops/s")
}

// bareLoop performs about n register operations from benchClients
// goroutines with no harness at all, and returns ops/s.
func bareLoop(c *store.LocalCluster, n int) float64 {
	g, _ := workload.NewGenerator(workload.Register, benchClients)
	nodes := c.Nodes()
	per := n/benchClients + 1
	start := time.Now()
	var wg sync.WaitGroup
	for w := range benchClients {
		cl := ecstore.New(c.Addr(nodes[w%len(nodes)]), ecstore.Options{})
		s := g.Stream(1, w)
		wg.Go(func() {
			for range per {
				op := s.Next()
				op.Process = history.Process(w)
				cl.Invoke(context.Background(), op)
			}
		})
	}
	wg.Wait()
	return float64(per*benchClients) / time.Since(start).Seconds()
}

func BenchmarkHarness(b *testing.B) {
	c := benchCluster(b)
	b.ResetTimer()
	b.ReportMetric(harness(b, c, b.N), "ops/s")
}

// BenchmarkHarnessOverhead alternates the bare loop and the harness on the
// same cluster, five rounds of b.N operations each, and reports both
// medians and the overhead: alternating cancels the drift that running one
// benchmark after the other picks up on a small shared machine.
func BenchmarkHarnessOverhead(b *testing.B) {
	c := benchCluster(b)
	var bare, harn []float64
	for range 5 {
		bare = append(bare, bareLoop(c, b.N))
		harn = append(harn, harness(b, c, b.N))
	}
	slices.Sort(bare)
	slices.Sort(harn)
	b.ReportMetric(bare[2], "bare-ops/s")
	b.ReportMetric(harn[2], "harness-ops/s")
	b.ReportMetric(100*(bare[2]-harn[2])/bare[2], "overhead-%")
}

// harness performs about n operations through workload.Run with recording
// and returns the workload's ops/s.
func harness(b *testing.B, c *store.LocalCluster, n int) float64 {
	g, _ := workload.NewGenerator(workload.Register, benchClients)
	rec, err := history.Create(filepath.Join(b.TempDir(), "history.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	sum, err := workload.Run(context.Background(), workload.Options{
		Parts: []workload.Part{{Gen: g, Workers: benchClients}}, Nodes: c.Nodes(), Seed: 1,
		NewClient: func(name, node string) (workload.Client, error) {
			return ecstore.New(c.Addr(node), ecstore.Options{}), nil
		},
		TimeLimit: time.Hour, MaxOps: int64(n/benchClients+1) * benchClients, Recorder: rec,
	})
	if err != nil {
		b.Fatal(err)
	}
	// Count only the workload, not the final phase.
	return float64(sum.Ops) / sum.Workload.Seconds()
}
