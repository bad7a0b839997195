package results

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/checkers"
)

var updateMatrix = flag.Bool("update-matrix", false, "rewrite the matrix golden files in testdata/")

func ptr(f float64) *float64 { return &f }

// sampleCard is a card with every kind of cell: valid, invalid, unknown,
// error, a mixed-workload run and a column that was not checked.
func sampleCard(dir string) Card {
	c := Card{DB: "ecstore", Workloads: []string{"register", "session", "set"}, Configs: []string{"raft", "lww:w1r1"},
		Nemeses: []string{"none", "partition"}, TimeLimit: "20s", Seed: 42,
		Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Dir: dir, Planned: 5}
	res := func(name string, v checkers.Verdict, stats map[string]float64) checkers.Result {
		return checkers.Result{Checker: name, Verdict: v, Stats: stats}
	}
	raft := NewReport("h", "register+set", 100, []checkers.Result{
		res("linearizable (register)", checkers.Valid, nil),
		res("read-your-writes (register)", checkers.Valid, nil),
		res("monotonic-reads (register)", checkers.Valid, nil),
		res("lost-writes (register)", checkers.Valid, nil),
		res("staleness (register)", checkers.Valid, map[string]float64{"stale_p99_ms": 0}),
		res("lost-writes (set)", checkers.Valid, nil),
		res("transactional (list-append)", checkers.Valid, nil),
	}, nil)
	cell := NewCell("raft", "none", filepath.Join(dir, "raft-x-none", "t"), raft)
	cell.OpsPerSec, cell.Seconds = ptr(2104.6), 23.1
	c.Add(cell)
	lww := NewReport("h", "register+set", 100, []checkers.Result{
		res("linearizable (register)", checkers.Invalid, nil),
		res("read-your-writes (register)", checkers.Invalid, nil),
		res("monotonic-reads (register)", checkers.Valid, nil),
		res("lost-writes (register)", checkers.Valid, nil),
		res("staleness (register)", checkers.Valid, map[string]float64{"stale_p99_ms": 812.25}),
		res("lost-writes (set)", checkers.Invalid, nil),
		res("transactional (list-append)", checkers.Invalid, nil),
	}, nil)
	cell = NewCell("lww:w1r1", "partition", filepath.Join(dir, "lww-w1r1-x-partition", "t"), lww)
	cell.OpsPerSec, cell.Seconds = ptr(19876.4), 24
	c.Add(cell)
	unknown := NewReport("h", "register", 100, []checkers.Result{
		res("linearizable", checkers.Unknown, nil),
		res("read-your-writes", checkers.Valid, nil),
		res("monotonic-reads", checkers.Valid, nil),
		res("lost-writes", checkers.Valid, nil),
	}, nil)
	cell = NewCell("hlc:w1r1", "clock", filepath.Join(dir, "hlc-w1r1-x-clock", "t"), unknown)
	cell.Seconds = 30
	c.Add(cell)
	c.Add(ErrorCell("primary", "partition+clock", "", errors.New("start the primary cluster: listen tcp: address in use | busy")))
	return c
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateMatrix {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./results -run Matrix -update-matrix to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./results -run Matrix -update-matrix rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestMatrixCellColumns(t *testing.T) {
	c := sampleCard("runs/matrix-x")
	cases := []struct {
		name string
		cell Cell
		want []Mark // verdict, linearizable, ryw, monotonic, lost writes, duplicates, transactions, sagas
	}{
		{"cell/raft-mixed-workloads/all-valid", c.Cells[0], []Mark{MarkValid, MarkValid, MarkValid, MarkValid, MarkValid, MarkNone, MarkValid, MarkNone}},
		{"cell/lww-set-lost-register-kept/lost-writes-invalid", c.Cells[1], []Mark{MarkInvalid, MarkInvalid, MarkInvalid, MarkValid, MarkInvalid, MarkNone, MarkInvalid, MarkNone}},
		{"cell/timeout/unknown", c.Cells[2], []Mark{MarkUnknown, MarkUnknown, MarkValid, MarkValid, MarkValid, MarkNone, MarkNone, MarkNone}},
		{"cell/harness-failure/error-and-nothing-checked", c.Cells[3], []Mark{MarkError, MarkNone, MarkNone, MarkNone, MarkNone, MarkNone, MarkNone, MarkNone}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i, col := range MatrixColumns {
				if got := tc.cell.Column(col); got != tc.want[i] {
					t.Errorf("%s = %q, want %q", col, got, tc.want[i])
				}
			}
		})
	}
	if p, ok := c.Cells[1].Stat(checkers.NameStaleness); !ok || p != 812.25 {
		t.Errorf("stale p99 of the lww cell = %v, want 812.25 from the staleness stats", p)
	}
	if p, ok := c.Cells[2].Stat(checkers.NameStaleness); ok {
		t.Errorf("a run without a staleness result has stale p99 %v, want none", p)
	}
	if c.Verdict != checkers.Invalid || c.Errors != 1 {
		t.Errorf("card verdict %s with %d errors, want invalid with 1", c.Verdict, c.Errors)
	}
}

func TestMatrixFormatsGolden(t *testing.T) {
	c := sampleCard("runs/matrix-20260102T030405Z")
	es, err := ParseExpectations("expect.txt", strings.NewReader("raft x * valid\nlww:w1r1 x partition linearizable valid\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Expectations = c.Evaluate(es)
	for _, f := range []struct {
		name  string
		write func(io.Writer, Card) error
	}{
		{"matrix.table.golden", WriteMatrixTable},
		{"matrix.md.golden", WriteMatrixMarkdown},
		{"matrix.json.golden", WriteMatrixJSON},
	} {
		t.Run("format/"+f.name+"/matches-golden", func(t *testing.T) {
			var b bytes.Buffer
			if err := f.write(&b, c); err != nil {
				t.Fatal(err)
			}
			golden(t, f.name, b.Bytes())
		})
	}
}

func TestMatrixJSONRoundTrips(t *testing.T) {
	c := sampleCard("runs/m")
	var b bytes.Buffer
	if err := WriteMatrixJSON(&b, c); err != nil {
		t.Fatal(err)
	}
	var back Card
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Schema != MatrixSchemaVersion || len(back.Cells) != 4 || back.Cells[1].Dir != c.Cells[1].Dir ||
		back.Cells[1].Column(ColumnReadYourWrites) != MarkInvalid || back.Cells[3].Error == "" {
		t.Fatalf("round trip lost fields: %+v", back)
	}
}

// TestMatrixHTML checks the page parses (it is well-formed XML), holds one
// row per cell and links each cell to report.html when present, else to
// results.json.
func TestMatrixHTML(t *testing.T) {
	dir := t.TempDir()
	c := sampleCard(dir)
	for i, f := range []string{"report.html", "results.json"} {
		d := c.Cells[i].Dir
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, f), []byte("{}"), 0o644)
		if i == 0 { // report.html wins over results.json
			os.WriteFile(filepath.Join(d, "results.json"), []byte("{}"), 0o644)
		}
	}
	var b bytes.Buffer
	if err := WriteMatrixHTML(&b, c, dir); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	var rows int
	var links []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the page is not well-formed: %v\n%s", err, b.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "tr":
				rows++
			case "a":
				for _, a := range se.Attr {
					if a.Name.Local == "href" {
						links = append(links, a.Value)
					}
				}
			}
		}
	}
	if rows != 1+len(c.Cells) {
		t.Errorf("%d table rows, want a header and %d cells", rows, len(c.Cells))
	}
	want := []string{"raft-x-none/t/report.html", "lww-w1r1-x-partition/t/results.json", "hlc-w1r1-x-clock/t"}
	if strings.Join(links, " ") != strings.Join(want, " ") {
		t.Errorf("links %q, want %q (relative to the page's directory)", links, want)
	}
	if strings.Contains(b.String(), "http") {
		t.Errorf("the page refers to the network; it must be self-contained")
	}
}

func TestParseExpectations(t *testing.T) {
	good := []struct {
		name, text string
		want       []Expectation
	}{
		{"parse/verdict-with-glob/cell-verdict", "raft x * valid\n",
			[]Expectation{{Config: "raft", Nemesis: "*", Column: ColumnVerdict, Want: checkers.Valid, Line: 1}}},
		{"parse/column-comments-blank-lines/parsed", "# must-pass cells\n\nlww:w1r1 x partition read-your-writes invalid  # eccheck must catch it\nhlc:* × clock lost-writes valid\n",
			[]Expectation{
				{Config: "lww:w1r1", Nemesis: "partition", Column: ColumnReadYourWrites, Want: checkers.Invalid, Line: 3},
				{Config: "hlc:*", Nemesis: "clock", Column: ColumnLostWrites, Want: checkers.Valid, Line: 4},
			}},
		{"parse/explicit-verdict-column/parsed", "primary x partition+clock verdict unknown",
			[]Expectation{{Config: "primary", Nemesis: "partition+clock", Column: ColumnVerdict, Want: checkers.Unknown, Line: 1}}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExpectations("e.txt", strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d expectations, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Config != w.Config || g.Nemesis != w.Nemesis || g.Column != w.Column || g.Want != w.Want || g.Line != w.Line || g.File != "e.txt" {
					t.Errorf("expectation %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
	bad := []struct {
		name, text, want string
	}{
		{"parse/no-x/error-names-line", "# ok\nraft * valid\n", `e.txt:2: "raft * valid": want "CONFIG x NEMESIS [COLUMN] VERDICT"`},
		{"parse/too-many-fields/error", "raft x none linearizable valid extra\n", "e.txt:1: "},
		{"parse/unknown-verdict/error-lists-verdicts", "raft x none valid\nraft x none pass\n", `e.txt:2: unknown verdict "pass" (want valid, invalid or unknown)`},
		{"parse/unknown-column/error-lists-columns", "\n\n\nraft x none stale valid\n", `e.txt:4: unknown column "stale" (want verdict, linearizable, read-your-writes, monotonic-reads, lost-writes, duplicates, transactional, saga)`},
		{"parse/bad-pattern/error", "raft[ x none valid\n", `e.txt:1: bad pattern "raft["`},
		{"parse/only-comments/error", "# nothing\n\n", "e.txt: holds no expectations"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseExpectations("e.txt", strings.NewReader(tc.text))
			var ee *ExpectationError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v, want an *ExpectationError", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want it to start with %q", err, tc.want)
			}
		})
	}
	if _, err := ReadExpectations(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Error("a missing file gave no error")
	}
}

func TestMatrixEvaluate(t *testing.T) {
	c := sampleCard("runs/m")
	cases := []struct {
		name, line string
		holds      bool
		reason     string
	}{
		{"expect/raft-valid-everywhere/holds", "raft x * valid", true, ""},
		{"expect/lww-ryw-invalid/holds", "lww:w1r1 x partition read-your-writes invalid", true, ""},
		{"expect/lww-monotonic-valid/holds", "lww:* x * monotonic-reads valid", true, ""},
		{"expect/lww-valid/does-not-hold", "lww:w1r1 x partition valid", false, "lww:w1r1 x partition: verdict is invalid, want valid"},
		{"expect/unknown-is-not-valid/does-not-hold", "hlc:w1r1 x clock linearizable valid", false, "linearizable is unknown, want valid"},
		{"expect/error-cell/does-not-hold", "primary x * valid", false, "primary x partition+clock did not run (start the primary cluster"},
		{"expect/typo-matches-nothing/does-not-hold", "raf x * valid", false, "no cell of the matrix matches it"},
		{"expect/one-of-many-fails/does-not-hold", "* x * linearizable valid", false, "lww:w1r1 x partition: linearizable is invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es, err := ParseExpectations("e.txt", strings.NewReader(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			o := c.Evaluate(es)[0]
			if o.Holds != tc.holds || !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("holds %v (%s), want %v with a reason containing %q", o.Holds, o.Reason, tc.holds, tc.reason)
			}
		})
	}
	// A column no workload checked never satisfies an expectation.
	set := Card{}
	set.Add(NewCell("raft", "none", "d", NewReport("h", "set", 1, []checkers.Result{{Checker: "lost-writes", Verdict: checkers.Valid}}, nil)))
	es, _ := ParseExpectations("e.txt", strings.NewReader("raft x none linearizable valid"))
	if o := set.Evaluate(es)[0]; o.Holds || !strings.Contains(o.Reason, "not checked") {
		t.Errorf("expectation on an unchecked column: holds %v (%s), want not holding", o.Holds, o.Reason)
	}
}
