package postgres

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/docker"
)

// Postgres inside a node container.
const (
	postgresPort = 5432
	postgresData = "/var/lib/postgresql/data"
	// rejoinFile tells a node's script to rejoin as a replica.
	rejoinFile = docker.FakeTimeDir + "/rejoin"
)

// Image is the image Postgres nodes run: Debian's postgresql-15 in a
// debootstrap of its own (one debootstrap works offline from the mirror,
// where apt-get in a container would need the container to reach it).
var Image = docker.ImageSpec{
	Role: "postgres", Repo: "eccheck/postgres",
	Packages: append(docker.BasePackages(), "postgresql-15"),
	Path:     "/usr/lib/postgresql/15/bin:" + docker.BasePath,
	Doc:      "the base plus Debian's postgresql-15",
}

// replicationConf is what a primary's postgresql.conf gets for streaming
// replication, in Docker and on SSH hosts (wal_log_hints and
// wal_keep_size are for pg_rewind: see postgresScript).
const replicationConf = `wal_level = replica
wal_log_hints = on
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '512MB'
hot_standby = on
`

// syncConf is the shell lines that give the primary's configuration
// ($D/postgresql.conf) synchronous_commit $synccommit and
// synchronous_standby_names $standbys, when $standbys is not empty.
const syncConf = `if [ -n "$standbys" ]; then
  echo "synchronous_commit = $synccommit" >>"$D/postgresql.conf"
  echo "synchronous_standby_names = '$standbys'" >>"$D/postgresql.conf"
fi
`

// postgresScript starts a Postgres node. It is a constant: the values
// (role, primary address, slot name) arrive as positional arguments. The
// primary is made with initdb and configured for streaming replication
// with trust authentication (a throwaway test cluster on a private
// network); a replica copies the primary with pg_basebackup through a
// replication slot of its own, retrying until the primary answers, and
// starts in standby mode (-R writes standby.signal and primary_conninfo).
// A data directory that exists already (a restarted container) is used
// as it is. The primary takes synchronous_commit ($5) and
// synchronous_standby_names ($6) when $6 is not empty; a replica connects
// with its node name ($4) as application_name, the name
// synchronous_standby_names lists. A replica takes
// recovery_min_apply_delay ($7, in milliseconds) when it is not 0.
//
// An old primary rejoins as a replica ([Cluster.Rejoin]) through
// the file rejoinFile, "GENERATION ADDRESS [clone|rewind]" of the new
// primary: when it differs from the copy kept in the data directory, the
// script runs pg_rewind from that primary (which first completes crash
// recovery) if the node was a primary or "rewind" is asked for, or clones
// it with pg_basebackup when pg_rewind fails or "clone" is asked for, makes the node a standby of it
// through its slot, keeps the copy, and logs "eccheck: rejoin generation
// GENERATION by HOW". A node that was a replica only changes primary.
// pg_rewind needs wal_log_hints, which the primary turns on. A rewound
// node replays from the last checkpoint the two shared, which may be well
// before the promotion; wal_keep_size keeps that WAL on every node (the
// setting is copied to replicas), where a promoted replica's checkpoints
// would otherwise recycle it and leave the rewound node waiting for a
// segment that is gone.
const postgresScript = `set -eu
role=$1 primary=$2 slot=$3 name=$4 synccommit=$5 standbys=$6 applydelay=$7
D=` + postgresData + `
R=` + rejoinFile + `
# A clone is made beside the data directory and replaces it only once
# complete: a failed pg_basebackup (the script then exits) leaves the old
# directory and the pending rejoin file, so the next start tries again.
clone() {
  rm -rf "$D.new"
  pg_basebackup -h "$src" -p 5432 -U postgres -D "$D.new" -R -X stream -S "$slot"
  rm -rf "$D"
  mv "$D.new" "$D"
}
if [ -s "$R" ] && [ -s "$D/PG_VERSION" ] && ! cmp -s "$R" "$D/eccheck.rejoined"; then
  read gen src mode <"$R"
  # The killed postmaster's lock file names PID 1, which this shell is now.
  rm -f "$D/postmaster.pid"
  if [ "$mode" = clone ]; then
    echo "eccheck: rejoining as a replica of $src (pg_basebackup, generation $gen)" >&2
    clone
    how=pg_basebackup
  elif [ "$mode" != rewind ] && [ -e "$D/standby.signal" ]; then
    # A replica: it follows the new primary's timeline by itself, and
    # single-user recovery refuses standby mode.
    echo "eccheck: rejoining as a replica of $src (was a replica: no rewind; generation $gen)" >&2
    how="no rewind: it was a replica"
  else
    # An old primary, or a replica that received WAL past the new
    # primary's promotion point ("rewind"): without standby.signal,
    # pg_rewind's single-user crash recovery can run.
    rm -f "$D/standby.signal"
    echo "eccheck: rejoining as a replica of $src (pg_rewind, generation $gen)" >&2
    how=pg_rewind
    if ! pg_rewind -D "$D" --source-server="host=$src port=5432 user=postgres dbname=postgres" --progress; then
      # A failed rewind leaves the directory unusable: clone it afresh,
      # as Patroni and repmgr do.
      echo "eccheck: pg_rewind failed; cloning $src with pg_basebackup instead" >&2
      clone
      how="pg_basebackup: pg_rewind failed"
    fi
    touch "$D/standby.signal"
  fi
  cat >>"$D/postgresql.auto.conf" <<EOF
unix_socket_directories = '/tmp'
primary_conninfo = 'host=$src port=5432 user=postgres application_name=$name'
primary_slot_name = '$slot'
recovery_min_apply_delay = '${applydelay}ms'
EOF
  cp "$R" "$D/eccheck.rejoined"
  echo "eccheck: rejoin generation $gen by $how" >&2
fi
if [ ! -s "$D/PG_VERSION" ]; then
  if [ "$role" = primary ]; then
    initdb -D "$D" -A trust -U postgres >/dev/null
    cat >>"$D/postgresql.conf" <<EOF
listen_addresses = '*'
` + replicationConf + `unix_socket_directories = '/tmp'
EOF
` + syncConf + `    echo "host all all 0.0.0.0/0 trust" >>"$D/pg_hba.conf"
    echo "host replication all 0.0.0.0/0 trust" >>"$D/pg_hba.conf"
  else
    i=0
    until pg_isready -q -h "$primary" -p 5432 -U postgres; do
      i=$((i+1)); [ $i -lt 600 ] || { echo "primary $primary never answered" >&2; exit 1; }
      sleep 0.1
    done
    i=0
    while :; do
      create=-C
      n=$(psql -h "$primary" -U postgres -d postgres -Atc "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'" 2>/dev/null || echo 0)
      [ "$n" = 0 ] || create=
      rm -rf "$D"
      if pg_basebackup -h "$primary" -p 5432 -U postgres -D "$D" -R -X stream -S "$slot" $create; then break; fi
      i=$((i+1)); [ $i -lt 30 ] || { echo "pg_basebackup from $primary kept failing" >&2; exit 1; }
      sleep 0.5
    done
    echo "unix_socket_directories = '/tmp'" >>"$D/postgresql.auto.conf"
    echo "primary_conninfo = 'host=$primary port=5432 user=postgres application_name=$name'" >>"$D/postgresql.auto.conf"
    if [ "$applydelay" != 0 ]; then
      echo "recovery_min_apply_delay = '${applydelay}ms'" >>"$D/postgresql.auto.conf"
    fi
  fi
fi
exec postgres -D "$D"
`

// Options configure a Postgres cluster.
type Options struct {
	// Name names the cluster: network eccheck-NAME, containers
	// eccheck-NAME-n1..., label eccheck.cluster=NAME.
	Name string
	// Nodes is the node count, the primary (n1) included; 0 means 3.
	Nodes int
	// Image is the postgres image; empty means the one [docker.Client.ImageFor]
	// gives for [Image].
	Image string
	// Wait bounds the readiness wait; 0 means 90s.
	Wait time.Duration
	// Progress receives progress lines; nil discards.
	Progress io.Writer
	// Sync is SyncAsync (the default when empty) or SyncRemoteApply.
	Sync string
	// SyncStandbys names the replicas (node names, "n2"...) the primary
	// waits for with SyncRemoteApply; empty means every replica. Ignored
	// with SyncAsync.
	SyncStandbys []string
	// ApplyDelay, when positive, makes every replica replay each commit
	// this long after the primary made it (recovery_min_apply_delay, in
	// whole milliseconds): replication lag on demand.
	ApplyDelay time.Duration
	// ApplyDelays, when not empty, sets the delay per replica (node name
	// to delay) instead: replicas not named get none.
	ApplyDelays map[string]time.Duration
	// FakeTime starts every node's processes under libfaketime
	// ([docker.FakeTimeEnv]), so that SetClock can move their clocks.
	// Off by default: with it every clock call reads a file.
	FakeTime bool
}

// applyDelay returns the apply delay of node.
func (o Options) applyDelay(node string) time.Duration {
	if len(o.ApplyDelays) > 0 {
		return o.ApplyDelays[node]
	}
	return o.ApplyDelay
}

// Cluster is a Postgres primary (n1 until a failover) with streaming
// replicas (n2...) in containers, each replica through a replication slot
// of its own. It is a [docker.Cluster] (partitions, link faults, kill,
// pause, and the clock through libfaketime when the cluster was started
// with [Options.FakeTime]) and adds [Cluster.Failover].
type Cluster struct {
	*docker.Cluster

	// syncCommit and syncStandbys are the primary's synchronous_commit
	// and the node names it waits for (none when asynchronous).
	syncCommit   string
	syncStandbys []string
	// syncAll says every replica is a synchronous standby (none was
	// named): a replica that rejoins becomes one again.
	syncAll bool

	fmu     sync.Mutex      // held through a failover
	pmu     sync.Mutex      // guards what follows, and the sync settings
	primary string          // the node that takes writes now
	fenced  map[string]bool // old primaries, killed for good by a failover
	rewound []string        // the replicas the last failover rewound
	// noPrimary says why a cluster taken over by [Open] has no one
	// primary (none runs, or two do): faults by hand, status and logs
	// still work, failover and rejoin refuse with it.
	noPrimary error
}

// Primary returns the node that takes writes now: n1 until a failover.
func (pc *Cluster) Primary() string {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	return pc.primary
}

// Replicas returns the replicas' node names, in node order: every node
// but the primary and the old primaries a failover killed.
func (pc *Cluster) Replicas() []string {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	var out []string
	for _, n := range pc.Nodes() {
		if n != pc.primary && !pc.fenced[n] {
			out = append(out, n)
		}
	}
	return out
}

// Fenced returns the old primaries a failover killed for good, in node
// order.
func (pc *Cluster) Fenced() []string {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	var out []string
	for _, n := range pc.Nodes() {
		if pc.fenced[n] {
			out = append(out, n)
		}
	}
	return out
}

// DSN returns a connection string for node at its address
// ([docker.Cluster.Addr]; user postgres, database postgres, trust
// authentication), or "" for an unknown node.
func (pc *Cluster) DSN(node string) string {
	addr := pc.Addr(node)
	if addr == "" {
		return ""
	}
	return postgresDSN(addr)
}

// PrimaryDSN returns the connection string of the primary now.
func (pc *Cluster) PrimaryDSN() string { return pc.DSN(pc.Primary()) }

// ReplicaDSNs returns the replicas' connection strings, in node order.
func (pc *Cluster) ReplicaDSNs() []string {
	var out []string
	for _, r := range pc.Replicas() {
		out = append(out, pc.DSN(r))
	}
	return out
}

func postgresDSN(addr string) string {
	return "postgres://postgres@" + addr + "/postgres?sslmode=disable&connect_timeout=5"
}

// Up starts a Postgres cluster: the primary n1 and Nodes-1 streaming
// replicas, on a network of their own with fixed addresses (.11, .12...),
// each container running as user postgres with its port 5432 published on
// 127.0.0.1. It returns when the primary accepts connections, every
// replica reports pg_is_in_recovery() and the primary sees every replica
// streaming. On failure it removes what it created.
func Up(ctx context.Context, c *docker.Client, o Options) (pc *Cluster, err error) {
	if err := docker.ValidName(o.Name); err != nil {
		return nil, err
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		return nil, fmt.Errorf("cluster %s: %d nodes: want 1 to 9", o.Name, o.Nodes)
	}
	if o.Wait == 0 {
		o.Wait = 90 * time.Second
	}
	syncCommit, standbyNames, err := o.syncSettings()
	if err != nil {
		return nil, err
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	if o.Image == "" {
		if o.Image, err = c.ImageFor(ctx, Image); err != nil {
			return nil, err
		}
	}
	var env []string
	if o.FakeTime {
		env = docker.FakeTimeEnv()
	}
	var primaryIP string
	spec := docker.ClusterSpec{
		Name: o.Name, DB: Name, Nodes: o.Nodes, Image: o.Image, Port: postgresPort, User: "postgres", Env: env,
		Cmd: func(n *docker.Node, nodes []*docker.Node) []string {
			role := "replica"
			if n.Name == "n1" {
				role = "primary"
			}
			primaryIP = nodes[0].IP.String()
			return []string{"sh", "-c", postgresScript, "eccheck-postgres", role, primaryIP, "eccheck_" + n.Name, n.Name, syncCommit, standbyNames, strconv.FormatInt(o.applyDelay(n.Name).Milliseconds(), 10)}
		},
		Ready: connects, Clock: docker.FakeTimeClock, Wait: o.Wait, Progress: o.Progress,
	}
	cl, err := c.Up(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if derr := cl.Down(dctx); derr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, derr)
			}
		}
	}()
	pc = &Cluster{
		Cluster:    cl,
		syncCommit: syncCommit, syncStandbys: o.syncStandbys(), primary: "n1", fenced: map[string]bool{},
		syncAll: syncCommit != "" && len(o.SyncStandbys) == 0,
	}
	if err := pc.WaitReady(ctx, o.Wait); err != nil {
		return nil, err
	}
	if err := pc.waitSync(ctx, o.Wait); err != nil {
		return nil, err
	}
	for _, name := range pc.Nodes() {
		n, _ := pc.Node(name)
		role := "replica"
		if name == "n1" {
			role = "primary"
		}
		fmt.Fprintf(progress, "cluster %s: %s (%s) ready at %s (container %s, %s)\n", o.Name, name, role, pc.DSN(name), n.Container, n.IP)
	}
	return pc, nil
}

// connects is the readiness probe of a Postgres node: it accepts a
// connection.
func connects(ctx context.Context, _ *docker.Node, addr string) (bool, string) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, postgresDSN(addr))
	if err != nil {
		return false, err.Error()
	}
	conn.Close(cctx)
	return true, ""
}

// WaitReady waits until the primary accepts connections, every replica
// answers with pg_is_in_recovery() true, and the primary's
// pg_stat_replication shows every replica streaming. On timeout, or when
// a container stops, the error names the node and carries its last log
// lines.
func (pc *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	nodes := pc.Nodes()
	for i, n := range nodes {
		want, why := true, "pg_is_in_recovery() is false on a replica"
		if i == 0 {
			want, why = false, "pg_is_in_recovery() is true on the primary"
		}
		if err := pc.waitPostgres(ctx, n, time.Until(deadline), func(ctx context.Context, conn *pgx.Conn) (bool, string, error) {
			var rec bool
			err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
			return err == nil && rec == want, why, err
		}); err != nil {
			return err
		}
	}
	want := len(nodes) - 1
	return pc.waitPostgres(ctx, nodes[0], time.Until(deadline), func(ctx context.Context, conn *pgx.Conn) (bool, string, error) {
		var streaming int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").Scan(&streaming)
		return err == nil && streaming >= want, fmt.Sprintf("%d of %d replicas streaming", streaming, want), err
	})
}

// waitPostgres connects to node until check reports true, within bound.
func (pc *Cluster) waitPostgres(ctx context.Context, node string, bound time.Duration, check func(context.Context, *pgx.Conn) (bool, string, error)) error {
	return pc.Poll(ctx, node, bound, 200*time.Millisecond, func() (bool, string) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, pc.DSN(node))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close(cctx)
		ok, why, cerr := check(cctx, conn)
		switch {
		case ok:
			return true, ""
		case cerr != nil:
			return false, cerr.Error()
		}
		return false, why
	})
}
