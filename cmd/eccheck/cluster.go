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

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
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
			return printSystem(cmd.Context(), a.stdout, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbName, "db", "ecstore", "the system: "+strings.Join(systemNames(), " or "))
	f.IntVar(&c.Nodes, "nodes", 3, "how many nodes")
	f.DurationVar(&wait, "wait", 60*time.Second, "how long to wait for every node to answer")
	sf = bindSystemFlags(f, false)
	return cmd
}

// printSystem prints a running cluster's nodes, with their roles when the
// system has some, and how to reach each node when it says.
func printSystem(ctx context.Context, w io.Writer, s db.System) error {
	cont, ok := s.(db.Containers)
	if !ok {
		return errors.New("the cluster is not in containers")
	}
	cl := cont.Docker()
	if r, ok := s.(db.Roler); ok {
		if err := printRoles(w, cl, r.Roles(ctx)); err != nil {
			return err
		}
	} else if err := printNodes(w, cl); err != nil {
		return err
	}
	if d, ok := s.(db.Describer); ok {
		for _, n := range cl.Nodes() {
			fmt.Fprintf(w, "%s: %s\n", n, d.Describe(n))
		}
	}
	return nil
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
			c, s, err := openSystem(cmd.Context(), *name, nil)
			if err != nil {
				return withClusterNames(cmd.Context(), err)
			}
			defer c.Close()
			if r, ok := s.(db.Roler); ok {
				return printRoles(a.stdout, s.(db.Containers).Docker(), r.Roles(cmd.Context()))
			}
			return printNodes(a.stdout, s.(db.Containers).Docker())
		},
	}
}

// printRoles is printNodes with each node's role (primary, replica, or its
// state when down).
func printRoles(w io.Writer, cl *docker.Cluster, roles map[string]string) error {
	netName, subnet := cl.Network()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tROLE\tADDRESS\tNETWORK %s (%s)\tCONTAINER\n", netName, subnet)
	primaries := 0
	for _, n := range cl.Nodes() {
		nd, _ := cl.Node(n)
		if roles[n] == "primary" {
			primaries++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, roles[n], cl.PublishedAddr(n), nd.IP, nd.Container)
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
			if _, err := cl.Node(args[0]); err != nil {
				return usageError{Err: err}
			}
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, nd.State, cl.PublishedAddr(n), nd.IP, nd.Container)
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
		return usageError{Err: fmt.Errorf("%w; clusters here: %s", ue.Err, strings.Join(names, ", "))}
	}
	return err
}
