package history

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"olympos.io/encoding/edn"
)

// EDNOptions configures [ReadEDNWith].
type EDNOptions struct {
	// Independent says whether the values of client operations are Jepsen
	// independent-key tuples [key value]. Nil detects it: a history is
	// independent when every client operation's value is a two-element
	// vector whose first element is an integer, string or keyword (and whose
	// second element is itself a pair for cas operations).
	Independent *bool
	// Warn, if set, receives what the reader tolerated (times that step
	// back between lines, ops reordered by :index), one line each.
	Warn func(string)
}

// ReadEDN reads a Jepsen history in EDN, as Jepsen, Knossos and Elle write
// it; see [ReadEDNWith].
func ReadEDN(r io.Reader, name string) (History, error) {
	return ReadEDNWith(r, name, EDNOptions{})
}

// ReadEDNWith reads a Jepsen history in EDN from r; name is used in error
// messages. The input is either a stream of op maps (one per line, as in
// Jepsen's history.edn) or one vector or list of op maps (as in Knossos's
// test data). An op map has the keys :type (:invoke, :ok, :fail or :info),
// :f, :process (an integer, or :nemesis), :value, and optionally :time
// (nanoseconds), :index, :key, :node and :error; other keys are ignored.
// Newer Jepsen writes ops as #jepsen.history.Op{...} records, read as plain
// maps.
//
// The history's order is its position order, or :index order when every op
// has an :index and the file is not in that order; that order is what
// Jepsen's checkers go by. Jepsen journals ops from several threads, so
// :time may step back between consecutive ops (real histories have hundreds
// of such steps of a few microseconds): such an op gets the time of the op
// before it, and one warning (through [EDNOptions.Warn]) counts them and
// gives the largest step. When no op has a :time, as in Knossos's files, an
// op's position in the history is used as its time. Keywords become strings without the colon,
// vectors and lists become lists, sets become lists in a stable order, maps
// become JSON objects, and :error is kept as its EDN text. Independent-key
// tuples [k v] (see [EDNOptions]) become Key k and Value v. The history is
// then checked with [Validate].
//
// Malformed input gives a [*LineError] naming the file and the line where
// the op begins (or where the decoder stopped); an impossible history gives
// a [*ValidationError].
func ReadEDNWith(r io.Reader, name string, opts EDNOptions) (History, error) {
	entries, err := decodeEDN(r, name)
	if err != nil {
		return nil, err
	}
	return buildEDN(entries, name, opts)
}

// ednOp is the shape of one Jepsen op map, as the EDN decoder fills it.
// Fields are left as decoded values and checked by buildEDN, which gives
// errors a person can act on instead of Go type names.
type ednOp struct {
	Index   any            `edn:"index"`
	Time    any            `edn:"time"`
	Process any            `edn:"process"`
	Type    any            `edn:"type"`
	F       any            `edn:"f"`
	Value   any            `edn:"value"`
	Key     any            `edn:"key"`
	Node    any            `edn:"node"`
	Error   edn.RawMessage `edn:"error"`
}

// ednEntry is one decoded op map and the line it begins on.
type ednEntry struct {
	op   ednOp
	line int
}

// ednGuard passes the input to the decoder, counting newlines, so that the
// line of the decoder's position can be worked out from what is still
// buffered, and watching how deeply brackets nest. The EDN decoder recurses
// once per level with no limit, and a Go stack overflow is fatal, not an
// error; so ednGuard fails the read beyond maxDepth levels (the limit
// encoding/json sets), before the decoder gets there. To count only real
// brackets it follows strings, comments and character literals; it does not
// otherwise parse EDN.
type ednGuard struct {
	r     io.Reader
	lines int
	err   error

	depth     int
	inString  bool
	inComment bool
	escape    bool // the next byte is escaped: in a string, or a character literal
}

func (g *ednGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	for _, c := range p[:n] {
		if c == '\n' {
			g.lines++
		}
		switch {
		case g.escape:
			g.escape = false
		case g.inComment:
			g.inComment = c != '\n'
		case g.inString:
			switch c {
			case '\\':
				g.escape = true
			case '"':
				g.inString = false
			}
		default:
			switch c {
			case '"':
				g.inString = true
			case ';':
				g.inComment = true
			case '\\':
				g.escape = true
			case '(', '[', '{':
				g.depth++
				if g.depth > maxDepth {
					g.err = &LineError{Line: g.lines + 1, Err: fmt.Errorf("values nested more than %d deep", maxDepth)}
					return 0, g.err
				}
			case ')', ']', '}':
				if g.depth > 0 {
					g.depth--
				}
			}
		}
	}
	return n, err
}

// ednStream walks the top level of an EDN history. The EDN decoder decodes
// one op map at a time; ednStream only skips the whitespace, commas and
// comments between them and the brackets of an enclosing vector or list, so
// that every op's line is known. It does not parse EDN itself.
type ednStream struct {
	name string
	lc   *ednGuard
	br   *bufio.Reader
	dec  *edn.Decoder
}

// line returns the 1-based line of the next unread byte.
func (s *ednStream) line() int {
	buffered, _ := s.br.Peek(s.br.Buffered())
	return s.lc.lines - bytes.Count(buffered, []byte{'\n'}) + 1
}

// skipSpace consumes whitespace, commas and ; comments. It returns io.EOF at
// the end of the input.
func (s *ednStream) skipSpace() error {
	for {
		r, _, err := s.br.ReadRune()
		if err != nil {
			return err
		}
		switch {
		case r == ',' || unicode.IsSpace(r):
		case r == ';':
			for {
				_, err := s.br.ReadSlice('\n')
				if err == nil {
					break
				}
				if !errors.Is(err, bufio.ErrBufferFull) {
					return err
				}
			}
		default:
			return s.br.UnreadRune()
		}
	}
}

// readErr reports an error reading the input.
func (s *ednStream) readErr(err error) error {
	var le *LineError
	if errors.As(err, &le) { // from ednGuard
		le.File = s.name
		return le
	}
	return fmt.Errorf("read %s: %w", s.name, err)
}

func (s *ednStream) errorf(line, n int, format string, args ...any) error {
	return &LineError{File: s.name, Line: line, Err: fmt.Errorf("op %d: "+format, append([]any{n}, args...)...)}
}

// decodeEDN decodes every op map of an EDN history.
func decodeEDN(r io.Reader, name string) ([]ednEntry, error) {
	lc := &ednGuard{r: r}
	// At least 4096 bytes, so that edn.NewDecoder reads from this very
	// reader and line() sees what the decoder has not consumed yet.
	br := bufio.NewReaderSize(lc, 64<<10)
	s := &ednStream{name: name, lc: lc, br: br, dec: edn.NewDecoder(br)}
	// Newer Jepsen writes ops as records: the tag is a map of the same keys.
	if err := s.dec.AddTagFn("jepsen.history.Op", func(op ednOp) (ednOp, error) { return op, nil }); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}

	if err := s.skipSpace(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty history
		}
		return nil, s.readErr(err)
	}
	// The ops are either a stream of maps or one vector or list of them.
	var opener, closer byte
	openLine := s.line()
	if b, _ := br.Peek(1); len(b) == 1 && (b[0] == '[' || b[0] == '(') {
		opener, closer = b[0], ']'
		if opener == '(' {
			closer = ')'
		}
		_, _ = br.ReadByte()
	}

	var entries []ednEntry
	for {
		err := s.skipSpace()
		if errors.Is(err, io.EOF) {
			if closer != 0 {
				return nil, &LineError{File: name, Line: s.line(), Err: fmt.Errorf("unexpected end of input: the %c opened on line %d is not closed", opener, openLine)}
			}
			return entries, nil
		}
		if err != nil {
			return nil, s.readErr(err)
		}
		n, line := len(entries), s.line()
		next, _ := br.Peek(2)
		if closer != 0 && len(next) > 0 && next[0] == closer {
			_, _ = br.ReadByte()
			if err := s.skipSpace(); !errors.Is(err, io.EOF) {
				if err != nil {
					return nil, s.readErr(err)
				}
				return nil, &LineError{File: name, Line: s.line(), Err: fmt.Errorf("unexpected data after the %c that closes the history", closer)}
			}
			return entries, nil
		}
		discard := bytes.HasPrefix(next, []byte("#_"))
		var op ednOp
		if err := s.dec.Decode(&op); err != nil {
			if errors.Is(err, io.EOF) {
				if discard && closer == 0 {
					return entries, nil // a #_ discarded form ended the input
				}
				err = io.ErrUnexpectedEOF
			}
			var le *LineError
			if errors.As(err, &le) { // from ednGuard
				return nil, s.readErr(err)
			}
			var te *edn.UnmarshalTypeError
			if errors.As(err, &te) && te.Type == reflect.TypeFor[ednOp]() {
				err = fmt.Errorf("expected an op map, got %s", te.Value)
			}
			if stop := s.line(); stop > line {
				return nil, s.errorf(line, n, "invalid EDN (the decoder stopped on line %d): %w", stop, err)
			}
			return nil, s.errorf(line, n, "invalid EDN: %w", err)
		}
		entries = append(entries, ednEntry{op: op, line: line})
	}
}

// buildEDN turns decoded op maps into a validated History.
func buildEDN(entries []ednEntry, name string, opts EDNOptions) (History, error) {
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	entries = byIndex(entries, name, warn)
	h := make(History, len(entries))
	bad := func(i int, format string, args ...any) error {
		return &LineError{File: name, Line: entries[i].line, Err: fmt.Errorf("op %d: "+format, append([]any{i}, args...)...)}
	}
	timed := 0
	for i := range entries {
		e := &entries[i].op
		op := &h[i]
		var err error
		if op.Type, err = ednType(e.Type); err != nil {
			return nil, bad(i, "%w", err)
		}
		if op.Process, err = ednProcess(e.Process); err != nil {
			return nil, bad(i, "%w", err)
		}
		if op.F = ednName(e.F); op.F == "" {
			return nil, bad(i, "missing :f (read, write, cas, ...), got %s", ednDescribe(e.F))
		}
		op.Index = int64(i)
		if e.Index != nil {
			n, ok := ednInt(e.Index)
			if !ok {
				return nil, bad(i, ":index must be an integer, got %s", ednDescribe(e.Index))
			}
			op.Index = n
		}
		if e.Time != nil {
			n, ok := ednInt(e.Time)
			if !ok || n < 0 {
				return nil, bad(i, ":time must be a non-negative integer (nanoseconds), got %s", ednDescribe(e.Time))
			}
			op.Time = n
			timed++
		}
		if e.Key != nil {
			op.Key = ednText(e.Key)
		}
		if e.Node != nil {
			op.Node = ednText(e.Node)
		}
		op.Error = ednErrorText(e.Error)
	}
	switch {
	case timed == 0:
		// Knossos histories have no times: their order is their time.
		for i := range h {
			h[i].Time = int64(i)
		}
	case timed < len(h):
		for i := range entries {
			if entries[i].op.Time == nil {
				return nil, bad(i, "no :time, while other ops have one")
			}
		}
	default:
		monotonicTimes(h, name, warn)
	}

	independent := false
	if opts.Independent != nil {
		independent = *opts.Independent
	} else {
		independent = detectIndependent(entries, h)
	}
	for i := range entries {
		v := entries[i].op.Value
		op := &h[i]
		if !independent || op.Process == Nemesis {
			op.Value = ednValue(v)
			continue
		}
		k, val, ok := independentTuple(v)
		if !ok {
			return nil, bad(i, "value %s is not an independent [key value] tuple with an integer, string or keyword key", ednDescribe(v))
		}
		op.Key, op.Value = k, ednValue(val)
	}

	if err := Validate(h); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = name
			if ve.Index >= 0 && ve.Index < len(entries) {
				ve.Line = entries[ve.Index].line
			}
		}
		return nil, err
	}
	return h, nil
}

// byIndex returns entries in :index order when every op has an integer
// :index and the file is not already in that order (a vector of records
// printed from a set, say), with a warning; otherwise entries as they are.
func byIndex(entries []ednEntry, name string, warn func(string)) []ednEntry {
	idx := make([]int64, len(entries))
	sortedAlready := true
	for i := range entries {
		n, ok := ednInt(entries[i].op.Index)
		if entries[i].op.Index == nil || !ok {
			return entries
		}
		idx[i] = n
		sortedAlready = sortedAlready && (i == 0 || idx[i] >= idx[i-1])
	}
	if sortedAlready {
		return entries
	}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(idx[a], idx[b]) })
	out := make([]ednEntry, len(entries))
	for i, j := range order {
		out[i] = entries[j]
	}
	warn(fmt.Sprintf("%s: ops are not in :index order in the file; read in :index order, as Jepsen's checkers take them", name))
	return out
}

// monotonicTimes gives an op whose :time is earlier than the op before it
// that op's time, so that time never goes back in the history's order, and
// warns once with the count and the largest step.
func monotonicTimes(h History, name string, warn func(string)) {
	var last, largest int64
	steps := 0
	for i := range h {
		if h[i].Time < last {
			steps++
			largest = max(largest, last-h[i].Time)
			h[i].Time = last
		}
		last = h[i].Time
	}
	if steps > 0 {
		warn(fmt.Sprintf("%s: %d op(s) have a :time earlier than the op before them (by up to %s; Jepsen journals ops from several threads); each was given the time of the op before it, keeping the history's order", name, steps, time.Duration(largest)))
	}
}

// detectIndependent reports whether every client op of h carries a Jepsen
// independent [key value] tuple. Knossos register histories do not: their
// reads are invoked with nil, and a cas [old new] pair is not a tuple around
// another pair.
func detectIndependent(entries []ednEntry, h History) bool {
	clients := 0
	for i := range entries {
		if h[i].Process == Nemesis {
			continue
		}
		clients++
		_, val, ok := independentTuple(entries[i].op.Value)
		if !ok {
			return false
		}
		if h[i].F == "cas" {
			if l, isList := val.([]any); !isList || len(l) != 2 {
				return false
			}
		}
	}
	return clients > 0
}

// independentTuple splits a Jepsen independent tuple [k v] into the key's
// text and v.
func independentTuple(v any) (string, any, bool) {
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return "", nil, false
	}
	switch k := l[0].(type) {
	case int64:
		return strconv.FormatInt(k, 10), l[1], true
	case big.Int:
		return k.String(), l[1], true
	case *big.Int:
		return k.String(), l[1], true
	case string:
		return k, l[1], true
	case edn.Keyword:
		return string(k), l[1], true
	case edn.Symbol:
		return string(k), l[1], true
	}
	return "", nil, false
}

func ednType(x any) (Type, error) {
	s := ednName(x)
	if s == "" {
		return 0, fmt.Errorf("missing :type (:invoke, :ok, :fail or :info), got %s", ednDescribe(x))
	}
	t, err := ParseType(s)
	if err != nil {
		return 0, fmt.Errorf(":type: %w", err)
	}
	return t, nil
}

func ednProcess(x any) (Process, error) {
	if n, ok := ednInt(x); ok && n >= 0 {
		return Process(n), nil
	}
	if ednName(x) == "nemesis" {
		return Nemesis, nil
	}
	return 0, fmt.Errorf(":process must be a non-negative integer or :nemesis, got %s", ednDescribe(x))
}

// ednName returns the text of a keyword, symbol or string, and "" for
// anything else.
func ednName(x any) string {
	switch x := x.(type) {
	case edn.Keyword:
		return string(x)
	case edn.Symbol:
		return string(x)
	case string:
		return x
	}
	return ""
}

// ednInt returns an integer that fits in int64.
func ednInt(x any) (int64, bool) {
	switch x := x.(type) {
	case int64:
		return x, true
	case big.Int:
		if x.IsInt64() {
			return x.Int64(), true
		}
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), true
		}
	}
	return 0, false
}

// ednDescribe names a decoded value for an error message.
func ednDescribe(x any) string {
	if x == nil {
		return "nil"
	}
	s := ednValue(x).String()
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// ednText renders a decoded value as text: names as they are, anything else
// as JSON.
func ednText(x any) string {
	if s := ednName(x); s != "" {
		return s
	}
	if x == nil {
		return ""
	}
	return ednValue(x).String()
}

// ednErrorText renders an op's :error as text: a string as it is, a keyword
// without its colon, anything else as its EDN text on one line.
func ednErrorText(raw edn.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "nil" {
		return ""
	}
	var x any
	if err := edn.Unmarshal(raw, &x); err == nil {
		if s := ednName(x); s != "" {
			return s
		}
	}
	return oneLine(raw)
}

// oneLine puts EDN text on one line: it turns each run of whitespace
// outside strings into one space, and drops it after an opening and before
// a closing bracket. (edn.Compact drops too much to stay readable.)
func oneLine(raw []byte) string {
	out := make([]byte, 0, len(raw))
	space, inString := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(raw) {
					i++
					out = append(out, raw[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
			space = true
			continue
		}
		if space && len(out) > 0 && !strings.ContainsRune("([{", rune(out[len(out)-1])) && !strings.ContainsRune(")]}", rune(c)) {
			out = append(out, ' ')
		}
		space = false
		out = append(out, c)
		switch c {
		case '"':
			inString = true
		case '\\': // a character literal such as \" or \space
			if i+1 < len(raw) {
				i++
				out = append(out, raw[i])
			}
		}
	}
	return string(out)
}

// ednValue converts a decoded EDN value to a Value. Nil, integers, strings,
// keywords, symbols and characters become scalars; vectors and lists become
// lists; sets become lists in a stable order; maps become JSON objects
// whose keys are the text of the EDN keys, in sorted order; other values
// (floats, booleans, big integers) become JSON. A tagged value is its
// untagged value.
func ednValue(x any) Value {
	switch x := x.(type) {
	case nil:
		return Nil()
	case int64:
		return Int(x)
	case string:
		return String(x)
	case edn.Keyword:
		return String(string(x))
	case edn.Symbol:
		return String(string(x))
	case rune:
		return String(string(x))
	case bool:
		return other(strconv.FormatBool(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return String(strconv.FormatFloat(x, 'g', -1, 64))
		}
		return other(strconv.FormatFloat(x, 'g', -1, 64))
	case big.Int:
		return ednValue(&x)
	case *big.Int:
		if x.IsInt64() {
			return Int(x.Int64())
		}
		return other(x.String())
	case *any:
		// The decoder boxes vectors and maps used as map keys or set
		// elements, which Go cannot hash.
		return ednValue(*x)
	case []any:
		vs := make([]Value, len(x))
		for i, e := range x {
			vs[i] = ednValue(e)
		}
		return List(vs...)
	case map[any]bool:
		vs := make([]Value, 0, len(x))
		for e := range x {
			vs = append(vs, ednValue(e))
		}
		slices.SortFunc(vs, compareValues)
		return List(vs...)
	case map[any]any:
		type field struct {
			key string
			val Value
		}
		fields := make([]field, 0, len(x))
		for k, v := range x {
			fields = append(fields, field{key: ednText(k), val: ednValue(v)})
		}
		slices.SortFunc(fields, func(a, b field) int {
			if c := strings.Compare(a.key, b.key); c != 0 {
				return c
			}
			return compareValues(a.val, b.val)
		})
		b := []byte{'{'}
		for i, f := range fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.key)
			b = append(b, ':')
			b = f.val.AppendJSON(b)
		}
		b = append(b, '}')
		return other(string(b))
	case edn.Tag:
		return ednValue(x.Value)
	case time.Time:
		return String(x.Format(time.RFC3339Nano))
	case []byte:
		return String(base64.StdEncoding.EncodeToString(x))
	}
	return String(fmt.Sprint(x))
}

// compareValues orders values for a stable rendering of sets: by kind, then
// integers by value, then by JSON text.
func compareValues(a, b Value) int {
	if c := cmp.Compare(a.kind, b.kind); c != 0 {
		return c
	}
	if a.kind == KindInt {
		return cmp.Compare(a.n, b.n)
	}
	return strings.Compare(a.String(), b.String())
}
