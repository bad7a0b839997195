package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/sshcluster"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/run"
)

func newClusterCmd(a *app) *cobra.Command {
	t := &target{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a store's cluster in Docker containers or on SSH hosts",
		Long: `Cluster starts and stops clusters in Docker containers, through the Docker
Engine API. Each cluster has its own bridge network eccheck-NAME on a free
172.30-31.x.0/24 subnet, one container per node (eccheck-NAME-n1, ...) at
a fixed address (.11, .12, ...), client ports published on 127.0.0.1 only,
and the label eccheck.cluster=NAME on every container and network.

Build the images first: eccheck images build.

With --cluster ssh --hosts h1,h2,h3 the cluster runs on hosts of yours
instead, node i on host i, reached over SSH (--ssh-user, --ssh-key,
--ssh-port, --ssh-known-hosts, --ssh-insecure): ecstore, Postgres, etcd
or Redis with Sentinel (--db postgres, etcd, redis: Debian's packages,
installed when missing).
Everything eccheck puts on a host is under /var/lib/eccheck and in its
iptables chain ECCHECK; 'cluster down --cluster ssh --hosts ...' removes
all of it, whatever run left it. See docs/ssh.md.`,
	}
	bindTarget(cmd.PersistentFlags(), t, "default", "name")
	cmd.AddCommand(newClusterUpCmd(a, t), newClusterDownCmd(a, t), newClusterStatusCmd(a, t), newClusterLogsCmd(a, t))
	return cmd
}

func newClusterUpCmd(a *app, t *target) *cobra.Command {
	var (
		dbName string
		c      db.Common
		wait   time.Duration
		sf     *systemFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a cluster and wait until every node answers",
		Long: `Up starts a cluster of --db in Docker containers and waits until every node
answers (--wait bounds it; the error names the node and shows its last log
lines). If up fails, it removes what it created. The system's own flags are
those of 'eccheck test'.

For ecstore the nodes run 'eccheck store serve' with their peers at fixed
addresses, a data directory and the clock file /var/lib/ecstore/clock (for
clock faults); a node answers when GET /v1/health says ready.

With --db postgres it starts a Postgres primary (n1) and --nodes-1 streaming
replicas instead (--pg-sync, --pg-standbys, --pg-apply-delay as in 'eccheck
test'; --fake-time runs them under libfaketime so that 'eccheck nemesis
clock' can move their clocks), and prints each node's connection string.`,
		Example: `  eccheck cluster up --cluster-name demo --nodes 3 --mode lww --w 1 --r 1
  eccheck cluster up --cluster ssh --hosts db1,db2,db3 --ssh-user admin --mode raft
  eccheck cluster up --cluster-name r --mode raft
  eccheck cluster up --cluster-name pg --db postgres --pg-sync remote_apply --pg-standbys n2`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := lookupSystem(dbName)
			if err != nil {
				return err
			}
			changed := cmd.Flags().Changed
			if err := t.check(changed); err != nil {
				return err
			}
			c.Backend, c.Hosts, c.SSH, c.HostClock = t.c.Backend, t.c.Hosts, t.c.SSH, t.c.HostClock
			if err := checkSSH(sys, &c, changed); err != nil {
				return err
			}
			if !slices.Contains(sys.Backends(), db.BackendDocker) && !t.ssh() {
				return usagef("--db %s does not run in Docker", dbName)
			}
			settings, err := sf.pick(sys, changed)
			if err != nil {
				return err
			}
			c.ClusterName, c.Keep = t.name, true
			if err := settings.Validate(c); err != nil {
				return err
			}
			logf := func(format string, args ...any) { fmt.Fprintf(a.stderr, "eccheck: "+format+"\n", args...) }
			s, err := settings.Start(cmd.Context(), db.Env{Common: c, Logf: logf, Progress: a.stderr, Wait: wait})
			if err != nil {
				return err
			}
			err = run.WriteNodes(cmd.Context(), a.stdout, s)
			if t.ssh() {
				// Kept: this closes the connections to the hosts.
				err = errors.Join(err, s.Close(context.WithoutCancel(cmd.Context()), ""))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbName, "db", "ecstore", "the system: "+strings.Join(systemNames(), " or "))
	f.IntVar(&c.Nodes, "nodes", 3, "how many nodes")
	f.DurationVar(&wait, "wait", 60*time.Second, "how long to wait for every node to answer")
	sf = bindSystemFlags(f, db.UseCluster)
	return cmd
}

func newClusterDownCmd(a *app, t *target) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove every container and network labelled eccheck.cluster=NAME, or eccheck's all on SSH hosts",
		Long: `Down removes every container (nodes and helpers) and network carrying the
label eccheck.cluster=NAME, including what a crashed or killed run left
behind. A cluster that does not exist is not an error.

With --cluster ssh --hosts ... it removes everything of eccheck's on each
host, whatever run left it: it lists it (processes by their pidfiles, the
iptables chain ECCHECK and its jumps, qdiscs with eccheck's handle, the
directories under /var/lib/eccheck), kills the processes, removes the rules,
qdiscs and directories, and checks that nothing is left.`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(cmd.Flags().Changed); err != nil {
				return err
			}
			if t.ssh() {
				return sshDown(cmd.Context(), a, t)
			}
			name := &t.name
			c, err := docker.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Down(cmd.Context(), *name); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "cluster %s: removed\n", *name)
			return nil
		},
	}
}

func newClusterStatusCmd(a *app, t *target) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List a cluster's nodes, their state and addresses",
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(cmd.Flags().Changed); err != nil {
				return err
			}
			l, err := t.open(cmd.Context(), cmd.Flags().Changed, a.stderr, nil)
			if err != nil {
				return err
			}
			defer l.Close()
			return run.WriteNodes(cmd.Context(), a.stdout, l.System)
		},
	}
}

func newClusterLogsCmd(a *app, t *target) *cobra.Command {
	return &cobra.Command{
		Use:   "logs NODE",
		Short: "Print a node's container log (on SSH hosts: its log file)",
		Args:  exactArgs(1, "one node name (n1, n2, ...)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := t.check(cmd.Flags().Changed); err != nil {
				return err
			}
			l, err := t.open(cmd.Context(), cmd.Flags().Changed, a.stderr, nil)
			if err != nil {
				return err
			}
			defer l.Close()
			if err := l.KnownNode("NODE", args[0]); err != nil {
				return err
			}
			var logs string
			if h, ok := l.System.(db.Hosted); ok && l.Cluster == nil {
				logs, err = h.Log(cmd.Context(), args[0])
			} else {
				logs, err = l.Cluster.Logs(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, logs)
			return err
		},
	}
}

// sshDown removes everything of eccheck's from the hosts of t: what each
// holds (saying so on stderr), then a check that nothing is left.
func sshDown(ctx context.Context, a *app, t *target) error {
	if w := t.c.SSH.Warning(); w != "" {
		fmt.Fprintf(a.stderr, "eccheck: warning: %s\n", w)
	}
	hosts, err := sshcluster.Dial(ctx, t.c.Hosts, t.c.SSH)
	if err != nil {
		return err
	}
	errs := make([]error, len(hosts))
	lines := make([]string, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			defer h.Close()
			before, err := h.Leftovers(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			if err := h.Down(ctx); err != nil {
				errs[i] = fmt.Errorf("down on %s: %w", h.Name(), err)
				return
			}
			after, err := h.Leftovers(ctx)
			switch {
			case err != nil:
				errs[i] = err
			case !after.Empty():
				errs[i] = fmt.Errorf("down on %s: still left:\n%s", h.Name(), after)
			case before.Empty():
				lines[i] = fmt.Sprintf("host %s: nothing of eccheck's", h.Name())
			default:
				lines[i] = fmt.Sprintf("host %s: removed:\n  %s", h.Name(), strings.ReplaceAll(before.String(), "\n", "\n  "))
			}
		})
	}
	wg.Wait()
	for _, l := range lines {
		if l != "" {
			fmt.Fprintln(a.stderr, l)
		}
	}
	return errors.Join(errs...)
}
