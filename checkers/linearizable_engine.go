package checkers

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eccheck/eccheck/history"
)

// The engines of the linearizable checker.
const (
	// EngineAuto decides each key with the zones engine when its written
	// values are unique, and with Porcupine otherwise.
	EngineAuto = "auto"
	// EngineZones uses only the zones engine; keys outside its domain are
	// undecided.
	EngineZones = "zones"
	// EnginePorcupine uses only Porcupine.
	EnginePorcupine = "porcupine"
)

// Engines lists the engine names, for help text and flag checks.
var Engines = []string{EngineAuto, EngineZones, EnginePorcupine}

// vizBudget bounds the Porcupine run that draws the visualization of keys
// the zones engine found not linearizable.
const vizBudget = 10 * time.Second

// Linearizable checks that the register operations of in (f "read",
// "write" and "cas") are linearizable, each key being one register whose
// initial value is nil; a history is linearizable exactly when every key
// is.
//
// Two engines decide. Where a key's written values are unique (as eccheck's
// workloads write them), the zones engine decides it exactly in
// O(n log n) (zones.go); elsewhere (a repeated value, a written null) the
// key goes to Porcupine's search, which is exponential in the worst case
// and bounded by opt.Timeout. opt.Engine can force either one. The result's
// stats count the keys each engine decided.
//
// Failed operations are dropped, since they certainly did not happen.
// Indeterminate (info) reads are dropped too, since they constrain nothing;
// indeterminate writes and CASes may take effect at any time after their
// call, or never. Operations with any other f are ignored and counted in
// the stats.
//
// With opt.VizDir set, Porcupine's HTML visualization of each failing key
// is written there and listed in Result.Artifacts (for keys the zones
// engine decided, Porcupine is run on them for the picture, within
// vizBudget; if it finds such a key linearizable after all, a warning says
// the engines disagree).
//
// The verdict is unknown, with a Reason, when a key could not be decided in
// time or ctx is done; it is never a guess.
func Linearizable(ctx context.Context, in Input, opt Options) Result {
	engine := opt.Engine
	if engine == "" {
		engine = EngineAuto
	}
	if engine == EnginePorcupine {
		r := porcupineCheck(ctx, in, opt, nil)
		r.Stats["keys_porcupine"] = r.Stats["keys_checked"]
		r.Stats["keys_zones"] = 0
		return r
	}
	start := time.Now()
	res := Result{Checker: LinearizableName, Verdict: Valid, Stats: map[string]float64{}}
	var details LinearizableDetails

	// Group the register operations by key.
	byKey := make(map[string][]int)
	var keys []string
	ignored, infoReads, failedOps, infoOps := 0, 0, 0, 0
	for i := range in.Ops {
		o := &in.Ops[i]
		switch o.F {
		case FRead, FWrite, FCAS:
		default:
			ignored++
			continue
		}
		if err := checkTimes(o); err != nil {
			res.Verdict = Unknown
			res.Reason = fmt.Sprintf("refused to check: %v (no engine can judge such input)", err)
			res.Summary = "unknown: invalid input"
			return res
		}
		switch {
		case o.Type == history.Fail:
			failedOps++
		case o.Type == history.Info && o.F == FRead:
			infoReads++
		case o.Type == history.Info:
			infoOps++
		}
		if _, ok := byKey[o.Key]; !ok {
			keys = append(keys, o.Key)
		}
		byKey[o.Key] = append(byKey[o.Key], i)
	}

	var (
		fallback  = map[string]bool{}
		failed    = map[string]bool{}
		failedSeq []string
		undecided []string
		zonesOps  int
	)
	outs := zonesAll(ctx, keys, in.Ops, byKey)
	if err := ctx.Err(); err != nil {
		return linStopped(res, err)
	}
	for i, k := range keys {
		out := outs[i]
		if out.Fallback != "" {
			if len(details.Fallback) < 10 {
				details.Fallback = append(details.Fallback, fmt.Sprintf("%s: %s", keyPhrase(k), out.Fallback))
			}
			if engine == EngineZones {
				undecided = append(undecided, k)
			} else {
				fallback[k] = true
			}
			continue
		}
		zonesOps += out.Ops
		if len(out.Anomalies) == 0 {
			continue
		}
		failed[k] = true
		failedSeq = append(failedSeq, k)
		for _, a := range out.Anomalies {
			a.Explanation = keyPhrase(k) + ": " + a.Explanation
			res.Add(a)
		}
	}
	zonesKeys := len(keys) - len(fallback) - len(undecided)
	res.Stats["keys_checked"] = float64(len(keys))
	res.Stats["keys_zones"] = float64(zonesKeys)
	res.Stats["keys_porcupine"] = float64(len(fallback))
	res.Stats["ops_ignored"] = float64(ignored)
	res.Stats["ops_info"] = float64(infoOps)
	res.Stats["reads_info_dropped"] = float64(infoReads)
	res.Stats["ops_failed_dropped"] = float64(failedOps)
	opsChecked := zonesOps

	if len(fallback) > 0 {
		pr := porcupineCheck(ctx, in, opt, fallback)
		opsChecked += int(pr.Stats["ops_checked"])
		res.Verdict = Compose(res.Verdict, pr.Verdict)
		res.AnomalyCount += pr.AnomalyCount
		for _, a := range pr.Anomalies {
			if len(res.Anomalies) < MaxAnomalies {
				res.Anomalies = append(res.Anomalies, a)
			}
		}
		res.Artifacts = append(res.Artifacts, pr.Artifacts...)
		if pd, ok := pr.Details.(LinearizableDetails); ok {
			failedSeq = append(failedSeq, pd.FailedKeys...)
			undecided = append(undecided, pd.UnknownKeys...)
			details.Warnings = append(details.Warnings, pd.Warnings...)
		}
		if pr.Verdict == Unknown && len(undecided) == 0 {
			undecided = append(undecided, slices.Sorted(maps.Keys(fallback))...)
		}
		if pr.Reason != "" {
			res.Reason = pr.Reason
		}
	}
	res.Stats["ops_checked"] = float64(opsChecked)

	// Draw the keys the zones engine failed, with Porcupine, within a budget.
	if len(failed) > 0 && opt.VizDir != "" {
		draw := map[string]bool{}
		for _, k := range failedSeq {
			if failed[k] && len(draw) < maxWitnessKeys {
				draw[k] = true
			}
		}
		vopt := opt
		vopt.Timeout = vizBudget
		if opt.Timeout > 0 && opt.Timeout < vizBudget {
			vopt.Timeout = opt.Timeout
		}
		vr := porcupineCheck(ctx, in, vopt, draw)
		res.Artifacts = append(res.Artifacts, vr.Artifacts...)
		switch vr.Verdict {
		case Valid:
			details.Warnings = append(details.Warnings, fmt.Sprintf("Porcupine finds %s linearizable, which the zones engine does not: the engines disagree; please report this history", quoteKeys(slices.Sorted(maps.Keys(draw)), 5)))
		case Unknown:
			details.Warnings = append(details.Warnings, fmt.Sprintf("no visualization: Porcupine did not finish drawing the failing keys within %v", vopt.Timeout))
		}
		if vd, ok := vr.Details.(LinearizableDetails); ok {
			details.Warnings = append(details.Warnings, vd.Warnings...)
		}
	}

	if len(undecided) > 0 && res.Verdict == Valid {
		res.Verdict = Unknown
	}
	if engine == EngineZones && len(undecided) > 0 {
		res.Reason = fmt.Sprintf("%d keys are outside the zones engine's domain (first: %s); use --engine auto to send them to Porcupine", len(undecided), details.Fallback[0])
	}
	res.Stats["keys_failed"] = float64(len(failedSeq))
	res.Stats["keys_unknown"] = float64(len(undecided))
	details.FailedKeys = firstN(failedSeq, MaxAnomalies)
	details.UnknownKeys = firstN(undecided, MaxAnomalies)
	res.Details = details
	res.Stats["elapsed_ms"] = float64(time.Since(start).Microseconds()) / 1000
	res.Summary = linSummary(res, len(keys), zonesKeys, len(fallback), failedSeq, undecided)
	return res
}

// zonesAll runs the zones engine on every key, a few keys at a time.
func zonesAll(ctx context.Context, keys []string, ops []history.Operation, byKey map[string][]int) []zoneOutcome {
	outs := make([]zoneOutcome, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(keys)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				outs[i] = checkZones(keys[i], ops, byKey[keys[i]])
			}
		})
	}
	wg.Wait()
	return outs
}

// checkTimes refuses operations whose times cannot be real: both engines
// would give a wrong answer on them rather than an error.
func checkTimes(o *history.Operation) error {
	switch {
	case o.Call < 0 || o.Call == history.Open:
		return fmt.Errorf("%s: invalid call time %d", opName(o), o.Call)
	case o.Type == history.OK && o.Return == history.Open:
		return fmt.Errorf("%s: completed ok but has no return time", opName(o))
	case o.Type != history.Info && o.Return < o.Call:
		return fmt.Errorf("%s: returned at %d ns, before its call at %d ns", opName(o), o.Return, o.Call)
	}
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// linSummary is the table line: the verdict in keys, and which engine
// decided how many.
func linSummary(r Result, keys, zones, porcupine int, failed, undecided []string) string {
	var b strings.Builder
	switch {
	case keys == 0:
		return fmt.Sprintf("no register operations (%d ignored)", int(r.Stats["ops_ignored"]))
	case len(failed) > 0:
		fmt.Fprintf(&b, "%d of %d keys not linearizable: %s", len(failed), keys, quoteKeys(failed, 3))
	case len(undecided) > 0:
		fmt.Fprintf(&b, "%d of %d keys undecided", len(undecided), keys)
	default:
		fmt.Fprintf(&b, "%d keys linearizable", keys)
	}
	fmt.Fprintf(&b, " (%d ops; engine: ", int(r.Stats["ops_checked"]))
	switch {
	case porcupine == 0:
		b.WriteString("zones)")
	case zones == 0:
		b.WriteString("Porcupine)")
	default:
		fmt.Fprintf(&b, "zones %d keys, Porcupine %d)", zones, porcupine)
	}
	if len(failed) > 0 && len(undecided) > 0 {
		fmt.Fprintf(&b, ", %d undecided", len(undecided))
	}
	return b.String()
}

// linStopped is the result when ctx ended the check.
func linStopped(r Result, err error) Result {
	r.Verdict = Unknown
	r.Reason = fmt.Sprintf("check stopped before it ended: %v", err)
	r.Summary = "unknown: stopped"
	return r
}
