package docker

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// namePattern is what a cluster name may be: it becomes part of container
// and network names and of a label value.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,29}$`)

// RunClusterName is the name of a test run's cluster when none is given:
// eccheck-test-<8 hex digits>.
func RunClusterName() string {
	var b [4]byte
	crand.Read(b[:])
	return "eccheck-test-" + hex.EncodeToString(b[:])
}

// ValidName checks a cluster name.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("cluster name %q: want 1-30 lowercase letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// subnetCandidates are the /24s a cluster network may use; Up takes the
// first that no Docker network and no host interface uses.
func subnetCandidates() []netip.Prefix {
	var out []netip.Prefix
	for _, second := range []byte{30, 31} {
		for third := 0; third < 32; third++ {
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, second, byte(third), 0}), 24))
		}
	}
	return out
}

// ClusterSpec says how to run a cluster of some system in containers: the
// image, each node's command, the client port, how to tell that a node
// answers and how to move its clock. A system under test fills it in; the
// docker package knows no system.
type ClusterSpec struct {
	// Name names the cluster: network eccheck-NAME, containers
	// eccheck-NAME-n1..., label eccheck.cluster=NAME.
	Name string
	// DB is the system's name, kept as the label eccheck.db so that a
	// command can tell what runs in a cluster it finds.
	DB string
	// Nodes is the node count; 0 means 3.
	Nodes int
	// Image is the image every node runs.
	Image string
	// Port is the client port in each container, published on 127.0.0.1.
	Port int
	// User and Env are the containers' user and environment.
	User string
	Env  []string
	// Cmd returns a node's command (after the image's entrypoint), given
	// every node with its fixed address.
	Cmd func(n *Node, nodes []*Node) []string
	// Ready reports whether a node answers, and what it said if not; nil
	// means a running container is ready.
	Ready Probe
	// Clock says how SetClock moves a node's clock; the zero value means
	// it cannot.
	Clock ClockSpec
	// Wait bounds the readiness wait of Up; 0 means 60s.
	Wait time.Duration
	// Progress receives progress lines; nil discards.
	Progress io.Writer
}

// Probe reports whether node n, whose client port is at addr (see
// [Cluster.Addr]), answers, and what it said if not.
type Probe func(ctx context.Context, n *Node, addr string) (ready bool, last string)

// ClockSpec is how a cluster's nodes read a clock offset from a file that
// SetClock writes into their containers (nothing runs in the container).
type ClockSpec struct {
	// File is the path of the offset file in the container; empty means
	// the nodes' clocks cannot move.
	File string
	// Seconds writes whole seconds ("+90s", "-300s"), as libfaketime
	// wants; otherwise a Go duration ("+1.5s", "-250ms").
	Seconds bool
	// Env, when set, is an environment entry the container must have for
	// the file to matter (libfaketime's LD_PRELOAD); SetClock refuses a
	// node started without it, saying why.
	Env string
}

// Node is one node of a Docker cluster.
type Node struct {
	Name      string
	Container string // container name, eccheck-NAME-nX
	ID        string // container id
	IP        netip.Addr
	// HostPort is the port published on 127.0.0.1 for the client API.
	HostPort int
	// Port is the client port inside the container.
	Port int
	// State is the container's state when last looked at (running,
	// paused, exited...).
	State string
}

// Cluster is a cluster of some system in containers. It implements the
// nemesis's cluster interface (Nodes, Partition, Heal, SetClock, Kill,
// Start, Pause, Resume); each fault method takes at most [FaultTimeout].
type Cluster struct {
	c       *Client
	name    string
	network string
	subnet  netip.Prefix
	nodes   []*Node
	// db is the system the nodes run, from the label eccheck.db.
	db    string
	clock ClockSpec

	mu     sync.Mutex
	grudge map[string][]string // the partition in force, reapplied on Start
	ready  Probe
	// delayHook, when set, delays a node's messages to a peer (every
	// peer when empty) by the system's own means; see [Cluster.Delay].
	delayHook func(from, to string, d time.Duration) error
	// route caches routable: 0 not known yet, 1 routable, 2 not.
	route int

	// progress receives what a fault method does beyond its plain
	// effect (a retried promotion, say); nil discards.
	progress io.Writer
}

// SetProgress sends the notes of later fault methods (what they did
// beyond their plain effect, such as a retried promotion) to w; nil
// discards them.
func (cl *Cluster) SetProgress(w io.Writer) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.progress = w
}

// Notef writes one note to the progress writer, if any.
func (cl *Cluster) Notef(format string, args ...any) {
	cl.mu.Lock()
	w := cl.progress
	cl.mu.Unlock()
	if w != nil {
		fmt.Fprintf(w, "cluster %s: "+format+"\n", append([]any{cl.name}, args...)...)
	}
}

// SetReady sets how Start and WaitReady tell that a node answers (a
// cluster found with [Client.Open] has no probe until its system sets
// one).
func (cl *Cluster) SetReady(p Probe) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.ready = p
}

// SetDelayHook sets how the system delays a node's messages by its own
// means, for [Cluster.Delay] when tc cannot (and for one peer); Heal
// calls it with 0 to remove them.
func (cl *Cluster) SetDelayHook(hook func(from, to string, d time.Duration) error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.delayHook = hook
}

// FaultTimeout bounds one fault method of a Cluster.
var FaultTimeout = 60 * time.Second

// FaultContext is a context bounded by [FaultTimeout], for a fault method
// of a system built on a Cluster.
func FaultContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), FaultTimeout)
}

// Name returns the cluster's name.
func (cl *Cluster) Name() string { return cl.name }

// DB returns the system the cluster's nodes run, as its label says.
func (cl *Cluster) DB() string { return cl.db }

// Engine returns the engine connection of the cluster.
func (cl *Cluster) Engine() *Client { return cl.c }

// Network returns the cluster's network name and subnet.
func (cl *Cluster) Network() (string, netip.Prefix) { return cl.network, cl.subnet }

// Nodes returns the node names, n1 first.
func (cl *Cluster) Nodes() []string {
	out := make([]string, len(cl.nodes))
	for i, n := range cl.nodes {
		out[i] = n.Name
	}
	return out
}

// Node returns a node's details.
func (cl *Cluster) Node(name string) (*Node, error) {
	for _, n := range cl.nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("cluster %s has no node %q (it has %s)", cl.name, name, strings.Join(cl.Nodes(), ", "))
}

// Addr returns the host:port where clients reach node's client port, or
// "" for an unknown node: its address on the cluster's own bridge network
// when the engine runs on this machine (the host routes to it), and the
// port published on 127.0.0.1 otherwise. Both are fixed when the
// container is created, so they survive kill and start.
func (cl *Cluster) Addr(node string) string {
	n, err := cl.Node(node)
	if err != nil {
		return ""
	}
	if cl.routable() && n.IP.IsValid() && n.Port > 0 {
		return netip.AddrPortFrom(n.IP, uint16(n.Port)).String()
	}
	return cl.PublishedAddr(node)
}

// routable reports whether this machine reaches the cluster's bridge
// network directly: it has an interface address in the cluster's subnet
// (the bridge's gateway), as with a local engine on Linux. Through a
// remote engine or a VM (Docker Desktop) it does not, and clients use the
// published ports. ECCHECK_PUBLISHED_PORTS=1 makes them use the published
// ports anyway.
func (cl *Cluster) routable() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.route == 0 {
		cl.route = 2
		if os.Getenv("ECCHECK_PUBLISHED_PORTS") != "1" && cl.subnet.IsValid() {
			if addrs, err := net.InterfaceAddrs(); err == nil {
				for _, a := range addrs {
					if p, err := netip.ParsePrefix(a.String()); err == nil && cl.subnet.Contains(p.Addr()) {
						cl.route = 1
					}
				}
			}
		}
	}
	return cl.route == 1
}

// PublishedAddr returns node's client port published on 127.0.0.1, or ""
// for an unknown node.
func (cl *Cluster) PublishedAddr(node string) string {
	n, err := cl.Node(node)
	if err != nil {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.HostPort))
}

// Addrs returns every node's address ([Cluster.Addr]), in node order.
func (cl *Cluster) Addrs() []string {
	out := make([]string, len(cl.nodes))
	for i, n := range cl.nodes {
		out[i] = cl.Addr(n.Name)
	}
	return out
}

func clusterFilter(name string) client.Filters {
	return make(client.Filters).Add("label", LabelCluster+"="+name)
}

// usedSubnets returns the subnets of every Docker network and the host's
// interface addresses.
func (c *Client) usedSubnets(ctx context.Context) ([]netip.Prefix, error) {
	res, err := c.api.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var used []netip.Prefix
	for _, n := range res.Items {
		for _, cfg := range n.IPAM.Config {
			if cfg.Subnet.IsValid() {
				used = append(used, cfg.Subnet)
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	return used, nil
}

// createNetwork creates the cluster's bridge network on the first free
// candidate subnet, retrying the next one when the engine reports an
// overlap (another cluster came up at the same time).
func (c *Client) createNetwork(ctx context.Context, name, netName string) (netip.Prefix, error) {
	used, err := c.usedSubnets(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	var lastErr error
	for _, p := range subnetCandidates() {
		if slices.ContainsFunc(used, p.Overlaps) {
			continue
		}
		gw := hostAddr(p, 1)
		_, err := c.api.NetworkCreate(ctx, netName, client.NetworkCreateOptions{
			Driver: "bridge",
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: p, Gateway: gw}}},
			Labels: c.labels(name),
		})
		if err == nil {
			return p, nil
		}
		lastErr = err
		if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already exists") {
			return netip.Prefix{}, fmt.Errorf("network %s already exists: run 'eccheck cluster down --cluster-name %s' first", netName, name)
		}
		if !strings.Contains(err.Error(), "overlap") {
			return netip.Prefix{}, fmt.Errorf("create network %s on %s: %w", netName, p, err)
		}
	}
	return netip.Prefix{}, fmt.Errorf("create network %s: no free subnet among 172.30.0-31.0/24 and 172.31.0-31.0/24 (last error: %v)", netName, lastErr)
}

// hostAddr returns the k-th address of p (.11 for k = 11 in a /24).
func hostAddr(p netip.Prefix, k int) netip.Addr {
	a := p.Masked().Addr()
	for range k {
		a = a.Next()
	}
	return a
}

// freePorts picks n free TCP ports on 127.0.0.1, holding each until all
// are picked so that no two are the same. It picks at random below the
// kernel's ephemeral range: a port the kernel hands out for ":0" is one it
// hands out again soon after, to the next process asking (another eccheck
// publishing its cluster: the second container start then fails with
// "port is already allocated", seen once with two test packages at once),
// and ephemeral ports are also the local side of outgoing connections.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := 10000, ephemeralLow()-1
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi-lo >= 1000 && tries < 1000 {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo+1)))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // taken: pick another
			}
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// Labels of a node container that let [Client.Open] find a cluster's
// ports and clock without knowing its system.
const (
	LabelPort       = "eccheck.port"        // the client port in the container
	LabelClockFile  = "eccheck.clock-file"  // ClockSpec.File
	LabelClockUnits = "eccheck.clock-units" // "s" for ClockSpec.Seconds, else "go"
	LabelClockEnv   = "eccheck.clock-env"   // ClockSpec.Env
)

// Up starts a cluster as spec says: a private bridge network with a free
// subnet, one container per node at a fixed address (.11, .12, ...) with
// its client port published on 127.0.0.1 at a free port, then waits until
// every node is ready. On failure it removes what it created.
func (c *Client) Up(ctx context.Context, spec ClusterSpec) (cl *Cluster, err error) {
	if err := ValidName(spec.Name); err != nil {
		return nil, err
	}
	if spec.Nodes == 0 {
		spec.Nodes = 3
	}
	if spec.Nodes < 1 || spec.Nodes > 9 {
		return nil, fmt.Errorf("cluster %s: %d nodes: want 1 to 9", spec.Name, spec.Nodes)
	}
	if spec.Port <= 0 || spec.Image == "" || spec.Cmd == nil {
		return nil, fmt.Errorf("cluster %s: the spec needs an image, a port and a command", spec.Name)
	}
	if spec.Wait == 0 {
		spec.Wait = 60 * time.Second
	}
	progress := spec.Progress
	if progress == nil {
		progress = io.Discard
	}
	if cl, err = c.newCluster(ctx, spec.Name, spec.DB, spec.Nodes); err != nil {
		return nil, err
	}
	cl.progress, cl.ready, cl.clock = spec.Progress, spec.Ready, spec.Clock
	defer c.downOnError(ctx, spec.Name, &err)
	fmt.Fprintf(progress, "cluster %s: network %s (%s), %d %s nodes from %s\n", spec.Name, cl.network, cl.subnet, spec.Nodes, spec.DB, spec.Image)
	port := network.MustParsePort(strconv.Itoa(spec.Port) + "/tcp")
	for _, n := range cl.nodes {
		n.Port = spec.Port
	}
	for _, n := range cl.nodes {
		cfg := &container.Config{Image: spec.Image, User: spec.User, Env: spec.Env, Cmd: spec.Cmd(n, cl.nodes)}
		extra := map[string]string{LabelPort: strconv.Itoa(spec.Port)}
		if spec.Clock.File != "" {
			units := "go"
			if spec.Clock.Seconds {
				units = "s"
			}
			extra[LabelClockFile], extra[LabelClockUnits], extra[LabelClockEnv] = spec.Clock.File, units, spec.Clock.Env
		}
		if err := c.createNode(ctx, spec.Name, spec.DB, cl.network, n, port, cfg, extra); err != nil {
			return nil, err
		}
	}
	if err := c.startNodes(ctx, cl.nodes); err != nil {
		return nil, err
	}
	if err := cl.WaitReady(ctx, spec.Wait); err != nil {
		return nil, err
	}
	for _, n := range cl.nodes {
		fmt.Fprintf(progress, "cluster %s: %s ready at %s (container %s, %s)\n", spec.Name, n.Name, cl.Addr(n.Name), n.Container, n.IP)
	}
	return cl, nil
}

// newCluster checks that no container carries the label of cluster name
// yet, creates its network, and lays out its nodes n1..nN at fixed
// addresses (.11, .12...) each with a free port on 127.0.0.1. When it
// fails after creating the network, it removes it.
func (c *Client) newCluster(ctx context.Context, name, db string, nodes int) (cl *Cluster, err error) {
	existing, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: clusterFilter(name)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	if len(existing.Items) > 0 {
		return nil, fmt.Errorf("cluster %s already has %d container(s): run 'eccheck cluster down --cluster-name %s' first", name, len(existing.Items), name)
	}
	cl = &Cluster{c: c, name: name, network: "eccheck-" + name, db: db}
	if cl.subnet, err = c.createNetwork(ctx, name, cl.network); err != nil {
		return nil, err
	}
	defer c.downOnError(ctx, name, &err)
	ports, err := freePorts(nodes)
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		n := fmt.Sprintf("n%d", i+1)
		cl.nodes = append(cl.nodes, &Node{Name: n, Container: cl.network + "-" + n, IP: hostAddr(cl.subnet, 11+i), HostPort: ports[i]})
	}
	return cl, nil
}

// downOnError removes everything labelled with cluster name when *err is
// set, with a context of its own (the caller's may be what ended), and
// adds a failure to clean up to *err. The Up functions defer it once the
// cluster exists, so that a failed start leaves nothing behind.
func (c *Client) downOnError(ctx context.Context, name string, err *error) {
	if *err == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if derr := c.Down(dctx, name); derr != nil {
		*err = fmt.Errorf("%w (and cleaning up: %v)", *err, derr)
	}
}

// WaitReady waits until every running node is ready (its probe says so;
// without a probe, its container runs). On timeout the error names the
// node and carries its last log lines.
func (cl *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range cl.nodes {
		if err := cl.waitNode(ctx, n, deadline, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (cl *Cluster) waitNode(ctx context.Context, n *Node, deadline time.Time, timeout time.Duration) error {
	cl.mu.Lock()
	probe := cl.ready
	cl.mu.Unlock()
	if probe == nil {
		probe = func(context.Context, *Node, string) (bool, string) { return true, "" }
	}
	addr := cl.Addr(n.Name)
	return cl.pollNode(ctx, n, deadline, timeout, 100*time.Millisecond, func() (bool, string) { return probe(ctx, n, addr) })
}

// Poll calls probe every pause until it reports ready, and gives up when
// ctx ends, when bound passes or when node's container stops; the error
// then names the node, says why (with probe's last answer) and carries the
// container's last log lines.
func (cl *Cluster) Poll(ctx context.Context, node string, bound, pause time.Duration, probe func() (ready bool, last string)) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	return cl.pollNode(ctx, n, time.Now().Add(bound), bound, pause, probe)
}

// pollNode calls probe every pause until it reports ready, and gives up
// when ctx ends, when the deadline passes or when n's container stops; the
// error then names the node, says why (with probe's last answer) and
// carries the container's last log lines.
func (cl *Cluster) pollNode(ctx context.Context, n *Node, deadline time.Time, timeout, pause time.Duration, probe func() (ready bool, last string)) error {
	for {
		ready, last := probe()
		if ready {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s: %w", n.Name, ctx.Err())
		}
		insp, ierr := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		exited := ierr == nil && insp.Container.State != nil && !insp.Container.State.Running
		if exited || time.Now().After(deadline) {
			why := fmt.Sprintf("not ready after %v (last: %s)", timeout, last)
			if exited {
				why = fmt.Sprintf("container %s stopped (exit code %d)", n.Container, insp.Container.State.ExitCode)
			}
			logs, _ := cl.c.logs(ctx, n.ID, "20")
			return fmt.Errorf("%s node %s at %s: %s; its last log lines:\n%s", cl.db, n.Name, cl.Addr(n.Name), why, Indent(logs))
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// Indent indents every line of s by two spaces ("  (no output)" when s
// is empty), for log lines inside an error.
func Indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "  (no output)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// logs returns a container's log (stdout and stderr interleaved as
// written); tail is a line count or "all".
func (c *Client) logs(ctx context.Context, id, tail string) (string, error) {
	return c.readLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
}

// logsSince returns a container's log lines written since t.
func (c *Client) logsSince(ctx context.Context, id string, t time.Time) (string, error) {
	return c.readLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Since: fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())})
}

func (c *Client) readLogs(ctx context.Context, id string, o client.ContainerLogsOptions) (string, error) {
	rc, err := c.api.ContainerLogs(ctx, id, o)
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.String(), fmt.Errorf("logs: %w", err)
	}
	return buf.String(), nil
}

// Logs returns node's container log.
func (cl *Cluster) Logs(ctx context.Context, node string) (string, error) {
	return cl.LogTail(ctx, node, "all")
}

// LogTail returns the last lines of node's container log; tail is a line
// count or "all".
func (cl *Cluster) LogTail(ctx context.Context, node, tail string) (string, error) {
	n, err := cl.Node(node)
	if err != nil {
		return "", err
	}
	return cl.c.logs(ctx, n.ID, tail)
}

// LogsSince returns node's container log lines written since t.
func (cl *Cluster) LogsSince(ctx context.Context, node string, t time.Time) (string, error) {
	n, err := cl.Node(node)
	if err != nil {
		return "", err
	}
	return cl.c.logsSince(ctx, n.ID, t)
}

// Open finds the running (or crashed) cluster name by its labels: its
// nodes, their addresses, ports and clock. It has no readiness probe or
// delay hook until its system sets them.
func (c *Client) Open(ctx context.Context, name string) (*Cluster, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: clusterFilter(name).Add("label", LabelRole+"=node")})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	if len(res.Items) == 0 {
		return nil, fmt.Errorf("no cluster %s: no container carries the label %s=%s", name, LabelCluster, name)
	}
	cl := &Cluster{c: c, name: name, network: "eccheck-" + name}
	for _, s := range res.Items {
		cl.db = s.Labels[LabelDB]
		if f := s.Labels[LabelClockFile]; f != "" {
			cl.clock = ClockSpec{File: f, Seconds: s.Labels[LabelClockUnits] == "s", Env: s.Labels[LabelClockEnv]}
		}
		n := &Node{Name: s.Labels[LabelNode], ID: s.ID, State: string(s.State)}
		n.Port, _ = strconv.Atoi(s.Labels[LabelPort])
		if len(s.Names) > 0 {
			n.Container = strings.TrimPrefix(s.Names[0], "/")
		}
		insp, err := c.api.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", n.Container, err)
		}
		if ns := insp.Container.NetworkSettings; ns != nil {
			if ep := ns.Networks[cl.network]; ep != nil && ep.IPAMConfig != nil {
				n.IP = ep.IPAMConfig.IPv4Address
			}
		}
		if hc := insp.Container.HostConfig; hc != nil {
			for p, bs := range hc.PortBindings {
				// The client port, or (a cluster made before the port
				// label) the one port published.
				if n.Port != 0 && int(p.Num()) != n.Port {
					continue
				}
				for _, b := range bs {
					n.HostPort, _ = strconv.Atoi(b.HostPort)
					n.Port = int(p.Num())
				}
			}
		}
		cl.nodes = append(cl.nodes, n)
	}
	sort.Slice(cl.nodes, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(cl.nodes[i].Name, "n"))
		b, _ := strconv.Atoi(strings.TrimPrefix(cl.nodes[j].Name, "n"))
		return a < b
	})
	if nets, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: clusterFilter(name)}); err == nil {
		for _, nw := range nets.Items {
			if nw.Name == cl.network && len(nw.IPAM.Config) > 0 {
				cl.subnet = nw.IPAM.Config[0].Subnet
			}
		}
	}
	return cl, nil
}

// Down removes the cluster: every container and network labelled
// eccheck.cluster=NAME (nodes, helpers, and what a crashed run left).
func (cl *Cluster) Down(ctx context.Context) error { return cl.c.Down(ctx, cl.name) }

// Down removes every container and network labelled eccheck.cluster=name.
// Nothing to remove is not an error.
func (c *Client) Down(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	var errs []error
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: clusterFilter(name)})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, s := range res.Items {
		if _, err := c.api.ContainerRemove(ctx, s.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", strings.Join(s.Names, ","), err))
		}
	}
	nets, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: clusterFilter(name)})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range nets.Items {
		if _, err := c.api.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ClusterNames returns the names of every cluster with a container or a
// network carrying the label eccheck.cluster.
func (c *Client) ClusterNames(ctx context.Context) ([]string, error) {
	f := make(client.Filters).Add("label", LabelCluster)
	seen := map[string]bool{}
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, s := range res.Items {
		seen[s.Labels[LabelCluster]] = true
	}
	nets, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets.Items {
		seen[n.Labels[LabelCluster]] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Refresh re-reads every node's container state.
func (cl *Cluster) Refresh(ctx context.Context) error {
	for _, n := range cl.nodes {
		insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect %s: %w", n.Container, err)
		}
		if insp.Container.State != nil {
			n.State = string(insp.Container.State.Status)
		}
	}
	return nil
}

// faultCtx bounds one fault method.
func faultCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), FaultTimeout)
}

// onNode runs fn on node with a context bounded by [FaultTimeout]; fn's
// error is wrapped as "VERB NODE: ...".
func (cl *Cluster) onNode(verb, node string, fn func(ctx context.Context, n *Node) error) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := faultCtx()
	defer cancel()
	if err := fn(ctx, n); err != nil {
		return fmt.Errorf("%s %s: %w", verb, node, err)
	}
	return nil
}

// Kill stops node at once (SIGKILL), losing what it keeps only in memory;
// its filesystem stays.
func (cl *Cluster) Kill(node string) error {
	return cl.onNode("kill", node, func(ctx context.Context, n *Node) error {
		if _, err := cl.c.api.ContainerKill(ctx, n.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			if strings.Contains(err.Error(), "is not running") {
				return nil
			}
			return err
		}
		// Wait until the engine reports it stopped, so that Start follows.
		wr := cl.c.api.ContainerWait(ctx, n.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-wr.Result:
		case err := <-wr.Error:
			return fmt.Errorf("wait: %w", err)
		}
		n.State = string(container.StateExited)
		return nil
	})
}

// Start starts a killed node again and waits until it answers (ecstore's
// health says ready; Postgres accepts a connection); a running node is
// left as it is. A partition in force is applied to it again (its
// network namespace is new).
func (cl *Cluster) Start(node string) error {
	return cl.onNode("start", node, func(ctx context.Context, n *Node) error {
		if run, _, err := cl.running(ctx, n); err != nil || run {
			return err
		}
		if _, err := cl.c.api.ContainerStart(ctx, n.ID, client.ContainerStartOptions{}); err != nil {
			return err
		}
		n.State = string(container.StateRunning)
		if err := cl.partitionAgain(ctx, n); err != nil {
			return err
		}
		return cl.waitNode(ctx, n, time.Now().Add(30*time.Second), 30*time.Second)
	})
}

// StartContainer starts node's container, when it is not running, and
// applies the partition in force to it, without waiting for it to
// answer: for a system that watches its node come up its own way.
func (cl *Cluster) StartContainer(ctx context.Context, node string) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	if run, _, err := cl.running(ctx, n); err != nil || run {
		return err
	}
	if err := cl.c.startNodes(ctx, []*Node{n}); err != nil {
		return err
	}
	return cl.partitionAgain(ctx, n)
}

// partitionAgain applies the partition in force to n, just started (its
// network namespace is new).
func (cl *Cluster) partitionAgain(ctx context.Context, n *Node) error {
	cl.mu.Lock()
	drops := cl.grudge[n.Name]
	cl.mu.Unlock()
	if len(drops) == 0 {
		return nil
	}
	if err := cl.applyRules(ctx, n, drops); err != nil {
		return fmt.Errorf("partition again: %w", err)
	}
	return nil
}

// Pause freezes node (cgroup freezer) without closing its connections.
func (cl *Cluster) Pause(node string) error {
	return cl.onNode("pause", node, func(ctx context.Context, n *Node) error {
		if _, err := cl.c.api.ContainerPause(ctx, n.ID, client.ContainerPauseOptions{}); err != nil {
			return err
		}
		n.State = string(container.StatePaused)
		return nil
	})
}

// Resume unfreezes a paused node; a node that is not paused is left as it
// is.
func (cl *Cluster) Resume(node string) error {
	return cl.onNode("resume", node, func(ctx context.Context, n *Node) error {
		if _, paused, err := cl.running(ctx, n); err != nil || !paused {
			return err
		}
		if _, err := cl.c.api.ContainerUnpause(ctx, n.ID, client.ContainerUnpauseOptions{}); err != nil {
			return err
		}
		n.State = string(container.StateRunning)
		return nil
	})
}

// SetClock sets node's clock offset by writing the offset file of the
// cluster's ClockSpec into its container (nothing runs in it); the node's
// processes read it on their next clock call. 0 resets it. A cluster
// whose spec has no clock file, or a node started without the
// environment the file needs (libfaketime's), is an error that says so.
func (cl *Cluster) SetClock(node string, offset time.Duration) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	if cl.clock.File == "" {
		return fmt.Errorf("set clock of %s: %s nodes have no clock hook that eccheck can move", node, cl.db)
	}
	ctx, cancel := faultCtx()
	defer cancel()
	if cl.clock.Env != "" {
		insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("set clock of %s: %w", node, err)
		}
		if insp.Container.Config == nil || !slices.Contains(insp.Container.Config.Env, cl.clock.Env) {
			return fmt.Errorf("set clock of %s: its processes run without %s, so no clock can move; start the cluster with clock faults in --nemesis, or with 'eccheck cluster up --fake-time'", node, cl.clock.Env)
		}
	}
	var text string
	if cl.clock.Seconds {
		text = FakeTimeOffset(offset)
	} else {
		text = offset.String()
		if offset >= 0 {
			text = "+" + text
		}
	}
	if err := cl.c.WriteFile(ctx, n.ID, cl.clock.File, []byte(text+"\n")); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// WriteFile writes node's file path (absolute) in its container, running
// or not, with CopyToContainer: nothing is executed in it. The file's
// directory is made when missing.
func (cl *Cluster) WriteFile(node, path string, body []byte) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := faultCtx()
	defer cancel()
	return cl.c.WriteFile(ctx, n.ID, path, body)
}

// createNode creates node n's container from cfg (image, command, user),
// adding what every cluster node has: its host name, the labels of cluster
// and db, a fixed address on the cluster network, and port published on
// 127.0.0.1 only, at n.HostPort.
func (c *Client) createNode(ctx context.Context, cluster, db, netName string, n *Node, port network.Port, cfg *container.Config, extra map[string]string) error {
	cfg.Hostname = n.Name
	cfg.ExposedPorts = network.PortSet{port: {}}
	cfg.Labels = c.labels(cluster, LabelNode, n.Name, LabelRole, "node", LabelDB, db)
	maps.Copy(cfg.Labels, extra)
	res, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   n.Container,
		Config: cfg,
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(netName),
			PortBindings: network.PortMap{port: {{
				HostIP:   netip.MustParseAddr("127.0.0.1"),
				HostPort: strconv.Itoa(n.HostPort),
			}}},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: n.IP}},
		}},
	})
	if err != nil {
		return fmt.Errorf("create container %s: %w", n.Container, err)
	}
	n.ID = res.ID
	return nil
}

// startNodes starts the nodes' containers.
func (c *Client) startNodes(ctx context.Context, nodes []*Node) error {
	for _, n := range nodes {
		if _, err := c.api.ContainerStart(ctx, n.ID, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("start container %s: %w", n.Container, err)
		}
		n.State = string(container.StateRunning)
	}
	return nil
}

// Finish ends a test's use of the cluster: it saves each node's container
// log as logDir/<node>.log (when logDir is set) and removes the cluster,
// unless keep, when logf says how to remove it later. Pass a fresh ctx, so
// that it works after an interrupt too.
func (cl *Cluster) Finish(ctx context.Context, logDir string, keep bool, logf func(string, ...any)) error {
	var errs []error
	if logDir != "" {
		for _, n := range cl.nodes {
			text, err := cl.c.logs(ctx, n.ID, "all")
			if err != nil {
				logf("warning: log of %s: %v", n.Name, err)
			}
			if err := os.WriteFile(filepath.Join(logDir, n.Name+".log"), []byte(text), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("save the log of %s: %w", n.Name, err))
			}
		}
	}
	if keep {
		logf("cluster %s left running (--keep); remove it with: eccheck cluster down --cluster-name %s", cl.name, cl.name)
		return errors.Join(errs...)
	}
	if err := cl.Down(ctx); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster %s: %w (remove it with: eccheck cluster down --cluster-name %s)", cl.name, err, cl.name))
	}
	return errors.Join(errs...)
}
