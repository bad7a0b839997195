package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
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
		{"counter-bad.jsonl", exitInvalid, []string{"counter"}, "counter-out-of-bounds"},
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

func TestCheckWritesVisualizationOnFailure(t *testing.T) {
	dir := t.TempDir()
	code, _, _ := runCLI(t, "check", "../../testdata/register-stale-read.jsonl", "--checkers", "linearizable", "--viz-dir", dir, "-q")
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d", code, exitInvalid)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.html"))
	if len(files) == 0 {
		t.Fatalf("no visualization written to %s", dir)
	}
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
	if code != 0 || !strings.HasPrefix(out, "eccheck "+version) {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
}
