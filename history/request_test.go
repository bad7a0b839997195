package history

import (
	"strings"
	"testing"
)

// An attempt of a retried request round-trips through the history format,
// and pairing carries it to the operation.
func TestRequestAttemptRoundTrip(t *testing.T) {
	h := History{
		{Index: 0, Time: 1, Process: 0, Type: Invoke, F: "add", Key: "c", Value: Int(3), Request: "w0.1", Attempt: 1},
		{Index: 1, Time: 2, Process: 0, Type: Info, F: "add", Key: "c", Value: Int(3), Error: "timeout"},
		{Index: 2, Time: 3, Process: 1, Type: Invoke, F: "add", Key: "c", Value: Int(3), Request: "w0.1", Attempt: 2},
		{Index: 3, Time: 4, Process: 1, Type: OK, F: "add", Key: "c", Value: Int(3)},
	}
	var b strings.Builder
	for _, op := range h {
		b.Write(op.AppendJSON(nil))
		b.WriteByte('\n')
	}
	if !strings.Contains(b.String(), `"request":"w0.1","attempt":2`) {
		t.Fatalf("written without its request and attempt:\n%s", b.String())
	}
	got, _, err := Read(strings.NewReader(b.String()), "h.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	ops := Pair(got)
	if len(ops) != 2 || ops[0].Request != "w0.1" || ops[0].Attempt != 1 || ops[1].Attempt != 2 || ops[1].Type != OK {
		t.Fatalf("paired %+v", ops)
	}
}

// An attempt without its request, or a request's invocation without its
// attempt, is a clear error.
func TestRequestAttemptValidation(t *testing.T) {
	for name, line := range map[string]string{
		"attempt without request": `{"time":1,"process":0,"type":"invoke","f":"add","value":1,"attempt":2}`,
		"request without attempt": `{"time":1,"process":0,"type":"invoke","f":"add","value":1,"request":"r1"}`,
		"attempt zero":            `{"time":1,"process":0,"type":"invoke","f":"add","value":1,"request":"r1","attempt":0}`,
		"attempt not a number":    `{"time":1,"process":0,"type":"invoke","f":"add","value":1,"request":"r1","attempt":"2"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Read(strings.NewReader(line+"\n"), "h.jsonl")
			if err == nil || !strings.Contains(err.Error(), "attempt") {
				t.Fatalf("error %v, want one naming the attempt", err)
			}
		})
	}
}
