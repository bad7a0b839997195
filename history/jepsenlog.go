package history

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"olympos.io/encoding/edn"
)

// jepsenLogLine matches the line Jepsen's jepsen.util logs for each
// operation, after any timestamp or thread the logger puts first:
//
//	INFO  jepsen.util - 3	:invoke	:cas	[1 4]
//
// The groups are the process, the type, the f and the value (EDN text).
var jepsenLogLine = regexp.MustCompile(`jepsen\.util\s+-\s+(\S+)\s+:(invoke|ok|fail|info)\s+:?(\S+)\s*(.*?)\s*$`)

// IsJepsenLog reports whether line is an operation line of a Jepsen text
// log.
func IsJepsenLog(line string) bool { return jepsenLogLine.MatchString(line) }

// ReadJepsenLog reads a Jepsen text log, the format of jepsen.util's
// operation lines (as the linearizability test data of Knossos and
// Porcupine ships): one line per operation with the process, the type, the
// f and the value in EDN, such as "INFO  jepsen.util - 0 :invoke :read nil".
// Lines of other shapes (setup, the nemesis's prose) are skipped and
// counted in a warning. The log has no times: an op's position is its time.
// Values are EDN (nil, integers, [a b], keywords such as :timed-out on an
// indeterminate op); the process is an integer or :nemesis. The history is
// then checked with [Validate].
func ReadJepsenLog(r io.Reader, name string) (History, []string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var h History
	var lines []int
	skipped := 0
	for lineNo := 1; sc.Scan(); lineNo++ {
		text := sc.Text()
		m := jepsenLogLine.FindStringSubmatch(text)
		if m == nil {
			if strings.TrimSpace(text) != "" {
				skipped++
			}
			continue
		}
		bad := func(format string, args ...any) error {
			return &LineError{File: name, Line: lineNo, Err: fmt.Errorf(format, args...)}
		}
		op := Op{Index: int64(len(h)), Time: int64(len(h))}
		var err error
		if op.Type, err = ParseType(m[2]); err != nil {
			return nil, nil, bad("%w", err)
		}
		if op.Process, err = logProcess(m[1]); err != nil {
			return nil, nil, bad("%w", err)
		}
		op.F = m[3]
		if m[4] != "" {
			var x any
			if err := edn.UnmarshalString(m[4], &x); err != nil {
				op.Value = String(m[4]) // not EDN: keep the text
			} else {
				op.Value = ednValue(x)
			}
		}
		h = append(h, op)
		lines = append(lines, lineNo)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	var warnings []string
	if skipped > 0 {
		warnings = append(warnings, fmt.Sprintf("%s: skipped %d line(s) that are not jepsen.util operation lines", name, skipped))
	}
	if len(h) == 0 {
		return nil, warnings, fmt.Errorf("%s holds no jepsen.util operation lines (INFO jepsen.util - PROCESS :TYPE :F VALUE)", name)
	}
	h, warnings2, err := finish(h, lines, name, nil)
	return h, append(warnings, warnings2...), err
}

// logProcess parses the process of a log line: an integer, or :nemesis.
func logProcess(s string) (Process, error) {
	if s == ":nemesis" || s == "nemesis" {
		return Nemesis, nil
	}
	p, err := strconv.ParseInt(s, 10, 64)
	if err != nil || p < 0 {
		return 0, errors.New("process " + s + ": want a non-negative integer or :nemesis")
	}
	return Process(p), nil
}
