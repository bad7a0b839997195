package checkers

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

func TestLinearizableEngineChoice(t *testing.T) {
	t.Run("linearizable/zones-decides-where-porcupine-times-out/invalid", func(t *testing.T) {
		in := NewInput(hardHistory("x", 30))
		porc := Linearizable(context.Background(), in, Options{Engine: EnginePorcupine, Timeout: 50 * time.Millisecond})
		if porc.Verdict != Unknown {
			t.Fatalf("Porcupine: %s, the test wants a history it cannot decide in 50ms", porc.Verdict)
		}
		r := Linearizable(context.Background(), in, Options{Timeout: 50 * time.Millisecond})
		if r.Verdict != Invalid || r.Stats["keys_zones"] != 1 || r.Stats["keys_porcupine"] != 0 {
			t.Fatalf("default engine: %s, stats %v; want invalid, decided by zones", r.Verdict, r.Stats)
		}
		if !strings.Contains(r.Anomalies[0].Explanation, "999") || !strings.Contains(r.Summary, "engine: zones") {
			t.Errorf("anomaly %q / summary %q should name the unwritten value and the engine", r.Anomalies[0].Explanation, r.Summary)
		}
	})
	// Key "dup" writes 1 twice, so it goes to Porcupine; key "u" has unique
	// values and a stale read.
	mixed := `1 invoke write dup 1
1 ok write dup 1
1 invoke write dup 1
1 ok write dup 1
2 invoke read dup null
2 ok read dup 1
3 invoke write u 1
3 ok write u 1
3 invoke write u 2
3 ok write u 2
4 invoke read u null
4 ok read u 1`
	t.Run("linearizable/mixed-engines/invalid", func(t *testing.T) {
		r := Linearizable(context.Background(), NewInput(regHist(t, mixed)), Options{})
		if r.Verdict != Invalid || r.Stats["keys_zones"] != 1 || r.Stats["keys_porcupine"] != 1 {
			t.Fatalf("verdict %s, stats %v; want invalid with one key per engine", r.Verdict, r.Stats)
		}
		d := r.Details.(LinearizableDetails)
		if len(d.FailedKeys) != 1 || d.FailedKeys[0] != "u" || len(d.Fallback) != 1 || !strings.Contains(d.Fallback[0], "written more than once") {
			t.Errorf("details %+v: want failed key u and the fallback reason of dup", d)
		}
		if !strings.Contains(r.Summary, "zones 1 keys, Porcupine 1") {
			t.Errorf("summary %q does not say which engine decided what", r.Summary)
		}
	})
	t.Run("linearizable/zones-only-leaves-fallback-keys-undecided/unknown", func(t *testing.T) {
		valid := strings.ReplaceAll(mixed, "4 ok read u 1", "4 ok read u 2")
		r := Linearizable(context.Background(), NewInput(regHist(t, valid)), Options{Engine: EngineZones})
		if r.Verdict != Unknown || !strings.Contains(r.Reason, "outside the zones engine's domain") {
			t.Fatalf("verdict %s, reason %q; want unknown naming the domain", r.Verdict, r.Reason)
		}
		if r := Linearizable(context.Background(), NewInput(regHist(t, valid)), Options{}); r.Verdict != Valid {
			t.Fatalf("default engine on the same history: %s, want valid", r.Verdict)
		}
	})
	t.Run("linearizable/zones-failure-is-drawn-by-porcupine/invalid", func(t *testing.T) {
		dir := t.TempDir()
		r := Linearizable(context.Background(), NewInput(regHist(t, mixed)), Options{VizDir: dir})
		if len(r.Artifacts) != 1 || filepath.Base(r.Artifacts[0]) != "linearizable-u.html" {
			t.Fatalf("artifacts %v, want the visualization of key u", r.Artifacts)
		}
		if d := r.Details.(LinearizableDetails); len(d.Warnings) != 0 {
			t.Errorf("warnings %v: the engines should agree", d.Warnings)
		}
	})
}

// TestLinearizableKnossos checks the Knossos cas-register histories (EDN,
// from the Knossos repository) against their published verdicts, with every
// engine that can decide them.
func TestLinearizableKnossos(t *testing.T) {
	dir := filepath.Join("..", "history", "testdata", "knossos")
	f, err := os.Open(filepath.Join(dir, "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		path, want := fields[0], Verdict(fields[1])
		n++
		t.Run("linearizable/knossos-"+strings.TrimSuffix(filepath.Base(path), ".edn")+"/"+string(want), func(t *testing.T) {
			h, _, err := history.ReadFile(filepath.Join(dir, path))
			if err != nil {
				t.Fatal(err)
			}
			in := NewInput(h)
			for _, engine := range []string{EngineAuto, EnginePorcupine} {
				r := Linearizable(context.Background(), in, Options{Engine: engine, Timeout: time.Minute})
				if r.Verdict != want {
					t.Errorf("engine %s: %s, Knossos says %s (%s)", engine, r.Verdict, want, r.Summary)
				}
			}
		})
	}
	if n < 5 {
		t.Fatalf("read %d expected verdicts, want at least 5", n)
	}
}
