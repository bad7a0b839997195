package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// History is a recorded run: operations in the order the harness observed
// them.
type History []Op

// LineError is a problem with one line of a history file.
type LineError struct {
	File string // the file name, or a description of the stream
	Line int    // 1-based line number
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// The formats [ReadFile] reads.
const (
	FormatJSONL     = "jsonl"      // eccheck's own, one JSON op per line
	FormatEDN       = "edn"        // Jepsen's history.edn, Knossos's and Elle's files
	FormatJepsenLog = "jepsen-log" // jepsen.util operation lines, as Knossos and Porcupine ship
)

// DetectFormat names the format of a history file from its name and its
// first bytes: an .edn name is EDN; otherwise the first character decides
// ('{' then '"' is JSON, '{' then ':' or a '[', '(', '#' or ';' is EDN),
// and text with a jepsen.util operation line is a Jepsen log. Anything else
// is taken for JSONL, whose reader then names the first bad line.
func DetectFormat(name string, head []byte) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".edn":
		return FormatEDN
	case ".jsonl", ".json":
		return FormatJSONL
	}
	b := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n,")
	if len(b) > 0 {
		switch b[0] {
		case '[', '(', '#', ';':
			return FormatEDN
		case '{':
			rest := bytes.TrimLeft(b[1:], " \t\r\n,")
			if len(rest) > 0 && rest[0] != '"' {
				return FormatEDN
			}
			return FormatJSONL
		}
	}
	for line := range bytes.SplitSeq(head, []byte("\n")) {
		if IsJepsenLog(string(line)) {
			return FormatJepsenLog
		}
	}
	return FormatJSONL
}

// sniffSize is how much of a file DetectFormat sees.
const sniffSize = 64 << 10

// ReadFile reads a history file in any format [DetectFormat] knows: JSONL,
// Jepsen EDN, or a Jepsen text log. Warnings (a dropped truncated last
// line, times that step back in EDN) are returned, not printed. A file
// with nothing in it is an error that says so.
func ReadFile(path string) (History, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open history: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, sniffSize)
	head, _ := br.Peek(sniffSize)
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, nil, fmt.Errorf("%s is empty: it holds no operations (a run that was stopped before its first operation leaves such a file)", path)
	}
	switch DetectFormat(path, head) {
	case FormatEDN:
		var warnings []string
		h, err := ReadEDNWith(br, path, EDNOptions{Warn: func(w string) { warnings = append(warnings, w) }})
		return h, warnings, err
	case FormatJepsenLog:
		return ReadJepsenLog(br, path)
	}
	hint := 0
	st, err := f.Stat()
	if err == nil {
		// History lines run about 90 bytes; sizing the slice up front
		// saves copying every op as it grows.
		hint = int(min(st.Size()/90, 1<<26))
	}
	if workers := decodeWorkers(); err == nil && st.Size() >= parallelMin && workers > 1 {
		return readJSONLParallel(br, path, hint, workers)
	}
	return readJSONL(br, path, hint)
}

// Read reads a JSONL history from r; name is used in error messages. Blank
// lines are skipped. A last line without a newline that does not parse is
// taken for a write cut short by a crash: it is dropped with a warning. Any
// other malformed line is an error naming the line. The history is then
// validated with [Validate].
func Read(r io.Reader, name string) (History, []string, error) {
	return readJSONL(r, name, 0)
}

// readLine reads a line with its newline; the bytes are valid until the
// next read unless the line was longer than the buffer.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A very long line (a large set read): gather it whole.
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	return line, err
}

// readJSONL is Read with room made for about hint ops.
func readJSONL(r io.Reader, name string, hint int) (History, []string, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var (
		h        = make(History, 0, hint)
		lines    = make([]int, 0, hint) // the line of each op, for validation errors
		warnings []string
		lineNo   int
		names    = newInterner()
	)
	for {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, warnings, fmt.Errorf("read %s: %w", name, err)
		}
		if len(line) == 0 && err != nil {
			break
		}
		lineNo++
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) > 0 {
			op, derr := decodeOp(trimmed, names)
			switch {
			case errors.Is(derr, errNoIndex):
				op.Index = int64(len(h))
			case derr != nil && !complete && !json.Valid(trimmed):
				// Only text that is not JSON at all can be a write cut
				// short; a whole JSON object that is wrong is an error.
				warnings = append(warnings, fmt.Sprintf("%s:%d: dropped a truncated last line (%v); the run was probably cut short while writing it", name, lineNo, derr))
				return finish(h, lines, name, warnings)
			case derr != nil:
				return nil, warnings, &LineError{File: name, Line: lineNo, Err: derr}
			}
			h = append(h, op)
			lines = append(lines, lineNo)
		}
		if err != nil {
			break
		}
	}
	return finish(h, lines, name, warnings)
}

func finish(h History, lines []int, name string, warnings []string) (History, []string, error) {
	if err := Validate(h); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = name
			if ve.Index >= 0 && ve.Index < len(lines) {
				ve.Line = lines[ve.Index]
			}
		}
		return nil, warnings, err
	}
	return h, warnings, nil
}

// ValidationError says why a history cannot be real.
type ValidationError struct {
	File  string // set by the reader
	Line  int    // 1-based line of the offending op, set by the reader; 0 if unknown
	Index int    // position of the offending op in the history
	Err   error
}

func (e *ValidationError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: op %d: %v", e.File, e.Line, e.Index, e.Err)
	case e.File != "":
		return fmt.Sprintf("%s: op %d: %v", e.File, e.Index, e.Err)
	}
	return fmt.Sprintf("op %d: %v", e.Index, e.Err)
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Validate rejects histories that cannot be real: time going backwards, a
// completion with no invocation in flight on its process, a completion whose
// f or key differs from its invocation, or a second invocation on a process
// that already has one in flight. It also rejects ops that could not be
// written and read back: an invalid type or process, or an empty f. Nemesis
// operations are exempt from pairing rules; they record faults, often as two
// info lines.
func Validate(h History) error {
	inFlight := make(map[Process]int) // process -> index of its open invocation
	var last int64
	for i, op := range h {
		bad := func(format string, args ...any) error {
			return &ValidationError{Index: i, Err: fmt.Errorf(format, args...)}
		}
		if op.Type < Invoke || op.Type > Info {
			return bad("invalid type %d", op.Type)
		}
		if op.Process < 0 && op.Process != Nemesis {
			return bad("invalid process %d: a process is a non-negative integer, or the nemesis", op.Process)
		}
		if op.F == "" {
			return bad("%s of process %s has an empty f", op.Type, op.Process)
		}
		if op.Attempt < 0 || op.Attempt > 0 && op.Request == "" || op.Request != "" && op.Attempt == 0 && op.Type == Invoke {
			return bad("%s of process %s has request %q and attempt %d: an attempt names its request, and a request's invocation its attempt (1, 2, ...)", op.Type, op.Process, op.Request, op.Attempt)
		}
		if op.Time < last {
			return bad("time goes backwards: %d ns after %d ns on the line before; lines must be in the order they happened", op.Time, last)
		}
		last = op.Time
		if op.Process == Nemesis {
			continue
		}
		open, busy := inFlight[op.Process]
		if op.Type == Invoke {
			if busy {
				return bad("process %d invokes %s while its %s from op %d is still in flight; a process has at most one operation in flight (after an info, continue under a fresh process id)", op.Process, op.F, h[open].F, open)
			}
			inFlight[op.Process] = i
			continue
		}
		if !busy {
			return bad("%s completion of %s on process %d has no invocation in flight", op.Type, op.F, op.Process)
		}
		if inv := h[open]; inv.F != op.F || inv.Key != op.Key {
			return bad("completion %s %q of process %d does not match its invocation %s %q (op %d)", op.F, op.Key, op.Process, inv.F, inv.Key, open)
		}
		delete(inFlight, op.Process)
	}
	return nil
}
