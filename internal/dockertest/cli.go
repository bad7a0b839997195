package dockertest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
)

// The exit codes of eccheck, as its README gives them.
const (
	ExitValid   = 0
	ExitInvalid = 1
	ExitUnknown = 2
	ExitUsage   = 3
	ExitInfra   = 4
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// Eccheck returns the path of a static eccheck binary built from this
// source tree, once per test binary (Main removes it at the end). Being
// static, it is also what the ecstore image is made from when a test runs
// it against Docker: the image matches the code under test.
func Eccheck(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "eccheck-e2e-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "eccheck")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "github.com/eccheck/eccheck/cmd/eccheck")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New("go build of a static eccheck: " + err.Error() + "\n" + string(out))
			return
		}
		statSources()
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// statSources makes the module's Go sources inputs of the running test
// in go test's result cache: what a test of the eccheck binary shows
// depends on all the code built into it, which the cache cannot see (go
// build runs in a child process, and the test binary itself links only
// part of it). The cache records the directories read and the files
// stat'ed here, so a change to any source, or a new file, makes go test
// run the test again rather than replay an old result.
func statSources() {
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir = parent
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir() && p != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata"):
			return filepath.SkipDir
		case !d.IsDir() && (strings.HasSuffix(p, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum"):
			os.Stat(p)
		}
		return nil
	})
}

// removeBinary removes what Eccheck built.
func removeBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// CLI runs the eccheck binary with args and returns its exit code, stdout
// and stderr. It fails the test when the binary cannot be run at all.
func CLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return CLIContext(context.Background(), t, args...)
}

// MustCLI runs the eccheck binary with args, fails the test unless it
// exits 0, and returns its stdout.
func MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	code, out, errs := CLI(t, args...)
	if code != 0 {
		t.Fatalf("eccheck %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// CLIContext is CLI with a context that kills the process when done.
func CLIContext(ctx context.Context, t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, Eccheck(t), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		code = ee.ExitCode()
	default:
		t.Fatalf("eccheck %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return code, out.String(), errb.String()
}

// Test runs `eccheck test` with args, after defaults that keep a run short
// (--recovery 1s, --nemesis-interval 1s; args may override them), into a
// fresh output directory with JSON on stdout. It fails the test unless
// the exit code is 0 or 1, and returns the code, the report and the run
// directory.
func Test(t testing.TB, args ...string) (int, results.Report, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end run; -short skips it")
	}
	out := t.TempDir()
	base := []string{"test", "--out", out, "-o", "json", "-q", "--recovery", "1s", "--nemesis-interval", "1s"}
	code, stdout, stderr := CLI(t, append(base, args...)...)
	if code != ExitValid && code != ExitInvalid {
		t.Fatalf("eccheck test %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	var rep results.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("eccheck test %s: output is not JSON: %v\n%s\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return code, rep, filepath.Join(out, "latest")
}

// ExpectVerdicts fails the test for each checker whose verdict in rep is
// not the one wanted (a checker with no result fails it too).
func ExpectVerdicts(t testing.TB, rep results.Report, want map[string]string) {
	t.Helper()
	for checker, v := range want {
		got := "(no result)"
		for _, r := range rep.Results {
			if r.Checker == checker {
				got = string(r.Verdict)
			}
		}
		if got != v {
			t.Errorf("%s: %s, want %s; results %+v", checker, got, v, rep.Results)
		}
	}
}

// Stat returns the figure name of checker's result in rep, and whether
// there was one.
func Stat(rep results.Report, checker, name string) (float64, bool) {
	for _, r := range rep.Results {
		if r.Checker == checker {
			v, ok := r.Stats[name]
			return v, ok
		}
	}
	return 0, false
}

// Leftovers lists the containers and networks labelled with the cluster.
func Leftovers(t testing.TB, c *docker.Client, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := make(client.Filters).Add("label", docker.LabelCluster+"="+name)
	var out []string
	cs, err := c.API().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cs.Items {
		out = append(out, "container "+strings.Join(s.Names, ","))
	}
	ns, err := c.API().NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		out = append(out, "network "+n.Name)
	}
	return out
}

// CheckEngineRecorded checks that a run's test.json describes the Docker
// engine, so that a run can be compared with one on another machine.
func CheckEngineRecorded(t testing.TB, cfg run.Config) {
	t.Helper()
	e := cfg.Engine
	if e == nil || e.Version == "" || e.StorageDriver == "" || e.CgroupVersion == "" || e.Kernel == "" {
		t.Errorf("docker/test.json/engine version, storage driver, cgroup version and kernel recorded: %+v", e)
		return
	}
	t.Logf("engine %s, storage driver %s, cgroup v%s (%s)", e.Version, e.StorageDriver, e.CgroupVersion, e.CgroupDriver)
}

// ShortID returns 8 random hex digits, for cluster names of one test.
func ShortID() string {
	var b [4]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run describes an end-to-end run of a system in Docker and what it must
// leave: the system (--db), the keys test.json must record among its
// settings, and text every node's saved log must hold.
type Run struct {
	DB       string
	Settings []string
	LogMarks []string
	// Nodes are the nodes whose logs are checked; nil means n1 to n3.
	Nodes []string
}

// RunSystem runs `eccheck test --cluster docker --db r.DB` with args under
// a cluster name of its own (removed at the end whatever happens), then
// checks test.json (the system, r.Settings and the engine recorded), the
// node logs saved in the run directory and that nothing of the cluster
// was left behind. It returns the exit code, the report, test.json and
// the history.
func RunSystem(t testing.TB, r Run, args ...string) (int, results.Report, run.Config, history.History) {
	t.Helper()
	c := Engine(t)
	name := "e2e-" + r.DB + "-" + ShortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	code, rep, dir := Test(t, append([]string{"--cluster", "docker", "--cluster-name", name, "--db", r.DB}, args...)...)
	cfg, err := run.ReadConfig(dir)
	if err != nil || cfg.DB != r.DB {
		t.Errorf("%s/test.json/db recorded: %v, %+v", r.DB, err, cfg)
	}
	for _, k := range r.Settings {
		if cfg.Settings[k] == nil {
			t.Errorf("%s/test.json/%s recorded: %+v", r.DB, k, cfg.Settings)
		}
	}
	CheckEngineRecorded(t, cfg)
	nodes := r.Nodes
	if nodes == nil {
		nodes = []string{"n1", "n2", "n3"}
	}
	for _, n := range nodes {
		b, err := os.ReadFile(filepath.Join(dir, "nodes", n+".log"))
		for _, mark := range r.LogMarks {
			if err != nil || !strings.Contains(string(b), mark) {
				t.Errorf("%s/node log %s/saved with %q: %v, %d bytes", r.DB, n, mark, err, len(b))
			}
		}
	}
	if left := Leftovers(t, c, name); len(left) > 0 {
		t.Errorf("%s/teardown/nothing left: %s", r.DB, strings.Join(left, "; "))
	}
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return code, rep, cfg, h
}

// Window returns h's first start-KIND fault and the stop-KIND after it,
// failing the test when either is missing or carries an error (the fault
// was not carried out, so nothing can be shown).
func Window(t testing.TB, h history.History, kind string) (start, stop history.Op) {
	t.Helper()
	for _, op := range history.Faults(h) {
		switch {
		case op.F == "start-"+kind && start.F == "":
			start = op
		case op.F == "stop-"+kind && start.F != "" && stop.F == "":
			stop = op
		}
	}
	if start.F == "" || stop.F == "" || start.Error != "" || stop.Error != "" {
		t.Fatalf("%s/setup: the history has no %s carried out: %+v, %+v", kind, kind, start, stop)
	}
	return start, stop
}
