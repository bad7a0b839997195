package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

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
	ports, err := freePorts(nodes, c.publishedPorts(ctx))
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		n := fmt.Sprintf("n%d", i+1)
		cl.nodes = append(cl.nodes, &Node{Name: n, Container: cl.network + "-" + n, IP: hostAddr(cl.subnet, 11+i), HostPort: ports[i]})
	}
	return cl, nil
}

// publishedPorts returns the host ports that the containers of every
// eccheck cluster publish, stopped containers included (a killed node
// takes its port back when it starts). A failure to ask returns none: the
// ports are then only checked free on the host.
func (c *Client) publishedPorts(ctx context.Context) map[int]bool {
	out := map[int]bool{}
	cs, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelCluster)})
	if err != nil {
		return out
	}
	for _, s := range cs.Items {
		insp, err := c.api.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil || insp.Container.HostConfig == nil {
			continue
		}
		for _, bs := range insp.Container.HostConfig.PortBindings {
			for _, b := range bs {
				if p, err := strconv.Atoi(b.HostPort); err == nil {
					out[p] = true
				}
			}
		}
	}
	return out
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
