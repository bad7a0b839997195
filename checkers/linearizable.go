package checkers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/eccheck/eccheck/history"
)

// LinearizableName is the Checker name of the linearizable checker's Result.
const LinearizableName = "linearizable"

// Bounds on the work done after Porcupine finds a violation.
const (
	// maxWitnessKeys is how many failing keys get a witness from
	// Porcupine's verbose mode (and a visualization); verbose mode can be
	// ten times slower, and a person reads the first few anyway.
	maxWitnessKeys = MaxVisualizations
	// witnessTail is how many operations of the longest partial
	// linearization a witness cites, before the one that could not be
	// placed.
	witnessTail = 8
	// fallbackOps is how many operations an anomaly cites when no witness
	// could be computed.
	fallbackOps = 20
)

// MaxVisualizations is how many failing keys the linearizable checker
// draws at most (with Options.VizDir set); the rest are listed, not drawn.
const MaxVisualizations = 50

// LinearizableDetails is the Details of the linearizable checker's Result.
type LinearizableDetails struct {
	// FailedKeys are the keys whose operations are not linearizable, in
	// order of first appearance (at most MaxAnomalies of them).
	FailedKeys []string `json:"failed_keys,omitempty"`
	// UnknownKeys are the keys whose check ran out of time after another
	// key was found not linearizable.
	UnknownKeys []string `json:"unknown_keys,omitempty"`
	// Fallback says, for the first keys the zones engine could not decide,
	// why (a repeated written value, a written null, ...); those keys went
	// to Porcupine.
	Fallback []string `json:"fallback,omitempty"`
	// Warnings are problems that did not change the verdict, such as a
	// visualization that could not be written.
	Warnings []string `json:"warnings,omitempty"`
}

// porcupineCheck checks the register operations of the keys in include (all
// keys when include is nil) with Porcupine: a register/CAS model
// partitioned per key, so a history is linearizable exactly when every key
// is.
//
// Each key that is not linearizable becomes an Anomaly of kind
// "nonlinearizable" citing a small witness: the end of the longest order
// Porcupine could find and the operation it could not place after it. With
// opt.VizDir set, Porcupine's HTML visualization of each failing key is
// written there and listed in Result.Artifacts.
//
// The verdict is unknown, with a Reason, when the history breaks the rules
// Porcupine relies on (a return before its call), or when opt.Timeout
// passes or ctx is done before the search ends; it is never a guess.
func porcupineCheck(ctx context.Context, in Input, opt Options, include map[string]bool) Result {
	start := time.Now()
	res := Result{Checker: LinearizableName, Verdict: Valid, Stats: map[string]float64{}}
	rh, err := convertRegisters(in.Ops, include)
	if err != nil {
		res.Verdict = Unknown
		res.Reason = fmt.Sprintf("refused to check: %v (Porcupine would give a wrong answer on such input)", err)
		res.Summary = "unknown: invalid input"
		return res
	}
	rh.fillStats(res.Stats)
	defer func() { res.Stats["elapsed_ms"] = float64(time.Since(start).Microseconds()) / 1000 }()
	if len(rh.keys) == 0 {
		res.Summary = fmt.Sprintf("no register operations (%d ignored)", rh.ignored)
		return res
	}

	// A result other than Ok reached after stop is set is unknown, while
	// an Ok is still sound (every step it took was real).
	_, stop, release := searchBound(ctx, opt.Timeout)
	defer release()
	unknown := func() string {
		if err := ctx.Err(); err != nil {
			return fmt.Sprintf("check stopped before the search ended: %v", context.Cause(ctx))
		}
		return fmt.Sprintf("linearizability search timed out after %v", opt.Timeout)
	}

	all := rh.model(stop, true)
	if porcupine.CheckOperationsTimeout(all, rh.ops, 0) == porcupine.Ok {
		res.Summary = fmt.Sprintf("%d keys linearizable (%d ops, %d info)", len(rh.keys), len(rh.ops), rh.info)
		return res
	}
	if stop.Load() {
		res.Verdict = Unknown
		res.Reason = unknown()
		res.Stats["keys_unknown"] = float64(len(rh.keys))
		res.Summary = fmt.Sprintf("unknown: %d keys not decided (%d ops)", len(rh.keys), len(rh.ops))
		return res
	}

	// Porcupine proved a violation but stops at the first failing key:
	// check each key alone to name them all.
	parts := rh.partition(rh.ops)
	one := rh.model(stop, false)
	verdicts := checkKeys(one, parts, stop)
	var details LinearizableDetails
	var failed, undecided, witnesses int
	vizNames := make(map[string]bool)
	for p, v := range verdicts {
		switch v {
		case Unknown:
			undecided++
			if len(details.UnknownKeys) < MaxAnomalies {
				details.UnknownKeys = append(details.UnknownKeys, rh.keys[p])
			}
		case Invalid:
			failed++
			if len(details.FailedKeys) < MaxAnomalies {
				details.FailedKeys = append(details.FailedKeys, rh.keys[p])
			}
			if res.AnomalyCount >= MaxAnomalies {
				res.AnomalyCount++
				continue
			}
			var a Anomaly
			var ok bool
			if witnesses < maxWitnessKeys && !stop.Load() {
				witnesses++
				var art, warn string
				a, art, warn, ok = rh.witness(in.Ops, one, parts[p], p, opt.VizDir, opt.VizPrefix, vizNames, stop)
				if art != "" {
					res.Artifacts = append(res.Artifacts, art)
				}
				if warn != "" {
					details.Warnings = append(details.Warnings, warn)
				}
			}
			if !ok {
				a = rh.fallback(in.Ops, parts[p], p)
			}
			res.Add(a)
		}
	}
	res.Stats["keys_failed"] = float64(failed)
	res.Stats["keys_unknown"] = float64(undecided)
	res.Verdict = Invalid
	if failed == 0 {
		// Every key timed out in the second pass, after the first proved a
		// violation: the verdict stands, but no key can be named.
		res.Reason = "Porcupine found a violation, but " + unknown() + " before it could tell which key"
	} else if undecided > 0 {
		res.Reason = fmt.Sprintf("%d keys were not decided: %s", undecided, unknown())
	}
	res.Summary = fmt.Sprintf("%d of %d keys not linearizable", failed, len(rh.keys))
	if len(details.FailedKeys) > 0 {
		res.Summary += ": " + quoteKeys(details.FailedKeys, 3)
	}
	if undecided > 0 {
		res.Summary += fmt.Sprintf(" (%d undecided)", undecided)
	}
	res.Details = details
	return res
}

// checkKeys checks each partition alone, a few at a time, and returns a
// verdict per partition.
func checkKeys(model porcupine.Model, parts [][]porcupine.Operation, stop *atomic.Bool) []Verdict {
	verdicts := make([]Verdict, len(parts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(parts)) {
		wg.Go(func() {
			for {
				p := int(next.Add(1) - 1)
				if p >= len(parts) {
					return
				}
				if stop.Load() {
					verdicts[p] = Unknown
					continue
				}
				r := porcupine.CheckOperationsTimeout(model, parts[p], 0)
				switch {
				case r == porcupine.Ok:
					verdicts[p] = Valid
				case stop.Load():
					verdicts[p] = Unknown
				default:
					verdicts[p] = Invalid
				}
			}
		})
	}
	wg.Wait()
	return verdicts
}

// regKind is what a register operation does in the model.
type regKind uint8

const (
	regRead    regKind = iota // legal when the register holds a
	regWrite                  // sets the register to a (ok or info)
	regCAS                    // a successful CAS: legal when the register holds a, sets it to b
	regCASInfo                // an indeterminate CAS: always legal, sets b when the register holds a
)

// regVal is an interned register value: equal values share one regVal, so
// the model compares states by pointer and Porcupine boxes them for free.
type regVal struct {
	id uint64
	v  history.Value
}

// regOp is the Input of a Porcupine operation; the Output is always nil,
// since a read's value is part of the operation.
type regOp struct {
	kind regKind
	a, b *regVal
	part int32 // partition (key) index
	pos  int   // position in Input.Ops
}

// regHistory is the register part of a history converted for Porcupine.
type regHistory struct {
	ops     []porcupine.Operation // in Input.Ops order
	keys    []string              // partition index -> key, in order of first appearance
	initial *regVal               // the interned nil

	info, infoReads, failed, ignored int
}

// convertRegisters turns the register operations of ops into Porcupine
// operations, dropping failed operations and indeterminate reads, and
// refusing input Porcupine would misjudge.
func convertRegisters(ops []history.Operation, include map[string]bool) (*regHistory, error) {
	rh := &regHistory{}
	in := newInterner(len(ops))
	rh.initial = in.get(history.Nil())
	slab := make([]regOp, len(ops))
	rh.ops = make([]porcupine.Operation, len(ops))
	n := 0 // operations kept
	partOf := make(map[string]int32)
	var infos []int // positions in rh.ops of open-ended operations
	var last int64
	for i := range ops {
		o := &ops[i]
		var kind regKind
		switch o.F {
		case FRead:
			kind = regRead
		case FWrite:
			kind = regWrite
		case FCAS:
			kind = regCAS
		default:
			rh.ignored++
			continue
		}
		if include != nil && !include[o.Key] {
			continue
		}
		switch o.Type {
		case history.OK:
		case history.Fail:
			rh.failed++
			continue
		case history.Info:
			if kind == regRead {
				rh.infoReads++
				continue
			}
			if kind == regCAS {
				kind = regCASInfo
			}
		default:
			return nil, fmt.Errorf("%s: type %v is not ok, fail or info", opName(o), o.Type)
		}
		if o.Call < 0 || o.Call == history.Open {
			return nil, fmt.Errorf("%s: invalid call time %d", opName(o), o.Call)
		}
		last = max(last, o.Call)
		if o.Type == history.OK {
			switch {
			case o.Return == history.Open:
				return nil, fmt.Errorf("%s: completed ok but has no return time", opName(o))
			case o.Return < o.Call:
				return nil, fmt.Errorf("%s: returned at %d ns, before its call at %d ns", opName(o), o.Return, o.Call)
			}
			last = max(last, o.Return)
		} else {
			infos = append(infos, n)
		}
		// Fill both slices in place: building the 80-byte
		// porcupine.Operation and appending it was most of the cost.
		r := &slab[n]
		r.kind, r.pos = kind, i
		if kind == regCAS || kind == regCASInfo {
			old, nv, ok := o.Value.Pair()
			if !ok {
				return nil, fmt.Errorf("%s: a cas value must be [old, new], got %s", opName(o), o.Value)
			}
			r.a, r.b = in.get(old), in.get(nv)
		} else {
			r.a = in.get(o.Value)
		}
		p, ok := partOf[o.Key]
		if !ok {
			p = int32(len(rh.keys))
			partOf[o.Key] = p
			rh.keys = append(rh.keys, o.Key)
		}
		r.part = p
		po := &rh.ops[n]
		po.ClientId, po.Input, po.Call, po.Return = int(o.Process), r, o.Call, o.Return
		n++
	}
	rh.ops = rh.ops[:n]
	// Open-ended operations return after every other event, so they may
	// take effect at any time after their call, or (placed last) never.
	for _, j := range infos {
		rh.ops[j].Return = last + 1
	}
	rh.info = len(infos)
	return rh, nil
}

// opName names an operation in an error message.
func opName(o *history.Operation) string {
	return fmt.Sprintf("op %d (%s of key %q by process %v)", o.Invoke, o.F, o.Key, o.Process)
}

// fillStats records the conversion counts.
func (rh *regHistory) fillStats(s map[string]float64) {
	s["keys_checked"] = float64(len(rh.keys))
	s["ops_checked"] = float64(len(rh.ops))
	s["ops_info"] = float64(rh.info)
	s["reads_info_dropped"] = float64(rh.infoReads)
	s["ops_failed_dropped"] = float64(rh.failed)
	s["ops_ignored"] = float64(rh.ignored)
	s["keys_failed"] = 0
	s["keys_unknown"] = 0
}

// interner gives equal values one *regVal.
type interner struct {
	// dense holds the non-negative integers below limit, the usual values
	// of a register workload, by value: a slice lookup instead of a map's.
	dense  []*regVal
	limit  int64
	ints   map[int64]*regVal
	strs   map[string]*regVal
	others map[history.Scalar]*regVal
	n      uint64
}

// newInterner returns an interner for the values of ops operations.
func newInterner(ops int) *interner {
	return &interner{
		limit: 2*int64(ops) + 1024,
		ints:  make(map[int64]*regVal), strs: make(map[string]*regVal), others: make(map[history.Scalar]*regVal),
	}
}

func (in *interner) get(v history.Value) *regVal {
	if n, ok := v.AsInt(); ok {
		if n >= 0 && n < in.limit {
			if n >= int64(len(in.dense)) {
				in.dense = slices.Grow(in.dense, int(n)+1-len(in.dense))
				in.dense = in.dense[:cap(in.dense)]
			}
			r := in.dense[n]
			if r == nil {
				r = in.add(v)
				in.dense[n] = r
			}
			return r
		}
		r := in.ints[n]
		if r == nil {
			r = in.add(v)
			in.ints[n] = r
		}
		return r
	}
	if s, ok := v.AsString(); ok {
		r := in.strs[s]
		if r == nil {
			r = in.add(v)
			in.strs[s] = r
		}
		return r
	}
	k := v.Scalar()
	r := in.others[k]
	if r == nil {
		r = in.add(v)
		in.others[k] = r
	}
	return r
}

func (in *interner) add(v history.Value) *regVal {
	in.n++
	return &regVal{id: in.n, v: v}
}

// apply is the register model: whether o may take effect when the register
// holds s, and what the register holds after it.
func apply(s *regVal, o *regOp) (bool, *regVal) {
	switch o.kind {
	case regRead:
		return o.a == s, s
	case regWrite:
		return true, o.a
	case regCAS:
		if o.a == s {
			return true, o.b
		}
		return false, s
	default: // regCASInfo
		if o.a == s {
			return true, o.b
		}
		return true, s
	}
}

// model is the Porcupine register model for rh. With partitioned set it
// splits a history of rh's operations by key. Every step is refused once
// stop is set.
func (rh *regHistory) model(stop *atomic.Bool, partitioned bool) porcupine.Model {
	m := porcupine.Model{
		Init: func() any { return rh.initial },
		Step: func(state, input, _ any) (bool, any) {
			if stop.Load() {
				return false, state
			}
			return apply(state.(*regVal), input.(*regOp))
		},
		Equal: func(a, b any) bool { return a.(*regVal) == b.(*regVal) },
		Hash:  func(state any) uint64 { return state.(*regVal).id * 0x9e3779b97f4a7c15 },
		DescribeOperation: func(input, _ any) string {
			return describeRegOp(input.(*regOp))
		},
		DescribeState: func(state any) string { return state.(*regVal).v.String() },
		DescribeOperationMetadata: func(meta any) string {
			s, _ := meta.(string)
			return s
		},
	}
	if partitioned {
		m.Partition = rh.partition
	}
	return m
}

// partition splits ops, operations of rh, by key, keeping their order.
func (rh *regHistory) partition(ops []porcupine.Operation) [][]porcupine.Operation {
	if len(rh.keys) == 1 {
		return [][]porcupine.Operation{ops}
	}
	counts := make([]int, len(rh.keys))
	for i := range ops {
		counts[ops[i].Input.(*regOp).part]++
	}
	buf := make([]porcupine.Operation, len(ops))
	out := make([][]porcupine.Operation, len(rh.keys))
	off := 0
	for p, c := range counts {
		out[p] = buf[off : off : off+c]
		off += c
	}
	for i := range ops {
		p := ops[i].Input.(*regOp).part
		out[p] = append(out[p], ops[i])
	}
	return out
}

// describeRegOp describes an operation in a visualization.
func describeRegOp(o *regOp) string {
	switch o.kind {
	case regRead:
		return "read → " + o.a.v.String()
	case regWrite:
		return "write " + o.a.v.String()
	case regCAS:
		return "cas " + o.a.v.String() + " → " + o.b.v.String()
	default:
		return "cas " + o.a.v.String() + " → " + o.b.v.String() + " (info)"
	}
}

// witness runs Porcupine's verbose mode on one failing partition and makes
// its anomaly from the longest partial linearization, writing the
// visualization to vizDir when it is set. It returns ok false when the
// search was stopped before it finished.
func (rh *regHistory) witness(ops []history.Operation, model porcupine.Model, part []porcupine.Operation, p int, vizDir, vizPrefix string, vizNames map[string]bool, stop *atomic.Bool) (a Anomaly, artifact, warning string, ok bool) {
	key := rh.keys[p]
	// Number the clients of this key from 0 and describe each operation,
	// so that the visualization reads well.
	vis := make([]porcupine.Operation, len(part))
	client := make(map[history.Process]int)
	for i, po := range part {
		o := &ops[po.Input.(*regOp).pos]
		c, seen := client[o.Process]
		if !seen {
			c = len(client)
			client[o.Process] = c
		}
		po.ClientId = c
		po.Metadata = describeMeta(o)
		vis[i] = po
	}
	r, info := porcupine.CheckOperationsVerbose(model, vis, 0)
	if r != porcupine.Illegal || stop.Load() {
		return Anomaly{}, "", "", false
	}
	partials := info.PartialLinearizations()
	var best []int
	if len(partials) > 0 {
		for _, l := range partials[0] {
			if len(l) > len(best) || (len(l) == len(best) && slices.Compare(l, best) < 0) {
				best = l
			}
		}
	}
	a = rh.explain(ops, part, key, best)
	if vizDir != "" {
		// Visualize replays the partial linearizations through the model
		// and panics on a refused step, so it gets a model that is never
		// stopped.
		path, err := writeViz(rh.model(new(atomic.Bool), false), info, vizDir, vizPrefix, key, vizNames)
		if err != nil {
			warning = fmt.Sprintf("visualization of key %q: %v", key, err)
		} else {
			artifact = path
		}
	}
	return a, artifact, warning, true
}

// explain makes the anomaly of a failing key from a longest partial
// linearization best (positions in part): the operation it could not place
// next, the last operations it did place, and the one that set the state it
// ended in.
func (rh *regHistory) explain(ops []history.Operation, part []porcupine.Operation, key string, best []int) Anomaly {
	s, setter := rh.initial, -1
	placed := make([]bool, len(part))
	for _, id := range best {
		o := part[id].Input.(*regOp)
		var ok bool
		var next *regVal
		ok, next = apply(s, o)
		if ok && (o.kind == regWrite || (o.kind != regRead && o.a == s)) {
			setter = id
		}
		s = next
		placed[id] = true
	}
	// The operation that could not be placed: among those not placed that
	// were already called when the first of them returned (the ones the
	// search had to try next), the earliest to return that the model
	// refuses in state s; failing that, the earliest to return.
	minRet := int64(history.Open)
	for id := range part {
		if !placed[id] {
			minRet = min(minRet, part[id].Return)
		}
	}
	stuck, stuckLegal := -1, false
	for id := range part {
		if placed[id] || part[id].Call > minRet {
			continue
		}
		legal, _ := apply(s, part[id].Input.(*regOp))
		better := stuck < 0 || (stuckLegal && !legal) ||
			(legal == stuckLegal && (part[id].Return < part[stuck].Return ||
				(part[id].Return == part[stuck].Return && part[id].Call < part[stuck].Call)))
		if better {
			stuck, stuckLegal = id, legal
		}
	}

	var cite []int
	tail := best[max(0, len(best)-witnessTail):]
	if setter >= 0 && !slices.Contains(tail, setter) {
		cite = append(cite, setter)
	}
	cite = append(cite, tail...)
	if stuck >= 0 {
		cite = append(cite, stuck)
	}
	a := Anomaly{Kind: "nonlinearizable", Key: key}
	for _, id := range cite {
		a.Ops = append(a.Ops, Ref(ops[part[id].Input.(*regOp).pos]))
	}

	held := "its initial " + s.v.String()
	if setter >= 0 {
		held = fmt.Sprintf("%s, written by %s", s.v, opPhrase(&ops[part[setter].Input.(*regOp).pos]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: no order of its %d operations consistent with real time explains them all; ", keyPhrase(key), len(part))
	if len(best) == 0 {
		fmt.Fprintf(&b, "Porcupine could not place even one, the register holding its initial %s", s.v)
	} else {
		fmt.Fprintf(&b, "the longest valid order Porcupine found places %d, leaving the register at %s", len(best), held)
	}
	if stuck >= 0 {
		fmt.Fprintf(&b, ", and then cannot place %s", opPhrase(&ops[part[stuck].Input.(*regOp).pos]))
	}
	a.Explanation = b.String()
	return a
}

// fallback makes the anomaly of a failing key without a witness: its first
// operations.
func (rh *regHistory) fallback(ops []history.Operation, part []porcupine.Operation, p int) Anomaly {
	a := Anomaly{Kind: "nonlinearizable", Key: rh.keys[p]}
	for _, po := range part[:min(len(part), fallbackOps)] {
		a.Ops = append(a.Ops, Ref(ops[po.Input.(*regOp).pos]))
	}
	a.Explanation = fmt.Sprintf("%s: no order of its %d operations consistent with real time explains them all (no witness was computed; these are its first %d operations)",
		keyPhrase(rh.keys[p]), len(part), len(a.Ops))
	return a
}

// keyPhrase names a key in an explanation.
func keyPhrase(key string) string {
	if key == "" {
		return "the register with no key"
	}
	return fmt.Sprintf("key %q", key)
}

// opPhrase names an operation in an explanation.
func opPhrase(o *history.Operation) string {
	who := fmt.Sprintf("by process %v (op %d)", o.Process, o.Invoke)
	maybe := ""
	if o.Type == history.Info {
		maybe = "indeterminate "
	}
	switch o.F {
	case FRead:
		return fmt.Sprintf("the read %s that returned %s", who, o.Value)
	case FCAS:
		old, nv, _ := o.Value.Pair()
		if o.Type == history.OK {
			return fmt.Sprintf("the successful cas from %s to %s %s", old, nv, who)
		}
		return fmt.Sprintf("the %scas from %s to %s %s", maybe, old, nv, who)
	default:
		return fmt.Sprintf("the %swrite of %s %s", maybe, o.Value, who)
	}
}

// describeMeta is an operation's tooltip in a visualization.
func describeMeta(o *history.Operation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "process %v, op %d", o.Process, o.Invoke)
	if o.Complete >= 0 {
		fmt.Fprintf(&b, "–%d", o.Complete)
	}
	b.WriteString(", " + o.Type.String())
	if o.Node != "" {
		b.WriteString(", node " + o.Node)
	}
	if o.Error != "" {
		b.WriteString(", error: " + o.Error)
	}
	return b.String()
}

// writeViz writes the visualization of one key into dir and returns its
// path. used holds the file names this run has written: two keys that
// sanitize alike get distinct files, while a file left by an earlier run is
// overwritten.
func writeViz(model porcupine.Model, info porcupine.LinearizationInfo, dir, prefix, key string, used map[string]bool) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create visualization dir: %w", err)
	}
	base := prefix + "linearizable-" + sanitizeKey(key)
	name := base + ".html"
	for n := 2; used[name]; n++ {
		name = fmt.Sprintf("%s-%d.html", base, n)
	}
	used[name] = true
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("write visualization: %w", err)
	}
	err = porcupine.Visualize(model, info, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write visualization %s: %w", path, err)
	}
	return path, nil
}

// sanitizeKey makes a key safe as part of a file name: letters, digits,
// '.', '-' and '_' are kept, anything else becomes '_', and long keys are
// cut.
func sanitizeKey(key string) string {
	if key == "" {
		return "_"
	}
	b := []byte(key)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if b[0] == '.' {
		b[0] = '_'
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// quoteKeys lists up to n keys, quoted.
func quoteKeys(keys []string, n int) string {
	qs := make([]string, 0, n+1)
	for _, k := range keys[:min(n, len(keys))] {
		qs = append(qs, fmt.Sprintf("%q", k))
	}
	if len(keys) > n {
		qs = append(qs, fmt.Sprintf("and %d more", len(keys)-n))
	}
	return strings.Join(qs, ", ")
}

// searchBound returns ctx bounded by timeout (when positive) and a flag
// set once that context is done. Porcupine takes a timeout but no
// context: the models read the flag and refuse every step once it is set,
// which ends a search at once. release stops the watch.
func searchBound(ctx context.Context, timeout time.Duration) (bounded context.Context, stop *atomic.Bool, release func()) {
	bounded, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		bounded, cancel = context.WithTimeout(ctx, timeout)
	}
	stop = new(atomic.Bool)
	unwatch := context.AfterFunc(bounded, func() { stop.Store(true) })
	if bounded.Err() != nil {
		stop.Store(true)
	}
	return bounded, stop, func() { unwatch(); cancel() }
}
