package ecstore

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSSHNodeCommand(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	nodes := []string{"n1", "n2", "n3"}
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"raft/n2/listens on its host, peers on theirs, token file", Settings{Mode: "raft", W: 1, R: 1, SetImpl: "orset"}, []string{
			"--id n2", "--listen 10.0.0.2:7001", "--peers n1=10.0.0.1:7001,n3=10.0.0.3:7001", "--mode raft",
			"--data-dir /var/lib/eccheck/c1/n2/data", "--clock-file /var/lib/eccheck/c1/n2/clock", "--token-file /var/lib/eccheck/c1/token",
		}},
		{"lww quorums and g-counters/n2/passed on", Settings{Mode: "lww", N: 2, W: 2, R: 2, CounterImpl: "g"}, []string{"--n 2", "--w 2", "--r 2", "--counter-impl g"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := strings.Join(tc.s.sshArgs("c1", 1, nodes, ips), " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("%q lacks %q", line, w)
				}
			}
		})
	}
}

func TestClockText(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{90 * time.Second, "+1m30s"}, {-250 * time.Millisecond, "-250ms"}, {0, "+0s"}} {
		if got := clockText(tc.d); got != tc.want {
			t.Errorf("clock file/%v/%q: got %q", tc.d, tc.want, got)
		}
	}
}

func TestBackends(t *testing.T) {
	if !slices.Equal(DB{}.Backends(), []string{"local", "docker", "ssh"}) {
		t.Errorf("backends/ecstore/local, docker and ssh: %v", DB{}.Backends())
	}
}
