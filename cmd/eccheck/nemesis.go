package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/run"
)

func newNemesisCmd(a *app) *cobra.Command {
	t := &target{compat: true}
	cmd := &cobra.Command{
		Use:   "nemesis",
		Short: "Inject faults by hand into a running Docker cluster, or one on SSH hosts",
		Long: `Nemesis injects one fault into a cluster started with 'eccheck cluster up',
found by its label eccheck.cluster=NAME, and prints one line saying what it
did: the way people use Pumba while exploring.

Partitions and random loss are iptables DROP rules (chains ECCHECK and
ECCHECK-LOSS, filter table) in the node's network namespace, applied by a
short-lived helper container; bandwidth is a tc tbf qdisc on the node's
eth0; delay is tc netem where the kernel has sch_netem, and otherwise (and
for one peer) the system's own transport hook (ecstore has one), which the
output says. 'heal' removes all of these. Clock offsets go through the
file the system's nodes read (ecstore's clock file, or libfaketime's for C
programs started with it); kill, start, pause and resume through the Engine
API; 'crash' kills every node at once and 'restart' brings the cluster
back the way its operators do (Galera: each node's position recovered, the
most advanced one bootstrapped); 'failover' and 'rejoin' are for systems
with a primary to replace.

A partition is not remembered between commands: a node started with
'eccheck nemesis start' comes back without its rules (heal, then partition
again).

On SSH hosts (--cluster ssh --hosts h1,h2,h3 and the --ssh-* flags of
'eccheck cluster up'; the cluster's manifest on the hosts says its
system): partitions are iptables DROP rules on INPUT in the chain ECCHECK
of each host (a one-way grudge cuts one way), clock offsets go through
ecstore's clock file or Postgres's libfaketime file (or, for a cluster
started with --ssh-host-clock, the hosts' own clocks), kill, start, pause
and resume signal the node's process group, delay and loss are tc netem
on the node's host (where the kernel has sch_netem; one link fault per
node at a time); bandwidth, failover and rejoin are not done there yet.
See docs/ssh.md.`,
		Example: `  eccheck nemesis partition --cluster-name demo --shape isolate --node n1
  eccheck nemesis partition --cluster-name demo --grudge 'n1=n2,n3;n2=n1'
  eccheck nemesis loss --cluster-name demo --node n1 --percent 20
  eccheck nemesis delay --cluster-name demo --node n1 --ms 200
  eccheck nemesis clock --cluster-name demo --node n2 --offset -5s
  eccheck nemesis status --cluster-name demo
  eccheck nemesis heal --cluster-name demo
  eccheck nemesis kill --cluster ssh --hosts db1,db2,db3 --node n2`,
	}
	bindTarget(cmd.PersistentFlags(), t, "default", "")
	// live is the command that checks its flags (pre, when set, before any
	// engine is asked), opens the cluster and prints the line its fault
	// returns.
	live := func(use, short, long string, flags func(*pflag.FlagSet), pre func() error, act func(l *run.Live) (string, error)) *cobra.Command {
		c := &cobra.Command{
			Use: use, Short: short, Long: long,
			Args: exactArgs(0, "no arguments (flags only)"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := t.check(cmd.Flags().Changed); err != nil {
					return err
				}
				if pre != nil {
					if err := pre(); err != nil {
						return err
					}
				}
				l, err := t.open(cmd.Context(), cmd.Flags().Changed, a.stderr, a.stderr)
				if err != nil {
					return err
				}
				defer l.Close()
				line, err := act(l)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "cluster %s: %s\n", t.label(l), line)
				return nil
			},
		}
		if flags != nil {
			flags(c.Flags())
		}
		return c
	}
	var (
		node, peer, shape, grudge, to, rate string
		offset                              time.Duration
		ms                                  int64
		percent                             float64
		clone                               bool
	)
	nodeFlag := func(usage string) func(*pflag.FlagSet) {
		return func(f *pflag.FlagSet) { f.StringVar(&node, "node", "", usage) }
	}
	nodeCmd := func(verb, short string) *cobra.Command {
		return live(verb, short, "", nodeFlag("the node (n1, n2, ...)"), nil, func(l *run.Live) (string, error) { return l.NodeFault(verb, node) })
	}
	cmd.AddCommand(
		live("partition", "Partition the cluster (replaces any partition in force)",
			`Partition drops packets between nodes with iptables rules in each node's
network namespace. Give either --shape or --grudge:

  --shape isolate --node n1   n1 and the others drop each other's packets
  --shape halves              the first half of the nodes and the rest
  --shape one-way --node n1   n1 drops the others' packets (TCP replies too)
  --shape ring                each node sees a majority, no two the same one
  --shape bridge --node n1    two halves that talk only through n1
  --grudge 'n1=n2,n3;n2=n1'   each node and the nodes whose packets it drops`,
			func(f *pflag.FlagSet) {
				f.StringVar(&shape, "shape", "", "one of "+strings.Join(nemesis.Shapes(), ", "))
				f.StringVar(&node, "node", "", "the node for isolate, one-way and bridge (default: the first node)")
				f.StringVar(&grudge, "grudge", "", "explicit partition: 'n1=n2,n3;n2=n1' (each node = the nodes whose packets it drops)")
			}, func() error { return run.CheckPartition(shape, grudge) },
			func(l *run.Live) (string, error) { return l.Partition(shape, node, grudge) }),
		live("heal", "Remove every partition, loss rule, qdisc and hook delay", "", nil, nil, (*run.Live).Heal),
		live("clock", "Set a node's clock offset (0 resets it)", "", func(f *pflag.FlagSet) {
			f.StringVar(&node, "node", "", "the node (n1, n2, ...)")
			f.DurationVar(&offset, "offset", 0, "the offset, such as -5s or 90s (0 resets)")
		}, nil, func(l *run.Live) (string, error) { return l.Clock(node, offset) }),
		nodeCmd("kill", "Kill a node's container (SIGKILL); its filesystem stays"),
		nodeCmd("start", "Start a killed node and wait until it answers"),
		nodeCmd("pause", "Freeze a node (cgroup freezer)"),
		nodeCmd("resume", "Unfreeze a paused node"),
		live("crash", "Kill every node at once (a whole-cluster crash)", "", nil, nil, (*run.Live).Crash),
		live("restart", "Start a crashed cluster again: the system's own way (Galera: from the most advanced node), else node by node", "", nil, nil, (*run.Live).Restart),
		live("delay", "Delay a node's messages to one peer or to all (--ms 0 removes)",
			`Delay slows a node's outgoing messages: through tc netem when the kernel has
sch_netem and no --peer is given; otherwise through the system's own
transport hook (ecstore's POST /v1/admin/delay), which delays its peer
messages but not its answers to clients. The output says which was used and
why.`, func(f *pflag.FlagSet) {
				f.StringVar(&node, "node", "", "the node whose messages are delayed")
				f.StringVar(&peer, "peer", "", "only its messages to this node (default: every peer)")
				f.Int64Var(&ms, "ms", 0, "the delay in milliseconds (0 removes it)")
			}, func() error { return run.CheckDelay(ms) }, func(l *run.Live) (string, error) { return l.Delay(node, peer, ms) }),
		live("loss", "Drop a share of the packets a node receives from its peers (--percent 0 removes)", "", func(f *pflag.FlagSet) {
			f.StringVar(&node, "node", "", "the node that loses packets")
			f.StringVar(&peer, "peer", "", "only packets from this node (default: every peer)")
			f.Float64Var(&percent, "percent", 0, "the share of packets dropped, 0 to 100")
		}, func() error { return run.CheckLoss(percent) }, func(l *run.Live) (string, error) { return l.Loss(node, peer, percent) }),
		live("bandwidth", "Limit a node's outgoing bandwidth (tc tbf; --rate 0 removes)", "", func(f *pflag.FlagSet) {
			f.StringVar(&node, "node", "", "the node")
			f.StringVar(&rate, "rate", "", "the rate, such as 1mbit or 500kbit (0 removes the limit)")
		}, func() error { return run.CheckRate(rate) }, func(l *run.Live) (string, error) { return l.Bandwidth(node, rate) }),
		&cobra.Command{
			Use: "status", Short: "Show the faults in force on each node, as far as the cluster can tell",
			Args: exactArgs(0, "no arguments (flags only)"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := t.check(cmd.Flags().Changed); err != nil {
					return err
				}
				l, err := t.open(cmd.Context(), cmd.Flags().Changed, a.stderr, nil)
				if err != nil {
					return err
				}
				defer l.Close()
				return l.WriteFaults(cmd.Context(), a.stdout)
			},
		},
		live("failover", "Kill the primary for good and promote a replica (systems with a primary)",
			`Failover finds the cluster's primary (for Postgres the running node that is
not in recovery), kills it, promotes the replica that received the most WAL
(or --to), makes the new primary wait for the synchronous standbys that are
left, and points the other replicas at it; one that received WAL past the
promotion point (--to a lagging replica) is rewound from the new primary,
losing that WAL, and stderr says so. The old primary is not started again:
it holds writes no replica has, and 'eccheck nemesis start' on it brings back
a second primary; 'eccheck nemesis rejoin' brings it back as a replica.`,
			func(f *pflag.FlagSet) {
				f.StringVar(&to, "to", "", "the replica to promote (default: the one that received the most WAL)")
			}, nil, func(l *run.Live) (string, error) { return l.Failover(to) }),
		live("rejoin", "Bring a node that is down (an old primary) back as a replica (systems with a primary)",
			`Rejoin brings a node that is down, such as the old primary after a failover,
back as a replica of the primary now. For Postgres: a replication slot for
it on the primary, then its container started so that it rewinds from the
primary (throwing away the writes no replica had received) and follows the
primary through the slot; a node that does not come up streaming after the
rewind (the WAL it needs may be gone), or any node with --clone, is cloned
afresh instead. It returns when the primary sees it streaming, and says how
it rejoined. A node that runs (an old primary started by hand is a second
primary) is refused: kill it first.`,
			func(f *pflag.FlagSet) {
				f.StringVar(&node, "node", "", "the node to bring back (n1, n2, ...)")
				f.BoolVar(&clone, "clone", false, "clone the primary afresh instead of rewinding the node")
			}, func() error {
				if node == "" {
					return usagef("--node is required (the node to bring back)")
				}
				return nil
			}, func(l *run.Live) (string, error) { return l.Rejoin(node, clone) }),
	)
	for _, c := range cmd.Commands() {
		switch c.Name() {
		case "partition":
			c.Example = "  eccheck nemesis partition --cluster-name demo --shape isolate --node n1\n  eccheck nemesis partition --cluster-name demo --grudge 'n1=n2,n3;n2=n1'"
		case "failover":
			c.Example = "  eccheck nemesis failover --cluster-name pg\n  eccheck nemesis failover --cluster-name pg --to n3"
		case "rejoin":
			c.Example = "  eccheck nemesis rejoin --cluster-name pg --node n1\n  eccheck nemesis rejoin --cluster-name pg --node n1 --clone"
		}
	}
	return cmd
}
