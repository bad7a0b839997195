package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
	"github.com/eccheck/eccheck/workload"
)

// testOptions are the flags of `eccheck test`.
type testOptions struct {
	db, workloads, nemesis string
	common                 db.Common
	concurrency            clients
	rate                   float64
	seed                   uint64
	out, name              string
	check                  run.CheckOptions
	output                 string
	quiet                  bool
	systems                *systemFlags
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

Systems (--db):
` + systemHelp() + `
Everything lands in a run directory, runs/<name>/<UTC time>/ (and the link
runs/latest): test.json (the configuration, seed and version), history.jsonl,
results.json, report.txt, report.md, junit.xml, report.html (plots),
nodes/<node>.log and, for keys that are not linearizable, their
visualizations. 'eccheck check runs/latest' re-checks it; 'eccheck report
runs/latest -o markdown' renders it again.

Each system has flags of its own, listed below: ecstore's --mode, --w, --r...;
Postgres's --pg-sync, --pg-read, --pg-apply-delay... (docs/postgres.md has
what each setting shows). The faults are partition, kill, pause and clock
for every system, and failover (cut the primary off, then replace it) and
lag (a replica stops applying writes for an interval) for systems with a
primary and replicas.

A fault the cluster refuses is tried twice, then recorded with the engine's
error; the run goes on and the report lists it. --nemesis-cycles N ends the
workload once N faults have been started and stopped, however long they take.

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
			spec, err := o.spec(cmd.Flags())
			if err != nil {
				return err
			}
			spec.Stderr = a.stderr
			rep, _, err := run.Test(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if err := writeReport(a, o.output, rep); err != nil {
				return err
			}
			a.verdict = rep.Verdict
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "ecstore", "the system under test: "+strings.Join(systemNames(), " or "))
	f.StringVar(&o.common.Backend, "cluster", db.BackendLocal, "where the cluster runs: local (in this process), docker (containers; see 'eccheck images build') or ssh (hosts of yours, --hosts; ecstore; see docs/ssh.md)")
	clusterNameFlag(f, &o.common.ClusterName, "", "docker: the cluster's name (default eccheck-test-<run id>); ssh: its directory's name on the hosts", "")
	f.BoolVar(&o.common.Keep, "keep", false, "docker, ssh: leave the cluster running after the test (remove it with 'eccheck cluster down --cluster-name NAME', or --cluster ssh --hosts ...)")
	bindSSHFlags(f, &o.common)
	bindRunFlags(f, &o.common, &o.concurrency, &o.rate, &o.seed, &o.workloads, &o.out)
	f.StringVar(&o.nemesis, "nemesis", "partition,clock", "faults, comma-separated: "+strings.Join(nemesis.Kinds(), ", ")+" (failover with postgres or redis; lag with postgres, redis or galera; crash kills every node at once and restarts the cluster); or none (the default with postgres, redis and galera)")
	f.DurationVar(&o.common.TimeLimit, "time-limit", 30*time.Second, "how long the workload runs (with --nemesis-cycles: at most)")
	f.IntVar(&o.common.Cycles, "nemesis-cycles", 0, "end the workload once the nemesis has started and stopped this many faults, however long they take; --time-limit then bounds the run (default bound with cycles: 10m)")
	f.StringVar(&o.name, "name", "", "run name (default: the system and its settings, such as ecstore-lww-w1r1)")
	bindCheckerFlags(f, &o.check, false)
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	o.systems = bindSystemFlags(f, db.UseTest)
	return cmd
}

// bindRunFlags defines the flags every test and every cell of a card
// share: the cluster's size, the load, the nemesis's pace, the timeouts,
// the seed, where runs go.
func bindRunFlags(f *pflag.FlagSet, c *db.Common, conc *clients, rate *float64, seed *uint64, workloads, out *string) {
	f.IntVar(&c.Nodes, "nodes", 3, "cluster size")
	f.StringVar(workloads, "workload", "register,session,set", "workloads, comma-separated: "+strings.Join(workload.Names, ", "))
	f.DurationVar(&c.Interval, "nemesis-interval", 5*time.Second, "time between fault changes")
	f.DurationVar(&c.ClockMax, "clock-max", 10*time.Second, "largest clock bump")
	f.StringSliceVar(&c.Shapes, "partition-shapes", nil, "partition shapes the nemesis draws from: "+strings.Join(nemesis.Shapes(), ", ")+" (default: every shape the node count allows)")
	*conc = clients{n: 10}
	f.Var(conc, "concurrency", "concurrent clients: a number, or Kn for K per node (2n: twice --nodes)")
	f.Float64Var(rate, "rate", 0, "target operations per second in all (0 = as fast as the clients go)")
	f.Uint64Var(seed, "seed", 0, "seed for operations and faults (default: random, printed)")
	f.DurationVar(&c.OpTimeout, "op-timeout", 2*time.Second, "per-operation timeout; a timed-out operation is recorded as info (docker default: 3s)")
	f.DurationVar(&c.Recovery, "recovery", 3*time.Second, "wait after healing, before the final reads (docker default: 5s)")
	f.DurationVar(&c.Converge, "converge", 0, "after the heal, read a sample of keys from every node until they agree, for at most this long, and report how long each took (the convergence checker). Default: 10s where replicas can disagree (ecstore lww, hlc, mvr, primary; postgres, redis, galera), none elsewhere; 0: no such phase")
	f.IntVar(&c.Retry, "retry", 0, "retry an operation whose attempt ended info (a timeout) up to N times, backing off; each attempt is recorded naming its request (the duplicates checker holds each request to being applied once)")
	f.BoolVar(&c.IdempotencyKeys, "idempotency-keys", false, "send a key with each request that the system dedupes by, so a retried add applies once (counter workload; ecstore, postgres, redis)")
	c.Saga = workload.DefaultSagaOptions()
	f.Float64Var(&c.Saga.FailureRate, "saga-failure-rate", c.Saga.FailureRate, "saga workload: the share of sagas one of whose steps (reserve, charge or confirm) the service declines, so that the saga compensates")
	f.Float64Var(&c.Saga.KillRate, "saga-kill-rate", c.Saga.KillRate, "saga workload: the share of sagas whose coordinator dies after one of its steps, leaving the saga to the recovery worker")
	f.Int64Var(&c.Saga.Stock, "saga-stock", c.Saga.Stock, "saga workload: the initial stock of each of its 3 items")
	f.StringVar(&c.Saga.Bug, "saga-bug", "", "saga workload: plant a bug in the compensation to see the saga checker catch it: "+strings.Join(workload.SagaBugs, " or "))
	f.StringVar(out, "out", "runs", "where run directories go")
}

// spec turns the parsed flags into a test's spec, with every default
// that depends on other flags applied; it refuses what cannot work.
func (o *testOptions) spec(f *pflag.FlagSet) (run.Spec, error) {
	sys, err := lookupSystem(o.db)
	if err != nil {
		return run.Spec{}, err
	}
	settings, err := o.systems.pick(sys, f.Changed)
	if err != nil {
		return run.Spec{}, err
	}
	c := o.common
	if err := checkSSH(sys, &c, f.Changed); err != nil {
		return run.Spec{}, err
	}
	if c.Workloads, err = workload.ParseWorkloads(o.workloads); err != nil {
		return run.Spec{}, usageError{Err: fmt.Errorf("--workload: %w", err)}
	}
	if c.Faults, err = nemesis.ParseFaults(o.nemesis); err != nil {
		return run.Spec{}, usageError{Err: fmt.Errorf("--nemesis: %w", err)}
	}
	if o.output != "table" && o.output != "json" {
		return run.Spec{}, usagef("-o %q: want table or json", o.output)
	}
	spec := run.Spec{
		DB: sys, Settings: settings, Common: c, Rate: o.rate, Seed: o.seed, SeedSet: f.Changed("seed"),
		Check: o.check, Out: o.out, Name: o.name, Args: os.Args[1:], Quiet: o.quiet,
	}
	spec.Adjust(f.Changed)
	spec.Concurrency = o.concurrency.count(spec.Common.Nodes)
	if spec.Concurrency < 1 || spec.Concurrency > 1000 {
		return run.Spec{}, usagef("--concurrency %s: %d clients; want 1 to 1000", o.concurrency.String(), spec.Concurrency)
	}
	return spec, spec.Validate()
}

// writeReport prints a report to stdout in format (table or json).
func writeReport(a *app, format string, rep results.Report) error {
	var err error
	if format == "json" {
		err = results.WriteJSON(a.stdout, rep)
	} else {
		err = results.WriteTable(a.stdout, rep)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
