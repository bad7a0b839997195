package results

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/checkers"
)

// An expectations file (`eccheck matrix --expect FILE`) says which cells of
// the report card must come out how. One expectation per line:
//
//	CONFIG x NEMESIS [COLUMN] VERDICT
//
// CONFIG and NEMESIS are the names the card shows ("lww:w1r1", "partition",
// "partition+clock"), or shell patterns matching several ("*", "lww:*").
// COLUMN is one of [MatrixColumns] and defaults to "verdict", the cell's
// composed verdict. VERDICT is valid, invalid or unknown. Blank lines and
// everything after "#" are ignored. For example:
//
//	# raft must pass everything, and eccheck must keep catching lww
//	raft x * valid
//	lww:w1r1 x partition read-your-writes invalid
//
// An expectation holds when at least one cell matches and every matching
// cell shows the verdict; a cell in error never satisfies one. Expecting
// "invalid" asserts that eccheck still finds a known weakness.

// Expectation is one line of an expectations file.
type Expectation struct {
	File    string           `json:"file"`
	Line    int              `json:"line"`
	Text    string           `json:"text"`    // the line, comment stripped
	Config  string           `json:"config"`  // pattern
	Nemesis string           `json:"nemesis"` // pattern
	Column  string           `json:"column"`  // one of MatrixColumns
	Want    checkers.Verdict `json:"want"`
}

// Pos is "file:line".
func (e Expectation) Pos() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// ExpectationError is a malformed line of an expectations file.
type ExpectationError struct {
	File string
	Line int
	Msg  string
}

func (e *ExpectationError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ReadExpectations reads an expectations file.
func ReadExpectations(file string) ([]Expectation, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read expectations: %w", err)
	}
	defer f.Close()
	return ParseExpectations(file, f)
}

// ParseExpectations parses an expectations file read from r; name is the
// file name errors give. Errors are *[ExpectationError]s naming the line.
// A file without a single expectation is an error too: it would let every
// run pass.
func ParseExpectations(name string, r io.Reader) ([]Expectation, error) {
	var out []Expectation
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		e, msg := parseExpectation(text)
		if msg != "" {
			return nil, &ExpectationError{File: name, Line: n, Msg: msg}
		}
		e.File, e.Line, e.Text = name, n, text
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, &ExpectationError{File: name, Line: n + 1, Msg: err.Error()}
	}
	if len(out) == 0 {
		return nil, &ExpectationError{File: name, Msg: `holds no expectations (want lines like "raft x * valid")`}
	}
	return out, nil
}

const expectationForm = `want "CONFIG x NEMESIS [COLUMN] VERDICT", e.g. "raft x * valid" or "lww:w1r1 x partition read-your-writes invalid"`

// parseExpectation parses one non-blank line; msg says what is wrong.
func parseExpectation(text string) (e Expectation, msg string) {
	f := strings.Fields(text)
	if len(f) < 4 || len(f) > 5 || (f[1] != "x" && f[1] != "×") {
		return e, fmt.Sprintf("%q: %s", text, expectationForm)
	}
	e.Config, e.Nemesis, e.Column = f[0], f[2], ColumnVerdict
	if len(f) == 5 {
		e.Column = f[3]
		if !slices.Contains(MatrixColumns, e.Column) {
			return e, fmt.Sprintf("unknown column %q (want %s)", e.Column, strings.Join(MatrixColumns, ", "))
		}
	}
	switch v := checkers.Verdict(f[len(f)-1]); v {
	case checkers.Valid, checkers.Invalid, checkers.Unknown:
		e.Want = v
	default:
		return e, fmt.Sprintf("unknown verdict %q (want valid, invalid or unknown)", f[len(f)-1])
	}
	for _, p := range []string{e.Config, e.Nemesis} {
		if _, err := path.Match(p, ""); errors.Is(err, path.ErrBadPattern) {
			return e, fmt.Sprintf("bad pattern %q: %v", p, err)
		}
	}
	return e, ""
}

// ExpectationOutcome says whether an expectation held on a card, and if not
// why.
type ExpectationOutcome struct {
	Expectation Expectation `json:"expectation"`
	Holds       bool        `json:"holds"`
	Reason      string      `json:"reason,omitempty"`
}

// Matches tells whether the expectation covers a cell.
func (e Expectation) Matches(c Cell) bool {
	okc, _ := path.Match(e.Config, c.Config)
	okn, _ := path.Match(e.Nemesis, c.Nemesis)
	return okc && okn
}

// Evaluate checks every expectation against the card's cells.
func (c Card) Evaluate(es []Expectation) []ExpectationOutcome {
	out := make([]ExpectationOutcome, 0, len(es))
	for _, e := range es {
		o := ExpectationOutcome{Expectation: e, Holds: true}
		var bad []string
		matched := 0
		for _, cell := range c.Cells {
			if !e.Matches(cell) {
				continue
			}
			matched++
			got := cell.Column(e.Column)
			switch {
			case cell.Verdict == MarkError:
				bad = append(bad, fmt.Sprintf("%s did not run (%s)", cell.Name(), cell.Error))
			case got == MarkNone:
				bad = append(bad, fmt.Sprintf("%s: %s was not checked (no workload it applies to)", cell.Name(), e.Column))
			case got != Mark(e.Want):
				bad = append(bad, fmt.Sprintf("%s: %s is %s, want %s", cell.Name(), e.Column, got, e.Want))
			}
		}
		switch {
		case matched == 0:
			o.Holds, o.Reason = false, "no cell of the matrix matches it"
		case len(bad) > 0:
			o.Holds, o.Reason = false, strings.Join(bad, "; ")
		}
		out = append(out, o)
	}
	return out
}
