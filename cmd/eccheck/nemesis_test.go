package main

import (
	"strings"
	"testing"
)

// TestNemesisUsageErrors checks the errors found before any engine is
// asked: they exit 3.
func TestNemesisUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"partition/unknown shape/exit 3", []string{"nemesis", "partition", "--shape", "star"}, "want halves, isolate, ring, bridge, one-way"},
		{"partition/no shape nor grudge/exit 3", []string{"nemesis", "partition"}, "exactly one of"},
		{"partition/shape and grudge/exit 3", []string{"nemesis", "partition", "--shape", "halves", "--grudge", "n1=n2"}, "exactly one of"},
		{"delay/negative/exit 3", []string{"nemesis", "delay", "--node", "n1", "--ms", "-1"}, "want 0 or more"},
		{"loss/over 100/exit 3", []string{"nemesis", "loss", "--node", "n1", "--percent", "101"}, "want 0 to 100"},
		{"bandwidth/bad rate/exit 3", []string{"nemesis", "bandwidth", "--node", "n1", "--rate", "fast"}, "--rate"},
		{"cluster/bad name/exit 3", []string{"nemesis", "heal", "--cluster-name", "Bad Name"}, "cluster name"},
		{"cluster/old spelling with a bad name/exit 3", []string{"nemesis", "heal", "--cluster", "Bad Name"}, "cluster name"},
		{"ssh/no hosts/exit 3", []string{"nemesis", "heal", "--cluster", "ssh"}, "--cluster ssh needs --hosts"},
		{"ssh/hosts without ssh/exit 3", []string{"nemesis", "heal", "--hosts", "h1"}, "--hosts goes with --cluster ssh"},
		{"ssh/cluster down without hosts/exit 3", []string{"cluster", "down", "--cluster", "ssh"}, "--cluster ssh needs --hosts"},
		{"ssh/cluster up other system/exit 3", []string{"cluster", "up", "--cluster", "ssh", "--hosts", "h1,h2,h3", "--db", "galera"}, "--db galera does not run on SSH hosts yet"},
		{"ssh/cluster up nodes and hosts/exit 3", []string{"cluster", "up", "--cluster", "ssh", "--hosts", "h1,h2", "--nodes", "3"}, "--nodes 3 with 2 --hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}
