// Package run is eccheck's test lifecycle: it checks a test's settings
// before anything starts, brings up the system under test, drives the
// workload and the nemesis while recording the history, checks it and
// writes the run directory ([Test]); it runs a report card of such tests
// ([Matrix]); and it checks a history on its own ([Check]). [Dir] is the
// one type that owns a run directory's files. The command line binds its
// flags to a [Spec] and prints what comes back.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/workload"
)

// Spec is one test: the system under test with its settings, the common
// settings, the load, the checks, and where the run goes.
type Spec struct {
	DB       db.DB
	Settings db.Settings
	Common   db.Common
	// Concurrency is the number of clients; Rate the operations per
	// second to aim for in all (0: as fast as they go).
	Concurrency int
	Rate        float64
	// Seed decides every operation and the fault schedule; when SeedSet
	// is false a random one is drawn (and printed).
	Seed    uint64
	SeedSet bool
	Check   CheckOptions
	// Out is where run directories go; Name names the run (the system's
	// RunName when empty); NoLatest leaves out/latest alone (the cells of
	// a card).
	Out, Name string
	NoLatest  bool
	// Args are the command line, for test.json.
	Args []string
	// Quiet keeps progress off Stderr, where logs and progress go.
	Quiet  bool
	Stderr io.Writer
}

// Defaults of the Docker backend where they differ from the in-process
// one, used when the flags are not given: requests cross a network
// stack, and a killed container takes a second or two to start and
// answer again.
const (
	DockerOpTimeout = 3 * time.Second
	DockerRecovery  = 5 * time.Second
)

// CyclesBound is the time limit of a run with --nemesis-cycles and no
// --time-limit: a bound, not a length.
const CyclesBound = 10 * time.Minute

// Adjust sets the defaults that depend on other settings: the system's
// own (a Postgres run has no faults unless asked), the Docker backend's
// timeouts, the bound of a run measured in fault cycles. given reports
// whether the user set a flag.
func (s *Spec) Adjust(given func(flag string) bool) {
	s.Settings.Adjust(&s.Common, given)
	if s.Common.Backend == db.BackendDocker || s.Common.Backend == db.BackendSSH {
		if !given("op-timeout") {
			s.Common.OpTimeout = DockerOpTimeout
		}
		if !given("recovery") {
			s.Common.Recovery = DockerRecovery
		}
	}
	if d, ok := s.Settings.(db.Diverger); ok && !given("converge") && s.Common.Nodes > 1 && slices.ContainsFunc(s.Common.Workloads, workload.Converges) && d.CanDiverge(s.Common) {
		s.Common.Converge = db.DefaultConverge
	}
	if s.Common.Cycles > 0 && !given("time-limit") {
		s.Common.TimeLimit = CyclesBound
	}
}

// Validate checks every setting before anything is created; its errors
// are usage errors that name the flag.
func (s *Spec) Validate() error {
	c := s.Common
	if err := s.Settings.Validate(c); err != nil {
		return err
	}
	switch {
	case c.Backend != db.BackendLocal && c.Backend != db.BackendDocker && c.Backend != db.BackendSSH:
		return db.Usagef("--cluster %q: want local (in this process), docker or ssh", c.Backend)
	case !slices.Contains(s.DB.Backends(), c.Backend):
		return db.Usagef("--db %s runs on %s, not --cluster %s", s.DB.Name(), strings.Join(s.DB.Backends(), " or "), c.Backend)
	case c.Backend == db.BackendLocal && (c.ClusterName != "" || c.Keep):
		return db.Usagef("--cluster-name and --keep go with --cluster docker")
	case c.Backend == db.BackendSSH && len(c.Hosts) == 0:
		return db.Usagef("--cluster ssh needs --hosts h1,h2,h3 (node i runs on host i)")
	case c.Backend == db.BackendSSH && c.Nodes != len(c.Hosts):
		return db.Usagef("--nodes %d with %d --hosts: node i runs on host i, so give as many hosts as nodes", c.Nodes, len(c.Hosts))
	case c.Backend != db.BackendSSH && len(c.Hosts) > 0:
		return db.Usagef("--hosts goes with --cluster ssh")
	case c.Backend == db.BackendDocker && c.Nodes > 9:
		return db.Usagef("--nodes %d: a Docker cluster has 1 to 9 nodes", c.Nodes)
	case c.Nodes < 1 || c.Nodes > 15:
		return db.Usagef("--nodes %d: want 1 to 15", c.Nodes)
	case s.Concurrency < 1 || s.Concurrency > 1000:
		return db.Usagef("--concurrency: %d clients; want 1 to 1000", s.Concurrency)
	case c.TimeLimit <= 0:
		return db.Usagef("--time-limit %v: want a positive duration, such as 30s", c.TimeLimit)
	case s.Rate < 0:
		return db.Usagef("--rate %v: want operations per second in all, or 0 for as fast as the clients go", s.Rate)
	case c.OpTimeout <= 0:
		return db.Usagef("--op-timeout %v: want a positive duration, such as 2s", c.OpTimeout)
	case c.Recovery < 0:
		return db.Usagef("--recovery %v: want a duration of 0 or more", c.Recovery)
	case c.Converge < 0:
		return db.Usagef("--converge %v: want how long to poll after the heal, such as 10s, or 0 for no convergence phase", c.Converge)
	case c.Converge > 0 && !slices.ContainsFunc(c.Workloads, workload.Converges):
		return db.Usagef("--converge polls the keys of the single-key workloads (register, session, set, counter); --workload %s has none", strings.Join(c.Workloads, ","))
	case c.Converge > 0 && c.Nodes < 2:
		return db.Usagef("--converge compares nodes: --nodes %d has nothing to compare", c.Nodes)
	case c.Saga.Bug != "" && !slices.Contains(workload.SagaBugs, c.Saga.Bug):
		return db.Usagef("--saga-bug %q: want %s", c.Saga.Bug, strings.Join(workload.SagaBugs, " or "))
	case c.Saga.Bug != "" && !slices.Contains(c.Workloads, workload.Saga):
		return db.Usagef("--saga-bug goes with --workload saga")
	case c.Saga.FailureRate < 0 || c.Saga.FailureRate > 1:
		return db.Usagef("--saga-failure-rate %v: want a share from 0 to 1", c.Saga.FailureRate)
	case c.Saga.KillRate < 0 || c.Saga.KillRate > 1:
		return db.Usagef("--saga-kill-rate %v: want a share from 0 to 1", c.Saga.KillRate)
	case c.Saga.Stock < 0:
		return db.Usagef("--saga-stock %d: want units of each item (0: the default, %d)", c.Saga.Stock, workload.DefaultSagaOptions().Stock)
	case c.Retry < 0 || c.Retry > 100:
		return db.Usagef("--retry %d: want 0 (no retries) to 100 retries of an attempt that ended info", c.Retry)
	case c.Interval <= 0:
		return db.Usagef("--nemesis-interval %v: want a positive duration, such as 5s", c.Interval)
	case c.ClockMax < time.Millisecond:
		return db.Usagef("--clock-max %v: want at least 1ms (offsets are whole milliseconds)", c.ClockMax)
	case c.Cycles < 0:
		return db.Usagef("--nemesis-cycles %d: want 0 (run for --time-limit) or a number of faults", c.Cycles)
	case c.Cycles > 0 && len(c.Faults) == 0:
		return db.Usagef("--nemesis-cycles %d counts faults: name them with --nemesis", c.Cycles)
	case len(c.Workloads) == 0:
		return db.Usagef("--workload: no workloads")
	case len(c.Shapes) > 0 && !slices.Contains(c.Faults, nemesis.KindPartition):
		return db.Usagef("--partition-shapes %s: the shapes of partitions; add partition to --nemesis", strings.Join(c.Shapes, ","))
	}
	if err := s.Check.Validate(); err != nil {
		return err
	}
	if c.ClusterName != "" {
		if err := docker.ValidName(c.ClusterName); err != nil {
			return db.UsageError{Err: fmt.Errorf("--cluster-name: %w", err)}
		}
	}
	if c.Backend == db.BackendSSH {
		seen := map[string]bool{}
		for _, h := range c.Hosts {
			if h == "" || seen[h] {
				return db.Usagef("--hosts %s: an empty or repeated host (one node per host)", strings.Join(c.Hosts, ","))
			}
			seen[h] = true
		}
	}
	if err := nemesis.Validate(nemesis.Options{Faults: c.Faults, Interval: c.Interval, Cycles: c.Cycles, ClockMax: c.ClockMax, Partitions: c.Shapes}, c.Nodes); err != nil {
		return db.Usagef("--nemesis %s with --nodes %d: %s", orNone(c.Faults), c.Nodes, strings.TrimPrefix(err.Error(), "nemesis: "))
	}
	return nil
}

// RunName is the run's name: Name, or what the system calls its settings.
func (s *Spec) RunName() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Settings.RunName(s.Common)
}

// logf prints a progress line on Stderr, unless quiet.
func (s *Spec) logf(format string, args ...any) {
	if !s.Quiet && s.Stderr != nil {
		fmt.Fprintf(s.Stderr, "eccheck: "+format+"\n", args...)
	}
}

// progress is where longer progress goes (image builds, a cluster coming
// up): Stderr, or nowhere when quiet.
func (s *Spec) progress() io.Writer {
	if s.Quiet || s.Stderr == nil {
		return nil
	}
	return s.Stderr
}

// Test runs one test: it validates the spec, creates the run directory,
// starts the system, runs the workload under the nemesis while recording
// the history, checks it and writes every report. It returns the report
// and the run directory, also when the run fails after the directory
// exists (before that Dir.Path is ""). The cluster is stopped and removed
// on every way out (unless kept).
func Test(ctx context.Context, spec Spec) (rep results.Report, dir Dir, err error) {
	if err := spec.Validate(); err != nil {
		return rep, dir, err
	}
	c := spec.Common
	if !spec.SeedSet {
		spec.Seed = rand.Uint64() >> 12 // short enough to type back
	}
	start := time.Now().UTC()
	if dir, err = Create(spec.Out, spec.RunName(), start); err != nil {
		return rep, dir, err
	}
	spec.logf("run %s, seed %d", dir.Path, spec.Seed)
	cfg := Config{
		Version: Version, Seed: spec.Seed, Start: start, DB: spec.DB.Name(), Cluster: c.Backend, Nodes: c.Nodes,
		Workloads: c.Workloads, Nemesis: c.Faults, Interval: c.Interval.String(), Cycles: c.Cycles, Shapes: c.Shapes, TimeLimit: c.TimeLimit.String(),
		Conc: spec.Concurrency, Rate: spec.Rate, Args: spec.Args, Settings: spec.Settings.Record(),
		Retry: c.Retry, IdempotencyKeys: c.IdempotencyKeys,
	}
	if slices.ContainsFunc(c.Workloads, workload.Transactional) {
		cfg.ConsistencyModel = spec.Check.ConsistencyModel
	}
	if cfg.Nemesis == nil {
		cfg.Nemesis = []string{}
	}
	if err := dir.WriteConfig(cfg); err != nil {
		return rep, dir, err
	}
	if !spec.NoLatest {
		if err := dir.Link(spec.Out); err != nil {
			spec.logf("warning: %v", err)
		}
	}

	sys, err := spec.Settings.Start(ctx, db.Env{Common: c, Dir: dir.Path, Logf: spec.logf, Progress: spec.progress()})
	if err != nil {
		return rep, dir, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if cerr := sys.Close(cctx, dir.Nodes()); cerr != nil {
			spec.logf("warning: %v", cerr)
		}
	}()
	info := sys.Info()
	cfg.ClusterName, cfg.Images, cfg.Engine = info.ClusterName, info.Images, info.Engine
	if info.Engine != nil {
		e := info.Engine
		spec.logf("Docker engine %s (API %s), storage driver %s, cgroup v%s (%s), kernel %s", e.Version, e.APIVersion, e.StorageDriver, e.CgroupVersion, e.CgroupDriver, e.Kernel)
	}
	if err := dir.WriteConfig(cfg); err != nil {
		return rep, dir, err
	}

	rec, err := history.Create(dir.File(FileHistory), history.KeepInMemory())
	if err != nil {
		return rep, dir, err
	}
	defer rec.Close()
	var nem workload.Nemesis
	if len(c.Faults) > 0 {
		n, err := nemesis.New(sys, nemesis.Options{Faults: c.Faults, Interval: c.Interval, Cycles: c.Cycles, Seed: spec.Seed, ClockMax: c.ClockMax, Partitions: c.Shapes}, rec.Record)
		if err != nil {
			return rep, dir, db.UsageError{Err: fmt.Errorf("--nemesis: %w", err)}
		}
		nem = n
	}
	var parts []workload.Part
	for i, name := range c.Workloads {
		workers := spec.Concurrency / len(c.Workloads)
		if i < spec.Concurrency%len(c.Workloads) {
			workers++
		}
		if workers == 0 {
			continue
		}
		g, err := workload.NewGenerator(name, workers)
		if err != nil {
			return rep, dir, db.UsageError{Err: err}
		}
		if name == workload.Saga {
			g.Saga = c.Saga.WithDefaults()
		}
		parts = append(parts, workload.Part{Gen: g, Workers: workers})
	}
	prog := newProgressPrinter(spec.Stderr, spec.Quiet)
	length := c.TimeLimit.String()
	if c.Cycles > 0 {
		length = fmt.Sprintf("until %d faults are done (at most %v)", c.Cycles, c.TimeLimit)
	}
	spec.logf("workload %s, %d clients, nemesis %s every %v, %s", strings.Join(c.Workloads, ","), spec.Concurrency, orNone(c.Faults), c.Interval, length)
	sum, runErr := workload.Run(ctx, workload.Options{
		Parts: parts, Nodes: sys.Nodes(), NewClient: sys.NewClient, Seed: spec.Seed, Rate: spec.Rate,
		TimeLimit: c.TimeLimit, OpTimeout: c.OpTimeout, Recorder: rec, Nemesis: nem, Recovery: c.Recovery,
		Retry: c.Retry, Requests: c.IdempotencyKeys, Converge: c.Converge, NodeClient: nodeClient(sys),
		BeforeFinal: sys.Settle, Progress: prog.print,
	})
	prog.done()
	if cerr := rec.Close(); cerr != nil {
		runErr = errors.Join(runErr, cerr)
	}
	cfg.Summary = &sum
	_ = dir.WriteConfig(cfg)
	if runErr != nil {
		return rep, dir, fmt.Errorf("run %s: %w (the history so far is in %s)", dir.Path, runErr, dir.File(FileHistory))
	}
	if err := ctx.Err(); err != nil {
		return rep, dir, fmt.Errorf("interrupted; the history so far is in %s: %w", dir.Path, err)
	}
	spec.logf("%d operations (%d ok, %d fail, %d info), %d final reads in %s", sum.Ops, sum.OK, sum.Fail, sum.Info, sum.FinalReads, sum.Elapsed.Round(time.Millisecond))
	if s := sum.Sagas; s != nil {
		spec.logf("sagas: %d begun, %d completed, %d compensated (%d steps declined, %d failed otherwise); %d coordinators killed, %d sagas recovered by another, %d left unfinished", s.Started, s.Completed, s.Compensated, s.Declined, s.Failed, s.Killed, s.Recovered, s.Unfinished)
	}
	for _, w := range runWarnings(c, sum) {
		spec.logf("warning: %s", w)
	}

	co := spec.Check
	co.VizDir = dir.Path
	co.Convergence = sum.Convergence
	h := rec.History()
	if rep, err = Check(ctx, dir.File(FileHistory), h, nil, co, spec.logf); err != nil {
		return rep, dir, err
	}
	if err := dir.WriteResults(rep); err != nil {
		return rep, dir, err
	}
	dir.WriteReports(rep, h, func(format string, args ...any) {
		if spec.Stderr != nil {
			fmt.Fprintf(spec.Stderr, "eccheck: warning: "+format+"\n", args...)
		}
	})
	spec.logf("run directory: %s (re-check with: eccheck check %s)", dir.Path, dir.Path)
	return rep, dir, nil
}

// runWarnings says what went wrong in a run without stopping it: faults
// that could not be applied (each in the history with the engine's
// error), a heal that failed, fewer fault cycles than asked for.
func runWarnings(c db.Common, sum workload.Summary) []string {
	out := slices.Clone(sum.Warnings)
	if sum.FaultsFailed > 0 {
		out = append(out, fmt.Sprintf("%d fault operation(s) could not be carried out, even on a second try; the history records each with its error, and the report lists them", sum.FaultsFailed))
	}
	if c.Cycles > 0 && sum.FaultCycles < c.Cycles {
		out = append(out, fmt.Sprintf("the time limit (%v) ended the run after %d of the %d fault cycles asked for (--nemesis-cycles); give a longer --time-limit", c.TimeLimit, sum.FaultCycles, c.Cycles))
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// progressPrinter shows the live progress line: rewritten in place on a
// terminal, one line every 5 s otherwise (CI logs).
type progressPrinter struct {
	w     io.Writer
	quiet bool
	tty   bool
	last  time.Time
	shown bool
}

func newProgressPrinter(w io.Writer, quiet bool) *progressPrinter {
	p := &progressPrinter{w: w, quiet: quiet || w == nil}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progressPrinter) print(pr workload.Progress) {
	if p.quiet {
		return
	}
	if !p.tty && time.Since(p.last) < 5*time.Second && pr.Phase == "workload" {
		return
	}
	p.last = time.Now()
	faults := "no faults"
	if len(pr.Faults) > 0 {
		faults = strings.Join(pr.Faults, "; ")
	}
	line := fmt.Sprintf("[%s/%s] %s: %d ops (%.0f/s) ok %d fail %d info %d | %s",
		pr.Elapsed.Round(time.Second), pr.Limit, pr.Phase, pr.Ops, pr.OpsPerSec, pr.OK, pr.Fail, pr.Info, faults)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, "eccheck: "+line)
	}
}

func (p *progressPrinter) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// nodeClient is the convergence phase's way to read one node: the
// system's NodeClient when it has one.
func nodeClient(sys db.System) func(string, string) (workload.Client, error) {
	if nr, ok := sys.(db.NodeReader); ok {
		return nr.NodeClient
	}
	return nil
}
