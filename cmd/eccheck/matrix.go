package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/store"
	"github.com/eccheck/eccheck/workload"
)

// matrixOptions are the flags of `eccheck matrix`.
type matrixOptions struct {
	db, cluster     string
	modes, nemeses  string
	workloads       string
	nodes           int
	timeLimit       time.Duration
	nemesisInterval time.Duration
	clockMax        time.Duration
	concurrency     clients
	rate            float64
	seed            uint64
	seedSet         bool
	opTimeout       time.Duration
	recovery        time.Duration
	timeout         time.Duration
	engine          string
	out             string
	output          string
	expect          string
	verbose, quiet  bool
	// Postgres: lag on demand for every cell; modesSet and nemesesSet say
	// --modes and --nemesis were given (Postgres has defaults of its own).
	pgApplyDelay         applyDelay
	pgRejoin             bool
	modesSet, nemesesSet bool
}

// The defaults of --modes and --nemesis with --db postgres.
const (
	pgMatrixModes   = "async:primary,async:replica,async:lsn-fence,remote_apply:replica"
	pgMatrixNemeses = "none,failover"
)

// matrixOutputs are the formats of -o.
var matrixOutputs = []string{"table", "markdown", "json", "html"}

func newMatrixCmd(a *app) *cobra.Command {
	var o matrixOptions
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "Run every configuration under every nemesis and print the consistency report card",
		Long: `Matrix runs 'eccheck test' once per cell: every configuration of --modes
under every fault set of --nemesis, one after another, with the same seed and
workload. It prints the report card: one row per configuration x nemesis,
with the verdicts of linearizability, read-your-writes, monotonic reads and
lost writes (register and set combined), the 99th percentile of staleness in
ms and the throughput in ops/s.

Configurations (--modes, comma-separated):
  raft                    consensus; reads confirmed by the leader
  lww, lww:w1r1           last-write-wins, W=1 R=1 over every node
  lww:w2r2, lww:n3w2r2    with quorums W and R (and N replicas per key)
  hlc, hlc:w1r1, ...      hybrid logical clock stamps, same quorum forms
  primary                 asynchronous primary, reads from any node
  primary:reads-primary   reads from the primary
Any of them +sessions (lww:w1r1+sessions) runs the clients with session tokens.

With --db postgres (and --cluster docker) a configuration is SYNC:READ:
  async:primary           asynchronous replicas, every read on the primary
  async:replica           reads on a replica (each client sticks to one)
  async:lsn-fence         replica reads that wait for the client's last write
  remote_apply:replica    the primary waits until every replica applied
(default: ` + pgMatrixModes + `; nemeses none,failover).

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
			o.seedSet = cmd.Flags().Changed("seed")
			o.modesSet, o.nemesesSet = cmd.Flags().Changed("modes"), cmd.Flags().Changed("nemesis")
			return runMatrix(cmd.Context(), o, a)
		},
	}
	bindMatrixFlags(cmd.Flags(), &o)
	return cmd
}

// bindMatrixFlags defines the flags of `eccheck matrix` on f, into o.
func bindMatrixFlags(f *pflag.FlagSet, o *matrixOptions) {
	f.StringVar(&o.db, "db", "ecstore", "the store under test: ecstore, or postgres (with --cluster docker)")
	f.StringVar(&o.cluster, "cluster", "local", "where the clusters run: local (in this process) or docker")
	f.BoolVar(&o.pgRejoin, "pg-rejoin", false, "postgres: after each failover, bring the old primary back as a replica (pg_rewind)")
	f.Var(&o.pgApplyDelay, "pg-apply-delay", "postgres: replicas replay each commit this late (replication lag on demand), in every cell: 50ms, or n2=0s,n3=200ms")
	f.StringVar(&o.modes, "modes", "raft,lww:w1r1,lww:w2r2,hlc,primary", "configurations, comma-separated: "+modeSpecForms)
	f.StringVar(&o.nemeses, "nemesis", "none,partition,clock", "fault sets, comma-separated; none, or faults joined by + (partition, clock, kill, pause)")
	f.StringVar(&o.workloads, "workload", "register,session,set", "workloads of every cell, comma-separated: "+strings.Join(workload.Names, ", "))
	f.IntVar(&o.nodes, "nodes", 3, "cluster size")
	f.DurationVar(&o.timeLimit, "time-limit", 20*time.Second, "how long each cell's workload runs")
	f.DurationVar(&o.nemesisInterval, "nemesis-interval", 5*time.Second, "time between fault changes")
	f.DurationVar(&o.clockMax, "clock-max", 10*time.Second, "largest clock bump")
	o.concurrency = clients{n: 10}
	f.Var(&o.concurrency, "concurrency", "concurrent clients per cell: a number, or Kn for K per node (2n: twice --nodes)")
	f.Float64Var(&o.rate, "rate", 0, "target operations per second in all (0 = as fast as the clients go)")
	f.Uint64Var(&o.seed, "seed", 0, "seed for operations and faults, the same for every cell (default: random, printed)")
	f.DurationVar(&o.opTimeout, "op-timeout", 2*time.Second, "per-operation timeout; a timed-out operation is recorded as info")
	f.DurationVar(&o.recovery, "recovery", 3*time.Second, "wait after healing, before the final reads")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on each linearizability search; past it the verdict is unknown")
	f.StringVar(&o.engine, "engine", checkers.EngineAuto, "linearizability engine: auto, zones or porcupine")
	f.StringVar(&o.out, "out", "runs", "where the matrix directory goes")
	f.StringVarP(&o.output, "output", "o", "table", "card format on stdout: "+strings.Join(matrixOutputs, ", "))
	f.StringVar(&o.expect, "expect", "", "file of expectations the cells must meet; the exit code follows it")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show each cell's own progress and log lines")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress lines on stderr")
}

// matrixConfig is one configuration of the matrix: a row group of the card.
type matrixConfig struct {
	label        string // as given in --modes, e.g. "lww:w1r1"
	mode         string
	n, w, r      int
	primaryReads string
	sessions     bool
	// pgSync and pgRead are a Postgres configuration's.
	pgSync, pgRead string
}

const modeSpecForms = "raft, lww, lww:w1r1, lww:w2r2, lww:n3w2r2 (N replicas, W, R), hlc, hlc:w1r1, primary, primary:reads-primary; any +sessions"

var quorumSpec = regexp.MustCompile(`^(?:n([0-9]+))?w([0-9]+)r([0-9]+)$`)

// parseModeSpec parses one configuration of --modes for a cluster of nodes
// nodes.
func parseModeSpec(spec string, nodes int) (matrixConfig, error) {
	c := matrixConfig{label: spec, w: 1, r: 1, primaryReads: "any"}
	bad := func(why string) (matrixConfig, error) {
		return matrixConfig{}, fmt.Errorf("configuration %q: %s (accepted forms: %s)", spec, why, modeSpecForms)
	}
	rest, sessions := strings.CutSuffix(spec, "+sessions")
	c.sessions = sessions
	mode, param, hasParam := strings.Cut(rest, ":")
	c.mode = mode
	switch mode {
	case store.ModeRaft:
		if hasParam {
			return bad("raft takes no parameters")
		}
	case store.ModePrimary:
		switch {
		case !hasParam, param == "reads-any":
		case param == "reads-primary":
			c.primaryReads = "primary"
		default:
			return bad(fmt.Sprintf("unknown primary parameter %q", param))
		}
	case store.ModeLWW, store.ModeHLC:
		if !hasParam {
			break
		}
		m := quorumSpec.FindStringSubmatch(param)
		if m == nil {
			return bad(fmt.Sprintf("quorums %q: want wWrR or nNwWrR, e.g. w2r2", param))
		}
		c.n, _ = strconv.Atoi(m[1])
		c.w, _ = strconv.Atoi(m[2])
		c.r, _ = strconv.Atoi(m[3])
		replicas := nodes
		if c.n > 0 {
			replicas = c.n
		}
		if c.n > nodes || c.w < 1 || c.r < 1 || c.w > replicas || c.r > replicas {
			return bad(fmt.Sprintf("need 1 <= W, R <= N <= %d nodes", nodes))
		}
	default:
		return bad(fmt.Sprintf("unknown mode %q", mode))
	}
	return c, nil
}

const pgSpecForms = "SYNC:READ with SYNC async or remote_apply and READ primary, replica, round-robin or lsn-fence (e.g. async:replica)"

// parsePGSpec parses one Postgres configuration of --modes: SYNC:READ.
func parsePGSpec(spec string) (matrixConfig, error) {
	sync, read, ok := strings.Cut(spec, ":")
	if !ok || (sync != docker.SyncAsync && sync != docker.SyncRemoteApply) || !slices.Contains(pgReads, read) {
		return matrixConfig{}, fmt.Errorf("postgres configuration %q: want %s", spec, pgSpecForms)
	}
	return matrixConfig{label: spec, pgSync: sync, pgRead: read}, nil
}

// parseMatrixNemeses parses --nemesis: fault sets, each none or faults
// joined by '+'. It returns each set's label and its fault list for
// `eccheck test --nemesis`.
func parseMatrixNemeses(s string) (labels, faults []string, err error) {
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		fs, err := nemesis.ParseFaults(strings.ReplaceAll(item, "+", ","))
		if err != nil {
			return nil, nil, fmt.Errorf("fault set %q: %w", item, err)
		}
		if slices.Contains(labels, item) {
			return nil, nil, fmt.Errorf("fault set %q is given twice", item)
		}
		labels = append(labels, item)
		faults = append(faults, orNone(fs))
	}
	if len(labels) == 0 {
		return nil, nil, errors.New("no fault sets (want e.g. none,partition,clock)")
	}
	return labels, faults, nil
}

// matrixCell is one planned cell: its label and the test it runs.
type matrixCell struct {
	config, nemesis string
	test            testOptions
}

// planMatrix validates the options and lays out the cells.
func planMatrix(o matrixOptions, dir string) ([]matrixCell, []string, []string, error) {
	if !slices.Contains(matrixOutputs, o.output) {
		return nil, nil, nil, usagef("-o %q: want %s", o.output, strings.Join(matrixOutputs, ", "))
	}
	if o.db == dbPostgres {
		if !o.modesSet {
			o.modes = pgMatrixModes
		}
		if !o.nemesesSet {
			o.nemeses = pgMatrixNemeses
		}
	} else if !o.pgApplyDelay.zero() || o.pgRejoin {
		return nil, nil, nil, usagef("--pg-apply-delay and --pg-rejoin go with --db postgres")
	}
	var configs []matrixConfig
	var labels []string
	for _, spec := range strings.Split(o.modes, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		parse := func() (matrixConfig, error) { return parseModeSpec(spec, o.nodes) }
		if o.db == dbPostgres {
			parse = func() (matrixConfig, error) { return parsePGSpec(spec) }
		}
		c, err := parse()
		if err != nil {
			return nil, nil, nil, usageError{fmt.Errorf("--modes: %w", err)}
		}
		if slices.Contains(labels, spec) {
			return nil, nil, nil, usagef("--modes: configuration %q is given twice", spec)
		}
		configs = append(configs, c)
		labels = append(labels, spec)
	}
	if len(configs) == 0 {
		return nil, nil, nil, usagef("--modes: no configurations (accepted forms: %s)", modeSpecForms)
	}
	nemLabels, nemFaults, err := parseMatrixNemeses(o.nemeses)
	if err != nil {
		return nil, nil, nil, usageError{fmt.Errorf("--nemesis: %w", err)}
	}
	var cells []matrixCell
	for _, c := range configs {
		for i, nem := range nemLabels {
			t := testOptions{
				db: o.db, cluster: o.cluster, mode: c.mode, nodes: o.nodes, n: c.n, w: c.w, r: c.r,
				setImpl: store.SetORSet, primaryReads: c.primaryReads, sessions: c.sessions,
				workloads: o.workloads, nemesis: nemFaults[i], nemesisInterval: o.nemesisInterval,
				clockMax: o.clockMax, timeLimit: o.timeLimit, concurrency: o.concurrency, rate: o.rate,
				seed: o.seed, seedSet: true, opTimeout: o.opTimeout, recovery: o.recovery,
				out: dir, name: matrixCellDir(c.label, nem), noLatest: true,
				check: checkOptions{output: "table", timeout: o.timeout, engine: o.engine, quiet: !o.verbose || o.quiet},
			}
			if o.db == dbPostgres {
				t.pgSync, t.pgRead, t.pgApplyDelay, t.pgRejoin = c.pgSync, c.pgRead, o.pgApplyDelay, o.pgRejoin
			}
			if err := t.validate(); err != nil {
				return nil, nil, nil, err
			}
			cells = append(cells, matrixCell{config: c.label, nemesis: nem, test: t})
		}
	}
	if _, err := workload.ParseWorkloads(o.workloads); err != nil {
		return nil, nil, nil, usageError{fmt.Errorf("--workload: %w", err)}
	}
	return cells, labels, nemLabels, nil
}

// matrixCellDir names a cell's directory: "lww:w1r1" x "partition+clock"
// gives "lww-w1r1-x-partition+clock".
func matrixCellDir(config, nemesis string) string {
	return strings.NewReplacer(":", "-", "/", "-").Replace(config) + "-x-" + nemesis
}

// runMatrix runs every cell, prints the card and sets the exit code.
func runMatrix(ctx context.Context, o matrixOptions, a *app) error {
	var expectations []results.Expectation
	if o.expect != "" {
		es, err := results.ReadExpectations(o.expect)
		if err != nil {
			return usageError{fmt.Errorf("--expect: %w", err)}
		}
		expectations = es
	}
	if !o.seedSet {
		o.seed = rand.Uint64() >> 12 // short enough to type back
	}
	start := time.Now().UTC()
	dir := filepath.Join(o.out, "matrix-"+start.Format("20060102T150405.000Z"))
	cells, configs, nemeses, err := planMatrix(o, dir)
	if err != nil {
		return err
	}
	parts, _ := workload.ParseWorkloads(o.workloads)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create matrix directory: %w", err)
	}
	say := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, "eccheck: "+format, args...)
		}
	}
	// more continues the line say began.
	more := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, format, args...)
		}
	}
	say("matrix %s: %d cells (%d configurations x %d fault sets), %v each, seed %d\n",
		dir, len(cells), len(configs), len(nemeses), o.timeLimit, o.seed)

	card := results.Card{DB: o.db, Workloads: parts, Configs: configs, Nemeses: nemeses,
		TimeLimit: o.timeLimit.String(), Seed: o.seed, Start: start, Dir: dir, Planned: len(cells)}
	cellApp := &app{stdout: io.Discard, stderr: io.Discard}
	if o.verbose && !o.quiet {
		cellApp.stderr = a.stderr
	}
	for i, mc := range cells {
		if ctx.Err() != nil {
			card.Interrupted = true
			break
		}
		name := mc.config + " x " + mc.nemesis
		if o.verbose {
			say("cell %d/%d: %s ...\n", i+1, len(cells), name)
		} else {
			say("cell %d/%d: %s ... ", i+1, len(cells), name)
		}
		t0 := time.Now()
		rep, runDir, err := runTestDir(ctx, mc.test, cellApp)
		var cell results.Cell
		if err != nil {
			cell = results.ErrorCell(mc.config, mc.nemesis, runDir, err)
			if ctx.Err() != nil {
				card.Interrupted = true
				if !strings.HasPrefix(cell.Error, "interrupted") {
					cell.Error = "interrupted: " + cell.Error
				}
			}
		} else {
			cell = results.NewCell(mc.config, mc.nemesis, runDir, rep)
			if ops, err := results.ReadOpsPerSec(runDir); err == nil {
				cell.OpsPerSec = &ops
			}
		}
		cell.Seconds = time.Since(t0).Round(100 * time.Millisecond).Seconds()
		card.Add(cell)
		if o.verbose {
			say("cell %d/%d: %s: %s (%.1f s)\n", i+1, len(cells), name, cell.Verdict, cell.Seconds)
		} else {
			more("%s (%.1f s)\n", cell.Verdict, cell.Seconds)
		}
		if cell.Verdict == results.MarkError {
			more("  %s\n", cell.Error)
		}
		// The card so far, so a killed matrix leaves what it found.
		_ = writeCardFile(filepath.Join(dir, "matrix.json"), card, results.WriteMatrixJSON)
		if card.Interrupted {
			break
		}
	}
	if expectations != nil {
		card.Expectations = card.Evaluate(expectations)
	}
	if err := writeCardFiles(dir, card); err != nil {
		say("warning: %v\n", err)
	}
	if err := writeCard(a.stdout, o.output, card); err != nil {
		return err
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

// writeCard writes the card to w in format.
func writeCard(w io.Writer, format string, card results.Card) error {
	var err error
	switch format {
	case "markdown":
		err = results.WriteMatrixMarkdown(w, card)
	case "json":
		err = results.WriteMatrixJSON(w, card)
	case "html":
		err = results.WriteMatrixHTML(w, card, "")
	default:
		err = results.WriteMatrixTable(w, card)
	}
	if err != nil {
		return fmt.Errorf("write card: %w", err)
	}
	return nil
}

// writeCardFiles leaves the card in the matrix directory in every format.
func writeCardFiles(dir string, card results.Card) error {
	return errors.Join(
		writeCardFile(filepath.Join(dir, "card.txt"), card, results.WriteMatrixTable),
		writeCardFile(filepath.Join(dir, "card.md"), card, results.WriteMatrixMarkdown),
		writeCardFile(filepath.Join(dir, "matrix.json"), card, results.WriteMatrixJSON),
		writeCardFile(filepath.Join(dir, "index.html"), card, func(w io.Writer, c results.Card) error {
			return results.WriteMatrixHTML(w, c, dir)
		}),
	)
}

func writeCardFile(path string, card results.Card, write func(io.Writer, results.Card) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	werr := write(f, card)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), werr)
	}
	return nil
}
