package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file decodes history lines by hand. encoding/json's reflection cost
// about 3 µs and 1.6 KB per line, which made reading a history the slowest
// step of a check; the format is fixed and small, so one pass over the
// bytes does the job. Syntax is checked first with json.Valid (no
// allocation), so the parser below only ever sees valid JSON, and error
// messages for invalid lines come from encoding/json itself.

// errNoIndex is returned by decodeOp when the line has no index, so that the
// reader assigns one from line order.
var errNoIndex = errors.New("no index")

// maxDepth bounds how deeply values may nest, as encoding/json bounds any
// JSON value.
const maxDepth = 10000

// parser walks one valid JSON text.
type parser struct {
	b     []byte
	i     int
	depth int
	names *interner // shares f, key and node strings across lines; may be nil
	// stack holds the elements of the lists being read, so that each list
	// is allocated once at its final size instead of grown by appends
	// (which made reading transactions' nested lists three times slower).
	stack *[]Value
}

// interner hands out one copy of each short string it has seen, so a
// million lines with ten keys hold ten key strings, not a million. It
// also keeps the parsers' list stack from one line to the next.
type interner struct {
	m     map[string]string
	stack []Value
}

// maxInternedValue is the longest string inside a value that is interned
// (micro-operation names, keys); longer ones are copied.
const maxInternedValue = 16

// maxInterned bounds the interner; past it strings are simply copied.
const maxInterned = 1 << 16

func newInterner() *interner { return &interner{m: make(map[string]string)} }

func (in *interner) get(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

// rawStr reads a string at p.i and returns its bytes when it has no escapes
// and is valid UTF-8 (ok), without allocating; otherwise it returns the
// decoded string.
func (p *parser) rawStr() (raw []byte, s string, ok bool) {
	start := p.i
	p.i++
	simple := true
	for {
		c := p.b[p.i]
		if c == '"' {
			break
		}
		if c == '\\' {
			simple = false
			p.i++
		} else if c >= 0x80 {
			simple = false
		}
		p.i++
	}
	p.i++
	raw = p.b[start+1 : p.i-1]
	if simple || (bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw)) {
		return raw, "", true
	}
	return nil, unquote(p.b[start:p.i]), false
}

// name reads a string that is likely to repeat (f, key, node), interned.
func (p *parser) name() string {
	raw, s, ok := p.rawStr()
	if ok {
		return p.names.get(raw)
	}
	return s
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// str reads a string at p.i (which is '"').
func (p *parser) str() string {
	raw, s, ok := p.rawStr()
	if ok {
		return string(raw)
	}
	return s
}

// number reads a number at p.i and returns its text.
func (p *parser) number() []byte {
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			p.i++
			continue
		}
		break
	}
	return p.b[start:p.i]
}

// skip moves past the value at p.i and returns its text.
func (p *parser) skip() []byte {
	start := p.i
	switch p.b[p.i] {
	case '"':
		p.str()
	case '{', '[':
		depth := 0
		for {
			switch p.b[p.i] {
			case '"':
				p.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				break
			}
		}
	case 't':
		p.i += 4
	case 'f':
		p.i += 5
	case 'n':
		p.i += 4
	default:
		p.number()
	}
	return p.b[start:p.i]
}

// value reads any value at p.i.
func (p *parser) value() (Value, error) {
	switch c := p.b[p.i]; {
	case c == 'n':
		p.i += 4
		return Value{}, nil
	case c == '"':
		if raw, s, ok := p.rawStr(); !ok {
			return String(s), nil
		} else if len(raw) <= maxInternedValue {
			return String(p.names.get(raw)), nil
		} else {
			return String(string(raw)), nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		text := p.number()
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return Int(n), nil
		}
		return other(string(text)), nil
	case c == '[':
		p.depth++
		if p.depth > maxDepth {
			return Value{}, fmt.Errorf("lists nested more than %d deep", maxDepth)
		}
		p.i++
		if p.stack == nil {
			p.stack = new([]Value)
		}
		base := len(*p.stack)
		for {
			p.ws()
			if p.b[p.i] == ']' {
				p.i++
				break
			}
			if p.b[p.i] == ',' {
				p.i++
				p.ws()
			}
			e, err := p.value()
			if err != nil {
				*p.stack = (*p.stack)[:base]
				return Value{}, err
			}
			*p.stack = append(*p.stack, e)
		}
		p.depth--
		vs := make([]Value, len(*p.stack)-base)
		copy(vs, (*p.stack)[base:])
		clear((*p.stack)[base:])
		*p.stack = (*p.stack)[:base]
		return List(vs...), nil
	default: // objects, true, false: kept verbatim, compacted
		text := p.skip()
		if c != '{' {
			return other(string(text)), nil
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, text); err != nil {
			return Value{}, err
		}
		return other(buf.String()), nil
	}
}

// jsonKind names the kind of JSON value starting with c, for errors.
func jsonKind(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '[':
		return "array"
	case c == '{':
		return "object"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	}
	return "number"
}

// integer reads an integer field.
func (p *parser) integer(field string) (int64, error) {
	c := p.b[p.i]
	if c != '-' && (c < '0' || c > '9') {
		return 0, fmt.Errorf("field %q: expected an integer, got JSON %s", field, jsonKind(c))
	}
	text := p.number()
	n, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %q: expected an integer, got %s", field, text)
	}
	return n, nil
}

// optString reads a string field that may also be null; intern says
// whether the string is likely to repeat.
func (p *parser) optString(field string, intern bool) (string, error) {
	switch c := p.b[p.i]; c {
	case '"':
		if intern {
			return p.name(), nil
		}
		return p.str(), nil
	case 'n':
		p.i += 4
		return "", nil
	default:
		return "", fmt.Errorf("field %q: expected a string, got JSON %s", field, jsonKind(c))
	}
}

// decodeOp decodes one line. It reports errNoIndex (with op otherwise
// filled) when the index is absent.
func decodeOp(line []byte, names *interner) (Op, error) {
	if !json.Valid(line) {
		return Op{}, invalidJSON(line)
	}
	p := parser{b: line, names: names}
	if names != nil {
		p.stack = &names.stack
	}
	p.ws()
	if c := line[p.i]; c != '{' {
		return Op{}, fmt.Errorf("a line must be one JSON object, got JSON %s", jsonKind(c))
	}
	p.i++
	var (
		op                         Op
		hasIndex, hasTime, hasProc bool
		hasType                    bool
		err                        error
	)
	for {
		p.ws()
		if line[p.i] == '}' {
			break
		}
		if line[p.i] == ',' {
			p.i++
			p.ws()
		}
		rawName, name, simple := p.rawStr()
		if simple {
			name = fieldName(rawName)
		}
		p.ws()
		p.i++ // the colon
		p.ws()
		switch name {
		case "index":
			op.Index, err = p.integer(name)
			hasIndex = true
		case "time":
			op.Time, err = p.integer(name)
			hasTime = true
		case "process":
			switch c := line[p.i]; {
			case c == '"':
				if s := p.str(); s != "nemesis" {
					err = fmt.Errorf("process must be a non-negative integer or \"nemesis\", got %q", s)
				}
				op.Process = Nemesis
			case c == '-' || (c >= '0' && c <= '9'):
				var n int64
				if n, err = p.integer(name); err == nil && n < 0 {
					err = fmt.Errorf("process must be a non-negative integer or \"nemesis\", got %d", n)
				}
				op.Process = Process(n)
			default:
				err = fmt.Errorf("process must be a non-negative integer or \"nemesis\", got JSON %s", jsonKind(c))
			}
			hasProc = true
		case "type":
			if c := line[p.i]; c != '"' {
				err = fmt.Errorf("field \"type\": expected \"invoke\", \"ok\", \"fail\" or \"info\", got JSON %s", jsonKind(c))
				break
			}
			if raw, str, simple := p.rawStr(); simple {
				op.Type, err = parseTypeBytes(raw)
			} else {
				op.Type, err = ParseType(str)
			}
			hasType = true
		case "f":
			op.F, err = p.optString(name, true)
		case "key":
			op.Key, err = p.key()
		case "value":
			op.Value, err = p.value()
		case "node":
			op.Node, err = p.optString(name, true)
		case "error":
			op.Error, err = p.optString(name, false)
		case "final":
			switch line[p.i] {
			case 't':
				op.Final = true
			case 'f':
				op.Final = false
			case 'n':
			default:
				err = fmt.Errorf("field \"final\": expected true or false, got JSON %s", jsonKind(line[p.i]))
			}
			p.skip()
		case "request":
			op.Request, err = p.optString(name, false)
		case "attempt":
			var n int64
			if n, err = p.integer(name); err == nil && (n < 1 || n > 1<<30) {
				err = fmt.Errorf("field \"attempt\": expected a positive integer, got %d", n)
			}
			op.Attempt = int(n)
		default:
			p.skip() // fields we do not know are ignored
		}
		if err != nil {
			return Op{}, err
		}
	}
	switch {
	case !hasType:
		return Op{}, errors.New(`missing "type" (invoke, ok, fail or info)`)
	case !hasProc:
		return Op{}, errors.New(`missing "process" (a non-negative integer, or "nemesis")`)
	case op.F == "":
		return Op{}, errors.New(`missing "f" (read, write, cas, add, ...)`)
	case !hasTime:
		return Op{}, errors.New(`missing "time" (integer nanoseconds since the run started)`)
	case op.Time < 0:
		return Op{}, fmt.Errorf("negative time %d", op.Time)
	}
	if !hasIndex {
		return op, errNoIndex
	}
	return op, nil
}

// key reads a key written as a JSON string, or as an integer (as Jepsen's
// independent keys often are), which becomes its decimal text; null means
// no key.
func (p *parser) key() (string, error) {
	switch c := p.b[p.i]; {
	case c == '"':
		return p.name(), nil
	case c == 'n':
		p.i += 4
		return "", nil
	case c == '-' || (c >= '0' && c <= '9'):
		text := p.number()
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return strconv.FormatInt(n, 10), nil
		}
		return "", fmt.Errorf("key must be a string or an integer, got %.40s", text)
	default:
		return "", fmt.Errorf("key must be a string or an integer, got JSON %s", jsonKind(c))
	}
}

// decodeValue decodes the JSON text of one value.
func decodeValue(b []byte) (Value, error) {
	b = bytes.Trim(b, " \t\r\n") // JSON's whitespace, no more
	if len(b) == 0 {
		return Value{}, errors.New("empty value")
	}
	if !json.Valid(b) {
		return Value{}, invalidJSON(b)
	}
	p := parser{b: b}
	return p.value()
}

// invalidJSON explains why b is not valid JSON, in encoding/json's words.
func invalidJSON(b []byte) error {
	var x any
	err := json.Unmarshal(b, &x)
	switch {
	case err == nil:
		return errors.New("invalid JSON")
	case strings.Contains(err.Error(), "exceeded max depth"):
		return fmt.Errorf("values nested more than %d deep", maxDepth)
	}
	return cleanJSONError(err)
}

// fieldName maps the raw bytes of a field name to a constant string without
// allocating; names the format does not define come back as "".
func fieldName(b []byte) string {
	switch string(b) {
	case "index":
		return "index"
	case "time":
		return "time"
	case "process":
		return "process"
	case "type":
		return "type"
	case "f":
		return "f"
	case "key":
		return "key"
	case "value":
		return "value"
	case "node":
		return "node"
	case "error":
		return "error"
	case "final":
		return "final"
	case "request":
		return "request"
	case "attempt":
		return "attempt"
	}
	return ""
}

// parseTypeBytes is ParseType without converting b to a string.
func parseTypeBytes(b []byte) (Type, error) {
	switch string(b) {
	case "invoke":
		return Invoke, nil
	case "ok":
		return OK, nil
	case "fail":
		return Fail, nil
	case "info":
		return Info, nil
	}
	return ParseType(string(b))
}

// unquote decodes a JSON string with escapes or invalid UTF-8 the way
// encoding/json does (invalid bytes become U+FFFD), so every path agrees.
// It is kept apart so that its result escaping does not make the fast path
// allocate.
func unquote(b []byte) string {
	var s string
	_ = json.Unmarshal(b, &s) // valid JSON: cannot fail
	return s
}
