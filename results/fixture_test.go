package results

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

// fixtureDir is where the fixture run pretends to live: the report's source
// and the visualization links name it.
const fixtureDir = "runs/fixture/20250101T000000.000Z"

// fixtureHistory is a small register run with fixed times (ms below, ns in
// the file): p0 reads its own older write back (read-your-writes), p1 reads
// 2 then 1 (monotonic reads), both stale (not linearizable) while a
// partition is in force; a failed and an indeterminate write on k2; a clock
// fault that is never stopped; final reads.
const fixtureHistory = `{"time":0,"process":0,"type":"invoke","f":"write","key":"k1","value":1}
{"time":2000000,"process":0,"type":"ok","f":"write","key":"k1","value":1,"node":"n1"}
{"time":3000000,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}}
{"time":7000000,"process":0,"type":"invoke","f":"write","key":"k1","value":2}
{"time":9000000,"process":0,"type":"ok","f":"write","key":"k1","value":2,"node":"n2"}
{"time":10000000,"process":0,"type":"invoke","f":"read","key":"k1","value":null}
{"time":11000000,"process":0,"type":"ok","f":"read","key":"k1","value":1,"node":"n1"}
{"time":12000000,"process":1,"type":"invoke","f":"read","key":"k1","value":null}
{"time":13000000,"process":1,"type":"ok","f":"read","key":"k1","value":2,"node":"n2"}
{"time":14000000,"process":1,"type":"invoke","f":"read","key":"k1","value":null}
{"time":15000000,"process":1,"type":"ok","f":"read","key":"k1","value":1,"node":"n1"}
{"time":16000000,"process":"nemesis","type":"info","f":"stop-partition","value":{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}}
{"time":17000000,"process":2,"type":"invoke","f":"write","key":"k2","value":10}
{"time":19000000,"process":2,"type":"fail","f":"write","key":"k2","value":10,"error":"unavailable"}
{"time":20000000,"process":2,"type":"invoke","f":"write","key":"k2","value":11}
{"time":21000000,"process":"nemesis","type":"info","f":"start-clock","value":{"node":"n3","offset_ms":5000}}
{"time":22000000,"process":3,"type":"invoke","f":"read","key":"k2","value":null}
{"time":23000000,"process":3,"type":"ok","f":"read","key":"k2","value":11,"node":"n3"}
{"time":24000000,"process":2,"type":"info","f":"write","key":"k2","value":11,"error":"timeout"}
{"time":25000000,"process":0,"type":"invoke","f":"read","key":"k1","value":null,"final":true}
{"time":26000000,"process":0,"type":"ok","f":"read","key":"k1","value":2,"final":true}
{"time":27000000,"process":1,"type":"invoke","f":"read","key":"k2","value":null,"final":true}
{"time":28000000,"process":1,"type":"ok","f":"read","key":"k2","value":11,"final":true}
`

// fixture reads fixtureHistory and checks it with every register checker,
// as `eccheck check` would, with the figures that vary from run to run
// (elapsed time) and the visualization paths fixed.
func fixture(t testing.TB) (Report, history.History) {
	t.Helper()
	h, warnings, err := history.Read(strings.NewReader(fixtureHistory), "fixture.jsonl")
	if err != nil || len(warnings) > 0 {
		t.Fatalf("fixture history: %v %v", err, warnings)
	}
	in := checkers.NewInput(h)
	viz := t.TempDir()
	rs := checkers.Run(context.Background(), in, checkers.ForWorkload(checkers.WorkloadRegister), checkers.Options{VizDir: viz})
	for i := range rs {
		delete(rs[i].Stats, "elapsed_ms")
		for j, art := range rs[i].Artifacts {
			rs[i].Artifacts[j] = filepath.Join(fixtureDir, filepath.Base(art))
		}
	}
	rep := NewReport(filepath.Join(fixtureDir, "history.jsonl"), checkers.WorkloadRegister, len(in.Ops), rs, []string{"an example warning"})
	return rep, h
}
