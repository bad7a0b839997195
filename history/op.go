package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Type says what a line of a history is: the start of an operation, or how it
// ended.
type Type uint8

// The types of a history line. An operation is an [Invoke] followed by
// exactly one of [OK] (it happened), [Fail] (it certainly did not happen) or
// [Info] (it may or may not have happened).
const (
	Invoke Type = iota + 1
	OK
	Fail
	Info
)

var typeNames = [...]string{Invoke: "invoke", OK: "ok", Fail: "fail", Info: "info"}

// String returns the name of t as it appears in a history.
func (t Type) String() string {
	if t >= Invoke && t <= Info {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType parses "invoke", "ok", "fail" or "info".
func ParseType(s string) (Type, error) {
	switch s {
	case "invoke":
		return Invoke, nil
	case "ok":
		return OK, nil
	case "fail":
		return Fail, nil
	case "info":
		return Info, nil
	}
	return 0, fmt.Errorf("unknown type %q (want invoke, ok, fail or info)", s)
}

// MarshalText implements [encoding.TextMarshaler].
func (t Type) MarshalText() ([]byte, error) {
	if t < Invoke || t > Info {
		return nil, fmt.Errorf("invalid type %d", t)
	}
	return []byte(typeNames[t]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler].
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	*t = v
	return err
}

// Process identifies who performed an operation: a non-negative client
// process, or [Nemesis] for faults.
type Process int64

// Nemesis is the process of fault operations; it appears as "nemesis" in a
// history.
const Nemesis Process = -1

// IsNemesis reports whether p is the nemesis.
func (p Process) IsNemesis() bool { return p == Nemesis }

// String returns "nemesis" or the client number.
func (p Process) String() string {
	if p == Nemesis {
		return "nemesis"
	}
	return strconv.FormatInt(int64(p), 10)
}

// MarshalJSON implements [json.Marshaler].
func (p Process) MarshalJSON() ([]byte, error) {
	if p == Nemesis {
		return []byte(`"nemesis"`), nil
	}
	if p < 0 {
		return nil, fmt.Errorf("invalid process %d", p)
	}
	return strconv.AppendInt(nil, int64(p), 10), nil
}

// UnmarshalJSON implements [json.Unmarshaler].
func (p *Process) UnmarshalJSON(b []byte) error {
	if string(b) == `"nemesis"` {
		*p = Nemesis
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("process must be a non-negative integer or \"nemesis\", got %.40s", b)
	}
	*p = Process(n)
	return nil
}

// Op is one line of a history: an invocation or a completion.
type Op struct {
	// Index is the position of the line in the history, from 0.
	Index int64
	// Time is nanoseconds since the run started, on a monotonic clock.
	Time int64
	// Process is the client that performed the operation, or [Nemesis].
	Process Process
	// Type is [Invoke], [OK], [Fail] or [Info].
	Type Type
	// F is the function: read, write, cas, add, or a fault name.
	F string
	// Key names the object; empty means the single object of the history.
	Key string
	// Value is what was written, read, compared or added (DESIGN.md).
	Value Value
	// Node is the node that served the operation, when known.
	Node string
	// Error is the error text of a failed or indeterminate operation.
	Error string
	// Final marks the reads of the harness's final phase, taken after every
	// fault was healed and the cluster had time to converge.
	Final bool
	// Request names the logical request an invocation is an attempt of,
	// and Attempt counts its attempts from 1: a client whose attempt ended
	// info may retry it (eccheck test --retry), each attempt an operation
	// of its own with the same request. Empty and 0 when the operation is
	// not a retried request's.
	Request string
	Attempt int
}

// IsClient reports whether op was performed by a client, not the nemesis.
func (op Op) IsClient() bool { return op.Process != Nemesis }

// AppendJSON appends op as one JSON object (no newline) to b, in the field
// order of the history format.
func (op Op) AppendJSON(b []byte) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, op.Index, 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, op.Time, 10)
	b = append(b, `,"process":`...)
	if op.Process == Nemesis {
		b = append(b, `"nemesis"`...)
	} else {
		b = strconv.AppendInt(b, int64(op.Process), 10)
	}
	b = append(b, `,"type":"`...)
	b = append(b, op.Type.String()...)
	b = append(b, `","f":`...)
	b = appendJSONString(b, op.F)
	if op.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, op.Key)
	}
	b = append(b, `,"value":`...)
	b = op.Value.AppendJSON(b)
	if op.Node != "" {
		b = append(b, `,"node":`...)
		b = appendJSONString(b, op.Node)
	}
	if op.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, op.Error)
	}
	if op.Final {
		b = append(b, `,"final":true`...)
	}
	if op.Request != "" {
		b = append(b, `,"request":`...)
		b = appendJSONString(b, op.Request)
	}
	if op.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(op.Attempt), 10)
	}
	return append(b, '}')
}

// MarshalJSON implements [json.Marshaler].
func (op Op) MarshalJSON() ([]byte, error) {
	if op.Type < Invoke || op.Type > Info {
		return nil, fmt.Errorf("op %d: invalid type %d", op.Index, op.Type)
	}
	return op.AppendJSON(nil), nil
}

// UnmarshalJSON implements [json.Unmarshaler] with the rules of the history
// format: type, process, f and time are required, a key may be written as an
// integer, and an absent index leaves Index zero.
func (op *Op) UnmarshalJSON(b []byte) error {
	o, err := decodeOp(b, nil)
	if err != nil && !errors.Is(err, errNoIndex) {
		return err
	}
	*op = o
	return nil
}

// cleanJSONError turns encoding/json errors into short text without Go type
// names.
func cleanJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("a line must be one JSON object, got JSON %s", te.Value)
		}
		return fmt.Errorf("field %q: expected %s, got JSON %s", te.Field, friendlyType(te.Field), te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: the line ends inside the object")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty line")
	}
	return err
}

func friendlyType(field string) string {
	switch field {
	case "index", "time":
		return "an integer"
	case "node", "error", "f":
		return "a string"
	case "final":
		return "true or false"
	case "type":
		return `"invoke", "ok", "fail" or "info"`
	}
	return "another type"
}
