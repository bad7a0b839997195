package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/export"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/run"
)

// The formats of `eccheck export`.
const formatOTLPJSON = "otlp-json"

// fileTraces is where `eccheck export` writes a run's traces by default.
const fileTraces = "traces.otlp.json"

type exportOptions struct {
	format string
	out    string
	quiet  bool
}

func newExportCmd(a *app) *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export RUN_DIR|HISTORY",
		Short: "Write a run as OpenTelemetry traces (OTLP JSON) for Jaeger or a collector",
		Long: `Export writes a run (a run directory, or a history file) in a format other
tools read. otlp-json is OpenTelemetry traces in the OTLP JSON encoding:
one trace for the run, a root span over it, a span per client operation
(name: its f; from invocation to completion) with the attributes
eccheck.process, eccheck.node, eccheck.key, eccheck.value (JSON),
eccheck.outcome (ok, fail, info), eccheck.error, eccheck.request and
eccheck.attempt (retries), eccheck.final, and an error status when the
operation failed or its outcome is unknown; a span per fault ("fault
partition", eccheck.fault, eccheck.value). The spans are made with the
OpenTelemetry SDK and encoded by its OTLP exporter; each line of the file is
one ExportTraceServiceRequest (the collector's file format: its
otlpjsonfile receiver reads it; a small run is one line, which Jaeger's
"upload JSON" takes).

The file goes to RUN_DIR/traces.otlp.json (next to a history file, for a
file), or where --out says ("-" for stdout).`,
		Example: `  eccheck export runs/latest
  eccheck export runs/latest --out /tmp/run.otlp.json`,
		Args: exactArgs(1, "one run directory or history file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.format != formatOTLPJSON {
				return usagef("--format %q: want %s", o.format, formatOTLPJSON)
			}
			return runExport(cmd, args[0], o, a)
		},
	}
	cmd.Flags().StringVar(&o.format, "format", formatOTLPJSON, "output format: "+formatOTLPJSON)
	cmd.Flags().StringVar(&o.out, "out", "", "where the file goes (default: traces.otlp.json in the run directory; - for stdout)")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}

func runExport(cmd *cobra.Command, path string, o exportOptions, a *app) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w (give a run directory, such as runs/latest, or a history file)", path, err)
	}
	r := export.Run{Name: filepath.Base(path)}
	histPath, dir := path, filepath.Dir(path)
	if st.IsDir() {
		dir, histPath = path, filepath.Join(path, run.FileHistory)
		cfg, err := run.ReadConfig(path)
		if err != nil {
			return fmt.Errorf("%s is not a run directory: %w (give the directory 'eccheck test' made, or a history file)", path, err)
		}
		r = export.Run{Name: filepath.Base(filepath.Dir(mustAbs(path))), DB: cfg.DB, Start: cfg.Start, Seed: cfg.Seed}
	}
	if r.Start.IsZero() {
		r.Start = st.ModTime().Add(-time.Hour).Truncate(time.Second) // a history file alone carries no wall time
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(a.stderr, "eccheck: "+format+"\n", args...)
		}
	}
	h, warnings, err := history.ReadFile(histPath)
	for _, w := range warnings {
		logf("warning: %s", w)
	}
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = filepath.Join(dir, fileTraces)
	}
	w := a.stdout
	var f *os.File
	if out != "-" {
		if f, err = os.Create(out + ".tmp"); err != nil {
			return fmt.Errorf("create %s: %w", out, err)
		}
		defer os.Remove(out + ".tmp")
		defer f.Close()
		w = f
	}
	start := time.Now()
	c, err := export.OTLP(cmd.Context(), w, h, r, func(done, total int) {
		logf("export: %d of %d spans", done, total)
	})
	if err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		if err := os.Rename(out+".tmp", out); err != nil {
			return err
		}
	}
	logf("wrote %d spans (%d operations, %d faults, %d sagas, the run) to %s in %s", c.Spans, c.Operations, c.Faults, c.Sagas, strings.TrimSuffix(out, "/"), time.Since(start).Round(time.Millisecond))
	return nil
}

func mustAbs(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			return real
		}
		return abs
	}
	return p
}
