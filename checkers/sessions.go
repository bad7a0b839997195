package checkers

import (
	"context"
	"fmt"

	"github.com/eccheck/eccheck/history"
)

// Checker names of the session guarantees.
const (
	NameReadYourWrites = "read-your-writes"
	NameMonotonicReads = "monotonic-reads"
)

// ReadYourWrites checks that every register read by a process returns its
// own latest acknowledged write of the key, or something newer.
//
// For a successful read r by process p of key k, let w_p be p's latest OK
// write or CAS of k that completed before r was invoked. r violates
// read-your-writes when it returns the initial nil although w_p exists, or a
// value whose write finished before w_p began. Only real-time order proves a
// value older, so a read of a write concurrent with w_p, or of an info write
// (which never finished), is never a violation. Reads of values written by
// several operations or by none cannot name their write; they are skipped and
// counted in Stats["skipped_reads"] (the linearizable checker reports them).
// Each anomaly cites w_p, r, and the write of the value r returned (absent
// when r returned nil).
//
// Sessions are per process id; a process continues under a fresh id after an
// info, so its session ends there.
func ReadYourWrites(ctx context.Context, in Input, opt Options) Result {
	res := Result{Checker: NameReadYourWrites, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	keys := registers(ops)
	var reads, skipped int
	own := make(map[history.Process]int) // process -> position of its latest OK write of the key
	for _, rk := range keys {
		if err := ctx.Err(); err != nil {
			return regStopped(res, err)
		}
		clear(own)
		wi := 0
		for _, ri := range rk.reads {
			// Writes invoked before r, in invocation order; p's latest OK one
			// among them completed before r was invoked, since p has one
			// operation in flight at a time.
			for ; wi < len(rk.writes) && rk.writes[wi] < ri; wi++ {
				if w := ops[rk.writes[wi]]; w.Type == history.OK {
					own[w.Process] = rk.writes[wi]
				}
			}
			reads++
			r := ops[ri]
			from, vi := rk.origin(r.Value)
			if from == FromSeveral || from == FromNowhere {
				skipped++
				continue
			}
			pi, ok := own[r.Process]
			if !ok {
				continue
			}
			wp := ops[pi]
			switch {
			case from == FromInitial:
				res.Add(Anomaly{
					Kind: NameReadYourWrites, Key: rk.key,
					Ops: []OpRef{Ref(wp), Ref(r)},
					Explanation: fmt.Sprintf("process %s wrote %s to %s (op %d, acknowledged at %s), then read null (op %d), the initial value",
						r.Process, regWrittenText(wp), regKeyText(rk.key), wp.Invoke, regMS(wp.Return), r.Invoke),
				})
			case ops[vi].Return < wp.Call:
				wv := ops[vi]
				res.Add(Anomaly{
					Kind: NameReadYourWrites, Key: rk.key,
					Ops: []OpRef{Ref(wp), Ref(r), Ref(wv)},
					Explanation: fmt.Sprintf("process %s wrote %s to %s (op %d, acknowledged at %s), then read %s (op %d), a value whose write (op %d) had finished at %s, before its own write began at %s",
						r.Process, regWrittenText(wp), regKeyText(rk.key), wp.Invoke, regMS(wp.Return), r.Value, r.Invoke, wv.Invoke, regMS(wv.Return), regMS(wp.Call)),
				})
			}
		}
	}
	sessionStats(&res, len(keys), reads, skipped)
	return res
}

// MonotonicReads checks that no process reads a register value older than
// one it already read from the same key.
//
// For a successful read r by process p of key k, let M be the latest
// invocation time among the writes of the values p already read from k. r
// violates monotonic reads when it returns a value whose write finished
// before M, or the initial nil after p has read a written value. Values that
// do not name one write are skipped, counted in Stats["skipped_reads"], and
// do not count as read. Each anomaly cites the earlier read, the write of
// its value (the one that began last), r, and the write of the value r
// returned (absent when r returned nil).
func MonotonicReads(ctx context.Context, in Input, opt Options) Result {
	res := Result{Checker: NameMonotonicReads, Verdict: Valid, Stats: map[string]float64{}}
	ops := in.Ops
	keys := registers(ops)
	var reads, skipped int
	// seen is, per process, the earlier read whose value's write began last,
	// and that write.
	type seen struct{ read, write int }
	last := make(map[history.Process]seen)
	for _, rk := range keys {
		if err := ctx.Err(); err != nil {
			return regStopped(res, err)
		}
		clear(last)
		for _, ri := range rk.reads {
			reads++
			r := ops[ri]
			from, vi := rk.origin(r.Value)
			if from == FromSeveral || from == FromNowhere {
				skipped++
				continue
			}
			prev, ok := last[r.Process]
			if ok {
				pr, pw := ops[prev.read], ops[prev.write]
				switch {
				case from == FromInitial:
					res.Add(Anomaly{
						Kind: NameMonotonicReads, Key: rk.key,
						Ops: []OpRef{Ref(pr), Ref(pw), Ref(r)},
						Explanation: fmt.Sprintf("process %s read %s from %s (op %d), written by op %d, then read null (op %d), the initial value",
							r.Process, pr.Value, regKeyText(rk.key), pr.Invoke, pw.Invoke, r.Invoke),
					})
				case ops[vi].Return < pw.Call:
					wv := ops[vi]
					res.Add(Anomaly{
						Kind: NameMonotonicReads, Key: rk.key,
						Ops: []OpRef{Ref(pr), Ref(pw), Ref(r), Ref(wv)},
						Explanation: fmt.Sprintf("process %s read %s from %s (op %d), written by op %d which began at %s, then read %s (op %d), a value whose write (op %d) had finished at %s, before that",
							r.Process, pr.Value, regKeyText(rk.key), pr.Invoke, pw.Invoke, regMS(pw.Call), r.Value, r.Invoke, wv.Invoke, regMS(wv.Return)),
					})
				}
			}
			if from == FromWrite && (!ok || ops[vi].Call > ops[prev.write].Call) {
				last[r.Process] = seen{read: ri, write: vi}
			}
		}
	}
	sessionStats(&res, len(keys), reads, skipped)
	return res
}

func sessionStats(res *Result, keys, reads, skipped int) {
	res.Stats["keys"] = float64(keys)
	res.Stats["reads"] = float64(reads)
	res.Stats["skipped_reads"] = float64(skipped)
	res.Stats["violations"] = float64(res.AnomalyCount)
	switch {
	case keys == 0:
		res.Reason = "no register operations"
		res.Summary = "no register operations"
	case res.AnomalyCount == 0:
		res.Summary = fmt.Sprintf("%d reads, no violation", reads)
	default:
		res.Summary = fmt.Sprintf("%d violations in %d reads", res.AnomalyCount, reads)
	}
	if skipped > 0 {
		res.Summary += fmt.Sprintf(", %d skipped", skipped)
	}
}

// regStopped turns a result into an unknown one because ctx ended.
func regStopped(res Result, err error) Result {
	res.Verdict = Compose(res.Verdict, Unknown)
	res.Reason = fmt.Sprintf("stopped before the end: %v", err)
	res.Summary = "stopped: " + err.Error()
	return res
}

// regWrittenText is the value an operation writes, as text.
func regWrittenText(o history.Operation) string {
	v, _ := writtenValue(o)
	return v.String()
}

// regKeyText names a key in an explanation.
func regKeyText(k string) string {
	if k == "" {
		return "the register"
	}
	return k
}

// regMS formats a time in nanoseconds as milliseconds.
func regMS(ns int64) string {
	return fmt.Sprintf("%.1f ms", float64(ns)/1e6)
}
