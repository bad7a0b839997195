package workload

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// Client performs operations against one node (or roams across nodes). It
// is used by one worker at a time. Invoke takes an invocation and returns
// its completion: ok (happened), fail (certainly did not) or info (may
// have); it must return by ctx's deadline.
type Client interface {
	Invoke(ctx context.Context, op history.Op) history.Op
}

// Nemesis injects faults while the workers run; HealAll undoes every fault
// and must work after Run returned. The nemesis package provides one.
// When Run returns before its context ends (it has carried out the faults
// it was asked for), the workers stop. Cycles and Failed count the faults
// started and stopped, and the fault operations that could not be carried
// out; Active describes the faults in force.
type Nemesis interface {
	Run(ctx context.Context) error
	HealAll(ctx context.Context) error
	Active() []string
	Cycles() int
	Failed() int
}

// Recorder is where operations go; history.Recorder is one.
type Recorder interface {
	Record(op history.Op) history.Op
}

// Part is one workload of a run and how many workers drive it.
type Part struct {
	Gen     *Generator
	Workers int
}

// Options configure Run.
type Options struct {
	Parts []Part
	// Nodes are the cluster's nodes; worker i of a part is bound to node
	// i mod len(Nodes) (session workers roam instead).
	Nodes []string
	// NewClient makes the client of a worker: for workload (a Part's
	// generator name) bound to node, or roaming across all nodes when node
	// is "".
	NewClient func(workload, node string) (Client, error)
	// Seed decides every stream's operations.
	Seed uint64
	// Rate is the total operations per second to aim for; 0 is as fast as
	// the clients go.
	Rate float64
	// TimeLimit is how long the workers run.
	TimeLimit time.Duration
	// OpTimeout bounds each operation; past it the completion is info.
	OpTimeout time.Duration
	// MaxOps stops the workers after this many operations in all (0: no
	// bound but the time limit).
	MaxOps int64
	// Retry is how many times a worker retries an operation whose attempt
	// ended info, backing off between attempts (0: never). Each attempt is
	// recorded as an operation of its own, naming its request and attempt
	// (history.Op's Request and Attempt).
	Retry int
	// Requests names every invocation's logical request (Request, Attempt
	// 1) even without retries: what idempotency keys are made of.
	Requests bool
	// Converge, when positive, runs the convergence phase right after the
	// heal: a sample of each single-key workload's keys (ConvergeKeys,
	// default 10) read from every node, round after round, until the
	// nodes agree on each key or Converge has passed since the heal. The
	// reads are not recorded in the history (they would be reads of a
	// cluster still settling, which other checkers would judge); the
	// summary carries what they found.
	Converge     time.Duration
	ConvergeKeys int
	// NodeClient, if set, makes the convergence phase's clients, each
	// reading one node alone (NewClient otherwise); an error leaves that
	// node out of the phase, named in its result.
	NodeClient func(workload, node string) (Client, error)
	Recorder   Recorder
	// Nemesis, if set, runs alongside the workers and is healed before
	// the final phase. When its Run returns early, the workers stop: with
	// a nemesis that stops after so many faults, TimeLimit is a bound.
	Nemesis Nemesis
	// Recovery is how long to wait after healing, before the final reads.
	Recovery time.Duration
	// BeforeFinal, if set, is called after the recovery wait, before the
	// final reads: the system under test waits there for what its recovery
	// needs, and the clients NewClient makes after it are the final reads'.
	BeforeFinal func(ctx context.Context)
	// Progress, if set, is called about once a second, and once at the end.
	Progress func(Progress)
}

// Progress is a snapshot of a running test.
type Progress struct {
	Elapsed, Limit      time.Duration
	Ops, OK, Fail, Info int64
	OpsPerSec           float64
	Faults              []string
	Phase               string // "workload", "healing", "recovery", "final reads", "done"
}

// Summary is what Run did.
type Summary struct {
	Ops  int64 `json:"ops"`
	OK   int64 `json:"ok"`
	Fail int64 `json:"fail"`
	Info int64 `json:"info"`
	// Retries counts the attempts after the first (--retry).
	Retries int64 `json:"retries,omitempty"`
	// Convergence is what the convergence phase found (--converge).
	Convergence *checkers.Convergence `json:"convergence,omitempty"`
	// Sagas is what the saga workload's coordinators did.
	Sagas *SagaSummary `json:"sagas,omitempty"`
	// Elapsed is the whole run; Workload the part before the final phase
	// (nanoseconds in JSON).
	Elapsed    time.Duration `json:"elapsed_ns"`
	Workload   time.Duration `json:"workload_ns"`
	FinalReads int           `json:"final_reads"`
	// FaultCycles counts the faults the nemesis started and stopped;
	// FaultsFailed the fault operations it recorded with an error (a fault
	// the cluster could not apply or undo, even on a second try).
	FaultCycles  int `json:"fault_cycles"`
	FaultsFailed int `json:"faults_failed"`
	// Warnings are what went wrong without stopping the run, such as a
	// heal that failed before the final reads.
	Warnings []string `json:"warnings,omitempty"`
}

// counters are shared by the workers.
type counters struct{ ops, ok, fail, info, retries atomic.Int64 }

// backoff waits before attempt+1 of a request: 50 ms doubled per attempt,
// at most 1 s. It reports false when ctx ended first.
func backoff(ctx context.Context, attempt int) bool {
	d := min(50*time.Millisecond<<min(attempt-1, 5), time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *counters) count(t history.Type) {
	c.ops.Add(1)
	switch t {
	case history.OK:
		c.ok.Add(1)
	case history.Fail:
		c.fail.Add(1)
	default:
		c.info.Add(1)
	}
}

// Run drives the workload: workers perform their streams' operations until
// the time limit (or MaxOps, or ctx ends), while the nemesis injects
// faults; then it heals every fault, waits Recovery and reads every key the
// workload touched from every node, marking those reads final. Every
// invocation and completion is recorded. A worker whose operation ended
// info continues under a fresh process id.
//
// The nemesis is healed on every way out, including a canceled ctx and a
// panic in a worker. Run returns an error only when the harness itself
// failed (a client could not be made); anomalies are for the checkers, and
// faults that could not be applied or healed are in the history and in
// the summary's FaultsFailed and Warnings.
func Run(ctx context.Context, o Options) (sum Summary, err error) {
	if o.Recorder == nil || o.NewClient == nil || len(o.Nodes) == 0 || len(o.Parts) == 0 {
		return sum, errors.New("workload: Recorder, NewClient, Nodes and Parts are required")
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	total := 0
	for _, p := range o.Parts {
		total += p.Workers
	}
	start := time.Now()
	var c counters
	heal := func() error {
		if o.Nemesis == nil {
			return nil
		}
		hctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return o.Nemesis.HealAll(hctx)
	}
	healed := false
	defer func() {
		if !healed {
			if herr := heal(); herr != nil {
				sum.Warnings = append(sum.Warnings, fmt.Sprintf("heal: %v", herr))
			}
		}
		if o.Nemesis != nil {
			sum.FaultCycles, sum.FaultsFailed = o.Nemesis.Cycles(), o.Nemesis.Failed()
		}
	}()

	// Make every client first, so a harness failure stops before any fault.
	type worker struct {
		part   Part
		id     int // worker number within its part
		proc   history.Process
		client Client
		stream *Stream
		global int // worker number across parts, for request names
		seq    int // requests made
	}
	var workers []*worker
	procs := 0
	for _, p := range o.Parts {
		for i := 0; i < p.Workers; i++ {
			node := o.Nodes[i%len(o.Nodes)]
			if p.Gen.Name() == Session {
				node = "" // roam
			}
			cl, err := o.NewClient(p.Gen.Name(), node)
			if err != nil {
				return sum, fmt.Errorf("client for %s worker %d: %w", p.Gen.Name(), i, err)
			}
			workers = append(workers, &worker{part: p, id: i, proc: history.Process(procs), client: cl, stream: p.Gen.Stream(o.Seed, i), global: procs})
			procs++
		}
	}

	var issued atomic.Int64
	// Fresh process ids for workers that got an info, and for the final
	// reads: never reused.
	var fresh atomic.Int64
	fresh.Store(int64(procs))
	freshProc := func() history.Process { return history.Process(fresh.Add(1) - 1) }
	// The saga workload sets its inventory up before any fault, and has a
	// recovery worker of its own.
	var sagas *sagaRun
	var watcher *coordinator
	for _, p := range o.Parts {
		if p.Gen.Name() == Saga {
			sagas = &sagaRun{o: &o, c: &c, issued: &issued, fresh: freshProc, opts: p.Gen.Saga.WithDefaults()}
			if err := sagas.init(ctx, o.Nodes[0]); err != nil {
				return sum, err
			}
			if watcher, err = sagas.newCoordinator(o.Nodes[0], procs, false); err != nil {
				return sum, fmt.Errorf("client of the saga recovery worker: %w", err)
			}
		}
	}
	wctx, stopWorkers := context.WithTimeout(ctx, o.TimeLimit)
	defer stopWorkers()
	var nemDone chan error
	if o.Nemesis != nil {
		nemDone = make(chan error, 1)
		go func() {
			nemDone <- o.Nemesis.Run(wctx)
			stopWorkers() // the faults asked for are done
		}()
	}
	progress := func(phase string) {
		if o.Progress == nil {
			return
		}
		el := time.Since(start)
		p := Progress{Elapsed: el, Limit: o.TimeLimit, Ops: c.ops.Load(), OK: c.ok.Load(), Fail: c.fail.Load(), Info: c.info.Load(), Phase: phase}
		if el > 0 {
			p.OpsPerSec = float64(p.Ops) / el.Seconds()
		}
		if o.Nemesis != nil {
			p.Faults = o.Nemesis.Active()
		}
		o.Progress(p)
	}
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				progress("workload")
			}
		}
	}()

	// Pace: each worker waits its share of the rate.
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(workers)) / o.Rate)
	}
	var wg sync.WaitGroup
	panics := make(chan any, len(workers)+1)
	// The recovery worker stops with the coordinators (at --max-ops too),
	// not only at the time limit; its own polls do not count as the
	// workload's operations.
	var coordinators sync.WaitGroup
	if sagas != nil {
		watchCtx, stopWatch := context.WithCancel(wctx)
		for _, w := range workers {
			if w.part.Gen.Name() == Saga {
				coordinators.Add(1)
			}
		}
		go func() { coordinators.Wait(); stopWatch() }()
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					panics <- p
					stopWorkers()
				}
			}()
			sagas.watch(watchCtx, watcher)
		})
	}
	for _, w := range workers {
		wg.Go(func() {
			if w.part.Gen.Name() == Saga {
				defer coordinators.Done()
			}
			defer func() {
				if p := recover(); p != nil {
					panics <- p
					stopWorkers()
				}
			}()
			next := time.Now()
			// pace waits the worker's share of the rate; false when the
			// workload ended meanwhile.
			pace := func() bool {
				if interval <= 0 {
					return true
				}
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					select {
					case <-time.After(d):
					case <-wctx.Done():
						return false
					}
				}
				return true
			}
			if w.part.Gen.Name() == Saga {
				co := &coordinator{r: sagas, client: w.client, proc: w.proc, global: w.global, limited: true}
				co.rename()
				for wctx.Err() == nil && !co.stop && pace() {
					co.saga(wctx, w.stream.nextSaga())
				}
				return
			}
			for wctx.Err() == nil {
				if o.MaxOps > 0 && issued.Add(1) > o.MaxOps || !pace() {
					return
				}
				inv := w.stream.Next()
				if o.Retry > 0 || o.Requests {
					w.seq++
					inv.Request, inv.Attempt = fmt.Sprintf("p%d.%d", w.global, w.seq), 1
				}
				for {
					inv.Process = w.proc
					rec := o.Recorder.Record(inv)
					octx, cancel := context.WithTimeout(context.Background(), o.OpTimeout)
					done := w.client.Invoke(octx, rec)
					cancel()
					done.Process, done.F, done.Key = w.proc, inv.F, inv.Key
					done.Index, done.Time, done.Request, done.Attempt = 0, 0, "", 0
					done = o.Recorder.Record(done)
					c.count(done.Type)
					if done.Type != history.Info {
						break
					}
					// The attempt may still be in flight: its process
					// stays busy for good, and a retry goes on a fresh one.
					w.proc = freshProc()
					if o.Retry == 0 || inv.Attempt > o.Retry || !backoff(wctx, inv.Attempt) {
						break
					}
					if o.MaxOps > 0 && issued.Add(1) > o.MaxOps {
						break // a retry is an operation too
					}
					inv.Attempt++
					c.retries.Add(1)
				}
			}
		})
	}
	wg.Wait()
	stopWorkers()
	sum.Workload = time.Since(start)
	select {
	case p := <-panics:
		close(stopProgress)
		<-progressDone
		panic(p) // the deferred heal runs first
	default:
	}
	if nemDone != nil {
		if nerr := <-nemDone; nerr != nil {
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("nemesis: %v", nerr))
		}
	}

	// Final phase: heal, recover, read everything from everywhere. A heal
	// that fails is a warning: the final reads then show the cluster as
	// it is, and the history records the failed stop.
	progress("healing")
	healed = true
	if herr := heal(); herr != nil {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("heal before the final reads: %v", herr))
	}
	healedAt := time.Now()
	if o.Converge > 0 && ctx.Err() == nil {
		progress("convergence")
		conv, cerr := converge(ctx, o, healedAt)
		if cerr != nil {
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("convergence phase: %v", cerr))
		}
		sum.Convergence = conv
	}
	if sagas != nil && ctx.Err() == nil {
		progress("saga recovery")
		sum.Sagas = sagas.summary()
		// Before the recovery wait and the system's settling, so that the
		// replicas the final reads read have the recovery's steps too.
		// Through the first node whose client can read the saga log: a
		// node a failover left behind may answer nothing.
		left, ferr := 0, errors.New("no node to run it through")
		for _, node := range o.Nodes {
			co, cerr := sagas.newCoordinator(node, -2, false)
			if cerr != nil {
				ferr = fmt.Errorf("client on %s: %w", node, cerr)
				continue
			}
			if left, ferr = sagas.finish(ctx, co); ferr == nil {
				break
			}
			ferr = fmt.Errorf("through %s: %w", node, ferr)
		}
		if ferr != nil || left > 0 {
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("saga recovery: %d sagas left unfinished in the log (%v)", left, ferr))
		}
		sum.Sagas = sagas.summary()
		sum.Sagas.Unfinished = int64(left)
	}
	if left := o.Recovery - time.Since(healedAt); ctx.Err() == nil && left > 0 {
		progress("recovery")
		select {
		case <-time.After(left):
		case <-ctx.Done():
		}
	}
	if o.BeforeFinal != nil && ctx.Err() == nil {
		o.BeforeFinal(ctx)
	}
	progress("final reads")
	for _, p := range o.Parts {
		for _, node := range o.Nodes {
			if ctx.Err() != nil {
				break
			}
			cl, cerr := o.NewClient(p.Gen.Name(), node)
			if cerr != nil {
				err = errors.Join(err, fmt.Errorf("final client %s on %s: %w", p.Gen.Name(), node, cerr))
				continue
			}
			next := freshProc()
			for _, key := range p.Gen.Keys() {
				read := p.Gen.FinalRead(key)
				read.Process, read.Type, read.Node, read.Final = next, history.Invoke, node, true
				inv := o.Recorder.Record(read)
				octx, cancel := context.WithTimeout(context.Background(), o.OpTimeout)
				done := cl.Invoke(octx, inv)
				cancel()
				done.Process, done.F, done.Key, done.Final = next, read.F, read.Key, true
				done.Index, done.Time = 0, 0
				o.Recorder.Record(done)
				sum.FinalReads++
				if done.Type == history.Info {
					next = freshProc()
				}
			}
		}
	}
	close(stopProgress)
	<-progressDone
	progress("done")
	sum.Ops, sum.OK, sum.Fail, sum.Info = c.ops.Load(), c.ok.Load(), c.fail.Load(), c.info.Load()
	sum.Retries = c.retries.Load()
	sum.Elapsed = time.Since(start)
	return sum, err
}

// converge is the convergence phase: it polls a sample of the keys of
// each single-key workload on every node, every 50 ms, until each key's
// nodes agree or o.Converge has passed since healedAt.
func converge(ctx context.Context, o Options, healedAt time.Time) (*checkers.Convergence, error) {
	sample := o.ConvergeKeys
	if sample <= 0 {
		sample = 10
	}
	conv := &checkers.Convergence{BoundMS: float64(o.Converge) / float64(time.Millisecond), Keys: []checkers.KeyConvergence{}}
	if len(o.Nodes) < 2 {
		return conv, nil
	}
	type pending struct {
		i       int // in conv.Keys
		key     string
		gen     *Generator
		clients []Client
		nodes   []string // of the clients
	}
	var todo []*pending
	var errs []error
	nodeClient := o.NewClient
	if o.NodeClient != nil {
		nodeClient = o.NodeClient
	}
	for _, p := range o.Parts {
		if !Converges(p.Gen.Name()) {
			continue // a transaction's keys are read by the final reads' transactions; a saga's state is one whole
		}
		var clients []Client
		var nodes []string
		for _, node := range o.Nodes {
			cl, err := nodeClient(p.Gen.Name(), node)
			if err != nil {
				if conv.Excluded == nil {
					conv.Excluded = map[string]string{}
				}
				conv.Excluded[node] = err.Error()
				continue
			}
			clients, nodes = append(clients, cl), append(nodes, node)
		}
		if len(clients) < 2 {
			errs = append(errs, fmt.Errorf("%s: fewer than two nodes to compare", p.Gen.Name()))
			continue
		}
		keys := p.Gen.Keys()
		for _, k := range keys[:min(len(keys), sample)] {
			todo = append(todo, &pending{i: len(conv.Keys), key: k, gen: p.Gen, clients: clients, nodes: nodes})
			conv.Keys = append(conv.Keys, checkers.KeyConvergence{Key: k})
		}
	}
	todo0 := todo
	deadline := healedAt.Add(o.Converge)
	// A node that has answered no read at all in the phase (still
	// restarting, still joining) is unavailable, not divergent: a key
	// agrees when every node that answers agrees and the others have never
	// answered; such a node is left out and named at the end.
	answered := map[string]bool{}
	lastErr := map[string]string{}
	for len(todo) > 0 && ctx.Err() == nil {
		round := time.Now()
		var left []*pending
		for _, p := range todo {
			kc := &conv.Keys[p.i]
			kc.Polls++
			values := map[string]string{}
			agreed, oks := "", 0
			same := true
			for i, cl := range p.clients {
				node := p.nodes[i]
				read := p.gen.FinalRead(p.key)
				read.Type, read.Node = history.Invoke, node
				octx, cancel := context.WithTimeout(ctx, o.OpTimeout)
				done := cl.Invoke(octx, read)
				cancel()
				if done.Type != history.OK {
					values[node] = "error: " + done.Error
					lastErr[node] = done.Error
					same = same && !answered[node]
					continue
				}
				answered[node] = true
				v := canonical(done.Value)
				values[node] = v
				if oks == 0 {
					agreed = v
				}
				oks++
				same = same && v == agreed
			}
			if same && oks >= 2 {
				kc.Converged, kc.MS = true, float64(time.Since(healedAt))/float64(time.Millisecond)
				continue
			}
			kc.Values = values
			left = append(left, p)
		}
		todo = left
		if len(todo) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-time.After(time.Until(round.Add(50 * time.Millisecond))):
		case <-ctx.Done():
		}
	}
	for i := range conv.Keys {
		if conv.Keys[i].Converged {
			conv.Keys[i].Values = nil
		}
	}
	for _, p := range todo0 {
		for _, node := range p.nodes {
			if !answered[node] && ctx.Err() == nil {
				if conv.Excluded == nil {
					conv.Excluded = map[string]string{}
				}
				conv.Excluded[node] = "answered no read during the phase: " + lastErr[node]
			}
		}
	}
	return conv, errors.Join(errs...)
}

// Converges reports whether the convergence phase polls a workload's keys:
// the single-key workloads' (a transaction's keys are read by the final
// reads' transactions; a saga's state is one whole).
func Converges(workload string) bool { return !Transactional(workload) && workload != Saga }

// canonical renders a read's value so that two nodes holding the same
// state compare equal: a set's elements in a fixed order.
func canonical(v history.Value) string {
	items, ok := v.AsList()
	if !ok {
		return v.String()
	}
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = it.String()
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, ",") + "]"
}
