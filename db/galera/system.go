package galera

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// System is a test's Galera cluster in Docker: the nemesis acts on its
// containers (partitions, kill, pause, clock through libfaketime), stops
// a node's applying (lag) and crashes the whole cluster and brings it
// back the operators' way (crash); each worker writes on the node the
// workload bound it to and reads there or on the next node.
type System struct {
	*Cluster
	d      *db.Docker
	keep   bool
	read   string        // --galera-read
	iso    string        // --galera-isolation
	opWait time.Duration // the per-operation timeout
	logf   func(string, ...any)

	mu      sync.Mutex
	clients []*Client
	next    int                  // the next roaming worker's node
	final   bool                 // Settle ran: clients now are the final reads'
	locks   map[string]*sql.Conn // the connections holding a lagging node's read lock
}

var (
	_ db.System         = (*System)(nil)
	_ db.Containers     = (*System)(nil)
	_ db.Roler          = (*System)(nil)
	_ db.Describer      = (*System)(nil)
	_ nemesis.Lagger    = (*System)(nil)
	_ nemesis.Restarter = (*System)(nil)
)

// start connects to the engine, makes sure the image exists (building it
// when missing) and brings up the nodes. On error it leaves nothing
// running, --keep or not.
func (s *Settings) start(ctx context.Context, env db.Env) (db.System, error) {
	d, err := db.StartDocker(ctx, env, Image)
	if err != nil {
		return nil, err
	}
	image := d.Images[Image.Role]
	env.Logf("starting Docker cluster %s: %d Galera nodes (wsrep_sync_wait %d, innodb_flush_log_at_trx_commit %d), reads on the %s node, from %s",
		d.Name, env.Nodes, s.SyncWait, s.FlushLog, s.Read, image)
	gc, err := Up(ctx, d.Client, Options{Name: d.Name, Nodes: env.Nodes, Image: image, Progress: env.Progress, Wait: env.Wait,
		SyncWait: s.SyncWait, FlushLog: s.FlushLog, FakeTime: s.FakeTime || slices.Contains(env.Faults, nemesis.KindClock)})
	if err != nil {
		d.Client.Close()
		return nil, fmt.Errorf("start the galera cluster in Docker: %w", err)
	}
	env.Logf("cluster up: galera nodes %v synced in Docker cluster %s", gc.Nodes(), d.Name)
	return &System{Cluster: gc, d: d, keep: env.Keep,
		read: s.Read, iso: s.Isolation, opWait: env.OpTimeout, logf: env.Logf}, nil
}

// Docker returns the cluster's containers.
func (sys *System) Docker() *docker.Cluster { return sys.Cluster.Cluster }

// Describe returns node's address as a MariaDB client would take it.
func (sys *System) Describe(node string) string {
	a := sys.Addr(node)
	if a == "" {
		return ""
	}
	return fmt.Sprintf("mysql://%s:%s@%s/%s", User, Password, a, Database)
}

// NewClient makes a worker's client: writes on node (each roaming worker
// on the next node in turn) and reads there, or with --galera-read other
// on the node after it. A final read's client (after Settle) reads node.
func (sys *System) NewClient(name, node string) (workload.Client, error) {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	nodes := sys.Nodes()
	if node == "" {
		node = nodes[sys.next%len(nodes)]
		sys.next++
	}
	i := slices.Index(nodes, node)
	if i < 0 {
		return nil, fmt.Errorf("galera: no node %s in cluster %s", node, sys.Name())
	}
	o := ClientOptions{Workload: name, Write: sys.Addr(node), WriteNode: node, Timeout: sys.opWait, Isolation: sys.iso}
	if sys.read == ReadOther && !sys.final && len(nodes) > 1 {
		other := nodes[(i+1)%len(nodes)]
		o.Read, o.ReadNode = sys.Addr(other), other
	}
	cl, err := NewClient(o)
	if err != nil {
		return nil, err
	}
	sys.clients = append(sys.clients, cl)
	return cl, nil
}

// NodeClient is the convergence phase's client of node: it writes and
// reads node alone (whatever --galera-read says), at any time.
func (sys *System) NodeClient(name, node string) (workload.Client, error) {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	if !slices.Contains(sys.Nodes(), node) {
		return nil, fmt.Errorf("galera: no node %s in cluster %s", node, sys.Name())
	}
	cl, err := NewClient(ClientOptions{Workload: name, Write: sys.Addr(node), WriteNode: node, Timeout: sys.opWait, Isolation: sys.iso})
	if err != nil {
		return nil, err
	}
	sys.clients = append(sys.clients, cl)
	return cl, nil
}

// settleBound bounds the wait before the final reads.
const settleBound = 60 * time.Second

// Settle waits, before the final reads, until every node is synced in
// one primary component and has committed the same last write set (a
// node cut off, lagging or restarted has caught up). Past the bound the
// final reads go ahead, with a warning.
func (sys *System) Settle(ctx context.Context) {
	start := time.Now()
	err := sys.WaitSynced(ctx, settleBound)
	if err == nil {
		err = sys.waitApplied(ctx, time.Until(start.Add(settleBound)))
	}
	if err != nil {
		sys.logf("warning: %v; the final reads show what each node has", err)
	} else if d := time.Since(start); d > time.Second {
		sys.logf("final reads: waited %v for every node to sync", d.Round(time.Millisecond))
	}
	sys.mu.Lock()
	sys.final = true
	sys.mu.Unlock()
}

// waitApplied waits until every node has committed the same last write
// set.
func (sys *System) waitApplied(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		seen := map[int64]bool{}
		var last error
		for _, node := range sys.Nodes() {
			st, err := sys.Status(ctx, node)
			if err != nil {
				last = fmt.Errorf("%s: %w", node, err)
				break
			}
			seen[st.LastCommitted] = true
		}
		if last == nil && len(seen) == 1 {
			return nil
		}
		if last == nil {
			last = fmt.Errorf("the nodes' last committed write sets differ (%d seqnos)", len(seen))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("galera cluster %s not caught up within %v: %w", sys.Name(), bound, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Replicas are the nodes that can lag: every node (each is a primary
// and applies the others' writes).
func (sys *System) Replicas() []string { return sys.Nodes() }

// Lag stops node's applying of the other nodes' writes (on) while it goes
// on serving reads, the way an operator takes a consistent backup: FLUSH
// TABLES WITH READ LOCK, which desynchronizes the node from the cluster
// (so flow control does not stop the others) and pauses its applier until
// UNLOCK TABLES (off). Its own writes wait for the lock meanwhile.
func (sys *System) Lag(node string, on bool) error {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	if sys.locks == nil {
		sys.locks = map[string]*sql.Conn{}
	}
	ctx, cancel := docker.FaultContext()
	defer cancel()
	if !on {
		conn := sys.locks[node]
		if conn == nil {
			return nil
		}
		delete(sys.locks, node)
		_, err := conn.ExecContext(ctx, `UNLOCK TABLES`)
		conn.Close()
		if err != nil && !errors.Is(err, sql.ErrConnDone) {
			// The lock goes with the connection, closed just now.
			sys.logf("lag %s: UNLOCK TABLES: %v (the connection is closed, which releases it)", node, err)
		}
		return nil
	}
	if sys.locks[node] != nil {
		return nil
	}
	d, err := sys.db(node)
	if err != nil {
		return err
	}
	conn, err := d.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lag %s: %w", node, err)
	}
	if _, err := conn.ExecContext(ctx, `FLUSH TABLES WITH READ LOCK`); err != nil {
		conn.Close()
		return fmt.Errorf("lag %s: FLUSH TABLES WITH READ LOCK: %w", node, err)
	}
	sys.locks[node] = conn
	return nil
}

// RestartAll brings the cluster back after the nemesis killed every node
// (see [Cluster.Restart]).
func (sys *System) RestartAll() (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*recoverBound)
	defer cancel()
	sys.dropLocks()
	res, err := sys.Restart(ctx)
	if res.Bootstrapped != "" {
		sys.logf("galera: restarted from %s after the crash (recovered positions %v)", res.Bootstrapped, res.Positions)
	}
	return res, err
}

// dropLocks forgets the read locks of lagging nodes (a crash took them).
func (sys *System) dropLocks() {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	for node, conn := range sys.locks {
		conn.Close()
		delete(sys.locks, node)
	}
}

// Info is what test.json records: the cluster, its images, the engine.
func (sys *System) Info() db.Info {
	return sys.d.Info()
}

// Close closes the clients, saves each node's container log to
// logDir/<node>.log (when logDir is set) and removes the cluster, unless
// it is kept.
func (sys *System) Close(ctx context.Context, logDir string) error {
	sys.dropLocks()
	sys.mu.Lock()
	for _, cl := range sys.clients {
		cl.Close()
	}
	sys.clients = nil
	sys.mu.Unlock()
	sys.closeDBs()
	return sys.d.Finish(ctx, sys.Cluster.Cluster, logDir, sys.keep, sys.logf)
}
