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
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
)

// sshSystem is an ecstore cluster on SSH hosts: node i runs on host i,
// listening on the host's address, port 7001 (Raft on 8001).
type sshSystem struct {
	clients
	name  string // the cluster: its directory sshhost.ClusterDir(name) on every host
	hosts []*sshhost.Host
	ips   []netip.Addr // where the other hosts reach host i
	specs []sshhost.ProcessSpec
	keep  bool
	// opened: taken over by a command that did not start it (Close only
	// closes the connections).
	opened bool
	logf   func(string, ...any)
}

var (
	_ db.SSHOpener    = DB{}
	_ db.Hosted       = (*sshSystem)(nil)
	_ db.System       = (*sshSystem)(nil)
	_ db.NodeStatus   = (*sshSystem)(nil)
	_ nemesis.Cluster = (*sshSystem)(nil)
)

// sshManifest is what a cluster on SSH hosts records in its directory on
// each host (cluster.json), so that `eccheck nemesis` and `eccheck
// cluster status` can take it over: the nodes, the hosts as given, the
// addresses and each node's command.
type sshManifest struct {
	DB    string     `json:"db"`
	Mode  string     `json:"mode"`
	Nodes []string   `json:"nodes"`
	Hosts []string   `json:"hosts"`
	IPs   []string   `json:"ips"`
	Addrs []string   `json:"addrs"`
	Cmds  [][]string `json:"cmds"`
}

// Paths of a cluster on a host, below sshhost.ClusterDir.
func sshBinary(cluster string) string     { return path.Join(sshhost.ClusterDir(cluster), "eccheck") }
func sshToken(cluster string) string      { return path.Join(sshhost.ClusterDir(cluster), "token") }
func sshManifestOf(c string) string       { return path.Join(sshhost.ClusterDir(c), "cluster.json") }
func sshNodeDir(cluster, n string) string { return path.Join(sshhost.ClusterDir(cluster), n) }

// sshTimeout bounds one fault's commands on the hosts.
const sshTimeout = 45 * time.Second

// DialHosts logs in to every host at once as cfg says; on error it closes
// those it reached and returns the first host's error (sshhost words
// them: unreachable, refused key, unknown or changed host key).
func DialHosts(ctx context.Context, hosts []string, cfg sshhost.Config) ([]*sshhost.Host, error) {
	out := make([]*sshhost.Host, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { out[i], errs[i] = sshhost.Dial(ctx, h, cfg) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeHosts(out)
		return nil, err
	}
	return out, nil
}

func closeHosts(hs []*sshhost.Host) {
	for _, h := range hs {
		if h != nil {
			h.Close()
		}
	}
}

// each runs f on every host at once and joins the errors.
func each(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// hostName is host without its SSH port ("h1:2222" -> "h1").
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

// resolve finds the IPv4 address the other hosts reach h by: its name as
// given, when it is an address, else the name resolved on h itself
// (getent), since the control machine may see it through another network.
func resolve(ctx context.Context, h *sshhost.Host) (netip.Addr, error) {
	name := hostName(h.Name())
	if a, err := netip.ParseAddr(name); err == nil {
		switch a = a.Unmap(); {
		case !a.Is4():
			return netip.Addr{}, fmt.Errorf("host %s: only IPv4 addresses can be partitioned (iptables)", h.Name())
		case a.IsLoopback() || a.IsUnspecified():
			return netip.Addr{}, fmt.Errorf("host %s: the other hosts and eccheck's clients cannot reach it at %v: give the address they reach it by", h.Name(), a)
		}
		return a, nil
	}
	out, _, err := h.Run(ctx, "getent ahostsv4 "+sshhost.Quote(name))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s on itself: %w", name, err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err == nil && a.Is4() && !a.IsLoopback() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("host %s resolves to no IPv4 address other than loopback on itself (getent ahostsv4 %s): give the address the other hosts reach it by", h.Name(), name)
}

// startSSH brings up the cluster on env.Hosts: it logs in, checks each
// host's tools, uploads the static binary, a random cluster token and the
// manifest, starts the nodes and waits for their health. On failure it
// removes what it made.
func (s *Settings) startSSH(ctx context.Context, env db.Env) (db.System, error) {
	name := env.ClusterName
	if name == "" {
		name = docker.RunClusterName()
	}
	if w := env.SSH.Warning(); w != "" {
		env.Logf("warning: %s", w)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hosts, err := DialHosts(dctx, env.Hosts, env.SSH)
	if err != nil {
		return nil, err
	}
	nodes := make([]string, len(hosts))
	for i := range hosts {
		nodes[i] = fmt.Sprintf("n%d", i+1)
	}
	sys := &sshSystem{name: name, hosts: hosts, ips: make([]netip.Addr, len(hosts)), keep: env.Keep, logf: env.Logf}
	addrs := make([]string, len(hosts))
	if err := each(len(hosts), func(i int) error {
		if err := hosts[i].Check(dctx); err != nil {
			return err
		}
		l, err := hosts[i].Leftovers(dctx)
		if err != nil {
			return err
		}
		if slices.Contains(l.Dirs, sshhost.ClusterDir(name)) {
			return db.Usagef("cluster %s already exists on %s (%s): inject faults into it with 'eccheck nemesis', give another --cluster-name, or remove it with 'eccheck cluster down --cluster ssh --hosts ...'", name, hosts[i].Name(), sshhost.ClusterDir(name))
		}
		ip, err := resolve(dctx, hosts[i])
		sys.ips[i] = ip
		addrs[i] = net.JoinHostPort(hostName(env.Hosts[i]), strconv.Itoa(port))
		return err
	}); err != nil {
		closeHosts(hosts)
		return nil, err
	}
	sys.clients = clients{nodes: nodes, addr: func(n string) string { return addrs[nodeIndex(nodes, n)] },
		sessions: s.Sessions, timeout: env.OpTimeout, idem: env.IdempotencyKeys, mvr: s.Mode == store.ModeMVR}
	bin, cleanup, err := docker.StaticBinary(ctx, &docker.BuildOptions{Progress: env.Progress})
	if err != nil {
		closeHosts(hosts)
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
	m := sshManifest{DB: Name, Mode: s.Mode, Nodes: nodes, Hosts: env.Hosts, Addrs: addrs}
	for i, n := range nodes {
		m.IPs = append(m.IPs, sys.ips[i].String())
		cmd := append([]string{sshBinary(name), "store", "serve"}, s.sshArgs(name, i, nodes, sys.ips)...)
		cmd = append(cmd, extra...)
		m.Cmds = append(m.Cmds, cmd)
		sys.specs = append(sys.specs, sshhost.ProcessSpec{Cluster: name, Name: n, Cmd: cmd})
	}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	env.Logf("starting cluster %s on %d SSH hosts: %d %s nodes (%s)", name, len(hosts), len(nodes), s.Mode, strings.Join(env.Hosts, ", "))
	fail := func(err error) (db.System, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if rerr := sys.remove(rctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		closeHosts(hosts)
		return nil, err
	}
	if err := each(len(hosts), func(i int) error {
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
		if err := h.Upload(ctx, sshManifestOf(name), 0o644, strings.NewReader(string(manifest))); err != nil {
			return err
		}
		return h.Upload(ctx, path.Join(sshNodeDir(name, nodes[i]), "clock"), 0o644, strings.NewReader("+0s\n"))
	}); err != nil {
		return fail(fmt.Errorf("set up cluster %s: %w", name, err))
	}
	wait := env.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	if err := each(len(hosts), func(i int) error {
		if _, err := hosts[i].Start(ctx, sys.specs[i]); err != nil {
			return err
		}
		return sys.waitHealthy(ctx, i, wait)
	}); err != nil {
		return fail(fmt.Errorf("start the %s cluster on SSH hosts: %w", s.Mode, err))
	}
	var up []string
	for i, n := range nodes {
		up = append(up, n+"="+addrs[i])
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
	dir := sshNodeDir(cluster, nodes[i])
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

// nodeIndex is node's position in nodes, or -1.
func nodeIndex(nodes []string, node string) int {
	for i, n := range nodes {
		if n == node {
			return i
		}
	}
	return -1
}

// Nodes returns the node names, n1 on the first host.
func (sys *sshSystem) Nodes() []string { return slices.Clone(sys.nodes) }

// node returns node's index, or an error naming the nodes.
func (sys *sshSystem) node(node string) (int, error) {
	i := nodeIndex(sys.nodes, node)
	if i < 0 {
		return 0, fmt.Errorf("no node %q in cluster %s (nodes: %s)", node, sys.name, strings.Join(sys.nodes, ", "))
	}
	return i, nil
}

// waitHealthy waits until node i's health says ready, for d at most.
func (sys *sshSystem) waitHealthy(ctx context.Context, i int, d time.Duration) error {
	deadline := time.Now().Add(d)
	addr := sys.addr(sys.nodes[i])
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
			logEnd := ""
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if out, _, lerr := sys.hosts[i].Sudo(lctx, "tail -n 20 "+sshhost.Quote(sshhost.LogFile(sys.name, sys.nodes[i]))); lerr == nil {
				logEnd = "; the end of its log:\n" + out
			}
			return fmt.Errorf("node %s on %s does not answer at %s after %v (%s)%s", sys.nodes[i], sys.hosts[i].Name(), addr, d, last, logEnd)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Partition drops, on each node's host, the packets from and to the
// hosts of the nodes its grudge names (both ways: iptables rules on the
// host); hosts with no grudge are healed.
func (sys *sshSystem) Partition(grudge map[string][]string) error {
	peers := make([][]netip.Addr, len(sys.nodes))
	for at, froms := range grudge {
		i, err := sys.node(at)
		if err != nil {
			return err
		}
		for _, f := range froms {
			j, err := sys.node(f)
			if err != nil {
				return err
			}
			peers[i] = append(peers[i], sys.ips[j])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	return each(len(sys.hosts), func(i int) error { return sys.hosts[i].Partition(ctx, peers[i]) })
}

// Heal flushes eccheck's iptables chain on every host.
func (sys *sshSystem) Heal() error {
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	return each(len(sys.hosts), func(i int) error { return sys.hosts[i].Heal(ctx) })
}

// clockText is what the clock file holds for offset: "+90s", "-250ms".
func clockText(offset time.Duration) string {
	if offset >= 0 {
		return "+" + offset.String()
	}
	return offset.String()
}

// SetClock writes node's clock file on its host (atomically: the node
// never reads half of it).
func (sys *sshSystem) SetClock(node string, offset time.Duration) error {
	i, err := sys.node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	if err := sys.hosts[i].Upload(ctx, path.Join(sshNodeDir(sys.name, node), "clock"), 0o644, strings.NewReader(clockText(offset)+"\n")); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// Kill sends SIGKILL to node's process group; a node that is not running
// is left as it is.
func (sys *sshSystem) Kill(node string) error {
	i, err := sys.node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	if err := sys.hosts[i].Kill(ctx, sys.name, node); err != nil && !errors.Is(err, sshhost.ErrNotRunning) {
		return err
	}
	return nil
}

// Start starts a killed node again with its first command and waits
// until it answers; a running (or paused) node is left as it is.
func (sys *sshSystem) Start(node string) error {
	i, err := sys.node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	st, err := sys.hosts[i].Status(ctx, sys.name, node)
	if err != nil {
		return err
	}
	if st.State == sshhost.Running || st.State == sshhost.Paused {
		return nil
	}
	if _, err := sys.hosts[i].Start(ctx, sys.specs[i]); err != nil {
		return err
	}
	return sys.waitHealthy(ctx, i, 30*time.Second)
}

// Pause stops node's process group (SIGSTOP).
func (sys *sshSystem) Pause(node string) error {
	i, err := sys.node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	return sys.hosts[i].Pause(ctx, sys.name, node)
}

// Resume continues node's process group (SIGCONT); a node that is not
// running is left as it is.
func (sys *sshSystem) Resume(node string) error {
	i, err := sys.node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	if err := sys.hosts[i].Resume(ctx, sys.name, node); err != nil && !errors.Is(err, sshhost.ErrNotRunning) {
		return err
	}
	return nil
}

// NodeStatus reports node's clock offset and hook delays, from its health.
func (sys *sshSystem) NodeStatus(ctx context.Context, node string) (time.Duration, map[string]int64, error) {
	i, err := sys.node(node)
	if err != nil {
		return 0, nil, err
	}
	st, err := health(ctx, sys.addr(sys.nodes[i]))
	if err != nil {
		return 0, nil, err
	}
	return time.Duration(st.ClockOffsetNs), st.DelaysMs, nil
}

func (sys *sshSystem) Info() db.Info { return db.Info{ClusterName: sys.name} }

// Close heals every host, saves each node's log into logDir/<node>.log
// (when logDir is set), and, unless the cluster is kept, kills the nodes
// and removes eccheck's rules and the cluster's directory (and eccheck's
// directory when nothing else is left in it).
func (sys *sshSystem) Close(ctx context.Context, logDir string) error {
	defer closeHosts(sys.hosts)
	if sys.opened {
		return nil
	}
	var errs []error
	for _, h := range sys.hosts {
		if err := h.Heal(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, each(len(sys.hosts), func(i int) error {
			f, err := os.Create(filepath.Join(logDir, sys.nodes[i]+".log"))
			if err != nil {
				return err
			}
			defer f.Close()
			if err := sys.hosts[i].Download(ctx, sshhost.LogFile(sys.name, sys.nodes[i]), f); err != nil {
				return fmt.Errorf("log of %s: %w", sys.nodes[i], err)
			}
			return nil
		}))
	}
	if sys.keep {
		sys.logf("cluster %s kept on %s (remove it with 'eccheck cluster down --cluster ssh --hosts ...')", sys.name, sys.hostList())
	} else {
		errs = append(errs, sys.remove(ctx))
	}
	return errors.Join(errs...)
}

func (sys *sshSystem) hostList() string {
	var names []string
	for _, h := range sys.hosts {
		names = append(names, h.Name())
	}
	return strings.Join(names, ",")
}

// remove kills the cluster's nodes, removes eccheck's iptables chain and
// jumps and qdiscs, the cluster's directory, and eccheck's directory when
// nothing else is in it: on every host at once.
func (sys *sshSystem) remove(ctx context.Context) error {
	return each(len(sys.hosts), func(i int) error {
		h := sys.hosts[i]
		if h == nil {
			return nil
		}
		var errs []error
		for _, n := range sys.nodes {
			if err := h.Kill(ctx, sys.name, n); err != nil && !errors.Is(err, sshhost.ErrNotRunning) {
				errs = append(errs, err)
			}
		}
		errs = append(errs, h.RemoveRules(ctx), h.ClearNetem(ctx))
		if _, _, err := h.Sudo(ctx, "rm -rf -- "+sshhost.Quote(sshhost.ClusterDir(sys.name))+" && { [ ! -d "+sshhost.Root+" ] || rmdir --ignore-fail-on-non-empty -- "+sshhost.Root+"; }"); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// OpenSSH takes over the ecstore cluster running on hosts: the manifest
// its start left in the cluster's directory on the first host says its
// nodes, addresses and commands. With name "" the hosts must run one
// cluster.
func (DB) OpenSSH(ctx context.Context, hosts []string, cfg sshhost.Config, name string) (db.System, error) {
	hs, err := DialHosts(ctx, hosts, cfg)
	if err != nil {
		return nil, err
	}
	sys, err := openSSH(ctx, hs, hosts, name)
	if err != nil {
		closeHosts(hs)
		return nil, err
	}
	return sys, nil
}

func openSSH(ctx context.Context, hs []*sshhost.Host, hosts []string, name string) (*sshSystem, error) {
	l, err := hs[0].Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range l.Dirs {
		if d != sshhost.Root {
			names = append(names, path.Base(d))
		}
	}
	switch {
	case name == "" && len(names) == 1:
		name = names[0]
	case name == "" && len(names) == 0:
		return nil, db.Usagef("no cluster on %s (nothing under %s): start one with 'eccheck cluster up --cluster ssh --hosts ...'", hs[0].Name(), sshhost.Root)
	case name == "":
		return nil, db.Usagef("%s runs several clusters (%s): pick one with --cluster-name", hs[0].Name(), strings.Join(names, ", "))
	case !slices.Contains(names, name):
		return nil, db.Usagef("no cluster %s on %s (clusters there: %s)", name, hs[0].Name(), orNone(names))
	}
	var b strings.Builder
	if err := hs[0].Download(ctx, sshManifestOf(name), &b); err != nil {
		return nil, fmt.Errorf("cluster %s on %s: %w", name, hs[0].Name(), err)
	}
	var m sshManifest
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		return nil, fmt.Errorf("cluster %s on %s: %s: %w", name, hs[0].Name(), sshManifestOf(name), err)
	}
	if m.DB != Name {
		return nil, fmt.Errorf("cluster %s on %s runs %s, not ecstore", name, hs[0].Name(), m.DB)
	}
	if !slices.Equal(m.Hosts, hosts) || len(m.Nodes) != len(hosts) || len(m.IPs) != len(hosts) || len(m.Addrs) != len(hosts) || len(m.Cmds) != len(hosts) {
		return nil, db.Usagef("cluster %s runs on --hosts %s (node i on host i): give those hosts in that order", name, strings.Join(m.Hosts, ","))
	}
	sys := &sshSystem{name: name, hosts: hs, keep: true, opened: true, logf: func(string, ...any) {}}
	for i, n := range m.Nodes {
		ip, err := netip.ParseAddr(m.IPs[i])
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %s: address of %s: %w", name, sshManifestOf(name), n, err)
		}
		sys.ips = append(sys.ips, ip)
		sys.specs = append(sys.specs, sshhost.ProcessSpec{Cluster: name, Name: n, Cmd: m.Cmds[i]})
	}
	addrs := m.Addrs
	sys.clients = clients{nodes: m.Nodes, addr: func(n string) string { return addrs[nodeIndex(m.Nodes, n)] }, mvr: m.Mode == store.ModeMVR}
	return sys, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Name returns the cluster's name (its directory's on the hosts).
func (sys *sshSystem) Name() string { return sys.name }

// HostedNodes says where each node runs and answers, and its process's
// state.
func (sys *sshSystem) HostedNodes(ctx context.Context) ([]db.HostedNode, error) {
	out := make([]db.HostedNode, len(sys.nodes))
	err := each(len(sys.hosts), func(i int) error {
		st, err := sys.hosts[i].Status(ctx, sys.name, sys.nodes[i])
		out[i] = db.HostedNode{Node: sys.nodes[i], Host: sys.hosts[i].Name(), Addr: sys.addr(sys.nodes[i]), State: string(st.State)}
		return err
	})
	return out, err
}

// Log returns node's log, as its host holds it.
func (sys *sshSystem) Log(ctx context.Context, node string) (string, error) {
	i, err := sys.node(node)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := sys.hosts[i].Download(ctx, sshhost.LogFile(sys.name, node), &b); err != nil {
		return "", err
	}
	return b.String(), nil
}
