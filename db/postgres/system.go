package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	pgadapter "github.com/eccheck/eccheck/adapters/postgres"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// The store --db postgres tests: a primary and streaming replicas in
// Docker.
const dbPostgres = "postgres"

// postgresRun is a test's Postgres cluster in Docker.
type postgresRun struct {
	c       *docker.Client
	pc      *docker.PostgresCluster
	dir     string
	keep    bool
	image   string
	read    string        // --pg-read
	wait    time.Duration // the per-operation timeout
	promote string        // --pg-promote
	rejoin  bool          // --pg-rejoin

	logf func(string, ...any)

	mu       sync.Mutex
	clients  []*pgadapter.Client
	caughtUp map[string]bool // replicas waited for before their final reads
	next     int             // the next worker's replica
	final    bool            // the workers are done: clients now are the final reads'
}

// startPostgres connects to the engine, makes sure the postgres image
// exists (building it when missing), brings up the primary and its
// replicas, and creates the workloads' tables on the primary. The caller
// must call close, which saves the node logs and removes the cluster.
func startPostgres(ctx context.Context, o testOptions, a *app, dir string, logf func(string, ...any), fakeTime bool) (*postgresRun, error) {
	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ov, err := docker.LoadOverrides()
	if err != nil {
		c.Close()
		return nil, err
	}
	image, err := imageOrBuild(ctx, c, ov, docker.RolePostgres, func() (docker.Image, error) {
		logf("no postgres image yet: building it (a few minutes)")
		return c.BuildPostgres(ctx, docker.BuildOptions{Progress: a.stderr})
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	name := o.clusterName
	if name == "" {
		name = "eccheck-test-" + shortID()
	}
	progress := a.stderr
	if o.check.quiet {
		progress = nil
	}
	logf("starting Docker cluster %s: postgres primary and %d replica(s), %s, reads from %s, from %s", name, o.nodes-1, o.pgSync, o.pgRead, image)
	pc, err := c.UpPostgres(ctx, docker.PostgresOptions{
		Name: name, Nodes: o.nodes, Image: image, Progress: progress, Sync: o.pgSync, ApplyDelay: o.pgApplyDelay.all, ApplyDelays: o.pgApplyDelay.per,
		SyncStandbys: o.pgStandbys, FakeTime: fakeTime,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("start the postgres cluster in Docker: %w", err)
	}
	pr := &postgresRun{c: c, pc: pc, dir: dir, keep: o.keep, image: image, read: o.pgRead, wait: o.opTimeout, promote: o.pgPromote, rejoin: o.pgRejoin, logf: logf, caughtUp: map[string]bool{}}
	if err := pr.setup(ctx); err != nil {
		pr.close(logf)
		return nil, err
	}
	logf("cluster up: postgres primary %s, replicas %v in Docker cluster %s", pc.Primary(), pc.Replicas(), name)
	return pr, nil
}

// setup creates the tables on the primary and waits until every replica
// has replayed them (with an apply delay that takes a moment), so that the
// first replica reads do not fail for want of a table.
func (pr *postgresRun) setup(ctx context.Context) error {
	if err := pgadapter.Setup(ctx, pr.pc.PrimaryDSN()); err != nil {
		return err
	}
	for _, node := range pr.pc.Replicas() {
		if err := waitTables(ctx, pr.pc.DSN(node), 30*time.Second); err != nil {
			return fmt.Errorf("postgres replica %s: %w", node, err)
		}
	}
	return nil
}

// waitTables waits until the server at dsn has the workloads' tables.
func waitTables(ctx context.Context, dsn string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	const q = `SELECT to_regclass('registers') IS NOT NULL AND to_regclass('sets') IS NOT NULL AND to_regclass('counters') IS NOT NULL`
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

// nodes returns the cluster's nodes, the primary first.
func (pr *postgresRun) nodes() []string {
	return append([]string{pr.pc.Primary()}, pr.pc.Replicas()...)
}

// nemesisCluster is the cluster the nemesis acts on: the Postgres cluster,
// whose failover promotes --pg-promote while it is a replica, and with
// --pg-rejoin brings the old primary back as a replica (pg_rewind).
func (pr *postgresRun) nemesisCluster() nemesis.Cluster {
	return pgFaults{pr.pc, pr.promote, pr.rejoin}
}

// pgFaults is a Postgres cluster as the nemesis sees it.
type pgFaults struct {
	*docker.PostgresCluster
	promote string
	rejoin  bool
}

func (p pgFaults) Failover() (nemesis.FailoverResult, error) {
	to := ""
	if p.promote != "" && slices.Contains(p.Replicas(), p.promote) {
		to = p.promote
	}
	old, promoted, err := p.FailoverTo(to)
	res := nemesis.FailoverResult{Promoted: promoted}
	if promoted != "" {
		res.Rewound = p.LastRewound()
	}
	if promoted != "" || slices.Contains(p.Fenced(), old) {
		res.Killed = old // else nothing was changed, or its kill failed
	}
	if err != nil || !p.rejoin {
		return res, err
	}
	// The old primary is still cut off from the others; pg_rewind needs
	// the new primary. (The nemesis heals after the failover anyway.)
	if err := p.Heal(); err != nil {
		return res, err
	}
	if _, err := p.Rejoin(old, false); err != nil {
		return res, err
	}
	res.Rejoined = old
	return res, nil
}

var (
	_ nemesis.Failoverer = pgFaults{}
	_ nemesis.Lagger     = pgFaults{}
)

// progress notes when the workers are done (the phases after the
// workload), then passes p on.
func (pr *postgresRun) progress(next func(workload.Progress)) func(workload.Progress) {
	return func(p workload.Progress) {
		if p.Phase != "workload" {
			pr.mu.Lock()
			pr.final = true
			pr.mu.Unlock()
		}
		next(p)
	}
}

// newClient makes a client: writes on the primary, reads per --pg-read.
// A worker's client (before the final reads, whatever node the workload
// bound it to) reads from the next replica in turn and keeps it, fenced
// with lsn-fence; with round-robin it reads every replica in turn, one
// read each; with primary it reads the primary. A final read's client
// reads from its node, the primary's from the primary.
func (pr *postgresRun) newClient(name, node string) (workload.Client, error) {
	// A replica's final reads come after it caught up (outside the lock:
	// it may take seconds).
	pr.mu.Lock()
	wait := pr.final && !pr.caughtUp[node]
	pr.caughtUp[node] = pr.caughtUp[node] || pr.final
	pr.mu.Unlock()
	if wait && node != pr.pc.Primary() && !slices.Contains(pr.pc.Fenced(), node) {
		pr.catchUp(node)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	primary := pr.pc.Primary()
	if pr.final && slices.Contains(pr.pc.Fenced(), node) {
		return fencedNode(node), nil
	}

	opts := pgadapter.Options{Workload: workload.Kind(name), Node: primary, Timeout: pr.wait, ReadMode: pr.read, Primary: pr.primaryNow}
	replicas := pr.pc.Replicas()
	switch {
	case !pr.final && pr.read == pgadapter.ReadRoundRobin && len(replicas) > 0:
		// Every replica in turn, each worker starting at the next one.
		for i := range replicas {
			r := replicas[(pr.next+i)%len(replicas)]
			opts.ReadTargets = append(opts.ReadTargets, pgadapter.ReadTarget{DSN: pr.pc.DSN(r), Node: r})
		}
		pr.next++
	case !pr.final && pr.read != pgadapter.ReadPrimary && len(replicas) > 0:
		node = replicas[pr.next%len(replicas)]
		pr.next++
		opts.ReadDSN, opts.ReadNode = pr.pc.DSN(node), node
	case pr.final && node != primary:
		opts.ReadDSN, opts.ReadNode = pr.pc.DSN(node), node
		if opts.ReadMode == pgadapter.ReadPrimary || opts.ReadMode == pgadapter.ReadRoundRobin {
			opts.ReadMode = pgadapter.ReadReplica
		}
	default:
		// Reads on the primary; also when no replica is left after
		// failovers.
		opts.ReadMode, opts.ReadNode = pgadapter.ReadPrimary, primary
	}
	cl := pgadapter.New(pr.pc.PrimaryDSN(), opts)
	pr.clients = append(pr.clients, cl)
	return cl, nil
}

// fencedNode is the final-read client of an old primary that a failover
// killed for good: its reads fail at once, saying why, without a
// connection attempt.
type fencedNode string

func (n fencedNode) Invoke(_ context.Context, op history.Op) history.Op {
	op.Type, op.Node = history.Fail, string(n)
	op.Error = "node " + string(n) + " is an old primary, killed for good by a failover (it does not rejoin without pg_rewind)"
	return op
}

// catchUpBound bounds the wait, before a replica's final reads, for it to
// replay what the primary has.
const catchUpBound = 15 * time.Second

// catchUp waits, at most catchUpBound, until replica has replayed the
// primary's WAL position of now: the part of recovery that is
// replication catching up (a streaming connection cut by a partition can
// take seconds of TCP retransmission to resume after the heal). Past the
// bound the final reads go ahead and show what the replica has, with a
// warning.
func (pr *postgresRun) catchUp(replica string) {
	ctx, cancel := context.WithTimeout(context.Background(), catchUpBound)
	defer cancel()
	start := time.Now()
	var target string
	if err := queryOne(ctx, pr.pc.PrimaryDSN(), `SELECT pg_current_wal_lsn()::text`, &target); err != nil {
		pr.logf("warning: final reads of %s: the primary's WAL position: %v", replica, err)
		return
	}
	for {
		var done *bool
		err := queryOne(ctx, pr.pc.DSN(replica), `SELECT pg_last_wal_replay_lsn() >= `+"'"+target+"'"+`::pg_lsn`, &done)
		if err == nil && (done == nil || *done) {
			if d := time.Since(start); d > time.Second {
				pr.logf("final reads of %s: waited %v for it to replay the primary's %s", replica, d.Round(time.Millisecond), target)
			}
			return
		}
		select {
		case <-ctx.Done():
			pr.logf("warning: %s had not replayed the primary's %s after %v (last: %v); its final reads show what it has", replica, target, catchUpBound, err)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// queryOne runs one query on dsn and scans its single row into dest.
func queryOne(ctx context.Context, dsn, q string, dest ...any) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(cctx))
	return conn.QueryRow(cctx, q).Scan(dest...)
}

// primaryNow names the primary now, for clients that reconnect after a
// failover.
func (pr *postgresRun) primaryNow() (string, string) {
	p := pr.pc.Primary()
	return pr.pc.DSN(p), p
}

// close closes the clients, saves each node's container log to
// nodes/<node>.log and removes the cluster (unless --keep), with a context
// of its own, so that it works after an interrupt too.
func (pr *postgresRun) close(logf func(string, ...any)) {
	defer pr.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr.mu.Lock()
	for _, cl := range pr.clients {
		cl.Close(ctx)
	}
	pr.clients = nil
	pr.mu.Unlock()
	for _, n := range pr.pc.Nodes() {
		text, err := pr.pc.Logs(ctx, n)
		if err != nil {
			logf("warning: log of %s: %v", n, err)
		}
		if err := os.WriteFile(filepath.Join(pr.dir, "nodes", n+".log"), []byte(text), 0o644); err != nil {
			logf("warning: save the log of %s: %v", n, err)
		}
	}
	name := pr.pc.Name()
	if pr.keep {
		logf("cluster %s left running (--keep); remove it with: eccheck cluster down --cluster-name %s", name, name)
		return
	}
	if err := pr.pc.Down(ctx); err != nil {
		logf("warning: remove cluster %s: %v (remove it with: eccheck cluster down --cluster-name %s)", name, err, name)
	}
}

// validatePostgres checks the flags of --db postgres.
func (o *testOptions) validatePostgres() error {
	switch {
	case o.cluster != clusterDocker:
		return usagef("--db postgres runs in Docker: add --cluster docker")
	case o.pgSync != docker.SyncAsync && o.pgSync != docker.SyncRemoteApply:
		return usagef("--pg-sync %q: want %s or %s", o.pgSync, docker.SyncAsync, docker.SyncRemoteApply)
	case !slices.Contains(pgReads, o.pgRead):
		return usagef("--pg-read %q: want %s", o.pgRead, strings.Join(pgReads, ", "))
	case o.pgRead != pgadapter.ReadPrimary && o.nodes < 2:
		return usagef("--pg-read %s needs a replica: --nodes 2 or more", o.pgRead)
	case len(o.pgStandbys) > 0 && o.pgSync != docker.SyncRemoteApply:
		return usagef("--pg-standbys names synchronous standbys: it goes with --pg-sync %s", docker.SyncRemoteApply)
	}
	if err := o.pgApplyDelay.check(o.nodes); err != nil {
		return err
	}
	for _, s := range o.pgStandbys {
		if !isReplica(s, o.nodes) {
			return usagef("--pg-standbys %s: want replicas, n2 to n%d", s, o.nodes)
		}
	}
	if o.pgPromote != "" && !isReplica(o.pgPromote, o.nodes) {
		return usagef("--pg-promote %s: want a replica, n2 to n%d", o.pgPromote, o.nodes)
	}
	faults, err := nemesis.ParseFaults(o.nemesis)
	if err != nil {
		return usageError{fmt.Errorf("--nemesis: %w", err)}
	}
	if slices.Contains(faults, nemesis.KindLag) && o.nodes < 2 {
		return usagef("--nemesis lag pauses a replica's replay: --nodes 2 or more")
	}
	if n := failovers(faults, o.nemesisInterval, o.timeLimit, o.nemesisCycles); n >= o.nodes && !o.pgRejoin {
		return usagef("--nemesis failover: this run's schedule carries out %d failovers, but each kills a primary for good and %d nodes allow %d; use fewer faults (fewer --nemesis-cycles, or a longer --nemesis-interval per --time-limit), more --nodes, or --pg-rejoin", n, o.nodes, o.nodes-1)
	}
	return nil
}

// pgReads are the values of --pg-read.
var pgReads = []string{pgadapter.ReadPrimary, pgadapter.ReadReplica, pgadapter.ReadRoundRobin, pgadapter.ReadLSNFence}

// isReplica reports whether s names a replica (n2 to nN) of an N-node
// cluster.
func isReplica(s string, nodes int) bool {
	for i := 2; i <= nodes; i++ {
		if s == fmt.Sprintf("n%d", i) {
			return true
		}
	}
	return false
}

// failovers counts the failovers the nemesis carries out in a run of
// limit, or of its first cycles faults when cycles > 0: step i starts at
// (2i+1) intervals and, if the run lasts, fails over at (2i+2); the kinds
// take turns.
func failovers(faults []string, interval, limit time.Duration, cycles int) int {
	if interval <= 0 || len(faults) == 0 {
		return 0
	}
	n := 0
	for i := 0; cycles > 0 && i < cycles || cycles == 0 && time.Duration(2*i+2)*interval < limit; i++ {
		if faults[i%len(faults)] == nemesis.KindFailover {
			n++
		}
	}
	return n
}
