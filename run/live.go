package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/sshcluster"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
)

// Live is a running Docker cluster taken over by a command that did not
// start it (`eccheck nemesis`, `eccheck cluster status`), as its system
// sees it: ecstore's readiness probe and delay hook, Postgres's primary.
// Each fault method returns the one line the command prints; bad input
// is a usage error that names the flag.
type Live struct {
	System db.System
	// Cluster is the Docker cluster; nil for a cluster on SSH hosts
	// (OpenLiveSSH), whose faults go through System.
	Cluster *docker.Cluster
	c       *docker.Client
}

// OpenLiveSSH takes over the cluster running on hosts (the one there,
// or the one name names when not empty) through the system its manifest
// names; bad hosts or a missing cluster are usage errors.
func OpenLiveSSH(ctx context.Context, systems []db.DB, hosts []string, cfg sshhost.Config, name string, progress io.Writer) (*Live, error) {
	var other *sshcluster.OtherDBError
	for _, s := range systems {
		o, ok := s.(db.SSHOpener)
		if !ok {
			continue
		}
		sys, err := o.OpenSSH(ctx, hosts, cfg, name)
		if errors.As(err, &other) {
			continue // another system's cluster: the next system takes it
		}
		if err != nil {
			return nil, err
		}
		if p, ok := sys.(db.Progresser); ok && progress != nil {
			p.SetProgress(progress)
		}
		return &Live{System: sys}, nil
	}
	if other != nil {
		return nil, db.Usagef("cluster %s on %s runs %s, which this eccheck does not run on SSH hosts", other.Cluster, other.Host, other.DB)
	}
	return nil, db.Usagef("no system of this eccheck runs on SSH hosts")
}

// faults is what the fault methods act on: the Docker cluster, or the
// system on SSH hosts.
func (l *Live) faults() nemesis.Cluster {
	if l.Cluster != nil {
		return l.Cluster
	}
	return l.System
}

// name is the cluster's name.
func (l *Live) name() string {
	if l.Cluster != nil {
		return l.Cluster.Name()
	}
	if h, ok := l.System.(db.Hosted); ok {
		return h.Name()
	}
	return "?"
}

// runs is "cluster NAME runs DB" ("cluster NAME" on SSH hosts).
func (l *Live) runs() string {
	if l.Cluster != nil {
		return fmt.Sprintf("cluster %s runs %s", l.Cluster.Name(), l.Cluster.DB())
	}
	return "cluster " + l.name()
}

// docker refuses what only a Docker cluster can do (what, such as
// "bandwidth"), on SSH hosts.
func (l *Live) docker(what string) error {
	if l.Cluster == nil {
		return db.Usagef("%s: not on SSH hosts yet (partition, heal, clock, kill, start, pause, resume, crash, restart, delay, loss and status are)", what)
	}
	return nil
}

// link sets node's link fault on SSH hosts (tc netem on its host).
func (l *Live) link(node, peer string, link sshhost.Link) error {
	lk, ok := l.System.(db.Linker)
	if !ok {
		return db.Usagef("delay and loss: this system's clusters on SSH hosts have no link faults")
	}
	return lk.Link(node, peer, link)
}

// OpenLive opens the cluster name and hands it to the system its label
// names (ecstore for clusters made before the label); a cluster that does
// not exist is a usage error that lists those that do. Notes of what the
// faults do beyond their plain effect go to progress.
func OpenLive(ctx context.Context, systems []db.DB, name string, progress io.Writer) (*Live, error) {
	if err := docker.ValidName(name); err != nil {
		return nil, db.UsageError{Err: err}
	}
	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := c.Open(ctx, name)
	if err != nil {
		defer c.Close()
		if strings.HasPrefix(err.Error(), "no cluster") {
			if names, nerr := c.ClusterNames(ctx); nerr == nil && len(names) > 0 {
				err = fmt.Errorf("%w; clusters here: %s", err, strings.Join(names, ", "))
			}
			return nil, db.UsageError{Err: err}
		}
		return nil, err
	}
	dbName := cl.DB()
	if dbName == "" {
		dbName = "ecstore"
	}
	i := slices.IndexFunc(systems, func(s db.DB) bool { return s.Name() == dbName })
	if i < 0 {
		c.Close()
		return nil, fmt.Errorf("cluster %s runs %q, which this eccheck does not know", name, dbName)
	}
	sys, err := systems[i].Open(ctx, c, cl)
	if err != nil {
		c.Close()
		return nil, err
	}
	if p, ok := sys.(db.Progresser); ok && progress != nil {
		p.SetProgress(progress)
	}
	return &Live{System: sys, Cluster: cl, c: c}, nil
}

// Close releases the connection to the engine, or to the hosts; the
// cluster stays.
func (l *Live) Close() error {
	if l.Cluster == nil {
		return l.System.Close(context.Background(), "")
	}
	return l.c.Close()
}

// KnownNode checks that node is one of the cluster's nodes; flag names it
// in the usage error otherwise.
func (l *Live) KnownNode(flag, node string) error {
	if node == "" {
		return db.Usagef("%s is required (one of %s)", flag, strings.Join(l.faults().Nodes(), ", "))
	}
	if l.Cluster == nil {
		if !slices.Contains(l.System.Nodes(), node) {
			return db.Usagef("%s: no node %q in cluster %s (nodes: %s)", flag, node, l.name(), strings.Join(l.System.Nodes(), ", "))
		}
		return nil
	}
	if _, err := l.Cluster.Node(node); err != nil {
		return db.UsageError{Err: fmt.Errorf("%s: %w", flag, err)}
	}
	return nil
}

// CheckPartition checks the flags of a partition before any engine is
// asked: exactly one of a shape (a known one) and a grudge.
func CheckPartition(shape, grudge string) error {
	if (shape == "") == (grudge == "") {
		return db.Usagef("give exactly one of --shape (%s) and --grudge", strings.Join(nemesis.Shapes(), ", "))
	}
	if shape != "" && !slices.Contains(nemesis.Shapes(), shape) {
		return db.Usagef("--shape %q: want %s", shape, strings.Join(nemesis.Shapes(), ", "))
	}
	return nil
}

// CheckDelay checks --ms before any engine is asked.
func CheckDelay(ms int64) error {
	if ms < 0 {
		return db.Usagef("--ms %d: want 0 or more", ms)
	}
	return nil
}

// CheckLoss checks --percent before any engine is asked.
func CheckLoss(percent float64) error {
	if percent < 0 || percent > 100 {
		return db.Usagef("--percent %v: want 0 to 100", percent)
	}
	return nil
}

// CheckRate checks --rate before any engine is asked ("" and "0" remove
// the limit).
func CheckRate(rate string) error {
	if rate == "" || rate == "0" {
		return nil
	}
	if err := docker.ValidRate(rate); err != nil {
		return db.UsageError{Err: fmt.Errorf("--rate: %w", err)}
	}
	return nil
}

// Partition replaces the partition in force: one of the shapes
// (nemesis.Shapes; node is the node a shape is about, the first node when
// empty) or an explicit grudge 'n1=n2,n3;n2=n1'.
func (l *Live) Partition(shape, node, grudge string) (string, error) {
	var g map[string][]string
	var what string
	if err := CheckPartition(shape, grudge); err != nil {
		return "", err
	}
	if grudge != "" {
		var err error
		if g, err = l.parseGrudge(grudge); err != nil {
			return "", err
		}
		what = FormatGrudge(g)
	} else {
		if shape != nemesis.ShapeHalves && shape != nemesis.ShapeRing {
			if node == "" {
				node = l.faults().Nodes()[0]
			}
			if err := l.KnownNode("--node", node); err != nil {
				return "", err
			}
		} else {
			node = ""
		}
		var err error
		if g, what, err = ShapeGrudge(shape, node, l.faults().Nodes()); err != nil {
			return "", err
		}
	}
	return "partitioned: " + what, l.faults().Partition(g)
}

// ShapeGrudge turns a shape into a grudge (node -> the nodes whose packets
// it drops) with nemesis.Partition, the one builder of partitions: node
// first for the shapes about one node, the node order for halves and
// ring. It also says what the partition does.
func ShapeGrudge(shape, node string, nodes []string) (map[string][]string, string, error) {
	if !slices.Contains(nemesis.Shapes(), shape) {
		return nil, "", db.Usagef("--shape %q: want %s", shape, strings.Join(nemesis.Shapes(), ", "))
	}
	order := slices.Clone(nodes)
	if node != "" {
		order = append([]string{node}, slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == node })...)
	}
	step, err := nemesis.Partition(shape, order)
	if err != nil {
		return nil, "", db.UsageError{Err: fmt.Errorf("--shape: %w", err)}
	}
	others := order[1:]
	switch shape {
	case nemesis.ShapeIsolate:
		return step.Grudge, fmt.Sprintf("isolated %s from %s", node, strings.Join(others, ", ")), nil
	case nemesis.ShapeOneWay:
		return step.Grudge, fmt.Sprintf("%s drops packets from %s (they still receive its packets)", node, strings.Join(others, ", ")), nil
	case nemesis.ShapeHalves:
		a, b := nodes[:len(nodes)/2], nodes[len(nodes)/2:]
		return step.Grudge, fmt.Sprintf("split into %s | %s", strings.Join(a, ","), strings.Join(b, ",")), nil
	}
	return step.Grudge, strings.TrimPrefix(step.Desc, "partition "), nil
}

// parseGrudge parses 'n1=n2,n3;n2=n1'.
func (l *Live) parseGrudge(s string) (map[string][]string, error) {
	g := map[string][]string{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		at, froms, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(froms) == "" {
			return nil, db.Usagef("--grudge %q: want NODE=NODE,NODE;NODE=NODE (each node and the nodes whose packets it drops)", s)
		}
		at = strings.TrimSpace(at)
		if err := l.KnownNode("--grudge", at); err != nil {
			return nil, err
		}
		for f := range strings.SplitSeq(froms, ",") {
			f = strings.TrimSpace(f)
			if err := l.KnownNode("--grudge", f); err != nil {
				return nil, err
			}
			if f == at {
				return nil, db.Usagef("--grudge: %s cannot drop its own packets", at)
			}
			g[at] = append(g[at], f)
		}
	}
	if len(g) == 0 {
		return nil, db.Usagef("--grudge %q names no node", s)
	}
	return g, nil
}

// FormatGrudge writes a grudge back as 'n1=n2,n3;n2=n1', nodes sorted.
func FormatGrudge(g map[string][]string) string {
	var parts []string
	for _, at := range slices.Sorted(maps.Keys(g)) {
		parts = append(parts, at+"="+strings.Join(g[at], ","))
	}
	return strings.Join(parts, ";")
}

// Heal removes every partition, loss rule, qdisc and hook delay.
func (l *Live) Heal() (string, error) {
	if l.Cluster == nil {
		return "healed: partitions, delays and loss removed", l.System.Heal()
	}
	return "healed: partitions, loss, bandwidth limits and delays removed", l.Cluster.Heal()
}

// NodeFault applies a fault to one node through its container: kill,
// start (waiting until it answers), pause or resume.
func (l *Live) NodeFault(verb, node string) (string, error) {
	if err := l.KnownNode("--node", node); err != nil {
		return "", err
	}
	f := l.faults()
	act := map[string]func(string) error{"kill": f.Kill, "start": f.Start, "pause": f.Pause, "resume": f.Resume}[verb]
	if act == nil {
		return "", fmt.Errorf("no node fault %q", verb)
	}
	did := map[string]string{"kill": "killed", "start": "started", "pause": "paused", "resume": "resumed"}[verb]
	return did + " " + node, act(node)
}

// Clock sets node's clock offset; 0 resets it.
func (l *Live) Clock(node string, offset time.Duration) (string, error) {
	if err := l.KnownNode("--node", node); err != nil {
		return "", err
	}
	if offset == 0 {
		return "reset the clock of " + node, l.faults().SetClock(node, 0)
	}
	return fmt.Sprintf("set the clock of %s %+v off", node, offset), l.faults().SetClock(node, offset)
}

// peer checks a --peer: empty (every peer), or another node.
func (l *Live) peer(node, peer string) (string, error) {
	if peer == "" {
		return "every peer", nil
	}
	if err := l.KnownNode("--peer", peer); err != nil {
		return "", err
	}
	if peer == node {
		return "", db.Usagef("--peer %s is --node itself", peer)
	}
	return peer, nil
}

// Delay delays node's messages to peer (every peer when empty) by ms;
// 0 removes the delay. The line says how it was applied, and why. On SSH
// hosts it is tc netem on node's host, which holds one link fault at a
// time (a delay replaces a loss).
func (l *Live) Delay(node, peer string, ms int64) (string, error) {
	if err := CheckDelay(ms); err != nil {
		return "", err
	}
	if err := l.KnownNode("--node", node); err != nil {
		return "", err
	}
	to, err := l.peer(node, peer)
	if err != nil {
		return "", err
	}
	if l.Cluster == nil {
		if err := l.link(node, peer, sshhost.Link{Delay: time.Duration(ms) * time.Millisecond}); err != nil {
			return "", err
		}
		if ms == 0 {
			return fmt.Sprintf("removed the delay and loss of %s's packets", node), nil
		}
		return fmt.Sprintf("delayed %s's packets to %s by %dms with tc netem on its host (this replaces a loss it had)", node, to, ms), nil
	}
	res, err := l.Cluster.Delay(node, peer, time.Duration(ms)*time.Millisecond)
	if err != nil {
		return "", err
	}
	if ms == 0 {
		return fmt.Sprintf("removed the delay of %s's messages to %s", node, to), nil
	}
	line := fmt.Sprintf("delayed %s's messages to %s by %dms with %s", node, to, ms, res.Method)
	if res.Note != "" {
		line += " (" + res.Note + ")"
	}
	return line, nil
}

// Loss drops percent of the packets node receives from peer (every peer
// when empty); 0 removes the loss. On SSH hosts it drops what node's host
// sends to peer instead (tc netem, one link fault at a time).
func (l *Live) Loss(node, peer string, percent float64) (string, error) {
	if err := CheckLoss(percent); err != nil {
		return "", err
	}
	if err := l.KnownNode("--node", node); err != nil {
		return "", err
	}
	from, err := l.peer(node, peer)
	if err != nil {
		return "", err
	}
	if l.Cluster == nil {
		if err := l.link(node, peer, sshhost.Link{Loss: percent}); err != nil {
			return "", err
		}
		if percent == 0 {
			return fmt.Sprintf("removed the delay and loss of %s's packets", node), nil
		}
		return fmt.Sprintf("%s's host drops %v%% of the packets it sends to %s at random, with tc netem (this replaces a delay it had)", node, percent, from), nil
	}
	if err := l.Cluster.Loss(node, peer, percent); err != nil {
		return "", err
	}
	if percent == 0 {
		return "removed the packet loss on " + node, nil
	}
	return fmt.Sprintf("%s drops %v%% of the packets from %s at random", node, percent, from), nil
}

// Bandwidth limits node's outgoing bandwidth to rate (tc tbf); "" or "0"
// removes the limit.
func (l *Live) Bandwidth(node, rate string) (string, error) {
	if err := l.docker("bandwidth"); err != nil {
		return "", err
	}
	if err := CheckRate(rate); err != nil {
		return "", err
	}
	if rate == "0" {
		rate = ""
	}
	if err := l.KnownNode("--node", node); err != nil {
		return "", err
	}
	if err := l.Cluster.Bandwidth(node, rate); err != nil {
		return "", err
	}
	if rate == "" {
		return "removed the bandwidth limit of " + node, nil
	}
	return fmt.Sprintf("limited %s's outgoing bandwidth to %s", node, rate), nil
}

// Crash kills every node at once, as a power cut of the whole cluster
// would (what a node kept only in memory is gone).
func (l *Live) Crash() (string, error) {
	nodes := l.faults().Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Go(func() { errs[i] = l.faults().Kill(node) })
	}
	wg.Wait()
	return "killed every node at once: " + strings.Join(nodes, ", "), errors.Join(errs...)
}

// Restart brings back a cluster whose every node was killed: the
// system's own way when it has one (Galera recovers each node's position
// and bootstraps from the most advanced), else node by node.
func (l *Live) Restart() (string, error) {
	if r, ok := l.System.(nemesis.Restarter); ok {
		res, err := r.RestartAll()
		if err != nil {
			return "", err
		}
		js, err := json.Marshal(res)
		if err != nil {
			return "", err
		}
		return "restarted the " + l.Cluster.DB() + " way: " + string(js), nil
	}
	nodes := l.faults().Nodes()
	for _, node := range nodes {
		if err := l.faults().Start(node); err != nil {
			return "", err
		}
	}
	return "started every node: " + strings.Join(nodes, ", "), nil
}

// Failover replaces the primary, promoting to (the system's choice when
// empty), when the system has one to replace.
func (l *Live) Failover(to string) (string, error) {
	fo, ok := l.System.(db.FailoverTarget)
	if !ok {
		return "", db.Usagef("%s, which has no failover to carry out by hand", l.runs())
	}
	if to != "" && !slices.Contains(fo.Replicas(), to) {
		return "", db.Usagef("--to %s: not a replica of cluster %s (replicas: %s)", to, l.name(), strings.Join(fo.Replicas(), ", "))
	}
	res, err := fo.FailoverTo(to)
	if err != nil {
		return "", err
	}
	rewound := ""
	if len(res.Rewound) > 0 {
		rewound = fmt.Sprintf(" (%s rewound: past the promotion point, they lost what %s had not received)", strings.Join(res.Rewound, ", "), res.Promoted)
	}
	return fmt.Sprintf("failover: %s killed for good, %s promoted; replicas now %s%s", res.Killed, res.Promoted, orNoneComma(fo.Replicas()), rewound), nil
}

// Rejoin brings a node a failover killed back as a replica, when the
// system can.
func (l *Live) Rejoin(node string, clone bool) (string, error) {
	if node == "" {
		return "", db.Usagef("--node is required (the node to bring back)")
	}
	r, ok := l.System.(db.Rejoiner)
	if !ok {
		return "", db.Usagef("%s, which has no rejoin (a node comes back with 'eccheck nemesis start')", l.runs())
	}
	if err := l.KnownNode("--node", node); err != nil {
		return "", err
	}
	how, err := r.Rejoin(node, clone)
	if err != nil {
		return "", err
	}
	of := ""
	if f, ok := l.System.(db.FailoverTarget); ok {
		of = " of " + f.Primary()
	}
	return fmt.Sprintf("%s rejoined as a replica%s (%s)", node, of, how), nil
}

// WriteFaults writes the faults in force on each node, one line each: what
// its container and network namespace show, and what its system knows
// (clock offset, hook delays).
func (l *Live) WriteFaults(ctx context.Context, w io.Writer) error {
	if l.Cluster == nil {
		return l.writeHostFaults(ctx, w)
	}
	fs, err := l.Cluster.Faults(ctx)
	if err != nil {
		return err
	}
	if ns, ok := l.System.(db.NodeStatus); ok {
		for i := range fs {
			if fs[i].State != "running" {
				continue
			}
			clock, delays, err := ns.NodeStatus(ctx, fs[i].Node)
			if err != nil {
				fs[i].Unreachable = err.Error()
				continue
			}
			fs[i].ClockOffset, fs[i].DelaysMs = clock, delays
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tDROPS FROM\tLOSS\tQDISC\tDELAY\tCLOCK")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, f := range fs {
		var loss, delay []string
		for _, n := range slices.Sorted(maps.Keys(f.Loss)) {
			loss = append(loss, fmt.Sprintf("%s %.0f%%", n, f.Loss[n]*100))
		}
		for _, n := range slices.Sorted(maps.Keys(f.DelaysMs)) {
			delay = append(delay, fmt.Sprintf("%s %dms", n, f.DelaysMs[n]))
		}
		clock := "-"
		if f.ClockOffset != 0 {
			clock = fmt.Sprintf("%+v", f.ClockOffset)
		}
		if f.Unreachable != "" {
			clock = "unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Node, f.State, dash(strings.Join(f.Drops, ",")), dash(strings.Join(loss, ",")),
			dash(f.Qdisc), dash(strings.Join(delay, ",")), clock)
	}
	return tw.Flush()
}

// writeHostFaults writes, for a cluster on SSH hosts, each node's host,
// its process's state and its clock offset, and what eccheck left on
// each host (its iptables chain's rules, its processes and directories).
func (l *Live) writeHostFaults(ctx context.Context, w io.Writer) error {
	h, ok := l.System.(db.Hosted)
	if !ok {
		return errors.New("the cluster is neither in containers nor on SSH hosts")
	}
	nodes, err := h.HostedNodes(ctx)
	if err != nil {
		return err
	}
	ns, _ := l.System.(db.NodeStatus)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHOST\tSTATE\tCLOCK")
	for _, n := range nodes {
		clock := "-"
		if ns != nil && n.State == "running" {
			if off, _, err := ns.NodeStatus(ctx, n.Node); err != nil {
				clock = "unreachable"
			} else if off != 0 {
				clock = fmt.Sprintf("%+v", off)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Node, n.Host, n.State, clock)
	}
	return tw.Flush()
}

// WriteNodes writes one line per node of a running system: its name, its
// role when the system has roles (primary, replica) and its state
// otherwise, its published address, its address on the cluster network
// and its container; then, when the system says, how to reach each node.
// Two primaries get a warning: a split brain.
func WriteNodes(ctx context.Context, w io.Writer, s db.System) error {
	cont, ok := s.(db.Containers)
	if h, hosted := s.(db.Hosted); !ok && hosted {
		nodes, err := h.HostedNodes(ctx)
		if err != nil {
			return err
		}
		var roles map[string]string
		if r, ok := s.(db.Roler); ok {
			roles = r.Roles(ctx)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "NODE\tSTATE\tROLE\tADDRESS\tHOST (cluster %s)\n", h.Name())
		primaries := 0
		for _, n := range nodes {
			role := roles[n.Node]
			switch role {
			case "":
				role = "-"
			case "primary":
				primaries++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Node, n.State, role, n.Addr, n.Host)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if primaries > 1 {
			fmt.Fprintf(w, "warning: %d nodes take writes (split brain)\n", primaries)
		}
		if d, ok := s.(db.Describer); ok {
			for _, n := range nodes {
				fmt.Fprintf(w, "%s: %s\n", n.Node, d.Describe(n.Node))
			}
		}
		return nil
	}
	if !ok {
		return errors.New("the cluster is not in containers")
	}
	cl := cont.Docker()
	var roles map[string]string
	column := "STATE"
	if r, ok := s.(db.Roler); ok {
		roles, column = r.Roles(ctx), "ROLE"
	}
	netName, subnet := cl.Network()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\t%s\tADDRESS\tNETWORK %s (%s)\tCONTAINER\n", column, netName, subnet)
	primaries := 0
	for _, n := range cl.Nodes() {
		nd, _ := cl.Node(n)
		state := nd.State
		if roles != nil {
			state = roles[n]
			if state == "primary" {
				primaries++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, state, cl.PublishedAddr(n), nd.IP, nd.Container)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if primaries > 1 {
		fmt.Fprintf(w, "warning: %d nodes take writes (split brain): kill all but one, then 'eccheck nemesis rejoin' the others\n", primaries)
	}
	if d, ok := s.(db.Describer); ok {
		for _, n := range cl.Nodes() {
			fmt.Fprintf(w, "%s: %s\n", n, d.Describe(n))
		}
	}
	return nil
}

func orNoneComma(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
