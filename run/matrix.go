package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/results"
)

// MatrixSpec is a report card: every configuration of one system under
// every fault set, one test each, with the same seed and workload.
type MatrixSpec struct {
	DB db.DB
	// Settings are the system's settings that apply to every cell; each
	// cell's configuration changes them (db.Settings.Cell).
	Settings db.Settings
	// Common are the settings of every cell; Common.Faults is unused
	// (each cell has its fault set).
	Common db.Common
	// Cells are the configurations, comma-separated ("raft,lww:w1r1");
	// Nemeses the fault sets ("none,partition,partition+clock"). Empty
	// means the system's defaults.
	Cells, Nemeses string
	Concurrency    int
	Rate           float64
	Seed           uint64
	SeedSet        bool
	Check          CheckOptions
	Out            string
	// Verbose shows each cell's own progress; Quiet shows nothing.
	Verbose, Quiet bool
	Stderr         io.Writer
	// Expect, when not nil, are the expectations the card is held to.
	Expect []results.Expectation
}

// MatrixCell is one planned cell: its labels and the test it runs.
type MatrixCell struct {
	Config, Nemesis string
	Spec            Spec
}

// PlanMatrix validates the spec and lays out its cells under dir, each
// checked as a test of its own; errors are usage errors.
func PlanMatrix(m MatrixSpec, dir string) (cells []MatrixCell, configs, nemeses []string, err error) {
	specs := m.Cells
	if specs == "" {
		specs = m.Settings.DefaultCells()
	}
	faultSets := m.Nemeses
	if faultSets == "" {
		faultSets = m.Settings.DefaultNemeses()
	}
	var settings []db.Settings
	for _, spec := range strings.Split(specs, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		s, err := m.Settings.Cell(spec, m.Common)
		if err != nil {
			return nil, nil, nil, db.UsageError{Err: fmt.Errorf("--modes: %w", err)}
		}
		if slices.Contains(configs, spec) {
			return nil, nil, nil, db.Usagef("--modes: configuration %q is given twice", spec)
		}
		settings = append(settings, s)
		configs = append(configs, spec)
	}
	if len(configs) == 0 {
		return nil, nil, nil, db.Usagef("--modes: no configurations (accepted forms: %s)", m.Settings.CellForms())
	}
	nemeses, faults, err := parseFaultSets(faultSets)
	if err != nil {
		return nil, nil, nil, db.UsageError{Err: fmt.Errorf("--nemesis: %w", err)}
	}
	if len(m.Common.Shapes) > 0 && !slices.ContainsFunc(faults, func(fs []string) bool { return slices.Contains(fs, nemesis.KindPartition) }) {
		return nil, nil, nil, db.Usagef("--partition-shapes %s: the shapes of partitions; no --nemesis set has partition", strings.Join(m.Common.Shapes, ","))
	}
	for i, s := range settings {
		for j, nem := range nemeses {
			c := m.Common
			c.Faults = faults[j]
			if !slices.Contains(c.Faults, nemesis.KindPartition) {
				c.Shapes = nil // --partition-shapes shapes the cells with partitions
			}
			cell := Spec{
				DB: m.DB, Settings: s, Common: c, Concurrency: m.Concurrency, Rate: m.Rate,
				Seed: m.Seed, SeedSet: true, Check: m.Check, Out: dir, Name: cellDir(configs[i], nem), NoLatest: true,
				Quiet: !m.Verbose || m.Quiet, Stderr: m.Stderr, Args: os.Args[1:],
			}
			if err := cell.Validate(); err != nil {
				return nil, nil, nil, err
			}
			cells = append(cells, MatrixCell{Config: configs[i], Nemesis: nem, Spec: cell})
		}
	}
	return cells, configs, nemeses, nil
}

// parseFaultSets parses --nemesis of a card: fault sets, each none or
// faults joined by '+'. It returns each set's label and its faults.
func parseFaultSets(s string) (labels []string, faults [][]string, err error) {
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
		faults = append(faults, fs)
	}
	if len(labels) == 0 {
		return nil, nil, errors.New("no fault sets (want e.g. none,partition,clock)")
	}
	return labels, faults, nil
}

// cellDir names a cell's directory: "lww:w1r1" x "partition+clock" gives
// "lww-w1r1-x-partition+clock".
func cellDir(config, nemesis string) string {
	return strings.NewReplacer(":", "-", "/", "-").Replace(config) + "-x-" + nemesis
}

// Matrix runs every cell, one after another, into out/matrix-<UTC time>/,
// and returns the card, also when interrupted (Card.Interrupted). A cell
// that fails in the harness is an error cell and the rest still run. The
// card is written into the matrix directory in every format after each
// cell, so that a killed matrix leaves what it found.
func Matrix(ctx context.Context, m MatrixSpec) (results.Card, error) {
	if !m.SeedSet {
		m.Seed = rand.Uint64() >> 12 // short enough to type back
	}
	start := time.Now().UTC()
	dir := filepath.Join(m.Out, "matrix-"+start.Format("20060102T150405.000Z"))
	cells, configs, nemeses, err := PlanMatrix(m, dir)
	if err != nil {
		return results.Card{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return results.Card{}, fmt.Errorf("create matrix directory: %w", err)
	}
	say := func(format string, args ...any) {
		if !m.Quiet && m.Stderr != nil {
			fmt.Fprintf(m.Stderr, "eccheck: "+format, args...)
		}
	}
	more := func(format string, args ...any) { // continues the line say began
		if !m.Quiet && m.Stderr != nil {
			fmt.Fprintf(m.Stderr, format, args...)
		}
	}
	say("matrix %s: %d cells (%d configurations x %d fault sets), %v each, seed %d\n",
		dir, len(cells), len(configs), len(nemeses), m.Common.TimeLimit, m.Seed)
	card := results.Card{DB: m.DB.Name(), Workloads: m.Common.Workloads, Configs: configs, Nemeses: nemeses,
		TimeLimit: m.Common.TimeLimit.String(), Seed: m.Seed, Start: start, Dir: dir, Planned: len(cells)}
	for i, mc := range cells {
		if ctx.Err() != nil {
			card.Interrupted = true
			break
		}
		name := mc.Config + " x " + mc.Nemesis
		if m.Verbose {
			say("cell %d/%d: %s ...\n", i+1, len(cells), name)
		} else {
			say("cell %d/%d: %s ... ", i+1, len(cells), name)
		}
		t0 := time.Now()
		if !m.Verbose {
			mc.Spec.Stderr = nil
		}
		rep, runDir, err := Test(ctx, mc.Spec)
		var cell results.Cell
		if err != nil {
			cell = results.ErrorCell(mc.Config, mc.Nemesis, runDir.Path, err)
			if ctx.Err() != nil {
				card.Interrupted = true
				if !strings.HasPrefix(cell.Error, "interrupted") {
					cell.Error = "interrupted: " + cell.Error
				}
			}
		} else {
			cell = results.NewCell(mc.Config, mc.Nemesis, runDir.Path, rep)
			if cfg, err := ReadConfig(runDir.Path); err == nil {
				if ops, err := cfg.OpsPerSec(); err == nil {
					cell.OpsPerSec = &ops
				}
			}
		}
		cell.Seconds = time.Since(t0).Round(100 * time.Millisecond).Seconds()
		card.Add(cell)
		if m.Verbose {
			say("cell %d/%d: %s: %s (%.1f s)\n", i+1, len(cells), name, cell.Verdict, cell.Seconds)
		} else {
			more("%s (%.1f s)\n", cell.Verdict, cell.Seconds)
		}
		if cell.Verdict == results.MarkError {
			more("  %s\n", cell.Error)
		}
		_ = writeCardFile(filepath.Join(dir, "matrix.json"), card, results.WriteMatrixJSON)
		if card.Interrupted {
			break
		}
	}
	if m.Expect != nil {
		card.Expectations = card.Evaluate(m.Expect)
	}
	if err := writeCardFiles(dir, card); err != nil {
		say("warning: %v\n", err)
	}
	return card, nil
}

// CardFormats are the formats of a card on stdout.
var CardFormats = []string{"table", "markdown", "json", "html"}

// WriteCard writes the card to w in format.
func WriteCard(w io.Writer, format string, card results.Card) error {
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
