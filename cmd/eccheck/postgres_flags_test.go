package main

import (
	"strings"
	"testing"
)

// The --pg-* flags and the Postgres faults are checked before anything
// starts: each mistake is a usage error that names its flag.
func TestPostgresFlagsUsage(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"--pg-sync remote_apply", "the --pg-* flags go with --db postgres"},
		{"--db ecstore --pg-read replica --pg-promote n2", "--pg-read, --pg-promote: the --pg-* flags go with --db postgres"},
		{"--db postgres --cluster docker --pg-standbys n2", "goes with --pg-sync remote_apply"},
		{"--db postgres --cluster docker --pg-sync remote_apply --pg-standbys n1", "--pg-standbys n1: want replicas, n2 to n3"},
		{"--db postgres --cluster docker --pg-promote n4", "--pg-promote n4: want a replica"},
		{"--db postgres --cluster docker --nemesis failover --nemesis-interval 1s --time-limit 10s", "carries out 4 failovers, but each kills a primary for good and 3 nodes allow 2"},
		{"--db postgres --cluster docker --nemesis failover --nemesis-interval 0s", "--nemesis-interval 0s: want a positive duration"},
		{"--pg-rejoin", "--pg-rejoin: the --pg-* flags go with --db postgres"},
		{"--nemesis lag", "--nemesis lag: pausing a replica's replay needs --db postgres"},
		{"--db postgres --cluster docker --nodes 1 --nemesis lag", "--nemesis lag pauses a replica's replay: --nodes 2 or more"},
		{"--db postgres --cluster docker --nemesis flood", "unknown fault"},
		{"--db postgres --cluster docker --pg-apply-delay n5=1s", "--pg-apply-delay n5: want replicas"},
		{"--db postgres --cluster docker --pg-apply-delay soon", "want a delay such as 50ms"},
		{"--db postgres", "add --cluster docker"},
		{"--db postgres --cluster docker --pg-read nearest", "--pg-read"},
		{"--db postgres --cluster docker --pg-sync quorum", "--pg-sync"},
		{"--db postgres --cluster docker --nodes 1 --pg-read replica", "needs a replica"},
		{"--db postgres --cluster docker --workload list-append --pg-isolation snapshot", `--pg-isolation "snapshot": want read-committed, repeatable-read, serializable`},
		{"--workload list-append --sessions", "session tokens cover single-key operations, not transactions"},
		{"--db etcd --cluster docker --workload register,list-append", "etcd does not run transactions yet"},
		{"--db redis --cluster docker --workload list-append", "redis does not run transactions yet"},
		{"--db redis --cluster docker --workload rw-register", "--workload rw-register: redis does not run transactions yet"},
		{"--db etcd --cluster docker --workload set,rw-register", "--workload rw-register: etcd does not run transactions yet"},
		{"--workload rw-register --sessions", "--sessions and --workload rw-register: session tokens cover single-key operations, not transactions"},
		{"--workload list-append,rw-register", "list-append and rw-register in one run"},
		{"--db postgres --cluster docker --workload rw-register --pg-isolation snapshot", `--pg-isolation "snapshot"`},
		{"--db galera --cluster docker --workload list-append --galera-isolation serializable", "Galera does not certify serializable transactions across nodes"},
		{"--db postgres --cluster docker --workload list-append --consistency-model causal", "--consistency-model"},
	} {
		code, _, stderr := runCLI(t, append([]string{"test", "--out", t.TempDir()}, strings.Fields(tc.name)...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("flags/%s/usage error naming %q: exit %d, %s", tc.name, tc.want, code, stderr)
		}
	}
}
