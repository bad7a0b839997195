package results

import (
	"strings"

	"github.com/eccheck/eccheck/history"
)

// FaultPeriod is one stretch of time a nemesis fault was in force, paired
// from the history's "start-X" and "stop-X" nemesis operations.
type FaultPeriod struct {
	// Kind is the fault: partition, clock, kill, pause (the X of start-X),
	// or "fault" for a bare start/stop pair.
	Kind string
	// Start and End are nanoseconds since the run started. A fault still in
	// force at the end of the history ends with its last line.
	Start, End int64
	// Open is set when no stop closed the fault.
	Open bool
	// Value is what the start operation recorded: the partition's grudge,
	// the clock's node and offset, the nodes killed or paused.
	Value history.Value
	// Error is the error text of the start or stop operation, if any.
	Error string
}

// FaultPeriods pairs the nemesis operations of h into the periods each
// fault was in force, in order of their start. A stop closes the earliest
// open fault of its kind; a stop with none open, or a second start of a kind
// already in force (Jepsen records a start as two info lines), adds nothing.
// It returns an empty, non-nil slice when h holds no faults.
func FaultPeriods(h history.History) []FaultPeriod {
	out := []FaultPeriod{}
	open := map[string]int{} // kind -> position in out
	var last int64
	for _, op := range h {
		last = max(last, op.Time)
		if op.Process != history.Nemesis {
			continue
		}
		verb, kind := splitFault(op.F)
		switch verb {
		case "start":
			if _, in := open[kind]; in {
				continue
			}
			open[kind] = len(out)
			out = append(out, FaultPeriod{Kind: kind, Start: op.Time, Open: true, Value: op.Value, Error: op.Error})
		case "stop":
			i, in := open[kind]
			if !in {
				continue
			}
			delete(open, kind)
			out[i].End, out[i].Open = op.Time, false
			if op.Error != "" {
				out[i].Error = strings.TrimPrefix(out[i].Error+"; "+op.Error, "; ")
			}
		}
	}
	for _, i := range open {
		out[i].End = last
	}
	return out
}

// splitFault splits a nemesis function such as "start-partition" into its
// verb and fault kind.
func splitFault(f string) (verb, kind string) {
	for _, v := range []string{"start", "stop"} {
		switch {
		case f == v:
			return v, "fault"
		case strings.HasPrefix(f, v+"-"), strings.HasPrefix(f, v+"_"):
			return v, f[len(v)+1:]
		}
	}
	return "", ""
}

// FaultError is a nemesis operation that could not be carried out: a
// fault the cluster failed to apply or undo, even on a second try. The run
// went on; its verdict is about the data, and the report lists these so
// that a reader knows which faults did not happen as planned.
type FaultError struct {
	// Index is the operation's line in the history; Time its time in
	// nanoseconds since the run started.
	Index int64 `json:"index"`
	Time  int64 `json:"time"`
	// F is what the nemesis tried: "start-pause", "stop-partition", ...
	F     string `json:"f"`
	Error string `json:"error"`
}

// FaultErrors returns the nemesis operations of h that carry an error, in
// history order; nil when there are none.
func FaultErrors(h history.History) []FaultError {
	var out []FaultError
	for _, op := range h {
		if op.Process == history.Nemesis && op.Error != "" {
			out = append(out, FaultError{Index: op.Index, Time: op.Time, F: op.F, Error: op.Error})
		}
	}
	return out
}
