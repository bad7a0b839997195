package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// System is a test's Postgres cluster in Docker: the nemesis acts on it
// (partitions, kill, pause, clock through libfaketime, failover, lag) and
// the workers' clients write to the primary and read as --pg-read says.
type System struct {
	*Cluster
	clientSet
	c       *docker.Client
	keep    bool
	images  map[string]string
	engine  *docker.Engine
	promote string // --pg-promote
	rejoin  bool   // --pg-rejoin
}

// topology is what the clients need to know of a cluster, in Docker or on
// SSH hosts: which node takes writes, which replicate it, which a
// failover fenced off, and where each answers.
type topology interface {
	Primary() string
	Replicas() []string
	Fenced() []string
	DSN(node string) string
}

// clientSet makes the workers' and the final reads' clients of a
// cluster, as --pg-read says, and closes them.
type clientSet struct {
	topo topology
	read string        // --pg-read
	iso  string        // --pg-isolation
	wait time.Duration // the per-operation timeout
	idem bool          // --idempotency-keys

	logf func(string, ...any)

	mu      sync.Mutex
	clients []*Client
	next    int  // the next worker's replica
	final   bool // Settle ran: clients now are the final reads'
}

var (
	_ db.System         = (*System)(nil)
	_ db.Containers     = (*System)(nil)
	_ db.Roler          = (*System)(nil)
	_ db.FailoverTarget = (*System)(nil)
	_ db.Rejoiner       = (*System)(nil)
	_ db.Describer      = (*System)(nil)
	_ nemesis.Lagger    = (*System)(nil)
)

// start connects to the engine, makes sure the images exist (building
// them when missing), brings up the primary and its replicas, and creates
// the workloads' tables on the primary. On error it leaves nothing
// running, --keep or not.
func (s *Settings) start(ctx context.Context, env db.Env) (db.System, error) {
	d, err := db.StartDocker(ctx, env, Image)
	if err != nil {
		return nil, err
	}
	c, images, name, image := d.Client, d.Images, d.Name, d.Images[Image.Role]
	env.Logf("starting Docker cluster %s: postgres primary and %d replica(s), %s, reads from %s, from %s", name, env.Nodes-1, s.Sync, s.Read, image)
	pc, err := Up(ctx, c, Options{
		Name: name, Nodes: env.Nodes, Image: image, Progress: env.Progress, Sync: s.Sync,
		ApplyDelay: s.ApplyDelay.all, ApplyDelays: s.ApplyDelay.per,
		SyncStandbys: s.Standbys, FakeTime: slices.Contains(env.Faults, nemesis.KindClock) || s.FakeTime, Wait: env.Wait,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("start the postgres cluster in Docker: %w", err)
	}
	sys := &System{Cluster: pc, c: c, images: images, engine: d.Engine, promote: s.Promote, rejoin: s.Rejoin,
		clientSet: clientSet{topo: pc, read: s.Read, iso: s.Isolation, wait: env.OpTimeout, idem: env.IdempotencyKeys, logf: env.Logf}}
	if err := sys.setup(ctx); err != nil {
		sys.Close(context.WithoutCancel(ctx), "") // keep is false yet: the cluster goes
		return nil, err
	}
	sys.keep = env.Keep
	env.Logf("cluster up: postgres primary %s, replicas %v in Docker cluster %s", pc.Primary(), pc.Replicas(), name)
	return sys, nil
}

// setup creates the tables on the primary and waits until every replica
// has replayed them (with an apply delay that takes a moment), so that the
// first replica reads do not fail for want of a table.
func (cs *clientSet) setup(ctx context.Context) error {
	if err := Setup(ctx, cs.primaryDSN()); err != nil {
		return err
	}
	for _, node := range cs.topo.Replicas() {
		if err := waitTables(ctx, cs.topo.DSN(node), 30*time.Second); err != nil {
			return fmt.Errorf("postgres replica %s: %w", node, err)
		}
	}
	return nil
}

// waitTables waits until the server at dsn has the workloads' tables.
func waitTables(ctx context.Context, dsn string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	const q = `SELECT to_regclass('registers') IS NOT NULL AND to_regclass('sets') IS NOT NULL AND to_regclass('counters') IS NOT NULL AND to_regclass('saga_log') IS NOT NULL`
	for {
		var ok bool
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		if err == nil {
			err = conn.QueryRow(cctx, q).Scan(&ok)
			conn.Close(cctx)
		}
		cancel()
		if err == nil && ok {
			return nil
		}
		if err == nil {
			err = errors.New("tables missing")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("tables not replicated within %v: %w", bound, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Nodes returns the cluster's nodes, the primary first: workers bound to
// nodes start with the primary.
func (sys *System) Nodes() []string {
	return append([]string{sys.Primary()}, sys.Replicas()...)
}

// Docker returns the cluster's containers.
func (sys *System) Docker() *docker.Cluster { return sys.Cluster.Cluster }

// Describe returns node's connection string.
func (sys *System) Describe(node string) string { return sys.DSN(node) }

// Failover carries out a failover as the nemesis asks: the replica
// --pg-promote names while it is a replica (else the one with the most
// WAL) is promoted, and with --pg-rejoin the old primary comes back as a
// replica (pg_rewind).
func (sys *System) Failover() (nemesis.FailoverResult, error) {
	to := ""
	if sys.promote != "" && slices.Contains(sys.Replicas(), sys.promote) {
		to = sys.promote
	}
	return sys.failover(to, sys.rejoin)
}

// FailoverTo carries out a failover to node (any replica when empty),
// without a rejoin.
func (sys *System) FailoverTo(node string) (nemesis.FailoverResult, error) {
	return sys.failover(node, false)
}

func (sys *System) failover(to string, rejoin bool) (nemesis.FailoverResult, error) {
	old, promoted, err := sys.Cluster.FailoverTo(to)
	res := nemesis.FailoverResult{Promoted: promoted}
	if promoted != "" {
		res.Rewound = sys.LastRewound()
	}
	if promoted != "" || slices.Contains(sys.Fenced(), old) {
		res.Killed = old // else nothing was changed, or its kill failed
	}
	if err != nil || !rejoin {
		return res, err
	}
	// The old primary is still cut off from the others; pg_rewind needs
	// the new primary. (The nemesis heals after the failover anyway.)
	if err := sys.Heal(); err != nil {
		return res, err
	}
	if _, err := sys.Rejoin(old, false); err != nil {
		return res, err
	}
	res.Rejoined = old
	return res, nil
}

// Settle waits, before the final reads, until each replica has replayed
// the primary's WAL position of now (at most catchUpBound each): the part
// of recovery that is replication catching up. After it, the clients
// NewClient makes read from their own node.
func (cs *clientSet) Settle(ctx context.Context) {
	for _, node := range cs.topo.Replicas() {
		if ctx.Err() != nil {
			break
		}
		cs.catchUp(ctx, node)
	}
	cs.mu.Lock()
	cs.final = true
	cs.mu.Unlock()
}

// NewClient makes a client: writes on the primary, reads per --pg-read.
// A worker's client (whatever node the workload bound it to) reads from
// the next replica in turn and keeps it, fenced with lsn-fence; with
// round-robin it reads every replica in turn, one read each; with primary
// it reads the primary. A final read's client (after Settle) reads from
// its node, the primary's from the primary.
func (cs *clientSet) NewClient(name, node string) (workload.Client, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	primary := cs.topo.Primary()
	co := ClientOptions{Workload: workload.Kind(name), Isolation: cs.iso, Node: primary, Timeout: cs.wait, ReadMode: cs.read, Primary: cs.primaryNow,
		IdempotencyKeys: cs.idem}
	if cs.final && slices.Contains(cs.topo.Fenced(), node) {
		f := &fencedNode{node: node}
		if co.Workload == Saga {
			// The saga workload's final phase finishes the sagas left
			// unfinished first, through a client of the first node,
			// maybe this one: its steps go to the primary now.
			co.ReadMode, co.ReadNode = ReadPrimary, primary
			f.writes = NewClient(cs.primaryDSN(), co)
			cs.clients = append(cs.clients, f.writes)
		}
		return f, nil
	}
	replicas := cs.topo.Replicas()
	switch {
	case !cs.final && cs.read == ReadRoundRobin && len(replicas) > 0:
		// Every replica in turn, each worker starting at the next one.
		for i := range replicas {
			r := replicas[(cs.next+i)%len(replicas)]
			co.ReadTargets = append(co.ReadTargets, ReadTarget{DSN: cs.topo.DSN(r), Node: r})
		}
		cs.next++
	case !cs.final && cs.read != ReadPrimary && len(replicas) > 0:
		node = replicas[cs.next%len(replicas)]
		cs.next++
		co.ReadDSN, co.ReadNode = cs.topo.DSN(node), node
	case cs.final && node != primary:
		co.ReadDSN, co.ReadNode = cs.topo.DSN(node), node
		if co.ReadMode == ReadPrimary || co.ReadMode == ReadRoundRobin {
			co.ReadMode = ReadReplica
		}
	default:
		// Reads on the primary; also when no replica is left after
		// failovers.
		co.ReadMode, co.ReadNode = ReadPrimary, primary
	}
	cl := NewClient(cs.primaryDSN(), co)
	cs.clients = append(cs.clients, cl)
	return cl, nil
}

// NodeClient is the convergence phase's client of node: its reads are
// node's alone (the primary's from the primary, a replica's from that
// replica, with no fence), at any time; its writes go to the primary. A
// node a failover fenced off is no member to agree with: an error.
func (cs *clientSet) NodeClient(name, node string) (workload.Client, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if slices.Contains(cs.topo.Fenced(), node) {
		return nil, fmt.Errorf("fenced off by a failover")
	}
	primary := cs.topo.Primary()
	co := ClientOptions{Workload: workload.Kind(name), Isolation: cs.iso, Node: primary, Timeout: cs.wait, ReadMode: ReadPrimary, ReadNode: primary, Primary: cs.primaryNow}
	if node != primary {
		co.ReadMode, co.ReadDSN, co.ReadNode = ReadReplica, cs.topo.DSN(node), node
	}
	cl := NewClient(cs.primaryDSN(), co)
	cs.clients = append(cs.clients, cl)
	return cl, nil
}

// fencedNode is the final-read client of an old primary that a failover
// killed for good: its reads fail at once, saying why, without a
// connection attempt. Its other operations (a saga's steps) go to writes,
// a client of the primary now; without one they fail too.
type fencedNode struct {
	node   string
	writes *Client
}

func (n *fencedNode) Invoke(ctx context.Context, op history.Op) history.Op {
	if n.writes != nil && op.F != "read" && op.F != checkers.FSagaRead {
		return n.writes.Invoke(ctx, op)
	}
	op.Type, op.Node = history.Fail, n.node
	op.Error = "node " + n.node + " is an old primary, killed for good by a failover (it does not rejoin without pg_rewind)"
	return op
}

// catchUpBound bounds the wait, before a replica's final reads, for it to
// replay what the primary has.
const catchUpBound = 15 * time.Second

// catchUp waits, at most catchUpBound, until replica has replayed the
// primary's WAL position of now (a streaming connection cut by a
// partition can take seconds of TCP retransmission to resume after the
// heal). Past the bound the final reads go ahead and show what the
// replica has, with a warning.
func (cs *clientSet) catchUp(ctx context.Context, replica string) {
	ctx, cancel := context.WithTimeout(ctx, catchUpBound)
	defer cancel()
	start := time.Now()
	var target string
	if err := queryOne(ctx, cs.primaryDSN(), `SELECT pg_current_wal_lsn()::text`, &target); err != nil {
		cs.logf("warning: final reads of %s: the primary's WAL position: %v", replica, err)
		return
	}
	for {
		var done *bool
		err := queryOne(ctx, cs.topo.DSN(replica), `SELECT pg_last_wal_replay_lsn() >= `+"'"+target+"'"+`::pg_lsn`, &done)
		if err == nil && (done == nil || *done) {
			if d := time.Since(start); d > time.Second {
				cs.logf("final reads of %s: waited %v for it to replay the primary's %s", replica, d.Round(time.Millisecond), target)
			}
			return
		}
		select {
		case <-ctx.Done():
			cs.logf("warning: %s had not replayed the primary's %s after %v (last: %v); its final reads show what it has", replica, target, catchUpBound, err)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// queryOne runs one query on dsn and scans its single row into dest
// (with no dest, runs one statement).
func queryOne(ctx context.Context, dsn, q string, dest ...any) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(cctx))
	if len(dest) == 0 {
		_, err = conn.Exec(cctx, q)
		return err
	}
	return conn.QueryRow(cctx, q).Scan(dest...)
}

// primaryNow names the primary now, for clients that reconnect after a
// failover.
func (cs *clientSet) primaryNow() (string, string) {
	p := cs.topo.Primary()
	return cs.topo.DSN(p), p
}

// primaryDSN is the primary's connection string now.
func (cs *clientSet) primaryDSN() string { return cs.topo.DSN(cs.topo.Primary()) }

// closeClients closes every client made.
func (cs *clientSet) closeClients(ctx context.Context) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, cl := range cs.clients {
		cl.Close(ctx)
	}
	cs.clients = nil
}

// Info is what test.json records: the cluster, its images, the engine.
func (sys *System) Info() db.Info {
	return db.Info{ClusterName: sys.Name(), Images: sys.images, Engine: sys.engine}
}

// Close closes the clients, saves each node's container log to
// logDir/<node>.log (when logDir is set) and removes the cluster, unless
// it is kept.
func (sys *System) Close(ctx context.Context, logDir string) error {
	defer sys.c.Close()
	sys.closeClients(ctx)
	return sys.Finish(ctx, logDir, sys.keep, sys.logf)
}
