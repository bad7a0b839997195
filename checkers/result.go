// Package checkers judges histories. Each checker is a pure function of a
// paired history (an [Input]) that returns a [Result] with a three-valued
// [Verdict] and the anomalies that prove it, each with the operations a
// person can look up and one sentence explaining it.
package checkers

import (
	"context"
	"time"

	"github.com/eccheck/eccheck/history"
)

// Verdict is a checker's judgement: valid, invalid, or unknown (the checker
// could not decide, for example because it timed out).
type Verdict string

// The three verdicts.
const (
	Valid   Verdict = "valid"
	Invalid Verdict = "invalid"
	Unknown Verdict = "unknown"
)

// Compose combines verdicts: invalid beats unknown beats valid. No verdicts
// compose to valid.
func Compose(vs ...Verdict) Verdict {
	out := Valid
	for _, v := range vs {
		switch {
		case v == Invalid:
			return Invalid
		case v == Unknown:
			out = Unknown
		}
	}
	return out
}

// MaxAnomalies is how many anomalies a Result lists at most; AnomalyCount
// still counts them all.
const MaxAnomalies = 1000

// OpRef is an operation as an anomaly cites it: enough to find both lines in
// the history file and to follow the explanation by hand.
type OpRef struct {
	Invoke   int             `json:"invoke"`   // index of the invocation line
	Complete int             `json:"complete"` // index of the completion line, -1 if none
	Process  history.Process `json:"process"`
	Type     string          `json:"type"` // ok, fail or info
	F        string          `json:"f"`
	Key      string          `json:"key,omitempty"`
	Value    history.Value   `json:"value"`
	Call     int64           `json:"call"`   // ns since run start
	Return   int64           `json:"return"` // ns since run start; -1 when open
}

// Ref makes the OpRef of a paired operation.
func Ref(o history.Operation) OpRef {
	ret := o.Return
	if ret == history.Open {
		ret = -1
	}
	return OpRef{
		Invoke: o.Invoke, Complete: o.Complete, Process: o.Process, Type: o.Type.String(),
		F: o.F, Key: o.Key, Value: o.Value, Call: o.Call, Return: ret,
	}
}

// Anomaly is one violation, with the operations that prove it.
type Anomaly struct {
	// Kind names the shape of the violation, e.g. "stale-read", "lost-write".
	Kind string `json:"kind"`
	// Key is the object it concerns, if any.
	Key string `json:"key,omitempty"`
	// Ops are the operations that prove it, in the order the explanation
	// names them.
	Ops []OpRef `json:"ops"`
	// Explanation is one sentence a person can check against Ops.
	Explanation string `json:"explanation"`
	// Cycle, for a dependency cycle between transactions, lists its
	// edges in order (the last one leads back to the first transaction).
	Cycle []CycleEdge `json:"cycle,omitempty"`
}

// CycleEdge is one dependency of a cycle: From depends on To by Kind
// (ww, wr, rw or rt) over Key (none for rt).
type CycleEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	Key  string `json:"key,omitempty"`
}

// Result is what one checker found.
type Result struct {
	Checker string `json:"checker"`
	// Workload is the workload the checker judged: the whole history's,
	// or one part of a history that mixes workloads (split by key).
	Workload Workload `json:"workload,omitempty"`
	Verdict  Verdict  `json:"verdict"`
	// AnomalyCount counts every anomaly found; Anomalies lists at most
	// MaxAnomalies of them.
	AnomalyCount int       `json:"anomaly_count"`
	Anomalies    []Anomaly `json:"anomalies"`
	// Stats are the checker's figures (counts, latencies in ms), by name.
	Stats map[string]float64 `json:"stats,omitempty"`
	// Summary is a short line of key figures for the summary table.
	Summary string `json:"summary,omitempty"`
	// Details holds checker-specific structured output, such as the
	// staleness freshness curve.
	Details any `json:"details,omitempty"`
	// Artifacts are files the checker wrote (visualizations).
	Artifacts []string `json:"artifacts,omitempty"`
	// Reason says why the verdict is unknown, or why the checker did not
	// apply.
	Reason string `json:"reason,omitempty"`
}

// Add records an anomaly, keeping at most MaxAnomalies in the list, and marks
// the result invalid.
func (r *Result) Add(a Anomaly) {
	r.AnomalyCount++
	r.Verdict = Invalid
	if len(r.Anomalies) < MaxAnomalies {
		r.Anomalies = append(r.Anomalies, a)
	}
}

// Input is what every checker reads: the history and its paired operations.
type Input struct {
	History history.History
	// Ops is history.Pair(History), computed once and shared.
	Ops []history.Operation
	// Workload is the workload of Ops, when known.
	Workload Workload
}

// NewInput pairs h. h must be valid (history.Validate).
func NewInput(h history.History) Input {
	return Input{History: h, Ops: history.Pair(h)}
}

// Options tune the checkers.
type Options struct {
	// Timeout bounds the linearizability search; past it the verdict is
	// unknown. Zero means no bound.
	Timeout time.Duration
	// MaxStaleness makes staleness invalid when a read was stale for longer.
	// Zero means staleness is only measured.
	MaxStaleness time.Duration
	// Engine picks how the linearizable checker decides: EngineAuto (the
	// default, also for ""), EngineZones or EnginePorcupine.
	Engine string
	// VizDir is where the linearizable checker writes Porcupine's HTML
	// visualization of each failing key (at most the first 50). Empty
	// means none is written.
	VizDir string
	// VizPrefix starts each visualization's file name, so that the
	// drawings of different histories in one directory stay apart:
	// VizPrefix + "linearizable-<key>.html".
	VizPrefix string
	// ConsistencyModel is what the transactional checker holds
	// transactions to (see [Models]); empty means strict-serializable.
	ConsistencyModel string
	// CycleBudget bounds the node visits of the transactional checker's
	// cycle searches; past it the verdict is unknown. 0 means 20 million.
	CycleBudget int
}

// Func is the shape of every checker.
type Func func(ctx context.Context, in Input, opt Options) Result
