package history

import "math"

// Open is the return time of an operation that never certainly returned: an
// [Info] completion, or an invocation with no completion. Such an operation
// may take effect at any time after its call.
const Open int64 = math.MaxInt64

// Operation is an invocation paired with its completion: the unit every
// checker reasons about.
type Operation struct {
	// Process, F and Key are those of the invocation.
	Process Process
	F       string
	Key     string
	// Type is how the operation ended: [OK], [Fail] or [Info]. An invocation
	// with no completion by the end of the history is Info.
	Type Type
	// Value is the completion's value when the operation succeeded (what a
	// read returned), and the invocation's value otherwise (what a write
	// tried to write). A successful operation other than a read whose
	// completion carries no value keeps the invocation's value.
	Value Value
	// Call and Return are the times of the invocation and completion, in
	// nanoseconds since the run started. Return is [Open] unless the
	// operation completed with OK or Fail.
	Call, Return int64
	// Invoke and Complete are the positions of the two lines in the history;
	// Complete is -1 when there was no completion.
	Invoke, Complete int
	// Node and Error come from the completion (or the invocation when it
	// names them and the completion does not).
	Node, Error string
	// Final is set when either line was marked final.
	Final bool
	// Request and Attempt are the invocation's: the logical request this
	// operation is an attempt of, and which attempt (see [Op]).
	Request string
	Attempt int
}

// OK reports whether the operation certainly happened.
func (o Operation) OK() bool { return o.Type == OK }

// Indeterminate reports whether the operation may or may not have happened.
func (o Operation) Indeterminate() bool { return o.Type == Info }

// Pair pairs every client invocation in h with its completion and returns the
// operations in invocation order. Nemesis lines are skipped (see [Faults]).
// h must have passed [Validate]; a history that breaks its rules makes Pair
// panic, since that is a harness bug, not user input.
func Pair(h History) []Operation {
	ops := make([]Operation, 0, len(h)/2+1)
	open := make(map[Process]int) // process -> position in ops
	for i, op := range h {
		if op.Process == Nemesis {
			continue
		}
		if op.Type == Invoke {
			if _, busy := open[op.Process]; busy {
				panic("history: Pair on an unvalidated history: two invocations in flight on one process")
			}
			open[op.Process] = len(ops)
			ops = append(ops, Operation{
				Process: op.Process, F: op.F, Key: op.Key, Type: Info, Value: op.Value,
				Call: op.Time, Return: Open, Invoke: i, Complete: -1,
				Node: op.Node, Error: op.Error, Final: op.Final,
				Request: op.Request, Attempt: op.Attempt,
			})
			continue
		}
		j, ok := open[op.Process]
		if !ok {
			panic("history: Pair on an unvalidated history: completion with no invocation")
		}
		delete(open, op.Process)
		o := &ops[j]
		o.Type, o.Complete = op.Type, i
		if op.Type != Info {
			o.Return = op.Time
		}
		if op.Type == OK && (op.F == "read" || !op.Value.IsNil()) {
			o.Value = op.Value
		}
		if op.Node != "" {
			o.Node = op.Node
		}
		if op.Error != "" {
			o.Error = op.Error
		}
		o.Final = o.Final || op.Final
	}
	return ops
}

// Faults returns the nemesis lines of h, in order.
func Faults(h History) []Op {
	var out []Op
	for _, op := range h {
		if op.Process == Nemesis {
			out = append(out, op)
		}
	}
	return out
}
