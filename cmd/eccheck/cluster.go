package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/run"
)

func newClusterCmd(a *app) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a store's cluster in Docker containers",
		Long: `Cluster starts and stops clusters in Docker containers, through the Docker
Engine API. Each cluster has its own bridge network eccheck-NAME on a free
172.30-31.x.0/24 subnet, one container per node (eccheck-NAME-n1, ...) at
a fixed address (.11, .12, ...), client ports published on 127.0.0.1 only,
and the label eccheck.cluster=NAME on every container and network.

Build the images first: eccheck images build.`,
	}
	clusterNameFlag(cmd.PersistentFlags(), &name, "default", "", "name")
	cmd.AddCommand(newClusterUpCmd(a, &name), newClusterDownCmd(a, &name), newClusterStatusCmd(a, &name), newClusterLogsCmd(a, &name))
	return cmd
}

func newClusterUpCmd(a *app, name *string) *cobra.Command {
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
  eccheck cluster up --cluster-name r --mode raft
  eccheck cluster up --cluster-name pg --db postgres --pg-sync remote_apply --pg-standbys n2`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := lookupSystem(dbName)
			if err != nil {
				return err
			}
			if !slices.Contains(sys.Backends(), db.BackendDocker) {
				return usagef("--db %s does not run in Docker", dbName)
			}
			settings, err := sf.pick(sys, cmd.Flags().Changed)
			if err != nil {
				return err
			}
			if err := docker.ValidName(*name); err != nil {
				return usageError{Err: err}
			}
			c.Backend, c.ClusterName, c.Keep = db.BackendDocker, *name, true
			if err := settings.Validate(c); err != nil {
				return err
			}
			logf := func(format string, args ...any) { fmt.Fprintf(a.stderr, "eccheck: "+format+"\n", args...) }
			s, err := settings.Start(cmd.Context(), db.Env{Common: c, Logf: logf, Progress: a.stderr, Wait: wait})
			if err != nil {
				return err
			}
			return run.WriteNodes(cmd.Context(), a.stdout, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbName, "db", "ecstore", "the system: "+strings.Join(systemNames(), " or "))
	f.IntVar(&c.Nodes, "nodes", 3, "how many nodes")
	f.DurationVar(&wait, "wait", 60*time.Second, "how long to wait for every node to answer")
	sf = bindSystemFlags(f, db.UseCluster)
	return cmd
}

func newClusterDownCmd(a *app, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove every container and network labelled eccheck.cluster=NAME",
		Long: `Down removes every container (nodes and helpers) and network carrying the
label eccheck.cluster=NAME, including what a crashed or killed run left
behind. A cluster that does not exist is not an error.`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := docker.ValidName(*name); err != nil {
				return usageError{Err: err}
			}
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

func newClusterStatusCmd(a *app, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List a cluster's nodes, their state and addresses",
		Args:  exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := run.OpenLive(cmd.Context(), systems, *name, nil)
			if err != nil {
				return err
			}
			defer l.Close()
			return run.WriteNodes(cmd.Context(), a.stdout, l.System)
		},
	}
}

func newClusterLogsCmd(a *app, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "logs NODE",
		Short: "Print a node's container log",
		Args:  exactArgs(1, "one node name (n1, n2, ...)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := run.OpenLive(cmd.Context(), systems, *name, nil)
			if err != nil {
				return err
			}
			defer l.Close()
			if err := l.KnownNode("NODE", args[0]); err != nil {
				return err
			}
			logs, err := l.Cluster.Logs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, logs)
			return err
		},
	}
}
