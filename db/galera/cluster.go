package galera

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/eccheck/eccheck/docker"
)

// MariaDB and Galera inside a node container.
const (
	sqlPort = 3306
	// startFile, when it exists at a container's start, says how the
	// node starts this once (see nodeScript); the harness writes it into
	// the stopped container.
	startFile = docker.FakeTimeDir + "/galera-start"
	// User and Password are the account eccheck's clients use; Database
	// holds the workloads' tables.
	User     = "eccheck"
	Password = "eccheck"
	Database = "eccheck"
)

// Image is the image Galera nodes run: Debian's mariadb-server (MariaDB
// 10.11 on bookworm) and galera-4, with rsync for state transfers, in a
// debootstrap of its own.
var Image = docker.ImageSpec{
	Role: "galera", Repo: "eccheck/galera",
	Packages: append(docker.BasePackages(), "mariadb-server", "galera-4", "rsync"),
	Path:     docker.BasePath,
	Doc:      "the base plus Debian's mariadb-server, galera-4 and rsync",
}

// nodeScript starts a node's MariaDB server with Galera replication, in
// one of these ways (chosen by the first start of the first node, or by
// the contents of startFile, which the harness writes for one start):
//
//   - new: the first start of the first node: it bootstraps a new cluster
//     (--wsrep-new-cluster) and creates eccheck's account and database;
//   - join (every other start): it joins the cluster at the nodes'
//     addresses, by incremental or full state transfer (rsync); after a
//     crash it first recovers its position, as below, so that an
//     incremental transfer can do;
//   - recover: after every node crashed, it prints the position InnoDB
//     recovered (--wsrep-recover) as "eccheck-recovered: UUID:SEQNO" and
//     exits, as the operator's galera_recovery does;
//   - bootstrap: after every node crashed, on the most advanced node: it
//     marks grastate.dat safe to bootstrap and starts a new cluster from
//     its data.
//
// After recover, the next start passes the recovered position on
// (--wsrep-start-position), as galera_recovery does. The server logs to
// the container's output. Arguments: the node's name, its address, every
// node's address, whether it is the first node, then
// innodb_flush_log_at_trx_commit and wsrep_sync_wait.
const nodeScript = `set -eu
node=$1 self=$2 peers=$3 first=$4 flush=$5 syncwait=$6
E=` + docker.FakeTimeDir + `
D=/var/lib/mysql
mkdir -p /run/mysqld "$E"
chown mysql:mysql /run/mysqld "$E"
mode=join
if [ -s ` + startFile + ` ]; then
  mode=$(cat ` + startFile + `)
  rm -f ` + startFile + `
elif [ ! -e "$E/galera-started" ] && [ "$first" = yes ]; then
  mode=new
fi
touch "$E/galera-started"
set -- --user=mysql --bind-address=0.0.0.0 --port=3306 --skip-name-resolve --max-connections=1000 \
  --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
  --wsrep-cluster-name=eccheck --wsrep-cluster-address="gcomm://$peers" \
  --wsrep-node-address="$self" --wsrep-node-name="$node" --wsrep-sst-method=rsync \
  --wsrep-sync-wait="$syncwait" \
  --binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2 \
  --innodb-flush-log-at-trx-commit="$flush"
recover() {
  rm -f "$E/recover.log"
  mariadbd "$@" --wsrep-recover --log-error="$E/recover.log" || true
  cat "$E/recover.log"
  pos=$(sed -n 's/.*Recovered position: *\([^ ]*\).*/\1/p' "$E/recover.log" | tail -n 1)
  if [ -n "$pos" ]; then echo "$pos" >"$E/galera-position"; fi
}
# A node that crashed (grastate.dat's seqno -1) finds its position first,
# so that it joins by incremental state transfer rather than a full one.
if [ "$mode" = join ] && [ ! -s "$E/galera-position" ] && grep -q '^seqno: *-1' "$D/grastate.dat" 2>/dev/null; then
  recover "$@"
fi
if [ "$mode" != recover ] && [ -s "$E/galera-position" ]; then
  set -- "$@" --wsrep-start-position="$(cat "$E/galera-position")"
  rm -f "$E/galera-position"
fi
echo "eccheck: starting mariadbd ($mode)"
case $mode in
new)
  printf '%s\n' \
    "CREATE USER IF NOT EXISTS '` + User + `'@'%' IDENTIFIED BY '` + Password + `';" \
    "GRANT ALL PRIVILEGES ON *.* TO '` + User + `'@'%';" \
    "CREATE DATABASE IF NOT EXISTS ` + Database + `;" >"$E/init.sql"
  exec mariadbd "$@" --wsrep-new-cluster --init-file="$E/init.sql" ;;
recover)
  recover "$@"
  echo "eccheck-recovered: ${pos:-none}"
  exit 0 ;;
bootstrap)
  sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$D/grastate.dat"
  exec mariadbd "$@" --wsrep-new-cluster ;;
*)
  exec mariadbd "$@" ;;
esac
`

// Options configure a Galera cluster.
type Options struct {
	// Name names the cluster (see [docker.ClusterSpec]).
	Name string
	// Nodes is the node count; 0 means 3.
	Nodes int
	// Image is the galera image; empty means the one
	// [docker.Client.ImageFor] gives for [Image].
	Image string
	// SyncWait is wsrep_sync_wait on every node: the bitmask of the
	// statements that wait until the node has applied what the cluster
	// committed before they run (1: reads). 0 is MariaDB's default.
	SyncWait int
	// FlushLog is innodb_flush_log_at_trx_commit: 1 (MariaDB's default)
	// writes and flushes InnoDB's log at every commit, 2 writes it at
	// commit and flushes once a second, 0 does both once a second.
	FlushLog int
	// FakeTime starts every node under libfaketime
	// ([docker.FakeTimeEnv]), so that SetClock can move its clock.
	FakeTime bool
	// Wait bounds the readiness wait; 0 means 120s.
	Wait time.Duration
	// Progress receives progress lines; nil discards.
	Progress io.Writer
}

// Cluster is a Galera cluster of MariaDB servers in containers: a
// [docker.Cluster] whose every node takes reads and writes.
type Cluster struct {
	*docker.Cluster

	mu  sync.Mutex
	dbs map[string]*sql.DB // the harness's own connections, per node
}

// Up starts a Galera cluster: n1 bootstraps it, the others join it by
// state transfer. It returns once every node is synced in a primary
// component of all of them and the workloads' tables exist; on failure
// it removes what it created.
func Up(ctx context.Context, c *docker.Client, o Options) (gc *Cluster, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Wait == 0 {
		o.Wait = 120 * time.Second
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
	cl, err := c.Up(ctx, docker.ClusterSpec{
		Name: o.Name, DB: Name, Nodes: o.Nodes, Image: o.Image, Port: sqlPort, Env: env,
		Cmd: func(n *docker.Node, nodes []*docker.Node) []string {
			var peers []string
			for _, m := range nodes {
				peers = append(peers, m.IP.String())
			}
			first := "no"
			if n.Name == nodes[0].Name {
				first = "yes"
			}
			return []string{"sh", "-c", nodeScript, "eccheck-galera", n.Name, n.IP.String(), strings.Join(peers, ","), first,
				strconv.Itoa(o.FlushLog), strconv.Itoa(o.SyncWait)}
		},
		Ready: answers, Clock: docker.FakeTimeClock, Wait: o.Wait, Progress: o.Progress,
	})
	if err != nil {
		return nil, err
	}
	gc = newCluster(cl)
	err = gc.WaitSynced(ctx, o.Wait)
	if err == nil {
		err = gc.setup(ctx)
	}
	if err != nil {
		gc.closeDBs()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := cl.Down(dctx); derr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, derr)
		}
		return nil, err
	}
	return gc, nil
}

func newCluster(cl *docker.Cluster) *Cluster {
	return &Cluster{Cluster: cl, dbs: map[string]*sql.DB{}}
}

// DSN returns the data source name of eccheck's account on the server at
// addr, reads and writes bounded by timeout, with the given session
// variables.
func DSN(addr string, timeout time.Duration, params map[string]string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = User, Password, "tcp", addr, Database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, timeout, timeout
	// An UPDATE's affected rows are the rows it matched, so that a CAS
	// to the value already there still counts as done.
	cfg.ClientFoundRows = true
	cfg.Params = params
	return cfg.FormatDSN()
}

// answers is the readiness probe of a node: eccheck's account connects
// (so the node has its data: a joiner has it after its state transfer)
// and the node says it is ready (wsrep_ready: in a primary component).
func answers(ctx context.Context, _ *docker.Node, addr string) (bool, string) {
	st, err := status(ctx, addr)
	if err != nil {
		return false, err.Error()
	}
	if st.Ready != "ON" {
		return false, "wsrep_ready " + st.Ready + ", " + st.State
	}
	return true, ""
}

// Status is what a node says of itself (its wsrep status variables).
type Status struct {
	// ClusterSize and ClusterStatus are its view of the cluster:
	// "Primary" or "non-Primary".
	ClusterSize   int
	ClusterStatus string
	// State is wsrep_local_state_comment: Synced, Donor/Desynced,
	// Joining, Joined, Initialized.
	State string
	// Ready is wsrep_ready: ON when it takes queries.
	Ready string
	// LastCommitted is the seqno of the last write set it committed.
	LastCommitted int64
}

// status connects to the server at addr and reads its wsrep status.
func status(ctx context.Context, addr string) (Status, error) {
	conn, err := sql.Open("mysql", DSN(addr, 2*time.Second, nil))
	if err != nil {
		return Status{}, err
	}
	defer conn.Close()
	return readStatus(ctx, conn)
}

// readStatus reads the wsrep status through conn, within 2 s.
func readStatus(ctx context.Context, conn *sql.DB) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := conn.QueryContext(ctx, `SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_cluster_status', 'wsrep_local_state_comment', 'wsrep_ready', 'wsrep_last_committed')`)
	if err != nil {
		return Status{}, err
	}
	defer rows.Close()
	var st Status
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return Status{}, err
		}
		switch strings.ToLower(k) {
		case "wsrep_cluster_size":
			st.ClusterSize, _ = strconv.Atoi(v)
		case "wsrep_cluster_status":
			st.ClusterStatus = v
		case "wsrep_local_state_comment":
			st.State = v
		case "wsrep_ready":
			st.Ready = v
		case "wsrep_last_committed":
			st.LastCommitted, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return st, rows.Err()
}

// db returns the harness's own connection pool to node.
func (gc *Cluster) db(node string) (*sql.DB, error) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if d := gc.dbs[node]; d != nil {
		return d, nil
	}
	addr := gc.Addr(node)
	if addr == "" {
		return nil, fmt.Errorf("galera: no node %s in cluster %s", node, gc.Name())
	}
	d, err := sql.Open("mysql", DSN(addr, 5*time.Second, nil))
	if err != nil {
		return nil, err
	}
	d.SetMaxOpenConns(2)
	d.SetConnMaxIdleTime(10 * time.Second)
	gc.dbs[node] = d
	return d, nil
}

// closeDBs closes the harness's connections.
func (gc *Cluster) closeDBs() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for node, d := range gc.dbs {
		d.Close()
		delete(gc.dbs, node)
	}
}

// Status reads node's wsrep status.
func (gc *Cluster) Status(ctx context.Context, node string) (Status, error) {
	d, err := gc.db(node)
	if err != nil {
		return Status{}, err
	}
	return readStatus(ctx, d)
}

// synced says whether node is synced in a primary component of size
// want, and what it is instead if not.
func (gc *Cluster) synced(ctx context.Context, node string, want int) (bool, string) {
	st, err := gc.Status(ctx, node)
	switch {
	case err != nil:
		return false, err.Error()
	case st.ClusterStatus != "Primary" || st.ClusterSize != want || st.State != "Synced":
		return false, fmt.Sprintf("%s, %s, cluster of %d", st.ClusterStatus, st.State, st.ClusterSize)
	}
	return true, ""
}

// WaitSynced waits until every node is synced in one primary component
// of all of them.
func (gc *Cluster) WaitSynced(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	nodes := gc.Nodes()
	for _, node := range nodes {
		if err := gc.Poll(ctx, node, time.Until(deadline), 200*time.Millisecond, func() (bool, string) {
			return gc.synced(ctx, node, len(nodes))
		}); err != nil {
			return fmt.Errorf("galera node %s not synced in a cluster of %d: %w", node, len(nodes), err)
		}
	}
	return nil
}

// schema creates the workloads' tables; each statement is idempotent.
// Galera certifies by primary key, so every table has one.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS registers (k VARCHAR(191) PRIMARY KEY, v TEXT NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS sets (k VARCHAR(191) NOT NULL, e VARCHAR(191) NOT NULL, PRIMARY KEY (k, e)) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS counters (k VARCHAR(191) PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS lists (k VARCHAR(191) PRIMARY KEY, v LONGTEXT NOT NULL) ENGINE=InnoDB`,
}

// setup creates the tables through the first node (DDL replicates in
// total order) and waits until every node has them.
func (gc *Cluster) setup(ctx context.Context) error {
	nodes := gc.Nodes()
	d, err := gc.db(nodes[0])
	if err != nil {
		return err
	}
	for _, s := range schema {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := d.ExecContext(sctx, s)
		cancel()
		if err != nil {
			return fmt.Errorf("galera setup on %s: %s: %w", nodes[0], s, err)
		}
	}
	for _, node := range nodes[1:] {
		d, err := gc.db(node)
		if err != nil {
			return err
		}
		if err := gc.Poll(ctx, node, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			var n int
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := d.QueryRowContext(cctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('registers', 'sets', 'counters', 'lists')`, Database).Scan(&n)
			switch {
			case err != nil:
				return false, err.Error()
			case n < len(schema):
				return false, fmt.Sprintf("%d of %d tables", n, len(schema))
			}
			return true, ""
		}); err != nil {
			return fmt.Errorf("galera setup: the tables did not reach %s: %w", node, err)
		}
	}
	return nil
}

// Roles names each node's state as Galera says it: "synced", "donor",
// "joining", "non-primary" (cut off from the majority), its container's
// state when it does not run, or "no answer".
func (gc *Cluster) Roles(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, node := range gc.Nodes() {
		if n, _ := gc.Node(node); n != nil && n.State != "" && n.State != "running" {
			out[node] = n.State
			continue
		}
		st, err := gc.Status(ctx, node)
		switch {
		case err != nil:
			out[node] = "no answer"
		case st.ClusterStatus != "Primary":
			out[node] = "non-primary"
		default:
			out[node] = strings.ToLower(st.State)
		}
	}
	return out
}

// Position is where a node's data stands after a crash, as
// --wsrep-recover found it: the cluster's state UUID and the seqno of
// the last write set InnoDB kept.
type Position struct {
	UUID  string `json:"uuid"`
	Seqno int64  `json:"seqno"`
}

func (p Position) String() string { return p.UUID + ":" + strconv.FormatInt(p.Seqno, 10) }

var recovered = regexp.MustCompile(`eccheck-recovered: ([0-9a-f-]+):(-?[0-9]+)`)

// parseRecovered finds the position a recover start printed.
func parseRecovered(log string) (Position, error) {
	m := recovered.FindAllStringSubmatch(log, -1)
	if m == nil {
		if strings.Contains(log, "eccheck-recovered: none") {
			return Position{}, errors.New("--wsrep-recover found no position (its log is in the node's output)")
		}
		return Position{}, errors.New("no recovered position in its log yet")
	}
	last := m[len(m)-1]
	seq, err := strconv.ParseInt(last[2], 10, 64)
	if err != nil {
		return Position{}, err
	}
	return Position{UUID: last[1], Seqno: seq}, nil
}

// mostAdvanced returns the node to bootstrap from: the highest seqno,
// the first in name order among equals.
func mostAdvanced(pos map[string]Position) string {
	nodes := make([]string, 0, len(pos))
	for n := range pos {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	best := ""
	for _, n := range nodes {
		if best == "" || pos[n].Seqno > pos[best].Seqno {
			best = n
		}
	}
	return best
}

// Restarted is what a restart after a whole-cluster crash did: each
// node's recovered position and the node the cluster was bootstrapped
// from.
type Restarted struct {
	Positions    map[string]Position `json:"positions"`
	Bootstrapped string              `json:"bootstrapped"`
}

// recoverBound bounds each step of a restart after a whole-cluster crash.
const recoverBound = 90 * time.Second

// Restart brings the cluster back after every node crashed, as the
// operator's manual says: each node's position recovered from InnoDB
// (--wsrep-recover, a start that prints it and exits), the most advanced
// node bootstrapped (safe_to_bootstrap set in its grastate.dat), then
// the others started to join it. Every node must be stopped.
func (gc *Cluster) Restart(ctx context.Context) (Restarted, error) {
	res := Restarted{Positions: map[string]Position{}}
	gc.closeDBs()
	for _, node := range gc.Nodes() {
		pos, err := gc.recoverPosition(ctx, node)
		if err != nil {
			return res, fmt.Errorf("recover the position of %s: %w", node, err)
		}
		res.Positions[node] = pos
	}
	res.Bootstrapped = mostAdvanced(res.Positions)
	if err := gc.WriteFile(res.Bootstrapped, startFile, []byte("bootstrap\n")); err != nil {
		return res, err
	}
	if err := gc.Start(res.Bootstrapped); err != nil {
		return res, fmt.Errorf("bootstrap from %s: %w", res.Bootstrapped, err)
	}
	for _, node := range gc.Nodes() {
		if node == res.Bootstrapped {
			continue
		}
		if err := gc.StartContainer(ctx, node); err != nil {
			return res, fmt.Errorf("start %s: %w", node, err)
		}
	}
	return res, gc.WaitSynced(ctx, recoverBound)
}

// recoverPosition starts node's stopped container once in recover mode
// and reads the position it printed before it exited.
func (gc *Cluster) recoverPosition(ctx context.Context, node string) (Position, error) {
	if err := gc.WriteFile(node, startFile, []byte("recover\n")); err != nil {
		return Position{}, err
	}
	since := time.Now().Add(-time.Second)
	if err := gc.StartContainer(ctx, node); err != nil {
		return Position{}, err
	}
	// Not Poll: the container exits once it has printed, which Poll
	// takes for a failure.
	deadline := time.Now().Add(recoverBound)
	var pos Position
	for {
		log, err := gc.LogsSince(ctx, node, since)
		if err == nil {
			if pos, err = parseRecovered(log); err == nil {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			tail, _ := gc.LogTail(context.WithoutCancel(ctx), node, "20")
			return pos, fmt.Errorf("%v within %v; its last log lines:\n%s", err, recoverBound, docker.Indent(tail))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The container exits after printing; wait for it (a kill of a
	// stopped container only waits), so that the next start is a start.
	return pos, gc.Kill(node)
}
