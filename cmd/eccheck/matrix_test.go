package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/results"
)

// TestMatrixUsageErrors checks that bad flags and malformed expectation
// files stop the matrix before any cell runs, with exit 3.
func TestMatrixUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("# must pass\nraft x * valid\nraft x partition pass\n"), 0o644)
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"usage/bad-mode/exit-3", []string{"--modes", "raft,lww:w9"}, `configuration "lww:w9"`},
		{"usage/bad-nemesis/exit-3", []string{"--nemesis", "none,flood"}, `fault set "flood"`},
		{"usage/bad-output/exit-3", []string{"-o", "xml"}, "want table, markdown, json, html"},
		{"usage/bad-workload/exit-3", []string{"--workload", "queue"}, "--workload"},
		{"expect/malformed-line/exit-3-with-file-line", []string{"--expect", bad}, bad + `:3: unknown verdict "pass"`},
		{"expect/no-expectations/exit-3", []string{"--expect", empty}, "holds no expectations"},
		{"expect/missing-file/exit-3", []string{"--expect", filepath.Join(dir, "nope.txt")}, "nope.txt"},
		{"postgres/ecstore mode/exit-3", []string{"--db", "postgres", "--cluster", "docker", "--modes", "raft"}, `postgres configuration "raft": want SYNC:READ`},
		{"postgres/local/exit-3", []string{"--db", "postgres", "--modes", "async:replica"}, "add --cluster docker"},
		{"postgres/apply delay with ecstore/exit-3", []string{"--pg-apply-delay", "50ms"}, "--pg-apply-delay and --pg-rejoin go with --db postgres"},
		{"postgres/failover with ecstore/exit-3", []string{"--modes", "raft", "--nemesis", "failover"}, "failover needs a cluster with a primary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "runs")
			code, _, stderr := runCLI(t, append([]string{"matrix", "--out", out}, tc.args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a usage error created %s; nothing should run", out)
			}
		})
	}
}

// TestMatrixOutcome checks the exit code of a finished matrix without
// --expect: a cell in error is a harness failure (exit 4), else the
// composed verdict.
func TestMatrixOutcome(t *testing.T) {
	var card results.Card
	card.Add(results.NewCell("raft", "none", "d", results.Report{Verdict: checkers.Valid}))
	card.Add(results.NewCell("lww:w1r1", "none", "d", results.Report{Verdict: checkers.Invalid}))
	a := &app{stderr: &bytes.Buffer{}}
	if err := matrixOutcome(context.Background(), card, false, a, func(string, ...any) {}); err != nil || a.verdict != checkers.Invalid {
		t.Errorf("outcome/anomalies/exit-1: err %v verdict %s", err, a.verdict)
	}
	card.Add(results.ErrorCell("primary", "none", "", errors.New("start the primary cluster: boom")))
	err := matrixOutcome(context.Background(), card, false, a, func(string, ...any) {})
	var ue usageError
	if err == nil || errors.As(err, &ue) || errors.Is(err, context.Canceled) {
		t.Errorf("outcome/error-cell/exit-4: err %v, want a harness error", err)
	}
}

type matrixJSON struct {
	Schema      int    `json:"schema"`
	Interrupted bool   `json:"interrupted"`
	Planned     int    `json:"planned"`
	Verdict     string `json:"verdict"`
	Cells       []struct {
		Config         string   `json:"config"`
		Nemesis        string   `json:"nemesis"`
		Dir            string   `json:"dir"`
		Verdict        string   `json:"verdict"`
		Linearizable   string   `json:"linearizable"`
		ReadYourWrites string   `json:"read_your_writes"`
		LostWrites     string   `json:"lost_writes"`
		StaleP99MS     *float64 `json:"stale_p99_ms"`
		OpsPerSec      *float64 `json:"ops_per_sec"`
		Error          string   `json:"error"`
	} `json:"cells"`
	Expectations []struct {
		Holds bool `json:"holds"`
	} `json:"expectations"`
}

func matrixArgs(out string, args ...string) []string {
	base := []string{"matrix", "--out", out, "--workload", "session", "--nemesis-interval", "1s", "--recovery", "1s", "--seed", "11"}
	return append(base, args...)
}

// TestMatrixLocalPattern runs a small matrix on the in-process cluster and
// asserts the pattern it must show: raft valid in every cell, lww W=1 R=1
// under partitions breaking read-your-writes. The expectations file says
// the same, so the exit code is 0.
func TestMatrixLocalPattern(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end matrix; -short skips it")
	}
	out := t.TempDir()
	expect := filepath.Join(out, "expect.txt")
	os.WriteFile(expect, []byte("raft x * valid\nlww:w1r1 x partition read-your-writes invalid\n"), 0o644)
	code, stdout, stderr := runCLI(t, matrixArgs(out, "--modes", "raft,lww:w1r1", "--nemesis", "none,partition", "--time-limit", "3s", "-o", "json", "--expect", expect)...)
	var card matrixJSON
	if err := json.Unmarshal([]byte(stdout), &card); err != nil {
		t.Fatalf("exit %d; stdout is not JSON: %v\n%s\n%s", code, err, stdout, stderr)
	}
	if code != exitValid {
		t.Errorf("exit %d, want 0 (every expectation holds)\n%s\n%s", code, stdout, stderr)
	}
	if card.Schema != 1 || len(card.Cells) != 4 || card.Planned != 4 || card.Interrupted || len(card.Expectations) != 2 {
		t.Fatalf("card %+v: want schema 1, 4 cells, 2 expectations", card)
	}
	for i, c := range card.Cells {
		wantOrder := [][2]string{{"raft", "none"}, {"raft", "partition"}, {"lww:w1r1", "none"}, {"lww:w1r1", "partition"}}[i]
		if c.Config != wantOrder[0] || c.Nemesis != wantOrder[1] {
			t.Errorf("cell %d is %s x %s, want %s x %s", i, c.Config, c.Nemesis, wantOrder[0], wantOrder[1])
		}
		if c.Config == "raft" && (c.Verdict != "valid" || c.Linearizable != "valid" || c.LostWrites != "valid") {
			t.Errorf("raft x %s: %+v, want valid everywhere (run dir %s)", c.Nemesis, c, c.Dir)
		}
		if c.Config == "lww:w1r1" && c.Nemesis == "partition" && (c.ReadYourWrites != "invalid" || c.Verdict != "invalid") {
			t.Errorf("lww:w1r1 x partition: %+v, want read-your-writes invalid", c)
		}
		if c.StaleP99MS == nil || c.OpsPerSec == nil || *c.OpsPerSec <= 0 {
			t.Errorf("%s x %s lacks stale p99 or ops/s: %+v", c.Config, c.Nemesis, c)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, "results.json")); err != nil {
			t.Errorf("%s x %s: run directory %q lacks results.json: %v", c.Config, c.Nemesis, c.Dir, err)
		}
	}
	if want := "cell 4/4: lww:w1r1 x partition ... invalid ("; !strings.Contains(stderr, want) {
		t.Errorf("progress lacks %q:\n%s", want, stderr)
	}
	mdir := filepath.Dir(filepath.Dir(card.Cells[0].Dir))
	for _, f := range []string{"card.txt", "card.md", "matrix.json", "index.html"} {
		if _, err := os.Stat(filepath.Join(mdir, f)); err != nil {
			t.Errorf("matrix directory lacks %s: %v", f, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "latest")); err == nil {
		t.Errorf("the matrix moved %s/latest; its cells must leave eccheck test's link alone", out)
	}
}

// TestMatrixExpectationFails checks exit 1 when an expectation does not
// hold, and that the message names it with its file and line.
func TestMatrixExpectationFails(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end matrix; -short skips it")
	}
	out := t.TempDir()
	expect := filepath.Join(out, "expect.txt")
	os.WriteFile(expect, []byte("raft x none valid\nraft x none invalid  # wrong on purpose\nhlc x * valid\n"), 0o644)
	code, stdout, stderr := runCLI(t, matrixArgs(out, "--modes", "raft", "--nemesis", "none", "--time-limit", "2s", "--expect", expect)...)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"expectation does not hold: raft x none invalid (" + expect + ":2): raft x none: verdict is valid, want invalid",
		"expectation does not hold: hlc x * valid (" + expect + ":3): no cell of the matrix matches it",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, expect+":1") {
		t.Errorf("the expectation that holds is reported:\n%s", stderr)
	}
	if !strings.Contains(stdout, "expectations: 1 of 3 hold") {
		t.Errorf("the card lacks the expectations line:\n%s", stdout)
	}
}

// TestMatrixInterrupt cancels the matrix during its first cell, as Ctrl-C
// does: the cell stops (healed), the rest do not run, the partial card is
// printed and the exit code is 130.
func TestMatrixInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end matrix; -short skips it")
	}
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	code := execute(ctx, matrixArgs(out, "--modes", "lww:w1r1", "--nemesis", "none,partition", "--time-limit", "4s", "-o", "json"), &stdout, &stderr)
	if code != exitSignaled {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitSignaled, stdout.String(), stderr.String())
	}
	var card matrixJSON
	if err := json.Unmarshal(stdout.Bytes(), &card); err != nil {
		t.Fatalf("no partial card on stdout: %v\n%s", err, stdout.String())
	}
	if !card.Interrupted || card.Planned != 2 || len(card.Cells) != 1 || card.Cells[0].Verdict != "error" || !strings.HasPrefix(card.Cells[0].Error, "interrupted") {
		t.Errorf("partial card %+v: want 1 of 2 cells, interrupted", card)
	}
}
