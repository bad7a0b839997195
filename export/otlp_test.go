package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/eccheck/eccheck/history"
)

// decode reads an export back with the OTLP types: every line one
// ExportTraceServiceRequest.
func decode(t *testing.T, b []byte) []ptrace.Span {
	t.Helper()
	var spans []ptrace.Span
	var ju ptrace.JSONUnmarshaler
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		td, err := ju.UnmarshalTraces(sc.Bytes())
		if err != nil {
			t.Fatalf("a line does not decode as OTLP JSON: %v", err)
		}
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			if name, _ := rss.At(i).Resource().Attributes().Get("service.name"); name.Str() != "eccheck" {
				t.Errorf("resource service.name %q", name.Str())
			}
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					spans = append(spans, ss.At(k))
				}
			}
		}
	}
	return spans
}

// The export round-trips through the OTLP types: a span per operation and
// per fault, and the run's, with the operation's attributes, outcome and
// times; trace and span ids are hex, as OTLP JSON wants them.
func TestOTLPRoundTrip(t *testing.T) {
	h := history.History{
		{Time: 0, Process: history.Nemesis, Type: history.Info, F: "start-partition", Value: history.String("n1|n2,n3")},
		{Time: 10, Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: history.Int(1), Node: "n1"},
		{Time: 20, Process: 1, Type: history.Invoke, F: "add", Key: "c", Value: history.Int(2), Request: "p1.1", Attempt: 1},
		{Time: 30, Process: 0, Type: history.OK, F: "write", Key: "k", Value: history.Int(1), Node: "n1"},
		{Time: 40, Process: 1, Type: history.Info, F: "add", Key: "c", Value: history.Int(2), Error: "timeout"},
		{Time: 50, Process: 2, Type: history.Invoke, F: "cas", Key: "k", Value: history.List(history.Int(5), history.Int(6))},
		{Time: 60, Process: 2, Type: history.Fail, F: "cas", Key: "k", Value: history.List(history.Int(5), history.Int(6)), Error: "cas-mismatch"},
		{Time: 70, Process: history.Nemesis, Type: history.Info, F: "stop-partition"},
		{Time: 80, Process: 3, Type: history.Invoke, F: "read", Key: "k", Final: true},
		{Time: 90, Process: 3, Type: history.OK, F: "read", Key: "k", Value: history.Int(1), Final: true},
	}
	for i := range h {
		h[i].Index = int64(i)
	}
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	c, err := OTLP(context.Background(), &buf, h, Run{Name: "ecstore-lww", DB: "ecstore", Start: start, Seed: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Operations != 4 || c.Faults != 1 || c.Spans != 6 {
		t.Fatalf("counts %+v, want 4 operations, 1 fault, 6 spans", c)
	}
	spans := decode(t, buf.Bytes())
	if len(spans) != c.Spans {
		t.Fatalf("decoded %d spans, wrote %d", len(spans), c.Spans)
	}
	if id := spans[0].TraceID(); !strings.Contains(buf.String(), `"traceId":"`+hex.EncodeToString(id[:])+`"`) {
		t.Errorf("trace ids are not hex in the JSON: %.300s", buf.String())
	}
	byName := map[string]ptrace.Span{}
	var root ptrace.Span
	for _, s := range spans {
		byName[s.Name()] = s
		if s.ParentSpanID().IsEmpty() {
			root = s
		}
	}
	if root.Name() != "eccheck test ecstore-lww" || root.EndTimestamp().AsTime() != start.Add(90) {
		t.Fatalf("root span %q ending %v", root.Name(), root.EndTimestamp().AsTime())
	}
	for _, s := range spans {
		if s.TraceID() != root.TraceID() || s.Name() != root.Name() && s.ParentSpanID() != root.SpanID() {
			t.Errorf("span %s is not a child of the run's span in its trace", s.Name())
		}
	}
	attr := func(s ptrace.Span, k string) string {
		v, ok := s.Attributes().Get(k)
		if !ok {
			return "<none>"
		}
		return v.AsString()
	}
	w := byName["write"]
	if attr(w, AttrOutcome) != "ok" || attr(w, AttrNode) != "n1" || attr(w, AttrKey) != "k" || attr(w, AttrValue) != "1" || attr(w, AttrProcess) != "0" ||
		w.StartTimestamp().AsTime() != start.Add(10) || w.EndTimestamp().AsTime() != start.Add(30) || w.Status().Code() != ptrace.StatusCodeOk {
		t.Errorf("write span: attributes %v, %v to %v, status %v", w.Attributes().AsRaw(), w.StartTimestamp(), w.EndTimestamp(), w.Status().Code())
	}
	a := byName["add"]
	if attr(a, AttrOutcome) != "info" || attr(a, AttrRequest) != "p1.1" || attr(a, AttrAttempt) != "1" || attr(a, AttrError) != "timeout" ||
		a.Status().Code() != ptrace.StatusCodeError || a.EndTimestamp().AsTime() != start.Add(40) {
		t.Errorf("info add span: attributes %v, status %v %q, end %v", a.Attributes().AsRaw(), a.Status().Code(), a.Status().Message(), a.EndTimestamp())
	}
	if cs := byName["cas"]; attr(cs, AttrOutcome) != "fail" || cs.Status().Code() != ptrace.StatusCodeError || attr(cs, AttrValue) != "[5,6]" {
		t.Errorf("failed cas span: attributes %v, status %v", cs.Attributes().AsRaw(), cs.Status().Code())
	}
	if r := byName["read"]; attr(r, AttrFinal) != "true" {
		t.Errorf("final read span: attributes %v", r.Attributes().AsRaw())
	}
	if f := byName["fault partition"]; attr(f, AttrFault) != "partition" || f.StartTimestamp().AsTime() != start || f.EndTimestamp().AsTime() != start.Add(70) {
		t.Errorf("fault span: attributes %v, %v to %v", f.Attributes().AsRaw(), f.StartTimestamp(), f.EndTimestamp())
	}
}

// A saga is a trace of its own: its span, linked to the run's, covers its
// steps, each a child span; operations of no saga stay in the run's
// trace.
func TestOTLPSagaTraces(t *testing.T) {
	raw := func(js string) history.Value {
		v, err := history.Raw([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	h := history.History{
		{Time: 0, Process: 0, Type: history.Invoke, F: "saga-init", Value: raw(`{"stock":[5]}`)},
		{Time: 5, Process: 0, Type: history.OK, F: "saga-init", Value: raw(`{"stock":[5]}`)},
		{Time: 10, Process: 1, Type: history.Invoke, F: "saga-begin", Key: "s1", Value: raw(`{"item":0,"qty":1,"price":10,"owner":"c1"}`)},
		{Time: 20, Process: 1, Type: history.OK, F: "saga-begin", Key: "s1"},
		{Time: 30, Process: 1, Type: history.Invoke, F: "reserve", Key: "s1", Value: raw(`{"item":0,"qty":1}`)},
		{Time: 40, Process: 1, Type: history.Fail, F: "reserve", Key: "s1", Error: "declined"},
		{Time: 50, Process: 2, Type: history.Invoke, F: "saga-begin", Key: "s2", Value: raw(`{"item":0,"qty":1,"price":10,"owner":"c2"}`)},
		{Time: 60, Process: 2, Type: history.OK, F: "saga-begin", Key: "s2"},
	}
	for i := range h {
		h[i].Index = int64(i)
	}
	if err := history.Validate(h); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	c, err := OTLP(context.Background(), &buf, h, Run{Name: "ecstore-raft", DB: "ecstore", Start: start}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Operations != 4 || c.Sagas != 2 || c.Spans != 7 {
		t.Fatalf("counts %+v, want 4 operations, 2 sagas, 7 spans", c)
	}
	spans := decode(t, buf.Bytes())
	byName := map[string]ptrace.Span{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	run, s1 := byName["eccheck test ecstore-raft"], byName["saga s1"]
	if s1.TraceID() == run.TraceID() || !s1.ParentSpanID().IsEmpty() {
		t.Fatalf("saga s1 is not a trace of its own")
	}
	if s1.Links().Len() != 1 || s1.Links().At(0).SpanID() != run.SpanID() {
		t.Errorf("saga s1 is not linked to the run's span")
	}
	if s1.StartTimestamp().AsTime() != start.Add(10) || s1.EndTimestamp().AsTime() != start.Add(40) {
		t.Errorf("saga s1 spans %v to %v, want its steps' 10 to 40 ns", s1.StartTimestamp(), s1.EndTimestamp())
	}
	if r := byName["reserve"]; r.TraceID() != s1.TraceID() || r.ParentSpanID() != s1.SpanID() {
		t.Errorf("the reserve step is not a child of saga s1")
	}
	if i := byName["saga-init"]; i.TraceID() != run.TraceID() || i.ParentSpanID() != run.SpanID() {
		t.Errorf("saga-init (no saga) is not in the run's trace")
	}
}
