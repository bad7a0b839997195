package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
	"github.com/eccheck/eccheck/workload"
)

// matrixOptions are the flags of `eccheck matrix`.
type matrixOptions struct {
	db, workloads, modes, nemeses string
	common                        db.Common
	concurrency                   clients
	rate                          float64
	seed                          uint64
	out, output, expect           string
	check                         run.CheckOptions
	verbose, quiet                bool
	systems                       *systemFlags
}

func newMatrixCmd(a *app) *cobra.Command {
	cmd, _ := matrixCmd(a)
	return cmd
}

// matrixCmd makes the matrix command and returns the options its flags
// are bound to.
func matrixCmd(a *app) (*cobra.Command, *matrixOptions) {
	o := &matrixOptions{}
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "Run every configuration under every nemesis and print the consistency report card",
		Long: `Matrix runs 'eccheck test' once per cell: every configuration of --modes
under every fault set of --nemesis, one after another, with the same seed and
workload. It prints the report card: one row per configuration x nemesis,
with the verdicts of linearizability, read-your-writes, monotonic reads and
lost writes (register and set combined), the 99th percentile of staleness in
ms and the throughput in ops/s.

Configurations (--modes, comma-separated), by --db:
` + cellHelp() + `
Nemeses (--nemesis, comma-separated): none, or faults joined by '+'
(partition, clock, kill, pause, and failover with postgres; e.g.
partition+clock).

Each cell gets its own run directory under --out/matrix-<UTC time>/<cell>/,
and the matrix directory holds the card as card.txt, card.md, matrix.json and
index.html. A cell that fails in the harness is marked error and the rest
still run. Ctrl-C stops the current cell (its faults are healed) and prints
the card of the cells so far (exit 130).

--expect FILE names the cells that must come out a given way, one per line:
  CONFIG x NEMESIS [COLUMN] VERDICT     e.g. "raft x * valid"
CONFIG and NEMESIS may be shell patterns (*, lww:*); COLUMN is verdict (the
default), linearizable, read-your-writes, monotonic-reads or lost-writes;
VERDICT is valid, invalid or unknown; '#' starts a comment. An expectation
holds when some cell matches and every matching cell shows the verdict.

Exit codes: with --expect, 0 when every expectation holds, 1 when one does
not (they are listed), 3 when the file is malformed. Without --expect, the
composed verdict of the cells as for 'eccheck test': 0 all valid, 1 anomalies
found, 2 unknown; 4 when a cell failed in the harness. 3 for usage errors and
130 when interrupted, in both cases.`,
		Example: `  eccheck matrix
  eccheck matrix --modes raft,lww:w1r1 --nemesis none,partition --time-limit 10s -o markdown
  eccheck matrix --modes raft,lww:w2r2,primary --nemesis partition,clock,partition+kill --expect chaos-expect.txt`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMatrix(cmd, *o, a)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "ecstore", "the system under test: "+strings.Join(systemNames(), " or "))
	f.StringVar(&o.common.Backend, "cluster", db.BackendLocal, "where the clusters run: local (in this process), docker, or ssh (--hosts: every cell on the same hosts, one after another)")
	f.StringVar(&o.modes, "modes", "", "configurations, comma-separated (default: the system's card, see above)")
	f.StringVar(&o.nemeses, "nemesis", "", "fault sets, comma-separated; none, or faults joined by + (default: the system's, see above)")
	bindRunFlags(f, &o.common, &o.concurrency, &o.rate, &o.seed, &o.workloads, &o.out)
	bindSSHFlags(f, &o.common)
	f.DurationVar(&o.common.TimeLimit, "time-limit", 20*time.Second, "how long each cell's workload runs")
	bindCheckerFlags(f, &o.check, false)
	f.StringVarP(&o.output, "output", "o", "table", "card format on stdout: "+strings.Join(run.CardFormats, ", "))
	f.StringVar(&o.expect, "expect", "", "file of expectations the cells must meet; the exit code follows it")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show each cell's own progress and log lines")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress lines on stderr")
	o.systems = bindSystemFlags(f, db.UseMatrix)
	return cmd, o
}

// cellHelp describes each system's configurations and defaults.
func cellHelp() string {
	var b strings.Builder
	for _, sys := range systems {
		st := sys.NewSettings()
		fmt.Fprintf(&b, "%s (default: %s; nemeses %s):\n%s", sys.Name(), st.DefaultCells(), st.DefaultNemeses(), st.CellHelp())
	}
	return b.String()
}

// spec turns the parsed flags into a card's spec.
func (o matrixOptions) spec(f *pflag.FlagSet) (run.MatrixSpec, error) {
	if !slices.Contains(run.CardFormats, o.output) {
		return run.MatrixSpec{}, usagef("-o %q: want %s", o.output, strings.Join(run.CardFormats, ", "))
	}
	sys, err := lookupSystem(o.db)
	if err != nil {
		return run.MatrixSpec{}, err
	}
	settings, err := o.systems.pick(sys, f.Changed)
	if err != nil {
		return run.MatrixSpec{}, err
	}
	if err := checkSSH(sys, &o.common, f.Changed); err != nil {
		return run.MatrixSpec{}, err
	}
	if o.common.Workloads, err = workload.ParseWorkloads(o.workloads); err != nil {
		return run.MatrixSpec{}, usageError{Err: fmt.Errorf("--workload: %w", err)}
	}
	var expectations []results.Expectation
	if o.expect != "" {
		es, err := results.ReadExpectations(o.expect)
		if err != nil {
			return run.MatrixSpec{}, usageError{Err: fmt.Errorf("--expect: %w", err)}
		}
		expectations = es
	}
	probe := run.Spec{DB: sys, Settings: settings, Common: o.common}
	probe.Adjust(func(flag string) bool { return flag == "nemesis" || f.Changed(flag) })
	return run.MatrixSpec{
		DB: sys, Settings: settings, Common: probe.Common, Cells: o.modes, Nemeses: o.nemeses,
		Concurrency: o.concurrency.count(o.common.Nodes), Rate: o.rate, Seed: o.seed, SeedSet: f.Changed("seed"),
		Check: o.check, Out: o.out, Verbose: o.verbose, Quiet: o.quiet, Expect: expectations,
	}, nil
}

// runMatrix runs every cell, prints the card and sets the exit code.
func runMatrix(cmd *cobra.Command, o matrixOptions, a *app) error {
	ctx := cmd.Context()
	m, err := o.spec(cmd.Flags())
	if err != nil {
		return err
	}
	m.Stderr = a.stderr
	expectations := m.Expect
	card, err := run.Matrix(ctx, m)
	if err != nil {
		return err
	}
	if err := run.WriteCard(a.stdout, o.output, card); err != nil {
		return err
	}
	say := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, "eccheck: "+format, args...)
		}
	}
	return matrixOutcome(ctx, card, expectations != nil, a, say)
}

// matrixOutcome decides the exit code of a finished (or interrupted)
// matrix.
func matrixOutcome(ctx context.Context, card results.Card, expect bool, a *app, say func(string, ...any)) error {
	if card.Interrupted {
		err := ctx.Err()
		if err == nil {
			err = context.Canceled
		}
		return fmt.Errorf("matrix interrupted after %d of %d cells: %w", len(card.Cells), card.Planned, err)
	}
	if expect {
		failed := 0
		for _, e := range card.Expectations {
			if !e.Holds {
				failed++
				fmt.Fprintf(a.stderr, "eccheck: expectation does not hold: %s (%s): %s\n", e.Expectation.Text, e.Expectation.Pos(), e.Reason)
			}
		}
		if card.Errors > 0 && failed == 0 {
			say("warning: %d cell(s) in error, but no expectation covers them\n", card.Errors)
		}
		a.verdict = checkers.Valid
		if failed > 0 {
			a.verdict = checkers.Invalid
		}
		return nil
	}
	if card.Errors > 0 {
		return fmt.Errorf("%d of %d cells failed in the harness (see the card)", card.Errors, len(card.Cells))
	}
	a.verdict = card.Verdict
	return nil
}
