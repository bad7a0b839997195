package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
)

// nemesisOpts are the flags shared by the nemesis subcommands.
type nemesisOpts struct {
	cluster string
}

func newNemesisCmd(a *app) *cobra.Command {
	o := &nemesisOpts{}
	cmd := &cobra.Command{
		Use:   "nemesis",
		Short: "Inject faults by hand into a running Docker cluster",
		Long: `Nemesis injects one fault into a cluster started with 'eccheck cluster up',
found by its label eccheck.cluster=NAME, and prints one line saying what it
did: the way people use Pumba while exploring.

Partitions and random loss are iptables DROP rules (chains ECCHECK and
ECCHECK-LOSS, filter table) in the node's network namespace, applied by a
short-lived helper container; bandwidth is a tc tbf qdisc on the node's
eth0; delay is tc netem where the kernel has sch_netem, and otherwise (and
for one peer) ecstore's own transport hook, which the output says. 'heal'
removes all of these. Clock offsets go through ecstore's clock file, or on
Postgres nodes libfaketime's (with 'cluster up --fake-time'); kill, start,
pause and resume through the Engine API; 'failover' replaces a Postgres
primary.

A partition is not remembered between commands: a node started with
'eccheck nemesis start' comes back without its rules (heal, then partition
again).`,
		Example: `  eccheck nemesis partition --cluster-name demo --shape isolate --node n1
  eccheck nemesis partition --cluster-name demo --grudge 'n1=n2,n3;n2=n1'
  eccheck nemesis loss --cluster-name demo --node n1 --percent 20
  eccheck nemesis delay --cluster-name demo --node n1 --ms 200
  eccheck nemesis clock --cluster-name demo --node n2 --offset -5s
  eccheck nemesis status --cluster-name demo
  eccheck nemesis heal --cluster-name demo`,
	}
	clusterNameFlag(cmd.PersistentFlags(), &o.cluster, "default", "", "cluster")
	cmd.AddCommand(
		newNemesisPartitionCmd(a, o),
		nemesisSimple(a, o, "heal", "Remove every partition, loss rule, qdisc and hook delay", func(cl *docker.Cluster) (string, error) {
			return "healed: partitions, loss, bandwidth limits and delays removed", cl.Heal()
		}),
		newNemesisClockCmd(a, o),
		nemesisNodeCmd(a, o, "kill", "Kill a node's container (SIGKILL); its filesystem stays", (*docker.Cluster).Kill, "killed"),
		nemesisNodeCmd(a, o, "start", "Start a killed node and wait until it answers", (*docker.Cluster).Start, "started"),
		nemesisNodeCmd(a, o, "pause", "Freeze a node (cgroup freezer)", (*docker.Cluster).Pause, "paused"),
		nemesisNodeCmd(a, o, "resume", "Unfreeze a paused node", (*docker.Cluster).Resume, "resumed"),
		newNemesisDelayCmd(a, o),
		newNemesisLossCmd(a, o),
		newNemesisBandwidthCmd(a, o),
		newNemesisStatusCmd(a, o),
		newNemesisFailoverCmd(a, o),
		newNemesisRejoinCmd(a, o),
	)
	return cmd
}

// openSystem connects and opens the cluster name as its system sees it
// (ecstore's health probe and delay hook, Postgres's primary); a missing
// cluster is a usage error. Notes of the faults applied (a retried
// promotion) go to progress.
func openSystem(ctx context.Context, name string, progress io.Writer) (*docker.Client, db.System, error) {
	c, cl, err := openCluster(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	dbName := cl.DB()
	if dbName == "" {
		dbName = "ecstore" // clusters made before the label named their system
	}
	sys, err := lookupSystem(dbName)
	if err == nil {
		var s db.System
		if s, err = sys.Open(ctx, c, cl); err == nil {
			if p, ok := s.(db.Progresser); ok && progress != nil {
				p.SetProgress(progress)
			}
			return c, s, nil
		}
	}
	c.Close()
	return nil, nil, err
}

func newNemesisRejoinCmd(a *app, o *nemesisOpts) *cobra.Command {
	var node string
	var clone bool
	cmd := &cobra.Command{
		Use:   "rejoin",
		Short: "Postgres: bring a node that is down (an old primary) back as a replica, with pg_rewind or a clone",
		Long: `Rejoin brings a Postgres node that is down, such as the old primary after a
failover, back as a replica of the primary now: a replication slot for it on
the primary, then its container started so that it runs pg_rewind from the
primary (throwing away the writes no replica had received) and follows the
primary through the slot. A node that does not come up streaming after the
rewind (the WAL it needs may be gone), or any node with --clone, is cloned
afresh with pg_basebackup instead. It returns when the primary sees it
streaming, and says how it rejoined. A node that runs (an old primary
started by hand is a second primary) is refused: kill it first.`,
		Example: `  eccheck nemesis rejoin --cluster-name pg --node n1
  eccheck nemesis rejoin --cluster-name pg --node n1 --clone`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usagef("--node is required (the node to bring back)")
			}
			c, s, err := openSystem(cmd.Context(), o.cluster, a.stderr)
			if err != nil {
				return withClusterNames(cmd.Context(), err)
			}
			defer c.Close()
			r, ok := s.(db.Rejoiner)
			if !ok {
				return usagef("cluster %s runs %s, which has no rejoin (a node comes back with 'eccheck nemesis start')", o.cluster, s.(db.Containers).Docker().DB())
			}
			if err := knownNode(s.(db.Containers).Docker(), "--node", node); err != nil {
				return err
			}
			how, err := r.Rejoin(node, clone)
			if err != nil {
				return err
			}
			primary := ""
			if f, ok := s.(db.FailoverTarget); ok {
				primary = " of " + f.Primary()
			}
			fmt.Fprintf(a.stdout, "cluster %s: %s rejoined as a replica%s (%s)\n", o.cluster, node, primary, how)
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node to bring back (n1, n2, ...)")
	cmd.Flags().BoolVar(&clone, "clone", false, "clone the primary afresh with pg_basebackup instead of pg_rewind")
	return cmd
}

func newNemesisFailoverCmd(a *app, o *nemesisOpts) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Postgres: kill the primary for good and promote a replica",
		Long: `Failover finds the Postgres cluster's primary (the running node that is not
in recovery), kills it, promotes the replica that received the most WAL (or
--to), makes the new primary wait for the synchronous standbys that are left,
and points the other replicas at it; one that received WAL past the
promotion point (--to a lagging replica) is rewound from the new primary,
losing that WAL, and stderr says so. The old primary is not started again:
it holds writes no replica has, and 'eccheck nemesis start' on it brings back
a second primary; 'eccheck nemesis rejoin' brings it back as a replica.`,
		Example: `  eccheck nemesis failover --cluster-name pg
  eccheck nemesis failover --cluster-name pg --to n3`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, s, err := openSystem(cmd.Context(), o.cluster, a.stderr)
			if err != nil {
				return withClusterNames(cmd.Context(), err)
			}
			defer c.Close()
			fo, ok := s.(db.FailoverTarget)
			if !ok {
				return usagef("cluster %s runs %s, which has no failover to carry out by hand", o.cluster, s.(db.Containers).Docker().DB())
			}
			if to != "" && !slices.Contains(fo.Replicas(), to) {
				return usagef("--to %s: not a replica of cluster %s (replicas: %s)", to, o.cluster, strings.Join(fo.Replicas(), ", "))
			}
			res, err := fo.FailoverTo(to)
			if err != nil {
				return err
			}
			rewound := ""
			if len(res.Rewound) > 0 {
				rewound = fmt.Sprintf(" (%s rewound: past the promotion point, they lost what %s had not received)", strings.Join(res.Rewound, ", "), res.Promoted)
			}
			fmt.Fprintf(a.stdout, "cluster %s: failover: %s killed for good, %s promoted; replicas now %s%s\n", o.cluster, res.Killed, res.Promoted, orNone(fo.Replicas()), rewound)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the replica to promote (default: the one that received the most WAL)")
	return cmd
}

// openCluster connects to the engine and opens the cluster; a cluster
// that does not exist is a usage error.
func openCluster(ctx context.Context, name string) (*docker.Client, *docker.Cluster, error) {
	if err := docker.ValidName(name); err != nil {
		return nil, nil, usageError{Err: err}
	}
	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.Open(ctx, name)
	if err != nil {
		c.Close()
		if strings.HasPrefix(err.Error(), "no cluster") {
			return nil, nil, usageError{Err: err}
		}
		return nil, nil, err
	}
	return c, cl, nil
}

// withCluster runs f on the opened cluster (its containers, with the
// system's readiness probe and delay hook set) and prints its line.
func withCluster(cmd *cobra.Command, a *app, o *nemesisOpts, f func(cl *docker.Cluster) (string, error)) error {
	c, s, err := openSystem(cmd.Context(), o.cluster, a.stderr)
	if err != nil {
		return withClusterNames(cmd.Context(), err)
	}
	defer c.Close()
	cont, ok := s.(db.Containers)
	if !ok {
		return fmt.Errorf("cluster %s is not in containers", o.cluster)
	}
	cl := cont.Docker()
	line, err := f(cl)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "cluster %s: %s\n", cl.Name(), line)
	return nil
}

// knownNode checks that node is one of the cluster's nodes (a usage error
// otherwise).
func knownNode(cl *docker.Cluster, flag, node string) error {
	if node == "" {
		return usagef("%s is required (one of %s)", flag, strings.Join(cl.Nodes(), ", "))
	}
	if _, err := cl.Node(node); err != nil {
		return usageError{Err: fmt.Errorf("%s: %w", flag, err)}
	}
	return nil
}

func nemesisSimple(a *app, o *nemesisOpts, use, short string, f func(cl *docker.Cluster) (string, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, a, o, f)
		},
	}
}

func nemesisNodeCmd(a *app, o *nemesisOpts, use, short string, f func(*docker.Cluster, string) error, did string) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, a, o, func(cl *docker.Cluster) (string, error) {
				if err := knownNode(cl, "--node", node); err != nil {
					return "", err
				}
				return did + " " + node, f(cl, node)
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node (n1, n2, ...)")
	return cmd
}

// shapeGrudge turns a shape into a grudge (node -> nodes whose packets it
// drops) with nemesis.Partition, the one builder of partitions: node
// first for the shapes about one node, the node order for halves and ring.
func shapeGrudge(shape, node string, nodes []string) (map[string][]string, string, error) {
	order := slices.Clone(nodes)
	if node != "" {
		order = append([]string{node}, slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == node })...)
	}
	step, err := nemesis.Partition(shape, order)
	if err != nil {
		return nil, "", usageError{Err: fmt.Errorf("--shape: %w", err)}
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
func parseGrudge(s string, cl *docker.Cluster) (map[string][]string, error) {
	g := map[string][]string{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		at, froms, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(froms) == "" {
			return nil, usagef("--grudge %q: want NODE=NODE,NODE;NODE=NODE (each node and the nodes whose packets it drops)", s)
		}
		at = strings.TrimSpace(at)
		if err := knownNode(cl, "--grudge", at); err != nil {
			return nil, err
		}
		for f := range strings.SplitSeq(froms, ",") {
			f = strings.TrimSpace(f)
			if err := knownNode(cl, "--grudge", f); err != nil {
				return nil, err
			}
			if f == at {
				return nil, usagef("--grudge: %s cannot drop its own packets", at)
			}
			g[at] = append(g[at], f)
		}
	}
	if len(g) == 0 {
		return nil, usagef("--grudge %q names no node", s)
	}
	return g, nil
}

func formatGrudge(g map[string][]string) string {
	var parts []string
	for _, at := range slices.Sorted(maps.Keys(g)) {
		parts = append(parts, at+"="+strings.Join(g[at], ","))
	}
	return strings.Join(parts, ";")
}

func newNemesisPartitionCmd(a *app, o *nemesisOpts) *cobra.Command {
	var shape, node, grudge string
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Partition the cluster (replaces any partition in force)",
		Long: `Partition drops packets between nodes with iptables rules in each node's
network namespace. Give either --shape or --grudge:

  --shape isolate --node n1   n1 and the others drop each other's packets
  --shape halves              the first half of the nodes and the rest
  --shape one-way --node n1   n1 drops the others' packets (TCP replies too)
  --shape ring                each node sees a majority, no two the same one
  --shape bridge --node n1    two halves that talk only through n1
  --grudge 'n1=n2,n3;n2=n1'   each node and the nodes whose packets it drops`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (shape == "") == (grudge == "") {
				return usagef("give exactly one of --shape (%s) and --grudge", strings.Join(nemesis.Shapes(), ", "))
			}
			if shape != "" && !slices.Contains(nemesis.Shapes(), shape) {
				return usagef("--shape %q: want %s", shape, strings.Join(nemesis.Shapes(), ", "))
			}
			return withCluster(cmd, a, o, func(cl *docker.Cluster) (string, error) {
				var g map[string][]string
				var what string
				var err error
				if grudge != "" {
					if g, err = parseGrudge(grudge, cl); err != nil {
						return "", err
					}
					what = "partitioned: " + formatGrudge(g)
				} else {
					if shape != nemesis.ShapeHalves && shape != nemesis.ShapeRing {
						if node == "" {
							node = cl.Nodes()[0]
						}
						if err := knownNode(cl, "--node", node); err != nil {
							return "", err
						}
					} else {
						node = ""
					}
					if g, what, err = shapeGrudge(shape, node, cl.Nodes()); err != nil {
						return "", err
					}
					what = "partitioned: " + what
				}
				return what, cl.Partition(g)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "", "one of "+strings.Join(nemesis.Shapes(), ", "))
	f.StringVar(&node, "node", "", "the node for isolate, one-way and bridge (default: the first node)")
	f.StringVar(&grudge, "grudge", "", "explicit partition: 'n1=n2,n3;n2=n1' (each node = the nodes whose packets it drops)")
	return cmd
}

func newNemesisClockCmd(a *app, o *nemesisOpts) *cobra.Command {
	var node string
	var offset time.Duration
	cmd := &cobra.Command{
		Use:   "clock",
		Short: "Set a node's clock offset (0 resets it)",
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, a, o, func(cl *docker.Cluster) (string, error) {
				if err := knownNode(cl, "--node", node); err != nil {
					return "", err
				}
				if offset == 0 {
					return "reset the clock of " + node, cl.SetClock(node, 0)
				}
				return fmt.Sprintf("set the clock of %s %+v off", node, offset), cl.SetClock(node, offset)
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node (n1, n2, ...)")
	cmd.Flags().DurationVar(&offset, "offset", 0, "the offset, such as -5s or 90s (0 resets)")
	return cmd
}

func newNemesisDelayCmd(a *app, o *nemesisOpts) *cobra.Command {
	var node, peer string
	var ms int64
	cmd := &cobra.Command{
		Use:   "delay",
		Short: "Delay a node's messages to one peer or to all (--ms 0 removes)",
		Long: `Delay slows a node's outgoing messages: through tc netem when the kernel has
sch_netem and no --peer is given; otherwise through ecstore's own transport
hook (POST /v1/admin/delay), which delays its peer messages but not its
answers to clients. The output says which was used and why.`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ms < 0 {
				return usagef("--ms %d: want 0 or more", ms)
			}
			return withCluster(cmd, a, o, func(cl *docker.Cluster) (string, error) {
				if err := knownNode(cl, "--node", node); err != nil {
					return "", err
				}
				if peer != "" {
					if err := knownNode(cl, "--peer", peer); err != nil {
						return "", err
					}
					if peer == node {
						return "", usagef("--peer %s is --node itself", peer)
					}
				}
				to := "every peer"
				if peer != "" {
					to = peer
				}
				res, err := cl.Delay(node, peer, time.Duration(ms)*time.Millisecond)
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
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node whose messages are delayed")
	cmd.Flags().StringVar(&peer, "peer", "", "only its messages to this node (default: every peer)")
	cmd.Flags().Int64Var(&ms, "ms", 0, "the delay in milliseconds (0 removes it)")
	return cmd
}

func newNemesisLossCmd(a *app, o *nemesisOpts) *cobra.Command {
	var node, peer string
	var percent float64
	cmd := &cobra.Command{
		Use:   "loss",
		Short: "Drop a share of the packets a node receives from its peers (--percent 0 removes)",
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if percent < 0 || percent > 100 {
				return usagef("--percent %v: want 0 to 100", percent)
			}
			return withCluster(cmd, a, o, func(cl *docker.Cluster) (string, error) {
				if err := knownNode(cl, "--node", node); err != nil {
					return "", err
				}
				from := "every peer"
				if peer != "" {
					if err := knownNode(cl, "--peer", peer); err != nil {
						return "", err
					}
					if peer == node {
						return "", usagef("--peer %s is --node itself", peer)
					}
					from = peer
				}
				if err := cl.Loss(node, peer, percent); err != nil {
					return "", err
				}
				if percent == 0 {
					return "removed the packet loss on " + node, nil
				}
				return fmt.Sprintf("%s drops %v%% of the packets from %s at random", node, percent, from), nil
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node that loses packets")
	cmd.Flags().StringVar(&peer, "peer", "", "only packets from this node (default: every peer)")
	cmd.Flags().Float64Var(&percent, "percent", 0, "the share of packets dropped, 0 to 100")
	return cmd
}

func newNemesisBandwidthCmd(a *app, o *nemesisOpts) *cobra.Command {
	var node, rate string
	cmd := &cobra.Command{
		Use:   "bandwidth",
		Short: "Limit a node's outgoing bandwidth (tc tbf; --rate 0 removes)",
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rate == "0" {
				rate = ""
			}
			if rate != "" {
				if err := docker.ValidRate(rate); err != nil {
					return usageError{Err: fmt.Errorf("--rate: %w", err)}
				}
			}
			return withCluster(cmd, a, o, func(cl *docker.Cluster) (string, error) {
				if err := knownNode(cl, "--node", node); err != nil {
					return "", err
				}
				if err := cl.Bandwidth(node, rate); err != nil {
					return "", err
				}
				if rate == "" {
					return "removed the bandwidth limit of " + node, nil
				}
				return fmt.Sprintf("limited %s's outgoing bandwidth to %s", node, rate), nil
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node")
	cmd.Flags().StringVar(&rate, "rate", "", "the rate, such as 1mbit or 500kbit (0 removes the limit)")
	return cmd
}

func newNemesisStatusCmd(a *app, o *nemesisOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the faults in force on each node, as far as the cluster can tell",
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, s, err := openSystem(cmd.Context(), o.cluster, nil)
			if err != nil {
				return withClusterNames(cmd.Context(), err)
			}
			defer c.Close()
			fs, err := s.(db.Containers).Docker().Faults(cmd.Context())
			if err != nil {
				return err
			}
			if ns, ok := s.(db.NodeStatus); ok {
				for i := range fs {
					if fs[i].State != "running" {
						continue
					}
					clock, delays, err := ns.NodeStatus(cmd.Context(), fs[i].Node)
					if err != nil {
						fs[i].Unreachable = err.Error()
						continue
					}
					fs[i].ClockOffset, fs[i].DelaysMs = clock, delays
				}
			}
			return printFaults(a.stdout, fs)
		},
	}
}

// printFaults prints one line per node.
func printFaults(w io.Writer, fs []docker.NodeFaults) error {
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

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
