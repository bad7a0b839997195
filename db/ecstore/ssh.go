// This file runs ecstore on hosts of the user's, reached over SSH: the
// static eccheck binary uploaded to the cluster's directory on each host,
// one `eccheck store serve` per host as a supervised process, and the
// faults of nemesis.Cluster done with the hosts' own tools (package
// sshhost).

package ecstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path"
	"strings"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/db/sshcluster"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
)

// sshSystem is an ecstore cluster on SSH hosts: node i runs on host i,
// listening on the host's address, port 7001 (Raft on 8001).
type sshSystem struct {
	clients
	*sshcluster.Cluster
}

var (
	_ db.SSHOpener    = DB{}
	_ db.Hosted       = (*sshSystem)(nil)
	_ db.System       = (*sshSystem)(nil)
	_ db.NodeStatus   = (*sshSystem)(nil)
	_ nemesis.Cluster = (*sshSystem)(nil)
)

// Paths of a cluster on a host, below sshhost.ClusterDir.
func sshBinary(cluster string) string { return path.Join(sshhost.ClusterDir(cluster), "eccheck") }
func sshToken(cluster string) string  { return path.Join(sshhost.ClusterDir(cluster), "token") }

// startSSH brings up the cluster on env.Hosts: it logs in, checks each
// host's tools, uploads the static binary, a random cluster token and the
// manifest, starts the nodes and waits for their health. On failure it
// removes what it made.
func (s *Settings) startSSH(ctx context.Context, env db.Env) (db.System, error) {
	cl, err := sshcluster.New(ctx, env, port, nil)
	if err != nil {
		return nil, err
	}
	name, hosts, nodes := cl.Name(), cl.Hosts(), cl.Nodes()
	sys := &sshSystem{Cluster: cl}
	sys.clients = clients{nodes: nodes, addr: cl.Addr,
		sessions: s.Sessions, timeout: env.OpTimeout, idem: env.IdempotencyKeys, mvr: s.Mode == store.ModeMVR}
	bin, cleanup, err := docker.StaticBinary(ctx, &docker.BuildOptions{Progress: env.Progress})
	if err != nil {
		sshcluster.CloseHosts(hosts)
		return nil, fmt.Errorf("the eccheck binary to copy to the hosts: %w (that flag is eccheck images build's; for --cluster ssh run an eccheck built with CGO_ENABLED=0 go build ./cmd/eccheck)", err)
	}
	defer cleanup()
	var tok [32]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:]) + "\n"
	var extra []string
	if env.OpTimeout > 0 {
		extra = []string{"--request-timeout", (env.OpTimeout / 2).String(), "--anti-entropy", "500ms", "--failover-timeout", "1s"}
	}
	extra = append(extra, "--primary-reads", s.PrimaryReads)
	for i, n := range nodes {
		cmd := append([]string{sshBinary(name), "store", "serve"}, s.sshArgs(name, i, nodes, cl.IPs)...)
		cl.Specs = append(cl.Specs, sshhost.ProcessSpec{Cluster: name, Name: n, Cmd: append(cmd, extra...)})
	}
	cl.Ready = sys.waitHealthy
	m := cl.Manifest(Name)
	m.Mode = s.Mode
	env.Logf("starting cluster %s on %d SSH hosts: %d %s nodes (%s)", name, len(hosts), len(nodes), s.Mode, strings.Join(env.Hosts, ", "))
	if err := sshcluster.Each(len(hosts), func(i int) error {
		f, err := os.Open(bin)
		if err != nil {
			return err
		}
		defer f.Close()
		h := hosts[i]
		if err := h.Upload(ctx, sshBinary(name), 0o755, f); err != nil {
			return err
		}
		if err := h.Upload(ctx, sshToken(name), 0o600, strings.NewReader(token)); err != nil {
			return err
		}
		return h.Upload(ctx, path.Join(sshcluster.NodeDir(name, nodes[i]), "clock"), 0o644, strings.NewReader("+0s\n"))
	}); err != nil {
		return nil, cl.Abandon(ctx, fmt.Errorf("set up cluster %s: %w", name, err))
	}
	if err := cl.WriteManifest(ctx, m); err != nil {
		return nil, cl.Abandon(ctx, fmt.Errorf("set up cluster %s: %w", name, err))
	}
	wait := env.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	if err := sshcluster.Each(len(hosts), func(i int) error { return cl.StartNode(ctx, i, wait) }); err != nil {
		return nil, cl.Abandon(ctx, fmt.Errorf("start the %s cluster on SSH hosts: %w", s.Mode, err))
	}
	var up []string
	for i, n := range nodes {
		up = append(up, n+"="+cl.Addrs[i])
	}
	env.Logf("cluster up: %d %s nodes on SSH hosts, cluster %s (%s)", len(nodes), s.Mode, name, strings.Join(up, ", "))
	return sys, nil
}

// sshArgs are node i's flags of `eccheck store serve` on its host.
func (s *Settings) sshArgs(cluster string, i int, nodes []string, ips []netip.Addr) []string {
	var peers []string
	for j, p := range nodes {
		if j != i {
			peers = append(peers, fmt.Sprintf("%s=%s:%d", p, ips[j], port))
		}
	}
	dir := sshcluster.NodeDir(cluster, nodes[i])
	args := []string{
		"--id", nodes[i],
		"--listen", fmt.Sprintf("%s:%d", ips[i], port),
		"--peers", strings.Join(peers, ","),
		"--mode", s.Mode,
		"--data-dir", path.Join(dir, "data"),
		"--clock-file", path.Join(dir, "clock"),
		"--token-file", sshToken(cluster),
	}
	return s.serveFlags(args)
}

// waitHealthy waits until node i's health says ready, for d at most.
func (sys *sshSystem) waitHealthy(ctx context.Context, i int, d time.Duration) error {
	deadline := time.Now().Add(d)
	addr := sys.Addrs[i]
	for {
		st, err := health(ctx, addr)
		if err == nil && st.Ready {
			return nil
		}
		last := "not ready: " + st.Detail
		if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("does not answer at %s after %v (%s)", addr, d, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clockText is what the clock file holds for offset: "+90s", "-250ms".
func clockText(offset time.Duration) string {
	if offset >= 0 {
		return "+" + offset.String()
	}
	return offset.String()
}

// SetClock writes node's clock file on its host (atomically: the node
// never reads half of it), or with --ssh-host-clock sets the host's own
// clock.
func (sys *sshSystem) SetClock(node string, offset time.Duration) error {
	if sys.HostClock() {
		return sys.SetHostClock(node, offset)
	}
	if err := sys.WriteNodeFile(node, "clock", clockText(offset)+"\n"); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// NodeStatus reports node's clock offset and hook delays, from its health.
func (sys *sshSystem) NodeStatus(ctx context.Context, node string) (time.Duration, map[string]int64, error) {
	i, err := sys.Node(node)
	if err != nil {
		return 0, nil, err
	}
	st, err := health(ctx, sys.Addrs[i])
	if err != nil {
		return 0, nil, err
	}
	return time.Duration(st.ClockOffsetNs), st.DelaysMs, nil
}

// Nodes returns the node names, n1 on the first host.
func (sys *sshSystem) Nodes() []string { return sys.Cluster.Nodes() }

// OpenSSH takes over the ecstore cluster running on hosts: the manifest
// its start left in the cluster's directory on the first host says its
// nodes, addresses and commands. With name "" the hosts must run one
// cluster.
func (DB) OpenSSH(ctx context.Context, hosts []string, cfg sshhost.Config, name string) (db.System, error) {
	cl, m, err := sshcluster.Open(ctx, hosts, cfg, name, Name)
	if err != nil {
		return nil, err
	}
	sys := &sshSystem{Cluster: cl}
	sys.clients = clients{nodes: cl.Nodes(), addr: cl.Addr, mvr: m.Mode == store.ModeMVR}
	sys.Ready = sys.waitHealthy
	return sys, nil
}
