package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportRendersRunDirectory makes a run directory with a short `eccheck
// test`, checks that the run wrote every report, and renders it again in
// every format.
func TestReportRendersRunDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run; -short skips it")
	}
	out := t.TempDir()
	code, _, stderr := runCLI(t, "test", "--out", out, "-q", "--workload", "register", "--nemesis", "partition",
		"--time-limit", "2s", "--nemesis-interval", "500ms", "--recovery", "500ms", "--seed", "7")
	if code != exitValid && code != exitInvalid {
		t.Fatalf("eccheck test: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("eccheck test warned: %s", stderr)
	}
	dir := filepath.Join(out, "latest")
	for _, f := range []string{"report.txt", "report.md", "junit.xml", "report.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("eccheck test did not write %s: %v", f, err)
		}
	}

	checks := map[string]func(string) error{
		"table":    func(s string) error { return contains(s, "verdict: ") },
		"markdown": func(s string) error { return contains(s, "## eccheck: ", "| Checker |", "### Faults") },
		"html":     func(s string) error { return contains(s, "<!DOCTYPE html>", "<svg", "Latency", "Throughput") },
		"json": func(s string) error {
			var v struct {
				Schema int `json:"schema"`
			}
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return err
			}
			return contains(s, `"schema": 1`)
		},
		"junit": func(s string) error {
			var v struct {
				Suites []struct {
					Cases []struct{} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal([]byte(s), &v); err != nil {
				return err
			}
			if len(v.Suites) != 1 || len(v.Suites[0].Cases) == 0 {
				return os.ErrInvalid
			}
			return nil
		},
	}
	for format, check := range checks {
		t.Run("report/"+format+"/exit-0", func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "report", dir, "-o", format)
			if code != exitValid {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if err := check(stdout); err != nil {
				t.Fatalf("%s output: %v\n%.2000s", format, err, stdout)
			}
		})
	}
	t.Run("report/write/rewrites-every-file", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "report.html")); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runCLI(t, "report", dir, "--write"); code != exitValid {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "report.html")); err != nil {
			t.Fatal(err)
		}
	})
}

func contains(s string, wants ...string) error {
	for _, w := range wants {
		if !strings.Contains(s, w) {
			return &missingError{w}
		}
	}
	return nil
}

type missingError struct{ want string }

func (e *missingError) Error() string { return "lacks " + e.want }

func TestReportErrors(t *testing.T) {
	empty := t.TempDir()
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "results.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(empty, "history.jsonl")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"report/missing-dir/exit-4", []string{"report", filepath.Join(empty, "nope")}, exitInfra, []string{"nope"}},
		{"report/no-results/exit-4-says-what-to-do", []string{"report", empty}, exitInfra, []string{"has no results.json", "eccheck check"}},
		{"report/file/exit-4-says-what-to-do", []string{"report", file}, exitInfra, []string{"not a run directory"}},
		{"report/malformed-results/exit-4-names-file", []string{"report", broken}, exitInfra, []string{filepath.Join(broken, "results.json"), "re-create it"}},
		{"report/bad-format/exit-3", []string{"report", broken, "-o", "pdf"}, exitUsage, []string{"-o \"pdf\""}},
		{"report/no-args/exit-3", []string{"report"}, exitUsage, []string{"one run directory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s", code, c.code, stderr)
			}
			if err := contains(stderr, c.want...); err != nil {
				t.Fatalf("error message %v: %s", err, stderr)
			}
		})
	}
}
