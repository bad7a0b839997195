package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/store"
)

// Ports and paths inside an ecstore node container.
const (
	ecstorePort = 7001               // the client and peer HTTP API; Raft on 8001
	ecstoreDir  = "/var/lib/ecstore" // holds the data directory and the clock file
	clockFile   = ecstoreDir + "/clock"
	dataDir     = ecstoreDir + "/data"
)

// namePattern is what a cluster name may be: it becomes part of container
// and network names and of a label value.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,29}$`)

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

// UpOptions configure an ecstore cluster.
type UpOptions struct {
	// Name names the cluster: network eccheck-NAME, containers
	// eccheck-NAME-n1..., label eccheck.cluster=NAME.
	Name string
	// Nodes is the node count; 0 means 3.
	Nodes int
	// Image is the ecstore image; empty means [Client.ImageFor] ecstore.
	Image string
	// Mode, N, W, R, SetImpl configure ecstore (see store.Config); Args
	// are further `eccheck store serve` flags, passed as they are.
	Mode    string
	N, W, R int
	SetImpl string
	Args    []string
	// Wait bounds the readiness wait; 0 means 60s.
	Wait time.Duration
	// Progress receives progress lines; nil discards.
	Progress io.Writer
}

// Node is one node of a Docker cluster.
type Node struct {
	Name      string
	Container string // container name, eccheck-NAME-nX
	ID        string // container id
	IP        netip.Addr
	// HostPort is the port published on 127.0.0.1 for the client API.
	HostPort int
	// State is the container's state when last looked at (running,
	// paused, exited...).
	State string
}

// Cluster is an ecstore cluster in containers. It implements the
// nemesis's cluster interface (Nodes, Partition, Heal, SetClock, Kill,
// Start, Pause, Resume); each fault method takes at most [FaultTimeout].
type Cluster struct {
	c       *Client
	name    string
	network string
	subnet  netip.Prefix
	nodes   []*Node

	// db is the store the nodes run: "" or DBEcstore for ecstore, whose
	// health and admin API (clock file, transport delays) the methods
	// use; DBPostgres for Postgres, whose readiness is a connection and
	// whose clock moves through libfaketime.
	db string

	mu     sync.Mutex
	grudge map[string][]string // the partition in force, reapplied on Start

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

// notef writes one note to the progress writer, if any.
func (cl *Cluster) notef(format string, args ...any) {
	cl.mu.Lock()
	w := cl.progress
	cl.mu.Unlock()
	if w != nil {
		fmt.Fprintf(w, "cluster %s: "+format+"\n", append([]any{cl.name}, args...)...)
	}
}

// The stores a cluster's nodes may run, as the eccheck.db label names them.
const (
	DBEcstore  = "ecstore"
	DBPostgres = "postgres"
)

// ecstore reports whether the nodes run ecstore.
func (cl *Cluster) ecstore() bool { return cl.db == "" || cl.db == DBEcstore }

// FaultTimeout bounds one fault method of a Cluster.
var FaultTimeout = 60 * time.Second

// Name returns the cluster's name.
func (cl *Cluster) Name() string { return cl.name }

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

// Addr returns the host:port on 127.0.0.1 where node's client API is
// published, or "" for an unknown node. The port is fixed when the
// container is created, so it survives kill and start.
func (cl *Cluster) Addr(node string) string {
	n, err := cl.Node(node)
	if err != nil {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.HostPort))
}

// Addrs returns every node's published address, in node order.
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

// Up starts an ecstore cluster and waits until every node answers
// GET /v1/health through its published port. On failure it removes what it
// created.
func (c *Client) Up(ctx context.Context, o UpOptions) (cl *Cluster, err error) {
	if err := ValidName(o.Name); err != nil {
		return nil, err
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		return nil, fmt.Errorf("cluster %s: %d nodes: want 1 to 9", o.Name, o.Nodes)
	}
	if o.Mode == "" {
		o.Mode = store.ModeLWW
	}
	if !slices.Contains(store.Modes, o.Mode) {
		return nil, fmt.Errorf("cluster %s: unknown mode %q (want %s)", o.Name, o.Mode, strings.Join(store.Modes, ", "))
	}
	if o.Wait == 0 {
		o.Wait = 60 * time.Second
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	if o.Image == "" {
		if o.Image, err = c.ImageFor(ctx, RoleEcstore); err != nil {
			return nil, err
		}
	}
	if cl, err = c.newCluster(ctx, o.Name, DBEcstore, o.Nodes); err != nil {
		return nil, err
	}
	cl.progress = o.Progress
	defer c.downOnError(ctx, o.Name, &err)
	fmt.Fprintf(progress, "cluster %s: network %s (%s), %d ecstore nodes (%s) from %s\n", o.Name, cl.network, cl.subnet, o.Nodes, o.Mode, o.Image)
	port := network.MustParsePort(strconv.Itoa(ecstorePort) + "/tcp")
	for _, n := range cl.nodes {
		var peers []string
		for _, p := range cl.nodes {
			if p != n {
				peers = append(peers, fmt.Sprintf("%s=%s", p.Name, netip.AddrPortFrom(p.IP, ecstorePort)))
			}
		}
		args := []string{
			"--id", n.Name,
			"--listen", netip.AddrPortFrom(n.IP, ecstorePort).String(),
			"--peers", strings.Join(peers, ","),
			"--mode", o.Mode,
			"--data-dir", dataDir,
			"--clock-file", clockFile,
		}
		if o.N > 0 {
			args = append(args, "--n", strconv.Itoa(o.N))
		}
		if o.W > 0 {
			args = append(args, "--w", strconv.Itoa(o.W))
		}
		if o.R > 0 {
			args = append(args, "--r", strconv.Itoa(o.R))
		}
		if o.SetImpl != "" {
			args = append(args, "--set-impl", o.SetImpl)
		}
		args = append(args, o.Args...)
		if err := c.createNode(ctx, o.Name, "ecstore", cl.network, n, port, &container.Config{Image: o.Image, Cmd: args}); err != nil {
			return nil, err
		}
	}
	if err := c.startNodes(ctx, cl.nodes); err != nil {
		return nil, err
	}
	if err := cl.WaitReady(ctx, o.Wait); err != nil {
		return nil, err
	}
	for _, n := range cl.nodes {
		fmt.Fprintf(progress, "cluster %s: %s ready at %s (container %s, %s)\n", o.Name, n.Name, cl.Addr(n.Name), n.Container, n.IP)
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

// WaitReady waits until every running node answers GET /v1/health with
// ready true through its published port. On timeout the error names the
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
	if cl.db == DBPostgres {
		return cl.waitPostgres(ctx, n, deadline, timeout, func(context.Context, *pgx.Conn) (bool, string, error) { return true, "", nil })
	}
	hc := &http.Client{Timeout: time.Second}
	url := "http://" + cl.Addr(n.Name) + "/v1/health"
	return cl.pollNode(ctx, n, deadline, timeout, 100*time.Millisecond, func() (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err.Error()
		}
		var st store.Status
		derr := json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		switch {
		case derr != nil:
			return false, fmt.Sprintf("health: %v", derr)
		case resp.StatusCode == http.StatusOK && st.Ready:
			return true, ""
		}
		return false, fmt.Sprintf("health: %s, ready=%v %s", resp.Status, st.Ready, st.Detail)
	})
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
			return fmt.Errorf("%s node %s at %s: %s; its last log lines:\n%s", cl.DB(), n.Name, cl.Addr(n.Name), why, indent(logs))
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func indent(s string) string {
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
	n, err := cl.Node(node)
	if err != nil {
		return "", err
	}
	return cl.c.logs(ctx, n.ID, "all")
}

// Open finds the running (or crashed) cluster name by its labels.
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
	cl := &Cluster{c: c, name: name, network: "eccheck-" + name, db: DBEcstore}
	port := ecstorePort
	for _, s := range res.Items {
		if s.Labels[LabelDB] == DBPostgres {
			cl.db, port = DBPostgres, postgresPort
		}
	}
	for _, s := range res.Items {
		n := &Node{Name: s.Labels[LabelNode], ID: s.ID, State: string(s.State)}
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
			for _, b := range hc.PortBindings[network.MustParsePort(strconv.Itoa(port)+"/tcp")] {
				n.HostPort, _ = strconv.Atoi(b.HostPort)
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

// SetClock sets node's clock offset by writing ecstore's clock file
// (/var/lib/ecstore/clock) into its container; the node re-reads it every
// 100 ms. 0 resets it. On Postgres nodes it writes libfaketime's timestamp
// file instead, rounded to whole seconds; a node started without
// [FakeTimeEnv] is an error.
func (cl *Cluster) SetClock(node string, offset time.Duration) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := faultCtx()
	defer cancel()
	if !cl.ecstore() {
		insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("set clock of %s: %w", node, err)
		}
		if insp.Container.Config == nil || !slices.Contains(insp.Container.Config.Env, "LD_PRELOAD="+FakeTimeLib) {
			return fmt.Errorf("set clock of %s: its processes run without libfaketime, so no clock can move; start the cluster with clock faults in --nemesis, or 'eccheck cluster up --db %s --fake-time'", node, cl.db)
		}
		return cl.c.SetFakeTime(ctx, n.ID, offset.Round(time.Second))
	}
	text := offset.String()
	if offset >= 0 {
		text = "+" + text
	}
	body := []byte(text + "\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "clock", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Now()})
	tw.Write(body)
	tw.Close()
	if _, err := cl.c.api.CopyToContainer(ctx, n.ID, client.CopyToContainerOptions{DestinationPath: ecstoreDir, Content: &buf}); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// createNode creates node n's container from cfg (image, command, user),
// adding what every cluster node has: its host name, the labels of cluster
// and db, a fixed address on the cluster network, and port published on
// 127.0.0.1 only, at n.HostPort.
func (c *Client) createNode(ctx context.Context, cluster, db, netName string, n *Node, port network.Port, cfg *container.Config) error {
	cfg.Hostname = n.Name
	cfg.ExposedPorts = network.PortSet{port: {}}
	cfg.Labels = c.labels(cluster, LabelNode, n.Name, LabelRole, "node", LabelDB, db)
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
