package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/store"
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
	clusterNameFlag(cmd.PersistentFlags(), &name, "name")
	cmd.AddCommand(newClusterUpCmd(a, &name), newClusterDownCmd(a, &name), newClusterStatusCmd(a, &name), newClusterLogsCmd(a, &name))
	return cmd
}

func newClusterUpCmd(a *app, name *string) *cobra.Command {
	var (
		o          docker.UpOptions
		db         string
		pg         docker.PostgresOptions
		applyDelay applyDelay
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a cluster and wait until every node answers",
		Long: `Up starts an ecstore cluster and waits until every node answers GET /v1/health
through its published port (--wait bounds it; the error names the node and
shows its last log lines). The nodes run 'eccheck store serve' with their
peers at fixed addresses, a data directory and the clock file
/var/lib/ecstore/clock (for clock faults). If up fails, it removes what it
created.

With --db postgres it starts a Postgres primary (n1) and --nodes-1 streaming
replicas instead (--pg-sync, --pg-standbys, --pg-apply-delay as in 'eccheck
test'; --fake-time runs them under libfaketime so that 'eccheck nemesis
clock' can move their clocks), and prints each node's connection string.`,
		Example: `  eccheck cluster up --cluster-name demo --nodes 3 --mode lww --w 1 --r 1
  eccheck cluster up --cluster-name r --mode raft
  eccheck cluster up --cluster-name pg --db postgres --pg-sync remote_apply --pg-standbys n2`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == docker.DBPostgres {
				if err := docker.ValidName(*name); err != nil {
					return usageError{err}
				}
				if err := applyDelay.check(o.Nodes); err != nil {
					return err
				}
				pg.Name, pg.Nodes, pg.Wait, pg.Progress = *name, o.Nodes, o.Wait, a.stderr
				pg.ApplyDelay, pg.ApplyDelays = applyDelay.all, applyDelay.per
				c, err := docker.Connect(cmd.Context())
				if err != nil {
					return err
				}
				defer c.Close()
				pc, err := c.UpPostgres(cmd.Context(), pg)
				if err != nil {
					return err
				}
				if err := printNodes(a.stdout, pc.Cluster); err != nil {
					return err
				}
				for _, n := range pc.Nodes() {
					fmt.Fprintf(a.stdout, "%s: %s\n", n, pc.DSN(n))
				}
				return nil
			}
			if db != docker.DBEcstore {
				return usagef("--db %s: want ecstore or postgres", db)
			}
			if !slices.Contains(store.Modes, o.Mode) {
				return usagef("--mode %s: want %s", o.Mode, strings.Join(store.Modes, ", "))
			}
			if err := docker.ValidName(*name); err != nil {
				return usageError{err}
			}
			o.Name, o.Progress = *name, a.stderr
			c, err := docker.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			cl, err := c.Up(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printNodes(a.stdout, cl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "ecstore", "the store: ecstore or postgres")
	f.StringVar(&pg.Sync, "pg-sync", docker.SyncAsync, "postgres: replication, async or remote_apply")
	f.StringSliceVar(&pg.SyncStandbys, "pg-standbys", nil, "postgres: with remote_apply, the synchronous standbys (default: every replica)")
	f.Var(&applyDelay, "pg-apply-delay", "postgres: replication lag on demand: 50ms, or n2=0s,n3=200ms")
	f.BoolVar(&pg.FakeTime, "fake-time", false, "postgres: run every node under libfaketime (for clock faults)")
	f.IntVar(&o.Nodes, "nodes", 3, "how many nodes")
	f.StringVar(&o.Mode, "mode", store.ModeLWW, "ecstore mode: "+strings.Join(store.Modes, ", "))
	f.IntVar(&o.N, "n", 0, "replicas per key (lww, hlc; 0 = every node)")
	f.IntVar(&o.W, "w", 1, "write quorum (lww, hlc)")
	f.IntVar(&o.R, "r", 1, "read quorum (lww, hlc)")
	f.StringVar(&o.SetImpl, "set-impl", "", "sets: orset or lww-blob (lww, hlc)")
	f.DurationVar(&o.Wait, "wait", 60*time.Second, "how long to wait for every node to answer")
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
				return usageError{err}
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
			c, cl, err := openCluster(cmd.Context(), *name)
			if err != nil {
				return withClusterNames(cmd.Context(), err)
			}
			defer c.Close()
			if cl.DB() == docker.DBPostgres {
				return printPostgresNodes(a.stdout, cl, cl.PostgresRoles(cmd.Context()))
			}
			return printNodes(a.stdout, cl)
		},
	}
}

// printPostgresNodes is printNodes with each node's role (primary,
// replica, or its state when down) and connection string.
func printPostgresNodes(w io.Writer, cl *docker.Cluster, roles map[string]string) error {
	netName, subnet := cl.Network()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tROLE\tADDRESS\tNETWORK %s (%s)\tCONTAINER\n", netName, subnet)
	primaries := 0
	for _, n := range cl.Nodes() {
		nd, _ := cl.Node(n)
		if roles[n] == "primary" {
			primaries++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, roles[n], cl.Addr(n), nd.IP, nd.Container)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if primaries > 1 {
		fmt.Fprintf(w, "warning: %d nodes take writes (split brain): kill all but one, then 'eccheck nemesis rejoin' the others\n", primaries)
	}
	return nil
}

func newClusterLogsCmd(a *app, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "logs NODE",
		Short: "Print a node's container log",
		Args:  exactArgs(1, "one node name (n1, n2, ...)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cl, err := openCluster(cmd.Context(), *name)
			if err != nil {
				return withClusterNames(cmd.Context(), err)
			}
			defer c.Close()
			logs, err := cl.Logs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, logs)
			return err
		},
	}
}

// printNodes prints one line per node: name, state, published address,
// address on the cluster network and container.
func printNodes(w io.Writer, cl *docker.Cluster) error {
	netName, subnet := cl.Network()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tSTATE\tADDRESS\tNETWORK %s (%s)\tCONTAINER\n", netName, subnet)
	for _, n := range cl.Nodes() {
		nd, _ := cl.Node(n)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, nd.State, cl.Addr(n), nd.IP, nd.Container)
	}
	return tw.Flush()
}

// withClusterNames adds the clusters that do exist to an error about one
// that does not.
func withClusterNames(ctx context.Context, err error) error {
	var ue usageError
	if !errors.As(err, &ue) {
		return err
	}
	c, cerr := docker.Connect(ctx)
	if cerr != nil {
		return err
	}
	defer c.Close()
	if names, nerr := c.ClusterNames(ctx); nerr == nil && len(names) > 0 {
		return usageError{fmt.Errorf("%w; clusters here: %s", ue.err, strings.Join(names, ", "))}
	}
	return err
}
