package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/run"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCheckTestdata checks every example history in testdata/ and asserts
// its verdict, the exit code, and which checkers found anomalies.
func TestCheckTestdata(t *testing.T) {
	cases := []struct {
		file      string
		code      int
		failing   []string // checkers that must be invalid
		mentioned string   // text the table must contain
	}{
		{"register-valid.jsonl", exitValid, nil, "verdict: valid"},
		{"register-stale-read.jsonl", exitInvalid, []string{"linearizable"}, "k1"},
		{"register-read-your-writes.jsonl", exitInvalid, []string{"linearizable", "read-your-writes"}, "read-your-writes"},
		{"register-monotonic-reads.jsonl", exitInvalid, []string{"linearizable", "monotonic-reads"}, "monotonic-reads"},
		{"register-final-valid.jsonl", exitValid, nil, "verdict: valid"},
		{"register-lost-write.jsonl", exitInvalid, []string{"linearizable", "read-your-writes", "lost-writes"}, "silently lost"},
		{"register-divergence.jsonl", exitInvalid, []string{"linearizable", "lost-writes"}, "divergence"},
		{"register-unknown-final-value.jsonl", exitInvalid, []string{"linearizable", "lost-writes"}, "unknown-final-value"},
		{"set-valid.jsonl", exitValid, nil, "verdict: valid"},
		{"set-lost.jsonl", exitInvalid, []string{"lost-writes"}, "[lost]"},
		{"set-unexpected.jsonl", exitInvalid, []string{"lost-writes"}, "unexpected"},
		{"set-unexpected-after-fail.jsonl", exitInvalid, []string{"lost-writes"}, "unexpected"},
		{"set-duplicated.jsonl", exitInvalid, []string{"lost-writes"}, "duplicated"},
		{"counter-valid.jsonl", exitValid, nil, "verdict: valid"},
		{"counter-bad.jsonl", exitInvalid, []string{"counter", "duplicates"}, "counter-out-of-bounds"},
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "*.jsonl"))
	if len(files) != len(cases) {
		t.Errorf("testdata holds %d histories but the table covers %d: give every example history its expected verdict", len(files), len(cases))
	}
	for _, c := range cases {
		t.Run("check/"+strings.TrimSuffix(c.file, ".jsonl"), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join("..", "..", "testdata", c.file)
			code, out, errOut := runCLI(t, "check", path, "--viz-dir", dir)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			if !strings.Contains(out, c.mentioned) {
				t.Errorf("table lacks %q:\n%s", c.mentioned, out)
			}
			code, out, _ = runCLI(t, "check", path, "-o", "json", "-q", "--viz-dir", dir)
			if code != c.code {
				t.Fatalf("json run exit %d, want %d", code, c.code)
			}
			var rep struct {
				Schema  int    `json:"schema"`
				Verdict string `json:"verdict"`
				Results []struct {
					Checker string `json:"checker"`
					Verdict string `json:"verdict"`
				} `json:"results"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("json output does not parse: %v\n%s", err, out)
			}
			if rep.Schema != 1 {
				t.Errorf("schema %d, want 1", rep.Schema)
			}
			invalid := map[string]bool{}
			for _, r := range rep.Results {
				if r.Verdict == "invalid" {
					invalid[r.Checker] = true
				}
			}
			for _, name := range c.failing {
				if !invalid[name] {
					t.Errorf("%s is not invalid; results: %+v", name, rep.Results)
				}
			}
			if len(invalid) != len(c.failing) {
				t.Errorf("invalid checkers %v, want exactly %v", invalid, c.failing)
			}
		})
	}
}

// Check is read-only unless asked: a history file gets no visualization
// next to it; --viz-dir gets one named after the history; a run directory
// gets its own; a directory that cannot be written is a warning on stderr.
func TestCheckVisualizations(t *testing.T) {
	src, err := os.ReadFile("../../testdata/register-stale-read.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("viz/history file/nothing written next to it", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "h.jsonl")
		os.WriteFile(path, src, 0o644)
		code, out, _ := runCLI(t, "check", path, "--checkers", "linearizable", "-q")
		entries, _ := os.ReadDir(dir)
		if code != exitInvalid || len(entries) != 1 || strings.Contains(out, "visualizations:") {
			t.Fatalf("exit %d, %d files in the history's directory (want only the history), output:\n%s", code, len(entries), out)
		}
	})
	t.Run("viz/--viz-dir/one file named after the history, one line saying so", func(t *testing.T) {
		dir := t.TempDir()
		code, out, _ := runCLI(t, "check", "../../testdata/register-stale-read.jsonl", "--checkers", "linearizable", "--viz-dir", dir, "-q")
		files, _ := filepath.Glob(filepath.Join(dir, "register-stale-read.linearizable-*.html"))
		if code != exitInvalid || len(files) != 1 {
			t.Fatalf("exit %d, files %v", code, files)
		}
		if want := "visualizations: 1 of 1 failing key(s), in " + dir; !strings.Contains(out, want) || strings.Count(out, ".html") != 0 {
			t.Fatalf("output lacks %q (and should list no files):\n%s", want, out)
		}
	})
	t.Run("viz/run directory/written into it", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "history.jsonl"), src, 0o644)
		os.WriteFile(filepath.Join(dir, "test.json"), []byte("{}"), 0o644)
		code, _, _ := runCLI(t, "check", dir, "--checkers", "linearizable", "-q")
		files, _ := filepath.Glob(filepath.Join(dir, "linearizable-*.html"))
		if code != exitInvalid || len(files) != 1 {
			t.Fatalf("exit %d, files %v", code, files)
		}
	})
	t.Run("viz/unwritable directory/warning on stderr, verdict unchanged", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "file")
		os.WriteFile(blocker, nil, 0o644)
		code, _, stderr := runCLI(t, "check", "../../testdata/register-stale-read.jsonl", "--checkers", "linearizable", "--viz-dir", filepath.Join(blocker, "sub"), "-q")
		if code != exitInvalid || !strings.Contains(stderr, "warning: linearizable: visualization") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestCheckErrors(t *testing.T) {
	dir := t.TempDir()
	malformed := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(malformed, []byte(`{"time":0,"process":0,"type":"invoke","f":"read"}`+"\n"+`{"time":1,"process":0,"type":"okay","f":"read"}`+"\n"), 0o644)
	orphan := filepath.Join(dir, "orphan.jsonl")
	os.WriteFile(orphan, []byte(`{"time":5,"process":2,"type":"ok","f":"read","value":1}`+"\n"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"usage/no-file/3", []string{"check"}, exitUsage, "one history file"},
		{"usage/bad-output/3", []string{"check", "../../testdata/register-valid.jsonl", "-o", "xml"}, exitUsage, "want table or json"},
		{"usage/unknown-checker/3", []string{"check", "../../testdata/register-valid.jsonl", "--checkers", "serializable"}, exitUsage, "unknown checker"},
		{"usage/checker-wrong-workload/3", []string{"check", "../../testdata/register-valid.jsonl", "--checkers", "counter"}, exitUsage, "does not apply"},
		{"usage/bad-engine/3", []string{"check", "../../testdata/register-valid.jsonl", "--engine", "knossos"}, exitUsage, "--engine"},
		{"usage/bad-workload/3", []string{"check", "../../testdata/register-valid.jsonl", "--workload", "queue"}, exitUsage, "unknown workload"},
		{"usage/bad-flag/3", []string{"check", "--bogus", "x"}, exitUsage, "unknown flag"},
		{"usage/unknown-command/3", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"input/missing-file/4", []string{"check", filepath.Join(dir, "nope.jsonl")}, exitInfra, "nope.jsonl"},
		{"input/malformed-line/4", []string{"check", malformed}, exitInfra, "bad.jsonl:2"},
		{"input/completion-without-invocation/4", []string{"check", orphan}, exitInfra, "no invocation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q lacks %q", errOut, c.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "eccheck "+run.Release) {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
}

// Every flag of eccheck test is checked before anything is created: a bad
// value is a usage error (exit 3) that names the flag, and the output
// directory stays empty (no half-made run directory, no runs/latest).
func TestTestFlagsRefusedBeforeAnyWork(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--w 5", "--w 5: want 1 to 3"},
		{"--r 4 --n 2", "--r 4: want 1 to 2"},
		{"--n 9", "--n 9: want 0 (every node) to --nodes (3)"},
		{"--set-impl bag", `--set-impl "bag"`},
		{"--primary-reads some", `--primary-reads "some"`},
		{"--rate -1", "--rate -1: want operations per second"},
		{"--op-timeout 0s", "--op-timeout 0s"},
		{"--recovery -1s", "--recovery -1s"},
		{"--time-limit 0s", "--time-limit 0s"},
		{"--clock-max 10us", "--clock-max 10µs"},
		{"--concurrency 0", "--concurrency 0: 0 clients"},
		{"--concurrency 2x", `invalid argument "2x" for "--concurrency"`},
		{"--nodes 2 --nemesis kill", "--nemesis kill with --nodes 2: killing a minority needs at least 3 nodes"},
		{"--nodes 2 --nemesis partition --mode raft", ""},
		{"--nemesis flood", `unknown fault "flood"`},
		{"--workload queue", "--workload"},
		{"--nemesis-cycles 2 --nemesis none", "--nemesis-cycles 2 counts faults"},
		{"--nemesis-cycles -1", "--nemesis-cycles -1"},
		{"--partition-shapes isolate --nemesis clock", "--partition-shapes isolate: the shapes of partitions; add partition to --nemesis"},
		{"--partition-shapes square --nemesis partition", `unknown partition shape "square"`},
		{"--partition-shapes ring --nemesis partition --nodes 2 --mode raft", "partition ring needs at least 3 nodes"},
		{"--cluster ssh", "--cluster ssh needs --hosts"},
		{"--cluster ssh --hosts h1,h2 --nodes 3", "--nodes 3 with 2 --hosts"},
		{"--cluster ssh --hosts h1,h1,h2", "an empty or repeated host"},
		{"--cluster ssh --hosts h1,h2,h3 --db galera", "--db galera does not run on SSH hosts yet (these do: ecstore, postgres, etcd, redis)"},
		{"--cluster ssh --hosts h1,h2,h3 --db etcd --nemesis clock", "use partition, kill or pause, or on SSH hosts --ssh-host-clock"},
		{"--hosts h1,h2,h3", "--hosts goes with --cluster ssh"},
		{"--cluster docker --ssh-insecure", "--ssh-insecure goes with --cluster ssh"},
		{"--cluster docker --ssh-host-clock", "--ssh-host-clock goes with --cluster ssh"},
		{"--cluster ssh --hosts h1,h2,h3 --db postgres --nemesis failover", "--nemesis failover: not on SSH hosts yet"},
		{"--cluster ssh --hosts h1,h2,h3 --db postgres --pg-rejoin", "--pg-promote and --pg-rejoin go with --nemesis failover, which is not on SSH hosts yet"},
		{"--cluster moon", `--cluster "moon": want local`},
	} {
		t.Run("flags/"+tc.args+"/usage error, nothing written", func(t *testing.T) {
			if tc.want == "" {
				return // a valid combination, listed to show it is not refused
			}
			out := t.TempDir()
			code, _, stderr := runCLI(t, append([]string{"test", "--out", out, "-q"}, strings.Fields(tc.args)...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 3 naming %q", code, stderr, tc.want)
			}
			if entries, _ := os.ReadDir(out); len(entries) > 0 {
				t.Fatalf("%d entries written to --out before the usage error", len(entries))
			}
		})
	}
	t.Run("flags/--concurrency 2n/twice the nodes", func(t *testing.T) {
		if testing.Short() {
			t.Skip("runs a short test")
		}
		out := t.TempDir()
		code, _, stderr := runCLI(t, "test", "--out", out, "-q", "--nodes", "2", "--concurrency", "2n", "--nemesis", "none", "--time-limit", "300ms", "--recovery", "0s", "--workload", "register")
		b, _ := os.ReadFile(filepath.Join(out, "latest", "test.json"))
		if code != exitValid && code != exitInvalid || !strings.Contains(string(b), `"concurrency": 4`) {
			t.Fatalf("exit %d, %s; test.json %s", code, stderr, b)
		}
	})
	t.Run("flags/--version/prints the version", func(t *testing.T) {
		code, out, _ := runCLI(t, "--version")
		if code != exitValid || !strings.HasPrefix(out, "eccheck ") {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
}
