// Package export writes a run in formats other tools read: OpenTelemetry
// traces in the OTLP JSON encoding, which collectors (the file receiver)
// and Jaeger import.
package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/results"
)

// The attributes of the spans eccheck writes.
const (
	AttrProcess = "eccheck.process"
	AttrNode    = "eccheck.node"
	AttrKey     = "eccheck.key"
	AttrValue   = "eccheck.value"   // JSON text
	AttrOutcome = "eccheck.outcome" // ok, fail or info
	AttrError   = "eccheck.error"
	AttrRequest = "eccheck.request"
	AttrAttempt = "eccheck.attempt"
	AttrFinal   = "eccheck.final"
	AttrFault   = "eccheck.fault" // the fault kind of a fault's span
	AttrSaga    = "eccheck.saga"  // the saga id of a saga's trace
)

// Run describes the run a history came from, for the trace's resource and
// its root span.
type Run struct {
	Name  string    // the run's name, such as "ecstore-lww-w1r1"
	DB    string    // the system under test
	Start time.Time // when the run started: the history's time 0
	Seed  uint64
}

// Counts are what an export wrote.
type Counts struct {
	Operations, Faults, Spans int
	// Sagas counts the saga workload's sagas, each a trace of its own.
	Sagas int
}

// OTLP writes h as OpenTelemetry traces, one trace for the run: a root
// span over the whole history, a span per client operation (from its
// invocation to its completion; an operation that never certainly
// completed ends at its info line or the history's end) with its process,
// node, key, value and outcome as attributes and an error status when it
// failed or its outcome is unknown, and a span per fault period. A saga
// of the saga workload is a trace of its own: a span over the saga, linked
// to the run's, with a span per step (its operations). The
// spans are made with the OpenTelemetry SDK and encoded by its OTLP
// exporter; the protobuf it sends (to an endpoint on 127.0.0.1 of this
// process, nowhere else) is turned into OTLP JSON by the collector's
// pdata, one ExportTraceServiceRequest per line (the collector's file
// format). progress, if set, is called with the spans made so far.
func OTLP(ctx context.Context, w io.Writer, h history.History, r Run, progress func(done, total int)) (Counts, error) {
	var c Counts
	sink := &collector{w: w}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return c, fmt.Errorf("otlp export: listen on 127.0.0.1 for the SDK's exporter: %w", err)
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		// Shutdown waits for a handler still writing a batch, so nothing
		// is written after OTLP returns.
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil {
			srv.Close()
		}
	}()

	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(ln.Addr().String()), otlptracehttp.WithInsecure(),
		otlptracehttp.WithCompression(otlptracehttp.NoCompression), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		return c, fmt.Errorf("otlp export: %w", err)
	}
	defer exp.Shutdown(context.Background()) // a no-op once the provider shut it down
	res, err := resource.New(ctx, resource.WithAttributes(
		attribute.String("service.name", "eccheck"),
		attribute.String("eccheck.run", r.Name),
		attribute.String("eccheck.db", r.DB),
		attribute.Int64("eccheck.seed", int64(r.Seed)),
	))
	if err != nil {
		return c, fmt.Errorf("otlp export: resource: %w", err)
	}
	// Blocking: a full queue waits for the exporter instead of dropping
	// spans, so the file holds every operation.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exp, sdktrace.WithBlocking(), sdktrace.WithMaxExportBatchSize(2048), sdktrace.WithMaxQueueSize(8192)))
	shut := false
	defer func() {
		if !shut { // an early return: stop the batcher and the exporter
			tp.Shutdown(context.Background())
		}
	}()
	tr := tp.Tracer("github.com/eccheck/eccheck")

	at := func(ns int64) time.Time { return r.Start.Add(time.Duration(ns)) }
	var end int64
	if len(h) > 0 {
		end = h[len(h)-1].Time
	}
	ops := history.Pair(h)
	faults := results.FaultPeriods(h)
	total := len(ops) + len(faults) + 1 // and the sagas', counted below
	rootCtx, root := tr.Start(ctx, "eccheck test "+r.Name, trace.WithTimestamp(at(0)), trace.WithSpanKind(trace.SpanKindInternal))
	retOf := func(o history.Operation) int64 {
		if o.Return != history.Open {
			return o.Return
		}
		if o.Complete >= 0 {
			return h[o.Complete].Time
		}
		return end
	}
	// Each saga's span runs from its first step's call to its last
	// step's return.
	type sagaSpan struct {
		ctx   context.Context
		span  trace.Span
		first int64
		last  int64
	}
	sagas := map[string]*sagaSpan{}
	var sagaOrder []string
	for _, o := range ops {
		if o.Key == "" || !slices.Contains(checkers.SagaFs, o.F) {
			continue
		}
		sg := sagas[o.Key]
		if sg == nil {
			sg = &sagaSpan{first: o.Call}
			sagas[o.Key] = sg
			sagaOrder = append(sagaOrder, o.Key)
		}
		sg.last = max(sg.last, retOf(o))
	}
	for _, id := range sagaOrder {
		sg := sagas[id]
		sg.ctx, sg.span = tr.Start(ctx, "saga "+id, trace.WithNewRoot(), trace.WithTimestamp(at(sg.first)),
			trace.WithLinks(trace.LinkFromContext(rootCtx)), trace.WithAttributes(attribute.String(AttrSaga, id)))
	}
	for i, o := range ops {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		ret := retOf(o)
		attrs := []attribute.KeyValue{
			attribute.Int64(AttrProcess, int64(o.Process)),
			attribute.String(AttrOutcome, o.Type.String()),
			attribute.String(AttrValue, o.Value.String()),
		}
		for _, kv := range [][2]string{{AttrNode, o.Node}, {AttrKey, o.Key}, {AttrError, o.Error}, {AttrRequest, o.Request}} {
			if kv[1] != "" {
				attrs = append(attrs, attribute.String(kv[0], kv[1]))
			}
		}
		if o.Attempt > 0 {
			attrs = append(attrs, attribute.Int(AttrAttempt, o.Attempt))
		}
		if o.Final {
			attrs = append(attrs, attribute.Bool(AttrFinal, true))
		}
		parent := rootCtx
		if sg := sagas[o.Key]; sg != nil && slices.Contains(checkers.SagaFs, o.F) {
			parent = sg.ctx
		}
		_, s := tr.Start(parent, o.F, trace.WithTimestamp(at(o.Call)), trace.WithAttributes(attrs...), trace.WithSpanKind(trace.SpanKindClient))
		switch o.Type {
		case history.Fail:
			s.SetStatus(codes.Error, "fail: it certainly did not happen"+errorText(o.Error))
		case history.Info:
			s.SetStatus(codes.Error, "info: it may or may not have happened"+errorText(o.Error))
		default:
			s.SetStatus(codes.Ok, "")
		}
		s.End(trace.WithTimestamp(at(ret)))
		c.Operations++
		if progress != nil && i%50_000 == 0 {
			progress(i, total)
		}
	}
	for _, f := range faults {
		attrs := []attribute.KeyValue{attribute.String(AttrFault, f.Kind), attribute.String(AttrValue, f.Value.String())}
		_, s := tr.Start(rootCtx, "fault "+f.Kind, trace.WithTimestamp(at(f.Start)), trace.WithAttributes(attrs...))
		if f.Error != "" {
			s.SetStatus(codes.Error, f.Error)
		}
		s.End(trace.WithTimestamp(at(f.End)))
		c.Faults++
	}
	for _, id := range sagaOrder {
		sagas[id].span.End(trace.WithTimestamp(at(sagas[id].last)))
		c.Sagas++
	}
	root.End(trace.WithTimestamp(at(end)))
	shut = true
	if err := tp.Shutdown(ctx); err != nil {
		return c, fmt.Errorf("otlp export: flush the spans: %w", err)
	}
	if progress != nil {
		progress(total, total)
	}
	c.Spans = c.Operations + c.Faults + c.Sagas + 1
	written, err := sink.result()
	if err != nil {
		return c, err
	}
	if written != c.Spans {
		return c, fmt.Errorf("otlp export: made %d spans, the exporter delivered %d", c.Spans, written)
	}
	return c, nil
}

func errorText(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

// collector receives the SDK exporter's OTLP protobuf requests and
// writes each at once as a line of OTLP JSON, so that memory stays that of
// one batch however long the run.
type collector struct {
	mu    sync.Mutex
	w     io.Writer
	spans int
	err   error
	pu    ptrace.ProtoUnmarshaler
	jm    ptrace.JSONMarshaler
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.err == nil {
		err = c.line(body)
	}
	if err != nil {
		c.err = errors.Join(c.err, err)
		// Answered with success all the same: the exporter does not
		// retry, and the error ends the export.
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// line writes one request as a line of OTLP JSON.
func (c *collector) line(body []byte) error {
	td, err := c.pu.UnmarshalTraces(body)
	if err != nil {
		return fmt.Errorf("decode the exporter's protobuf: %w", err)
	}
	js, err := c.jm.MarshalTraces(td)
	if err != nil {
		return fmt.Errorf("encode OTLP JSON: %w", err)
	}
	if _, err := c.w.Write(append(bytes.TrimSpace(js), '\n')); err != nil {
		return err
	}
	c.spans += td.SpanCount()
	return nil
}

// result returns the spans written, or what went wrong.
func (c *collector) result() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.spans, fmt.Errorf("otlp export: %w", c.err)
	}
	return c.spans, nil
}
