package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/adapters/ecstore"
	pgadapter "github.com/eccheck/eccheck/adapters/postgres"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/store"
	"github.com/eccheck/eccheck/workload"
)

// testOptions are the flags of `eccheck test`.
type testOptions struct {
	db, cluster     string
	mode            string
	nodes, n, w, r  int
	setImpl         string
	primaryReads    string
	sessions        bool
	workloads       string
	nemesis         string
	nemesisInterval time.Duration
	nemesisCycles   int
	clockMax        time.Duration
	timeLimit       time.Duration
	timeLimitSet    bool
	concurrency     clients
	rate            float64
	seed            uint64
	seedSet         bool
	opTimeout       time.Duration
	recovery        time.Duration
	out, name       string
	noLatest        bool // no out/latest link (eccheck matrix)
	check           checkOptions
	// The Docker backend (--cluster docker).
	clusterName string
	keep        bool
	// --op-timeout and --recovery were not given: Docker has defaults of
	// its own (eccheck matrix sets neither and keeps its values).
	opTimeoutDefault bool
	recoveryDefault  bool
	// Postgres (--db postgres): replication, read routing, lag on demand;
	// nemesisDefault says --nemesis was not given (none with postgres).
	pgSync, pgRead string
	pgApplyDelay   applyDelay
	pgStandbys     []string
	pgPromote      string
	pgRejoin       bool
	nemesisDefault bool
	// pgFlags are the --pg-* flags given, rejected with --db ecstore.
	pgFlags []string
}

func newTestCmd(a *app) *cobra.Command {
	var o testOptions
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Run a cluster, drive a workload under faults, record and check the history",
		Long: `Test starts a cluster, drives concurrent clients with a workload, injects
faults on a schedule, records every operation, then heals every fault, waits
for the cluster to recover, reads every key from every node, checks the
history and prints the summary table.

With no flags it runs ecstore in this process in its weakest configuration
(last-write-wins, W=1 R=1, three nodes) under partitions and clock skew for
30 s, and finds anomalies (exit 1); --mode raft gives a clean bill (exit 0).

Everything lands in a run directory, runs/<name>/<UTC time>/ (and the link
runs/latest): test.json (the configuration, seed and version), history.jsonl,
results.json, report.txt, report.md, junit.xml, report.html (plots),
nodes/<node>.log and, for keys that are not linearizable, their
visualizations. 'eccheck check runs/latest' re-checks it; 'eccheck report
runs/latest -o markdown' renders it again.

With --db postgres --cluster docker it tests a Postgres primary with
streaming replicas instead: --pg-sync (async or remote_apply, waiting for
--pg-standbys), --pg-read (primary, replica or lsn-fence), --pg-apply-delay
(replication lag on demand), and the faults partition, kill, pause, clock
(libfaketime), lag (a replica pauses WAL replay for an interval) and
failover (cut the primary off, then kill it for good and
promote the replica with the most WAL, or --pg-promote; with --pg-rejoin the
old primary then comes back as a replica through pg_rewind).

The seed decides every operation and the fault schedule; it is printed at the
start, and --seed repeats a run's choices.`,
		Example: `  eccheck test
  eccheck test --mode raft --nemesis partition,kill
  eccheck test --mode lww --w 2 --r 2 --workload register --time-limit 1m
  eccheck test --workload set --set-impl lww-blob --nemesis partition
  eccheck test --cluster docker --db postgres --pg-read replica --pg-apply-delay 50ms --workload session
  eccheck test --cluster docker --db postgres --workload set --nemesis failover --pg-sync remote_apply`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.seedSet = cmd.Flags().Changed("seed")
			o.opTimeoutDefault = !cmd.Flags().Changed("op-timeout")
			o.recoveryDefault = !cmd.Flags().Changed("recovery")
			o.nemesisDefault = !cmd.Flags().Changed("nemesis")
			o.timeLimitSet = cmd.Flags().Changed("time-limit")
			for _, name := range []string{"pg-sync", "pg-read", "pg-apply-delay", "pg-standbys", "pg-promote", "pg-rejoin"} {
				if cmd.Flags().Changed(name) {
					o.pgFlags = append(o.pgFlags, "--"+name)
				}
			}
			rep, err := runTest(cmd.Context(), o, a)
			if err != nil {
				return err
			}
			a.verdict = rep.Verdict
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "ecstore", "the store under test: ecstore, or postgres (with --cluster docker; --nemesis defaults to none there)")
	f.StringVar(&o.pgSync, "pg-sync", docker.SyncAsync, "postgres: replication, async or remote_apply (the primary waits for the --pg-standbys)")
	f.StringSliceVar(&o.pgStandbys, "pg-standbys", nil, "postgres: with remote_apply, the synchronous standbys, such as n2 (default: every replica)")
	f.StringVar(&o.pgPromote, "pg-promote", "", "postgres: the replica a failover promotes (default: the one that received the most WAL)")
	f.BoolVar(&o.pgRejoin, "pg-rejoin", false, "postgres: after each failover, bring the old primary back as a replica with pg_rewind (else it stays down)")
	f.StringVar(&o.pgRead, "pg-read", pgadapter.ReadPrimary, "postgres: where reads go: primary, replica (each worker sticks to one), round-robin (each read on the next replica) or lsn-fence (replica reads that wait for the worker's last write)")
	f.Var(&o.pgApplyDelay, "pg-apply-delay", "postgres: replicas replay each commit this late (recovery_min_apply_delay): replication lag on demand; one delay for every replica (50ms) or one per replica (n2=0s,n3=200ms)")
	f.StringVar(&o.cluster, "cluster", "local", "where the cluster runs: local (in this process) or docker (ecstore containers; see 'eccheck images build')")
	f.StringVar(&o.clusterName, "cluster-name", "", "docker: the cluster's name (default eccheck-test-<run id>)")
	f.BoolVar(&o.keep, "keep", false, "docker: leave the cluster running after the test (remove it with 'eccheck cluster down --cluster-name NAME')")
	f.StringVar(&o.mode, "mode", store.ModeLWW, "ecstore mode: "+strings.Join(store.Modes, ", "))
	f.IntVar(&o.nodes, "nodes", 3, "cluster size")
	f.IntVar(&o.n, "n", 0, "replicas per key in lww and hlc (0 = every node)")
	f.IntVar(&o.w, "w", 1, "write quorum in lww and hlc")
	f.IntVar(&o.r, "r", 1, "read quorum in lww and hlc")
	f.StringVar(&o.setImpl, "set-impl", store.SetORSet, "sets in lww and hlc: orset (a CRDT) or lww-blob (one last-write-wins value)")
	f.StringVar(&o.primaryReads, "primary-reads", "any", "primary mode: reads from any node, or from the primary")
	f.BoolVar(&o.sessions, "sessions", false, "clients carry session tokens (read-your-writes and monotonic reads even in lww)")
	f.StringVar(&o.workloads, "workload", "register,session,set", "workloads, comma-separated: "+strings.Join(workload.Names, ", "))
	f.StringVar(&o.nemesis, "nemesis", "partition,clock", "faults, comma-separated: partition, clock, kill, pause, failover and lag (postgres); or none (the default with --db postgres)")
	f.DurationVar(&o.nemesisInterval, "nemesis-interval", 5*time.Second, "time between fault changes")
	f.IntVar(&o.nemesisCycles, "nemesis-cycles", 0, "end the workload once the nemesis has started and stopped this many faults, however long they take; --time-limit then bounds the run (default bound with cycles: 10m)")
	f.DurationVar(&o.clockMax, "clock-max", 10*time.Second, "largest clock bump")
	f.DurationVar(&o.timeLimit, "time-limit", 30*time.Second, "how long the workload runs (with --nemesis-cycles: at most)")
	o.concurrency = clients{n: 10}
	f.Var(&o.concurrency, "concurrency", "concurrent clients: a number, or Kn for K per node (2n: twice --nodes)")
	f.Float64Var(&o.rate, "rate", 0, "target operations per second in all (0 = as fast as the clients go)")
	f.Uint64Var(&o.seed, "seed", 0, "seed for operations and faults (default: random, printed)")
	f.DurationVar(&o.opTimeout, "op-timeout", 2*time.Second, "per-operation timeout; a timed-out operation is recorded as info (docker default: 3s)")
	f.DurationVar(&o.recovery, "recovery", 3*time.Second, "wait after healing, before the final reads (docker default: 5s)")
	f.StringVar(&o.out, "out", "runs", "where run directories go")
	f.StringVar(&o.name, "name", "", "run name (default: db-mode and quorums)")
	f.StringVarP(&o.check.output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&o.check.timeout, "timeout", 5*time.Minute, "bound on the linearizability search; past it the verdict is unknown")
	f.DurationVar(&o.check.maxStaleness, "max-staleness", 0, "fail the staleness checker beyond this (0 = only measure)")
	f.StringVar(&o.check.engine, "engine", "auto", "linearizability engine: auto, zones or porcupine")
	f.BoolVarP(&o.check.quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}

func (o *testOptions) validate() error {
	if o.db == dbPostgres {
		if err := o.validatePostgres(); err != nil {
			return err
		}
	} else if len(o.pgFlags) > 0 {
		return usagef("%s: the --pg-* flags go with --db postgres", strings.Join(o.pgFlags, ", "))
	} else if fs, err := nemesis.ParseFaults(o.nemesis); err == nil && slices.Contains(fs, nemesis.KindFailover) {
		return usagef("--nemesis failover: a failover needs a cluster with a primary to replace (--db postgres); ecstore's primary mode fails over by itself under kill and partition")
	} else if err == nil && slices.Contains(fs, nemesis.KindLag) {
		return usagef("--nemesis lag: pausing a replica's replay needs --db postgres; for ecstore, delay links with 'eccheck nemesis delay'")
	}
	switch {
	case o.db != "ecstore" && o.db != dbPostgres:
		return usagef("--db %q: want ecstore or postgres (Cassandra is coming)", o.db)
	case o.cluster != clusterLocal && o.cluster != clusterDocker:
		return usagef("--cluster %q: want local (in this process) or docker", o.cluster)
	case o.cluster == clusterLocal && (o.clusterName != "" || o.keep):
		return usagef("--cluster-name and --keep go with --cluster docker")
	case o.cluster == clusterDocker && o.nodes > 9:
		return usagef("--nodes %d: a Docker cluster has 1 to 9 nodes", o.nodes)
	case o.nodes < 1 || o.nodes > 15:
		return usagef("--nodes %d: want 1 to 15", o.nodes)
	case o.concurrency.count(o.nodes) < 1 || o.concurrency.count(o.nodes) > 1000:
		return usagef("--concurrency %s: %d clients; want 1 to 1000", o.concurrency.String(), o.concurrency.count(o.nodes))
	case o.timeLimit <= 0:
		return usagef("--time-limit %v: want a positive duration, such as 30s", o.timeLimit)
	case o.rate < 0:
		return usagef("--rate %v: want operations per second in all, or 0 for as fast as the clients go", o.rate)
	case o.opTimeout <= 0:
		return usagef("--op-timeout %v: want a positive duration, such as 2s", o.opTimeout)
	case o.recovery < 0:
		return usagef("--recovery %v: want a duration of 0 or more", o.recovery)
	case o.nemesisInterval <= 0:
		return usagef("--nemesis-interval %v: want a positive duration, such as 5s", o.nemesisInterval)
	case o.clockMax < time.Millisecond:
		return usagef("--clock-max %v: want at least 1ms (offsets are whole milliseconds)", o.clockMax)
	case o.nemesisCycles < 0:
		return usagef("--nemesis-cycles %d: want 0 (run for --time-limit) or a number of faults", o.nemesisCycles)
	case o.nemesisCycles > 0 && (o.nemesis == "" || o.nemesis == "none"):
		return usagef("--nemesis-cycles %d counts faults: name them with --nemesis", o.nemesisCycles)
	}
	if err := o.check.validate(); err != nil {
		return err
	}
	if o.clusterName != "" {
		if err := docker.ValidName(o.clusterName); err != nil {
			return usageError{fmt.Errorf("--cluster-name: %w", err)}
		}
	}
	ok := o.db == dbPostgres // --mode is ecstore's
	for _, m := range store.Modes {
		ok = ok || m == o.mode
	}
	if !ok {
		return usagef("--mode %q: want %s", o.mode, strings.Join(store.Modes, ", "))
	}
	if o.db != dbPostgres {
		if err := o.validateEcstore(); err != nil {
			return err
		}
	}
	faults, err := nemesis.ParseFaults(o.nemesis)
	if err != nil {
		return usageError{fmt.Errorf("--nemesis: %w", err)}
	}
	if err := nemesis.Validate(nemesis.Options{Faults: faults, Interval: o.nemesisInterval, Cycles: o.nemesisCycles, ClockMax: o.clockMax}, o.nodes); err != nil {
		return usagef("--nemesis %s with --nodes %d: %s", o.nemesis, o.nodes, strings.TrimPrefix(err.Error(), "nemesis: "))
	}
	return nil
}

// validateEcstore checks ecstore's flags against the node count, as each
// node would when it starts, so that a bad combination is a usage error
// before anything is created.
func (o *testOptions) validateEcstore() error {
	n := o.n
	if n == 0 {
		n = o.nodes
	}
	switch {
	case o.n < 0 || o.n > o.nodes:
		return usagef("--n %d: want 0 (every node) to --nodes (%d): the replicas of each key", o.n, o.nodes)
	case o.w < 1 || o.w > n:
		return usagef("--w %d: want 1 to %d (--n, or every node when --n is 0): the replicas a write waits for", o.w, n)
	case o.r < 1 || o.r > n:
		return usagef("--r %d: want 1 to %d (--n, or every node when --n is 0): the replicas a read asks", o.r, n)
	case o.setImpl != store.SetORSet && o.setImpl != store.SetLWWBlob:
		return usagef("--set-impl %q: want %s or %s", o.setImpl, store.SetORSet, store.SetLWWBlob)
	case o.primaryReads != "any" && o.primaryReads != "primary":
		return usagef("--primary-reads %q: want any or primary", o.primaryReads)
	}
	return nil
}

// runName is the default name of a run: what was tested.
func (o *testOptions) runName() string {
	if o.name != "" {
		return o.name
	}
	if o.db == dbPostgres {
		return o.db + "-" + o.pgSync + "-" + o.pgRead
	}
	name := o.db + "-" + o.mode
	if o.mode == store.ModeLWW || o.mode == store.ModeHLC {
		name += fmt.Sprintf("-w%dr%d", o.w, o.r)
	}
	return name
}

// testConfig is test.json.
type testConfig struct {
	Version   string    `json:"version"`
	Seed      uint64    `json:"seed"`
	Start     time.Time `json:"start"`
	DB        string    `json:"db"`
	Cluster   string    `json:"cluster"`
	Mode      string    `json:"mode"`
	Nodes     int       `json:"nodes"`
	N         int       `json:"n,omitempty"`
	W         int       `json:"w,omitempty"`
	R         int       `json:"r,omitempty"`
	SetImpl   string    `json:"set_impl,omitempty"`
	Sessions  bool      `json:"sessions"`
	Workloads []string  `json:"workloads"`
	Nemesis   []string  `json:"nemesis"`
	Interval  string    `json:"nemesis_interval"`
	Cycles    int       `json:"nemesis_cycles,omitempty"`
	TimeLimit string    `json:"time_limit"`
	Conc      int       `json:"concurrency"`
	Rate      float64   `json:"rate"`
	Args      []string  `json:"args"`
	// ClusterName and Images: the Docker cluster and the images it ran.
	ClusterName string            `json:"cluster_name,omitempty"`
	Images      map[string]string `json:"images,omitempty"`
	// Engine is the Docker engine the run used: its version, storage
	// driver and cgroup version, so that runs can be compared.
	Engine *docker.Engine `json:"engine,omitempty"`
	// PGSync, PGRead and PGApplyDelay: the Postgres settings (--db postgres).
	PGSync       string            `json:"pg_sync,omitempty"`
	PGRead       string            `json:"pg_read,omitempty"`
	PGApplyDelay string            `json:"pg_apply_delay,omitempty"`
	PGStandbys   []string          `json:"pg_standbys,omitempty"`
	PGPromote    string            `json:"pg_promote,omitempty"`
	PGRejoin     bool              `json:"pg_rejoin,omitempty"`
	Summary      *workload.Summary `json:"summary,omitempty"`
}

// runTest runs one test, as `eccheck test` does.
func runTest(ctx context.Context, o testOptions, a *app) (results.Report, error) {
	rep, _, err := runTestDir(ctx, o, a)
	return rep, err
}

// runTestDir is runTest that also returns the run directory, even when the
// run fails once the directory exists (before that it is ""). `eccheck
// matrix` runs each of its cells through it.
func runTestDir(ctx context.Context, o testOptions, a *app) (rep results.Report, dir string, err error) {
	if o.db == dbPostgres && o.nemesisDefault {
		o.nemesis = "none"
	}
	if o.nemesisCycles > 0 && !o.timeLimitSet {
		o.timeLimit = cyclesBound
	}
	if err := o.validate(); err != nil {
		return results.Report{}, dir, err
	}
	if o.cluster == clusterDocker {
		o.dockerDefaults()
	}
	parts, err := workload.ParseWorkloads(o.workloads)
	if err != nil {
		return results.Report{}, dir, usageError{fmt.Errorf("--workload: %w", err)}
	}
	faults, err := nemesis.ParseFaults(o.nemesis)
	if err != nil {
		return results.Report{}, dir, usageError{fmt.Errorf("--nemesis: %w", err)}
	}
	if !o.seedSet {
		o.seed = rand.Uint64() >> 12 // short enough to type back
	}
	logf := o.check.logf(a)

	start := time.Now().UTC()
	dir = filepath.Join(o.out, o.runName(), start.Format("20060102T150405.000Z"))
	if err := os.MkdirAll(filepath.Join(dir, "nodes"), 0o755); err != nil {
		return results.Report{}, dir, fmt.Errorf("create run directory: %w", err)
	}
	logf("run %s, seed %d", dir, o.seed)
	cfg := testConfig{
		Version: versionString(), Seed: o.seed, Start: start, DB: o.db, Cluster: o.cluster, Mode: o.mode,
		Nodes: o.nodes, N: o.n, W: o.w, R: o.r, SetImpl: o.setImpl, Sessions: o.sessions,
		Workloads: parts, Nemesis: faults, Interval: o.nemesisInterval.String(), Cycles: o.nemesisCycles, TimeLimit: o.timeLimit.String(),
		Conc: o.concurrency.count(o.nodes), Rate: o.rate, Args: os.Args[1:],
	}
	if o.db == dbPostgres {
		cfg.Mode, cfg.N, cfg.W, cfg.R, cfg.SetImpl = "", 0, 0, 0, ""
		cfg.PGSync, cfg.PGRead, cfg.PGApplyDelay = o.pgSync, o.pgRead, o.pgApplyDelay.String()
		cfg.PGStandbys, cfg.PGPromote, cfg.PGRejoin = o.pgStandbys, o.pgPromote, o.pgRejoin
	}
	if err := writeJSONFile(filepath.Join(dir, "test.json"), cfg); err != nil {
		return results.Report{}, dir, err
	}
	if !o.noLatest { // the cells of eccheck matrix have no latest link
		if err := linkLatest(o.out, dir); err != nil {
			logf("warning: %v", err)
		}
	}

	var cluster testCluster
	var nemCluster nemesis.Cluster
	var pg *postgresRun
	if o.db == dbPostgres {
		pg, err = startPostgres(ctx, o, a, dir, logf, slices.Contains(faults, "clock"))
		if err != nil {
			return results.Report{}, dir, err
		}
		defer pg.close(logf)
		cfg.ClusterName, cfg.Images, cfg.Engine = pg.pc.Name(), map[string]string{docker.RolePostgres: pg.image}, engineInfo(ctx, pg.c, logf)
		if err := writeJSONFile(filepath.Join(dir, "test.json"), cfg); err != nil {
			return results.Report{}, dir, err
		}
		nemCluster = pg.nemesisCluster()
	} else if o.cluster == clusterDocker {
		dc, err := startDocker(ctx, o, a, dir, logf)
		if err != nil {
			return results.Report{}, dir, err
		}
		defer dc.close(logf)
		cfg.ClusterName, cfg.Images, cfg.Engine = dc.cl.Name(), dc.images, engineInfo(ctx, dc.c, logf)
		if err := writeJSONFile(filepath.Join(dir, "test.json"), cfg); err != nil {
			return results.Report{}, dir, err
		}
		cluster = dc.cl
	} else {
		// Node logs go to nodes/<node>.log.
		logs := &nodeLogs{dir: filepath.Join(dir, "nodes"), files: map[string]*os.File{}}
		defer logs.close()
		node := store.Config{Mode: o.mode, N: o.n, W: o.w, R: o.r, SetImpl: o.setImpl, PrimaryReads: o.primaryReads,
			RequestTimeout: o.opTimeout / 2, AntiEntropy: 500 * time.Millisecond, FailoverTimeout: time.Second}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		local, err := store.StartLocal(sctx, store.LocalOptions{Nodes: o.nodes, Node: node, DataDir: filepath.Join(dir, "data"), LogfFor: logs.logf})
		cancel()
		if err != nil {
			return results.Report{}, dir, fmt.Errorf("start the %s cluster: %w", o.mode, err)
		}
		defer func() {
			if err := local.Close(); err != nil {
				logf("warning: stop the cluster: %v", err)
			}
			os.RemoveAll(filepath.Join(dir, "data"))
		}()
		logf("cluster up: %d %s nodes in this process (%s)", o.nodes, o.mode, strings.Join(local.Nodes(), ", "))
		cluster = local
	}

	rec, err := history.Create(filepath.Join(dir, "history.jsonl"), history.KeepInMemory())
	if err != nil {
		return results.Report{}, dir, err
	}
	defer rec.Close()

	if cluster != nil {
		nemCluster = cluster
	}
	var nem workload.Nemesis
	if len(faults) > 0 {
		n, err := nemesis.New(nemCluster, nemesis.Options{Faults: faults, Interval: o.nemesisInterval, Cycles: o.nemesisCycles, Seed: o.seed, ClockMax: o.clockMax}, rec.Record)
		if err != nil {
			return results.Report{}, dir, usageError{fmt.Errorf("--nemesis: %w", err)}
		}
		nem = n
	}
	var wparts []workload.Part
	for i, name := range parts {
		workers := o.concurrency.count(o.nodes) / len(parts)
		if i < o.concurrency.count(o.nodes)%len(parts) {
			workers++
		}
		if workers == 0 {
			continue
		}
		g, err := workload.NewGenerator(name, workers)
		if err != nil {
			return results.Report{}, dir, usageError{err}
		}
		wparts = append(wparts, workload.Part{Gen: g, Workers: workers})
	}
	prog := newProgressPrinter(a.stderr, o.check.quiet)
	var nodes []string
	var newClient func(name, node string) (workload.Client, error)
	progress := prog.print
	if pg != nil {
		nodes, newClient, progress = pg.nodes(), pg.newClient, pg.progress(prog.print)
	} else {
		nodes = cluster.Nodes()
		addrs := make([]string, 0, o.nodes)
		for _, id := range nodes {
			addrs = append(addrs, cluster.Addr(id))
		}
		newClient = func(name, node string) (workload.Client, error) {
			opts := ecstore.Options{Workload: workload.Kind(name), Sessions: o.sessions, Timeout: o.opTimeout}
			if node == "" {
				return ecstore.NewRoaming(addrs, opts), nil
			}
			return ecstore.New(cluster.Addr(node), opts), nil
		}
	}
	length := o.timeLimit.String()
	if o.nemesisCycles > 0 {
		length = fmt.Sprintf("until %d faults are done (at most %v)", o.nemesisCycles, o.timeLimit)
	}
	logf("workload %s, %d clients, nemesis %s every %v, %s", strings.Join(parts, ","), o.concurrency.count(o.nodes), orNone(faults), o.nemesisInterval, length)
	sum, runErr := workload.Run(ctx, workload.Options{
		Parts: wparts, Nodes: nodes, NewClient: newClient, Seed: o.seed, Rate: o.rate,
		TimeLimit: o.timeLimit, OpTimeout: o.opTimeout, Recorder: rec, Nemesis: nem, Recovery: o.recovery,
		Progress: progress,
	})
	prog.done()
	if cerr := rec.Close(); cerr != nil {
		runErr = errors.Join(runErr, cerr)
	}
	cfg.Summary = &sum
	_ = writeJSONFile(filepath.Join(dir, "test.json"), cfg)
	if runErr != nil {
		return results.Report{}, dir, fmt.Errorf("run %s: %w (the history so far is in %s)", dir, runErr, filepath.Join(dir, "history.jsonl"))
	}
	if err := ctx.Err(); err != nil {
		return results.Report{}, dir, fmt.Errorf("interrupted; the history so far is in %s: %w", dir, err)
	}
	logf("%d operations (%d ok, %d fail, %d info), %d final reads in %s", sum.Ops, sum.OK, sum.Fail, sum.Info, sum.FinalReads, sum.Elapsed.Round(time.Millisecond))
	for _, w := range runWarnings(o, sum) {
		logf("warning: %s", w)
	}

	co := o.check
	co.vizDir = dir
	h := rec.History()
	rep, err = checkHistory(ctx, filepath.Join(dir, "history.jsonl"), h, nil, co, logf)
	if err != nil {
		return results.Report{}, dir, err
	}
	if err := writeJSONFile(filepath.Join(dir, "results.json"), rep); err != nil {
		return results.Report{}, dir, err
	}
	f, err := os.Create(filepath.Join(dir, "report.txt"))
	if err != nil {
		return results.Report{}, dir, fmt.Errorf("write report: %w", err)
	}
	werr := results.WriteTable(f, rep)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return results.Report{}, dir, fmt.Errorf("write report: %w", werr)
	}
	writeRunReports(dir, rep, h, func(format string, args ...any) {
		fmt.Fprintf(a.stderr, "eccheck: warning: "+format+"\n", args...)
	})
	if err := writeReport(a, o.check.output, rep); err != nil {
		return results.Report{}, dir, err
	}
	logf("run directory: %s (re-check with: eccheck check %s)", dir, dir)
	return rep, dir, nil
}

// cyclesBound is the time limit of a run with --nemesis-cycles and no
// --time-limit: a bound, not a length.
const cyclesBound = 10 * time.Minute

// runWarnings says what went wrong in a run without stopping it: faults
// that could not be applied (each in the history with the engine's
// error), a heal that failed, fewer fault cycles than asked for.
func runWarnings(o testOptions, sum workload.Summary) []string {
	out := slices.Clone(sum.Warnings)
	if sum.FaultsFailed > 0 {
		out = append(out, fmt.Sprintf("%d fault operation(s) could not be carried out, even on a second try; the history records each with its error, and the report lists them", sum.FaultsFailed))
	}
	if o.nemesisCycles > 0 && sum.FaultCycles < o.nemesisCycles {
		out = append(out, fmt.Sprintf("the time limit (%v) ended the run after %d of the %d fault cycles asked for (--nemesis-cycles); give a longer --time-limit", o.timeLimit, sum.FaultCycles, o.nemesisCycles))
	}
	return out
}

// engineInfo describes the Docker engine for test.json; nil, with a
// warning, when the engine does not say.
func engineInfo(ctx context.Context, c *docker.Client, logf func(string, ...any)) *docker.Engine {
	e, err := c.Engine(ctx)
	if err != nil {
		logf("warning: %v", err)
		return nil
	}
	logf("Docker engine %s (API %s), storage driver %s, cgroup v%s (%s), kernel %s", e.Version, e.APIVersion, e.StorageDriver, e.CgroupVersion, e.CgroupDriver, e.Kernel)
	return &e
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// linkLatest points out/latest at dir.
func linkLatest(out, dir string) error {
	link := filepath.Join(out, "latest")
	rel, err := filepath.Rel(out, dir)
	if err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}

// nodeLogs writes each node's log to its own file.
type nodeLogs struct {
	mu    sync.Mutex
	dir   string
	files map[string]*os.File
}

func (l *nodeLogs) logf(node string) func(string, ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(l.dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return func(string, ...any) {}
	}
	l.files[node] = f
	lg := log.New(f, "", log.LstdFlags|log.Lmicroseconds|log.LUTC)
	return lg.Printf
}

func (l *nodeLogs) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		f.Close()
	}
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
	p := &progressPrinter{w: w, quiet: quiet}
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
