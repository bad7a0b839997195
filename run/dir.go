package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/workload"
)

// The files of a run directory, the one place they are named.
const (
	FileConfig  = "test.json"     // the configuration, seed, version, engine, summary
	FileHistory = "history.jsonl" // every operation, as it happened
	FileResults = "results.json"  // the report: the machine-readable contract
	FileTable   = "report.txt"    // the summary table
	FileMD      = "report.md"     // for a CI step summary
	FileJUnit   = "junit.xml"     // a test case per checker
	FileHTML    = "report.html"   // plots; opens offline
	DirNodes    = "nodes"         // one <node>.log per node
	LinkLatest  = "latest"        // out/latest points at the newest run
)

// Dir is a run directory, runs/<name>/<UTC time>/: the one type that owns
// its files.
type Dir struct {
	Path string
}

// Create makes the run directory of a run named name started at start,
// under out, with its nodes/ folder.
func Create(out, name string, start time.Time) (Dir, error) {
	d := Dir{Path: filepath.Join(out, name, start.UTC().Format("20060102T150405.000Z"))}
	if err := os.MkdirAll(d.Nodes(), 0o755); err != nil {
		return Dir{}, fmt.Errorf("create run directory: %w", err)
	}
	return d, nil
}

// File returns the path of one of the run's files (File* above).
func (d Dir) File(name string) string { return filepath.Join(d.Path, name) }

// Nodes is the folder of the nodes' logs.
func (d Dir) Nodes() string { return filepath.Join(d.Path, DirNodes) }

// Link points out/latest at the run directory.
func (d Dir) Link(out string) error {
	link := filepath.Join(out, LinkLatest)
	rel, err := filepath.Rel(out, d.Path)
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

// IsRunDir reports whether path is the history of a run directory (a
// history.jsonl with a test.json beside it).
func IsRunDir(path string) bool {
	if filepath.Base(path) != FileHistory {
		return false
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(path), FileConfig))
	return err == nil
}

// HistoryPath resolves a run directory to its history file; a file is
// returned as it is.
func HistoryPath(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("open history: %w", err)
	}
	if !st.IsDir() {
		return p, nil
	}
	h := filepath.Join(p, FileHistory)
	if _, err := os.Stat(h); err != nil {
		return "", fmt.Errorf("%s is a directory without a %s; give a history file or a run directory", p, FileHistory)
	}
	return h, nil
}

// Config is test.json: how a run was configured, what it ran on, and the
// summary of what it did. A system's own settings (mode, w, pg_sync...)
// sit at its top level beside these.
type Config struct {
	Version   string    `json:"version"`
	Seed      uint64    `json:"seed"`
	Start     time.Time `json:"start"`
	DB        string    `json:"db"`
	Cluster   string    `json:"cluster"`
	Nodes     int       `json:"nodes"`
	Workloads []string  `json:"workloads"`
	Nemesis   []string  `json:"nemesis"`
	Interval  string    `json:"nemesis_interval"`
	Cycles    int       `json:"nemesis_cycles,omitempty"`
	// Shapes are the partition shapes the nemesis drew from, when
	// --partition-shapes named them.
	Shapes    []string `json:"partition_shapes,omitempty"`
	TimeLimit string   `json:"time_limit"`
	Conc      int      `json:"concurrency"`
	Rate      float64  `json:"rate"`
	Args      []string `json:"args"`
	// ConsistencyModel is what the transactional checker held the run's
	// transactions to; a re-check of the run uses it unless told otherwise.
	ConsistencyModel string `json:"consistency_model,omitempty"`
	// Retry and IdempotencyKeys are --retry and --idempotency-keys.
	Retry           int  `json:"retry,omitempty"`
	IdempotencyKeys bool `json:"idempotency_keys,omitempty"`
	// ClusterName, Images and Engine: the Docker cluster, the images it
	// ran and the engine's version, storage driver and cgroup version.
	ClusterName string            `json:"cluster_name,omitempty"`
	Images      map[string]string `json:"images,omitempty"`
	Engine      *docker.Engine    `json:"engine,omitempty"`
	Summary     *workload.Summary `json:"summary,omitempty"`
	// Settings are the system's own (db.Settings.Record).
	Settings map[string]any `json:"-"`
}

// configAlias has Config's fields without its JSON methods.
type configAlias Config

// MarshalJSON writes the fields with the system's settings at the top
// level.
func (c Config) MarshalJSON() ([]byte, error) {
	base, err := json.Marshal(configAlias(c))
	if err != nil {
		return nil, err
	}
	if len(c.Settings) == 0 {
		return base, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(base, &m); err != nil {
		return nil, err
	}
	for k, v := range c.Settings {
		if _, taken := m[k]; taken {
			return nil, fmt.Errorf("test.json: the setting %q clashes with a field of its own", k)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the fields, and the rest into Settings.
func (c *Config) UnmarshalJSON(b []byte) error {
	var a configAlias
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = Config(a)
	for k, v := range m {
		if !configKeys[k] {
			if c.Settings == nil {
				c.Settings = map[string]any{}
			}
			c.Settings[k] = v
		}
	}
	return nil
}

// configKeys are the JSON keys of Config's own fields.
var configKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[configAlias]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}()

// WriteConfig writes test.json.
func (d Dir) WriteConfig(c Config) error { return writeJSON(d.File(FileConfig), c) }

// ReadConfig reads a run directory's test.json.
func ReadConfig(dir string) (Config, error) {
	var c Config
	b, err := os.ReadFile(filepath.Join(dir, FileConfig))
	if err != nil {
		return c, fmt.Errorf("read %s: %w", FileConfig, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read %s: %w", filepath.Join(dir, FileConfig), err)
	}
	return c, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// ReportFormats are the formats of a run's report, as `eccheck report -o`
// takes them.
var ReportFormats = []string{"table", "json", "markdown", "junit", "html"}

// RenderReport writes rep in format; h may be nil (no faults, no plots).
func RenderReport(w io.Writer, format string, rep results.Report, h history.History) error {
	var faults []results.FaultPeriod
	if h != nil {
		faults = results.FaultPeriods(h)
	}
	switch format {
	case "json":
		return results.WriteJSON(w, rep)
	case "markdown":
		return results.WriteMarkdown(w, rep, faults)
	case "junit":
		return results.WriteJUnit(w, rep)
	case "html":
		return results.WriteHTML(w, rep, h)
	}
	return results.WriteTable(w, rep)
}

// WriteResults writes results.json and report.txt: what a run must leave.
func (d Dir) WriteResults(rep results.Report) error {
	if err := writeJSON(d.File(FileResults), rep); err != nil {
		return err
	}
	return d.WriteTable(rep)
}

// WriteTable writes report.txt, the summary table.
func (d Dir) WriteTable(rep results.Report) error {
	return d.writeReport(FileTable, "table", rep, nil)
}

// WriteReports writes report.md, junit.xml and report.html. A report that
// cannot be written is a warning, not a failed run: the verdict still
// comes out, and results.json holds everything.
func (d Dir) WriteReports(rep results.Report, h history.History, warnf func(string, ...any)) {
	if cfg, err := ReadConfig(d.Path); err == nil {
		// report.html answers the architect's checklist from this run.
		rep.Checklist = Checklist([]ChecklistRun{{Dir: d.Path, Config: cfg, Report: rep, Traces: fileExists(d.File(FileTraces))}})
	}
	for _, f := range []struct{ name, format string }{
		{FileMD, "markdown"}, {FileJUnit, "junit"}, {FileHTML, "html"},
	} {
		if err := d.writeReport(f.name, f.format, rep, h); err != nil {
			warnf("%v", err)
		}
	}
}

func (d Dir) writeReport(name, format string, rep results.Report, h history.History) error {
	f, err := os.Create(d.File(name))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	werr := RenderReport(f, format, rep, h)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", name, werr)
	}
	return nil
}

// ReadResults reads the run's results.json, with errors that say what to
// do.
func (d Dir) ReadResults() (results.Report, error) {
	path := d.File(FileResults)
	if st, err := os.Stat(d.Path); err != nil {
		return results.Report{}, fmt.Errorf("run directory %s: %w", d.Path, err)
	} else if !st.IsDir() {
		return results.Report{}, fmt.Errorf("%s is a file, not a run directory: give the directory 'eccheck test' made (runs/latest), or check a history with 'eccheck check %s'", d.Path, d.Path)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return results.Report{}, fmt.Errorf("%s has no %s: give a run directory made by 'eccheck test' (runs/latest), or check the history again with 'eccheck check %s'", d.Path, FileResults, d.Path)
	}
	if err != nil {
		return results.Report{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	rep, err := results.ReadJSON(f)
	if err != nil {
		return results.Report{}, fmt.Errorf("read %s: %w; re-create it with 'eccheck check %s -o json > %s'", path, err, d.Path, path)
	}
	return rep, nil
}

// ReadHistory reads the run's history.jsonl for the fault periods and the
// plots. Without it the reports leave those out, with a warning.
func (d Dir) ReadHistory(warnf func(string, ...any)) history.History {
	h, warnings, err := history.ReadFile(d.File(FileHistory))
	for _, w := range warnings {
		warnf("%s", w)
	}
	if err != nil {
		warnf("%v: the report has no fault periods, latency or throughput plots", err)
		return nil
	}
	return h
}

// OpsPerSec is a run's workload throughput from its summary: operations
// over the workload's duration (the final reads excluded).
func (c Config) OpsPerSec() (float64, error) {
	if c.Summary == nil || c.Summary.Workload <= 0 {
		return 0, errors.New("test.json has no workload summary")
	}
	return float64(c.Summary.Ops) / c.Summary.Workload.Seconds(), nil
}
