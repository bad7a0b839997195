// Package sshcluster is what every system's cluster on SSH hosts (--cluster
// ssh) shares: node i on host i, logged in to at once; a manifest in the
// cluster's directory on every host, so that later commands can take the
// cluster over; each node one supervised process (package sshhost); the
// faults of nemesis.Cluster done with the hosts' own tools; teardown that
// fetches the logs and leaves the hosts as they were.
//
// A system's SSH setup makes a [Cluster] with [New], uploads what its nodes
// need, fills in [Cluster.Specs] and [Cluster.Ready], writes the manifest
// with [Cluster.WriteManifest] and starts the nodes with
// [Cluster.StartNode]; it embeds the Cluster in its db.System.
package sshcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/sshhost"
)

// Timeout bounds one fault's commands on the hosts.
const Timeout = 45 * time.Second

// Manifest is what a cluster records in its directory on each host
// (cluster.json): the system, the nodes, the hosts as given, the
// addresses, and each node's process; System holds what the system alone
// needs. Nothing secret goes in it (it is world-readable).
type Manifest struct {
	DB    string     `json:"db"`
	Mode  string     `json:"mode,omitempty"`
	Nodes []string   `json:"nodes"`
	Hosts []string   `json:"hosts"`
	IPs   []string   `json:"ips"`
	Addrs []string   `json:"addrs"`
	Cmds  [][]string `json:"cmds"`
	// User runs the nodes' processes (empty: root); Env is added to their
	// environment.
	User string   `json:"user,omitempty"`
	Env  []string `json:"env,omitempty"`
	// HostClock: clock faults move the hosts' own clocks.
	HostClock bool            `json:"host_clock,omitempty"`
	System    json.RawMessage `json:"system,omitempty"`
}

// Paths of a cluster on a host, below sshhost.ClusterDir.
func ManifestPath(cluster string) string {
	return path.Join(sshhost.ClusterDir(cluster), "cluster.json")
}

// NodeDir is node's directory on its host.
func NodeDir(cluster, node string) string { return path.Join(sshhost.ClusterDir(cluster), node) }

// Cluster is a cluster on SSH hosts: node i (n1, n2...) runs on host i as
// the process Specs[i].
type Cluster struct {
	name  string
	hosts []*sshhost.Host
	// IPs are where the other hosts reach host i; Addrs where eccheck's
	// clients reach node i.
	IPs   []netip.Addr
	Addrs []string
	nodes []string
	// Specs are the nodes' processes.
	Specs []sshhost.ProcessSpec
	// Ready waits, at most d, until node i answers after its process
	// started; nil means at once.
	Ready func(ctx context.Context, i int, d time.Duration) error
	// OnStart, when set, runs on node i's host before its process starts
	// again after a kill (a stale lock file to remove).
	OnStart func(ctx context.Context, i int) error
	keep    bool
	// hostClock: clock faults move the hosts' own clocks
	// (--ssh-host-clock).
	hostClock bool
	// grudge is the partition in force, as this process made it.
	gmu    sync.Mutex
	grudge map[string][]string
	// opened: taken over by a command that did not start it (Close only
	// closes the connections).
	opened bool
	Logf   func(string, ...any)
}

// Dial logs in to every host at once as cfg says; on error it closes
// those it reached and returns every host's error (sshhost words them:
// unreachable, refused key, unknown or changed host key).
func Dial(ctx context.Context, hosts []string, cfg sshhost.Config) ([]*sshhost.Host, error) {
	out := make([]*sshhost.Host, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { out[i], errs[i] = sshhost.Dial(ctx, h, cfg) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		CloseHosts(out)
		return nil, err
	}
	return out, nil
}

// CloseHosts closes the connections to hs.
func CloseHosts(hs []*sshhost.Host) {
	for _, h := range hs {
		if h != nil {
			h.Close()
		}
	}
}

// Each runs f for 0..n-1 at once and joins the errors.
func Each(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// HostName is host without its SSH port ("h1:2222" -> "h1").
func HostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

// Resolve finds the IPv4 address the other hosts reach h by: its name as
// given, when it is an address, else the name resolved on h itself
// (getent), since the control machine may see it through another network.
func Resolve(ctx context.Context, h *sshhost.Host) (netip.Addr, error) {
	name := HostName(h.Name())
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

// New logs in to env.Hosts, checks each host's tools (and check's, when
// not nil, with ctx: it may install a package) and, with env.HostClock,
// that root may set its clock, refuses a cluster of the same name
// already there, and resolves each host's address; node i (n1...)
// answers clients at the host's name and port. On error nothing of the
// cluster's was put on the hosts (a package check may have installed).
func New(ctx context.Context, env db.Env, port int, check func(ctx context.Context, h *sshhost.Host) error) (*Cluster, error) {
	name := env.ClusterName
	if name == "" {
		name = docker.RunClusterName()
	}
	if w := env.SSH.Warning(); w != "" {
		env.Logf("warning: %s", w)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hosts, err := Dial(dctx, env.Hosts, env.SSH)
	if err != nil {
		return nil, err
	}
	c := &Cluster{name: name, hosts: hosts, IPs: make([]netip.Addr, len(hosts)), Addrs: make([]string, len(hosts)), keep: env.Keep, hostClock: env.HostClock, Logf: env.Logf}
	for i := range hosts {
		c.nodes = append(c.nodes, fmt.Sprintf("n%d", i+1))
	}
	// The quick refusals first, on every host; only then the system's
	// check, which may install a package (minutes, its own bound).
	if err := Each(len(hosts), func(i int) error {
		h := hosts[i]
		if err := h.Check(dctx); err != nil {
			return err
		}
		if c.hostClock {
			if err := h.ProbeClock(dctx); err != nil {
				return fmt.Errorf("--ssh-host-clock: %w", err)
			}
		}
		l, err := h.Leftovers(dctx)
		if err != nil {
			return err
		}
		if slices.Contains(l.Dirs, sshhost.ClusterDir(name)) {
			return db.Usagef("cluster %s already exists on %s (%s): inject faults into it with 'eccheck nemesis', give another --cluster-name, or remove it with 'eccheck cluster down --cluster ssh --hosts ...'", name, h.Name(), sshhost.ClusterDir(name))
		}
		c.IPs[i], err = Resolve(dctx, h)
		c.Addrs[i] = net.JoinHostPort(HostName(env.Hosts[i]), fmt.Sprint(port))
		return err
	}); err != nil {
		CloseHosts(hosts)
		return nil, err
	}
	if check != nil {
		if err := Each(len(hosts), func(i int) error { return check(ctx, hosts[i]) }); err != nil {
			CloseHosts(hosts)
			return nil, err
		}
	}
	return c, nil
}

// Name returns the cluster's name (its directory's on the hosts).
func (c *Cluster) Name() string { return c.name }

// Nodes returns the node names, n1 on the first host.
func (c *Cluster) Nodes() []string { return slices.Clone(c.nodes) }

// Hosts returns the hosts, node i on host i.
func (c *Cluster) Hosts() []*sshhost.Host { return c.hosts }

// Addr returns where clients reach node, or "".
func (c *Cluster) Addr(node string) string {
	if i := slices.Index(c.nodes, node); i >= 0 {
		return c.Addrs[i]
	}
	return ""
}

// Node returns node's index, or an error naming the nodes.
func (c *Cluster) Node(node string) (int, error) {
	i := slices.Index(c.nodes, node)
	if i < 0 {
		return 0, fmt.Errorf("no node %q in cluster %s (nodes: %s)", node, c.name, strings.Join(c.nodes, ", "))
	}
	return i, nil
}

// Manifest returns the cluster's manifest for system dbName, with its
// processes from Specs (every node's user and environment are the first
// one's).
func (c *Cluster) Manifest(dbName string) Manifest {
	m := Manifest{DB: dbName, Nodes: c.Nodes(), Addrs: c.Addrs, HostClock: c.hostClock}
	for i, h := range c.hosts {
		m.Hosts = append(m.Hosts, h.Name())
		m.IPs = append(m.IPs, c.IPs[i].String())
	}
	for _, s := range c.Specs {
		m.Cmds = append(m.Cmds, s.Cmd)
	}
	if len(c.Specs) > 0 {
		m.User, m.Env = c.Specs[0].User, c.Specs[0].Env
	}
	return m
}

// WriteManifest uploads m to every host.
func (c *Cluster) WriteManifest(ctx context.Context, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return Each(len(c.hosts), func(i int) error {
		return c.hosts[i].Upload(ctx, ManifestPath(c.name), 0o644, strings.NewReader(string(b)))
	})
}

// StartNode starts node i's process and waits, at most d, until it is
// ready.
func (c *Cluster) StartNode(ctx context.Context, i int, d time.Duration) error {
	if _, err := c.hosts[i].Start(ctx, c.Specs[i]); err != nil {
		return err
	}
	if c.Ready == nil {
		return nil
	}
	if err := c.Ready(ctx, i, d); err != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if out, _, lerr := c.hosts[i].Sudo(lctx, "tail -n 20 "+sshhost.Quote(sshhost.LogFile(c.name, c.nodes[i]))); lerr == nil {
			return fmt.Errorf("node %s on %s: %w; the end of its log:\n%s", c.nodes[i], c.hosts[i].Name(), err, out)
		}
		return fmt.Errorf("node %s on %s: %w", c.nodes[i], c.hosts[i].Name(), err)
	}
	return nil
}

// Abandon removes what a failed start made on the hosts and closes the
// connections; it returns err with the removal's errors.
func (c *Cluster) Abandon(ctx context.Context, err error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if rerr := c.remove(rctx); rerr != nil {
		err = errors.Join(err, rerr)
	}
	CloseHosts(c.hosts)
	return err
}

// Partition drops, on each node's host, the packets from the hosts of
// the nodes its grudge names (iptables rules on the host's INPUT): a
// grudge one way cuts one way, as in the Docker backend; hosts with no
// grudge are healed.
func (c *Cluster) Partition(grudge map[string][]string) error {
	peers := make([][]netip.Addr, len(c.nodes))
	for at, froms := range grudge {
		i, err := c.Node(at)
		if err != nil {
			return err
		}
		for _, f := range froms {
			j, err := c.Node(f)
			if err != nil {
				return err
			}
			peers[i] = append(peers[i], c.IPs[j])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c.gmu.Lock()
	c.grudge = map[string][]string{}
	for at, froms := range grudge {
		c.grudge[at] = slices.Clone(froms)
	}
	c.gmu.Unlock()
	return Each(len(c.hosts), func(i int) error { return c.hosts[i].Partition(ctx, peers[i]) })
}

// Grudge returns the partition in force, as this process made it (the
// nodes each node drops), or an empty map.
func (c *Cluster) Grudge() map[string][]string {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	out := map[string][]string{}
	for at, froms := range c.grudge {
		out[at] = slices.Clone(froms)
	}
	return out
}

// Heal flushes eccheck's iptables chain on every host and removes its
// qdiscs (the link faults of Link).
func (c *Cluster) Heal() error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c.gmu.Lock()
	c.grudge = nil
	c.gmu.Unlock()
	return Each(len(c.hosts), func(i int) error { return errors.Join(c.hosts[i].Heal(ctx), c.hosts[i].ClearNetem(ctx)) })
}

// Link makes node's host delay or drop (tc netem, as l says) the packets
// it sends to peer's host, or to every other node's host when peer is "",
// replacing the link fault node had; a zero l removes it. Where the
// host's kernel has no sch_netem the error wraps sshhost.ErrNoNetem and
// nothing was changed.
func (c *Cluster) Link(node, peer string, l sshhost.Link) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	var peers []netip.Addr
	for j := range c.nodes {
		if j != i && (peer == "" || c.nodes[j] == peer) {
			peers = append(peers, c.IPs[j])
		}
	}
	if peer != "" && len(peers) == 0 {
		if _, err := c.Node(peer); err != nil {
			return err
		}
		return fmt.Errorf("link of %s to itself", node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if l == (sshhost.Link{}) {
		return c.hosts[i].ClearNetem(ctx)
	}
	return c.hosts[i].Netem(ctx, peers, l)
}

// Kill sends SIGKILL to node's process group; a node that is not running
// is left as it is.
func (c *Cluster) Kill(node string) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.hosts[i].Kill(ctx, c.name, node); err != nil && !errors.Is(err, sshhost.ErrNotRunning) {
		return err
	}
	return nil
}

// Start starts a killed node again with its first command and waits
// until it is ready; a running (or paused) node is left as it is.
func (c *Cluster) Start(node string) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	st, err := c.hosts[i].Status(ctx, c.name, node)
	if err != nil {
		return err
	}
	if st.State == sshhost.Running || st.State == sshhost.Paused {
		return nil
	}
	if c.OnStart != nil {
		if err := c.OnStart(ctx, i); err != nil {
			return err
		}
	}
	return c.StartNode(ctx, i, 30*time.Second)
}

// Pause stops node's process group (SIGSTOP).
func (c *Cluster) Pause(node string) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return c.hosts[i].Pause(ctx, c.name, node)
}

// Resume continues node's process group (SIGCONT); a node that is not
// running is left as it is.
func (c *Cluster) Resume(node string) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.hosts[i].Resume(ctx, c.name, node); err != nil && !errors.Is(err, sshhost.ErrNotRunning) {
		return err
	}
	return nil
}

// WriteNodeFile writes body, atomically, as the file name in node's
// directory on its host (a clock file: the node never reads half of it).
func (c *Cluster) WriteNodeFile(node, name, body string) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return c.hosts[i].Upload(ctx, path.Join(NodeDir(c.name, node), name), 0o644, strings.NewReader(body))
}

// HostClock reports whether clock faults move the hosts' own clocks
// (--ssh-host-clock).
func (c *Cluster) HostClock() bool { return c.hostClock }

// SetHostClock sets the clock of node's host to the real time plus
// offset (0 puts it back): the clock every program there reads.
func (c *Cluster) SetHostClock(node string, offset time.Duration) error {
	i, err := c.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.hosts[i].SetClockOffset(ctx, offset); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// SecretFile is where every host keeps the cluster's secret (a
// password), in a file only root reads: never on a command line, which
// any user of the host could read.
func SecretFile(cluster string) string { return path.Join(sshhost.ClusterDir(cluster), "password") }

// WriteSecret uploads secret to [SecretFile] on every host (mode 0600).
func (c *Cluster) WriteSecret(ctx context.Context, secret string) error {
	return Each(len(c.hosts), func(i int) error {
		return c.hosts[i].Upload(ctx, SecretFile(c.name), 0o600, strings.NewReader(secret+"\n"))
	})
}

// OpenSecret is [Open] that also reads the cluster's secret from the
// first host ([SecretFile]).
func OpenSecret(ctx context.Context, hosts []string, cfg sshhost.Config, name, dbName string) (*Cluster, Manifest, string, error) {
	c, m, err := Open(ctx, hosts, cfg, name, dbName)
	if err != nil {
		return nil, m, "", err
	}
	var b strings.Builder
	if err := c.hosts[0].Download(ctx, SecretFile(c.name), &b); err != nil {
		CloseHosts(c.hosts)
		return nil, m, "", fmt.Errorf("cluster %s: its password: %w", c.name, err)
	}
	return c, m, strings.TrimSpace(b.String()), nil
}

// Info names the cluster for test.json.
func (c *Cluster) Info() db.Info { return db.Info{ClusterName: c.name} }

// Close heals every host, saves each node's log into logDir/<node>.log
// (when logDir is set), and, unless the cluster is kept, kills the nodes
// and removes eccheck's rules and the cluster's directory (and eccheck's
// directory when nothing else is left in it). A cluster taken over
// (Open) only closes its connections.
func (c *Cluster) Close(ctx context.Context, logDir string) error {
	defer CloseHosts(c.hosts)
	if c.opened {
		return nil
	}
	errs := []error{Each(len(c.hosts), func(i int) error {
		return errors.Join(c.hosts[i].Heal(ctx), c.hosts[i].ClearNetem(ctx))
	})}
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, Each(len(c.hosts), func(i int) error {
			f, err := os.Create(filepath.Join(logDir, c.nodes[i]+".log"))
			if err != nil {
				return err
			}
			defer f.Close()
			if err := c.hosts[i].Download(ctx, sshhost.LogFile(c.name, c.nodes[i]), f); err != nil {
				return fmt.Errorf("log of %s: %w", c.nodes[i], err)
			}
			return nil
		}))
	}
	if c.keep {
		c.Logf("cluster %s kept on %s (remove it with 'eccheck cluster down --cluster ssh --hosts ...')", c.name, c.hostList())
	} else {
		errs = append(errs, c.remove(ctx))
	}
	return errors.Join(errs...)
}

func (c *Cluster) hostList() string {
	var names []string
	for _, h := range c.hosts {
		names = append(names, h.Name())
	}
	return strings.Join(names, ",")
}

// remove kills the cluster's nodes, removes eccheck's iptables chain and
// jumps and qdiscs, the cluster's directory, and eccheck's directory when
// nothing else is in it: on every host at once.
func (c *Cluster) remove(ctx context.Context) error {
	return Each(len(c.hosts), func(i int) error {
		h := c.hosts[i]
		if h == nil {
			return nil
		}
		var errs []error
		for _, n := range c.nodes {
			if err := h.Kill(ctx, c.name, n); err != nil && !errors.Is(err, sshhost.ErrNotRunning) {
				errs = append(errs, err)
			}
		}
		errs = append(errs, h.RemoveRules(ctx), h.ClearNetem(ctx))
		if c.hostClock {
			// Where this fails, sshhost.ClockFile (outside the cluster's
			// directory) keeps the offset for 'eccheck cluster down'.
			errs = append(errs, h.SetClockOffset(ctx, 0))
		}
		if _, _, err := h.Sudo(ctx, "rm -rf -- "+sshhost.Quote(sshhost.ClusterDir(c.name))+" && { [ ! -d "+sshhost.Root+" ] || rmdir --ignore-fail-on-non-empty -- "+sshhost.Root+"; }"); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// OtherDBError is Open's error for a cluster of another system: a caller
// that tries each system goes on to the next.
type OtherDBError struct{ Cluster, Host, DB, Want string }

func (e *OtherDBError) Error() string {
	return fmt.Sprintf("cluster %s on %s runs %s, not %s", e.Cluster, e.Host, e.DB, e.Want)
}

// Open takes over the cluster of system dbName running on hosts (name
// picks it when the hosts run several; "" means the only one): the
// manifest its start left on the first host says its nodes, addresses
// and processes. With no error, the caller owns the connections.
func Open(ctx context.Context, hosts []string, cfg sshhost.Config, name, dbName string) (*Cluster, Manifest, error) {
	hs, err := Dial(ctx, hosts, cfg)
	if err != nil {
		return nil, Manifest{}, err
	}
	c, m, err := open(ctx, hs, hosts, name, dbName)
	if err != nil {
		CloseHosts(hs)
		return nil, Manifest{}, err
	}
	return c, m, nil
}

func open(ctx context.Context, hs []*sshhost.Host, hosts []string, name, dbName string) (*Cluster, Manifest, error) {
	var m Manifest
	l, err := hs[0].Leftovers(ctx)
	if err != nil {
		return nil, m, err
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
		return nil, m, db.Usagef("no cluster on %s (nothing under %s): start one with 'eccheck cluster up --cluster ssh --hosts ...'", hs[0].Name(), sshhost.Root)
	case name == "":
		return nil, m, db.Usagef("%s runs several clusters (%s): pick one with --cluster-name", hs[0].Name(), strings.Join(names, ", "))
	case !slices.Contains(names, name):
		return nil, m, db.Usagef("no cluster %s on %s (clusters there: %s)", name, hs[0].Name(), orNone(names))
	}
	var b strings.Builder
	if err := hs[0].Download(ctx, ManifestPath(name), &b); err != nil {
		return nil, m, fmt.Errorf("cluster %s on %s: %w", name, hs[0].Name(), err)
	}
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		return nil, m, fmt.Errorf("cluster %s on %s: %s: %w", name, hs[0].Name(), ManifestPath(name), err)
	}
	if m.DB != dbName {
		return nil, m, &OtherDBError{Cluster: name, Host: hs[0].Name(), DB: m.DB, Want: dbName}
	}
	n := len(hosts)
	if !slices.Equal(m.Hosts, hosts) || len(m.Nodes) != n || len(m.IPs) != n || len(m.Addrs) != n || len(m.Cmds) != n {
		return nil, m, db.Usagef("cluster %s runs on --hosts %s (node i on host i): give those hosts in that order", name, strings.Join(m.Hosts, ","))
	}
	c := &Cluster{name: name, hosts: hs, nodes: m.Nodes, Addrs: m.Addrs, keep: true, opened: true, hostClock: m.HostClock, Logf: func(string, ...any) {}}
	for i, nd := range m.Nodes {
		ip, err := netip.ParseAddr(m.IPs[i])
		if err != nil {
			return nil, m, fmt.Errorf("cluster %s: %s: address of %s: %w", name, ManifestPath(name), nd, err)
		}
		c.IPs = append(c.IPs, ip)
		c.Specs = append(c.Specs, sshhost.ProcessSpec{Cluster: name, Name: nd, Cmd: m.Cmds[i], User: m.User, Env: m.Env})
	}
	return c, m, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// HostedNodes says where each node runs and answers, and its process's
// state.
func (c *Cluster) HostedNodes(ctx context.Context) ([]db.HostedNode, error) {
	out := make([]db.HostedNode, len(c.nodes))
	err := Each(len(c.hosts), func(i int) error {
		st, err := c.hosts[i].Status(ctx, c.name, c.nodes[i])
		out[i] = db.HostedNode{Node: c.nodes[i], Host: c.hosts[i].Name(), Addr: c.Addrs[i], State: string(st.State)}
		return err
	})
	return out, err
}

// Log returns node's log, as its host holds it.
func (c *Cluster) Log(ctx context.Context, node string) (string, error) {
	i, err := c.Node(node)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := c.hosts[i].Download(ctx, sshhost.LogFile(c.name, node), &b); err != nil {
		return "", err
	}
	return b.String(), nil
}
