package results

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eccheck/eccheck/checkers"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden (or set ECCHECK_UPDATE_GOLDEN=1)")

// checkGolden compares got with testdata/golden/name, or rewrites the file with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update || os.Getenv("ECCHECK_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run 'go test ./results -update' to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(if the change is intended: go test ./results -update)", path, i+1, g, w)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	rep, h := fixture(t)
	cases := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"report.txt", func(b *bytes.Buffer) error { return WriteTable(b, rep) }},
		{"results.json", func(b *bytes.Buffer) error { return WriteJSON(b, rep) }},
		{"report.md", func(b *bytes.Buffer) error { return WriteMarkdown(b, rep, FaultPeriods(h)) }},
		{"junit.xml", func(b *bytes.Buffer) error { return WriteJUnit(b, rep) }},
	}
	for _, c := range cases {
		t.Run("golden/"+c.name+"/matches", func(t *testing.T) {
			var b bytes.Buffer
			if err := c.write(&b); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, b.Bytes())
		})
	}
}

// TestReportIsStable renders the fixture twice from two checker runs: the
// goldens are only worth having if nothing in them varies.
func TestReportIsStable(t *testing.T) {
	render := func() string {
		rep, h := fixture(t)
		var b bytes.Buffer
		if err := WriteJSON(&b, rep); err != nil {
			t.Fatal(err)
		}
		if err := WriteMarkdown(&b, rep, FaultPeriods(h)); err != nil {
			t.Fatal(err)
		}
		if err := WriteJUnit(&b, rep); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if a, b := render(), render(); a != b {
		t.Fatalf("two renderings of one report differ:\n%s\n---\n%s", a, b)
	}
}

func TestReadJSON(t *testing.T) {
	rep, _ := fixture(t)
	var b bytes.Buffer
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	t.Run("read/round-trip/same-document", func(t *testing.T) {
		back, err := ReadJSON(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		if err := WriteJSON(&again, back); err != nil {
			t.Fatal(err)
		}
		var x, y any
		if err := json.Unmarshal(b.Bytes(), &x); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(again.Bytes(), &y); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("results.json read back and written again differs:\n%s\n---\n%s", b.String(), again.String())
		}
		if back.Verdict != rep.Verdict || len(back.Results) != len(rep.Results) {
			t.Fatalf("read back verdict %s with %d results, want %s with %d", back.Verdict, len(back.Results), rep.Verdict, len(rep.Results))
		}
	})
	for _, c := range []struct{ name, doc, want string }{
		{"read/no-schema/refused", `{"verdict":"valid"}`, "not an eccheck report"},
		{"read/newer-schema/refused", `{"schema":99,"verdict":"valid"}`, "newer"},
		{"read/not-json/refused", `verdict: valid`, "decode report"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// The summary table fits TableWidth columns however long a checker's
// figures are: the Figures column wraps.
func TestTableFitsWidth(t *testing.T) {
	rep := NewReport("h.jsonl", checkers.WorkloadRegister, 10, []checkers.Result{
		{Checker: "read-your-writes (register)", Verdict: checkers.Invalid, AnomalyCount: 163860,
			Summary: "stale reads: p50 0.0 ms, p95 3.4 ms, p99 200.1 ms, max 1523.2 ms over 584211 reads (12% stale); fresh after 5 ms with p=0.99"},
		{Checker: "linearizable (register)", Verdict: checkers.Valid, Summary: "ok"},
	}, nil)
	var b strings.Builder
	if err := WriteTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	tableRows := 0
	for _, l := range lines {
		if strings.ContainsAny(l, "│┌└") {
			tableRows++
			if n := utf8.RuneCountInString(l); n > TableWidth {
				t.Errorf("table/long figures/fits %d columns: a row of %d: %s", TableWidth, n, l)
			}
		}
	}
	if tableRows < 6 || !strings.Contains(b.String(), "p=0.99") {
		t.Fatalf("table/long figures/wrapped, nothing lost:\n%s", b.String())
	}
}
