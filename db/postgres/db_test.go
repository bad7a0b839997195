package postgres

import (
	"testing"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/nemesis"
)

// How many failovers a schedule carries out decides whether the nodes
// suffice: each kills a primary for good unless --pg-rejoin.
func TestFailoverCount(t *testing.T) {
	for _, tc := range []struct {
		faults          string
		interval, limit time.Duration
		cycles          int
		want            int
	}{
		{"failover", 5 * time.Second, 30 * time.Second, 0, 2},      // at 10 s and 20 s; the one cut off at 30 s only heals
		{"failover", 5 * time.Second, 31 * time.Second, 0, 3},      // 10, 20, 30
		{"partition,failover", time.Second, 9 * time.Second, 0, 2}, // failovers at 4 s and 8 s
		{"failover", 0, 10 * time.Second, 0, 0},
		{"", time.Second, 10 * time.Second, 0, 0},
		{"failover", time.Second, 10 * time.Minute, 2, 2},           // cycles, not time, decide
		{"partition,failover", time.Second, time.Second, 3, 1},      // cycles 1 and 3 are partitions
		{"partition,failover,kill", time.Second, time.Second, 6, 2}, // cycles 2 and 5
	} {
		faults, _ := nemesis.ParseFaults(tc.faults)
		if got := Failovers(faults, tc.interval, tc.limit, tc.cycles); got != tc.want {
			t.Errorf("failovers/%s every %v for %v, %d cycles/%d: got %d", tc.faults, tc.interval, tc.limit, tc.cycles, tc.want, got)
		}
	}
	// The help's example runs with the defaults (30 s, every 5 s, 3 nodes).
	s := &Settings{Sync: "remote_apply", Read: "primary"}
	if err := s.Validate(db.Common{Backend: db.BackendDocker, Nodes: 3, Faults: []string{"failover"}, Interval: 5 * time.Second, TimeLimit: 30 * time.Second}); err != nil {
		t.Errorf("failovers/the help's example/valid: %v", err)
	}
}
