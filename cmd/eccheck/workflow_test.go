package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/results"
	runpkg "github.com/eccheck/eccheck/run"
)

// TestNightlyWorkflow checks .github/workflows/nightly-chaos.yml without a
// YAML library: its shape (indentation, top-level keys, the steps it must
// have), that its `eccheck matrix` command line parses with the real flags
// and plans its cells, and that .github/chaos-expect.txt parses and every
// expectation in it names cells that matrix runs.
func TestNightlyWorkflow(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "nightly-chaos.yml"))
	if err != nil {
		t.Fatal(err)
	}
	wf := string(b)
	var top []string
	for i, line := range strings.Split(wf, "\n") {
		if strings.Contains(line, "\t") {
			t.Errorf("line %d has a tab; YAML indents with spaces", i+1)
		}
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if indent := len(line) - len(trimmed); indent%2 != 0 {
			t.Errorf("line %d is indented by %d spaces, not a multiple of 2: %q", i+1, indent, line)
		} else if indent == 0 {
			key, _, ok := strings.Cut(line, ":")
			if !ok {
				t.Errorf("line %d at the top level is not a key: %q", i+1, line)
			}
			top = append(top, key)
		}
	}
	if want := []string{"name", "on", "permissions", "concurrency", "jobs"}; !slices.Equal(top, want) {
		t.Errorf("top-level keys %q, want %q", top, want)
	}
	for _, want := range []string{
		"schedule:", "- cron: ", "workflow_dispatch:", "runs-on: ubuntu-latest",
		"uses: actions/checkout@v", "uses: actions/setup-go@v", "go-version-file: go.mod",
		"go build -o bin/eccheck ./cmd/eccheck",
		"bin/eccheck images build --help", "if: steps.docker.outputs.images == 'true'", "bin/eccheck images build",
		`>> "$GITHUB_STEP_SUMMARY"`, `exit "$code"`,
		"uses: actions/upload-artifact@v", "if: always()", "path: runs/",
	} {
		if !strings.Contains(wf, want) {
			t.Errorf("the workflow lacks %q", want)
		}
	}

	// Each matrix command line, joined over its continuation lines: the
	// in-process ecstore card, the Postgres, etcd, Redis and Galera cards.
	for _, run := range []struct{ card, db, expect string }{
		{"card.md", "ecstore", ".github/chaos-expect.txt"},
		{"card-postgres.md", "postgres", ".github/chaos-expect-postgres.txt"},
		{"card-etcd.md", "etcd", ".github/chaos-expect-etcd.txt"},
		{"card-redis.md", "redis", ".github/chaos-expect-redis.txt"},
		{"card-galera.md", "galera", ".github/chaos-expect-galera.txt"},
	} {
		m := regexp.MustCompile(`\n *bin/eccheck matrix ([^#]*?)> ` + regexp.QuoteMeta(run.card)).FindStringSubmatch(wf)
		if m == nil {
			t.Errorf("the workflow has no 'bin/eccheck matrix ... > %s' command", run.card)
			continue
		}
		line := strings.NewReplacer("\\\n", " ", `"$TIME_LIMIT"`, "20s", `"${seed_flag[@]}"`, "").Replace(m[1])
		args := strings.Fields(line)
		cmd, o := matrixCmd(&app{stdout: io.Discard, stderr: io.Discard})
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatalf("the workflow's matrix flags %q do not parse: %v", args, err)
		}
		if o.output != "markdown" || o.expect != run.expect || o.db != run.db {
			t.Errorf("the workflow's matrix > %s writes -o %s with --expect %q on --db %s; want markdown, %s, %s", run.card, o.output, o.expect, o.db, run.expect, run.db)
		}
		o.expect = filepath.Join(root, o.expect)
		ms, err := o.spec(cmd.Flags())
		if err != nil {
			t.Fatalf("the workflow's matrix > %s: %v", run.card, err)
		}
		cells, _, _, err := runpkg.PlanMatrix(ms, t.TempDir())
		if err != nil {
			t.Fatalf("the workflow's matrix > %s does not plan: %v", run.card, err)
		}
		for _, e := range ms.Expect {
			matched := 0
			for _, c := range cells {
				if e.Matches(results.Cell{Config: c.Config, Nemesis: c.Nemesis}) {
					matched++
				}
			}
			if matched == 0 {
				t.Errorf("%s: %q matches no cell of the workflow's matrix > %s", e.Pos(), e.Text, run.card)
			}
		}
	}
}
