package store

import (
	"encoding/json"
	"fmt"

	"github.com/eccheck/eccheck/history"
)

// nullJSON is the value of a register never written.
var nullJSON = json.RawMessage("null")

// canonical returns a value's JSON in one canonical form, so that equal
// values compare equal as strings (CAS compares this way). Empty means null.
func canonical(v json.RawMessage) (string, error) {
	if len(v) == 0 {
		return "null", nil
	}
	hv, err := history.ParseValue(string(v))
	if err != nil {
		return "", err
	}
	return hv.String(), nil
}

// sameValue reports whether two JSON values are equal; malformed JSON is
// equal to nothing.
func sameValue(a, b json.RawMessage) bool {
	ca, err1 := canonical(a)
	cb, err2 := canonical(b)
	return err1 == nil && err2 == nil && ca == cb
}

// delta parses a counter delta, which must be an integer.
func delta(v json.RawMessage) (int64, error) {
	hv, err := history.ParseValue(string(v))
	if err != nil {
		return 0, fmt.Errorf("counter delta: %w", err)
	}
	n, ok := hv.AsInt()
	if !ok {
		return 0, fmt.Errorf("counter delta %s is not an integer", v)
	}
	return n, nil
}

// badRequest is the response to a malformed request.
func badRequest(format string, args ...any) Response {
	return Response{Error: ErrBadRequest, Message: fmt.Sprintf(format, args...)}
}
