package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// System is a test's Redis cluster in Docker: the nemesis acts on its
// containers (partitions, kill, pause, clock through libfaketime), cuts
// the primary off for Sentinel to replace (failover) and cuts a replica
// off from the primary while it serves reads (lag); each worker's client
// writes through Sentinel and reads as --redis-read says.
type System struct {
	*Cluster
	redisSys
	d    *db.Docker
	keep bool
}

// hosts is what a Redis system needs of where its nodes run, in Docker
// or on SSH hosts: their names, and partitions.
type hosts interface {
	Nodes() []string
	Heal() error
	Partition(grudge map[string][]string) error
	Grudge() map[string][]string
}

// poller is a hosts that polls a node itself (a Docker cluster: the wait
// ends when the node's container stops).
type poller interface {
	Poll(ctx context.Context, node string, bound, pause time.Duration, probe func() (bool, string)) error
}

// redisSys is what the Docker and SSH systems share: the clients (writes
// through Sentinel, reads as --redis-read says), Settle, failover and lag.
type redisSys struct {
	s      *sentinels
	at     hosts
	read   string        // --redis-read
	wait   int           // --redis-wait
	opWait time.Duration // the per-operation timeout
	idem   bool          // --idempotency-keys
	logf   func(string, ...any)

	mu      sync.Mutex
	clients []*Client
	next    int  // the next worker's first replica
	final   bool // Settle ran: clients now are the final reads'
}

var (
	_ db.System          = (*System)(nil)
	_ db.Containers      = (*System)(nil)
	_ db.Roler           = (*System)(nil)
	_ db.Describer       = (*System)(nil)
	_ nemesis.Failoverer = (*System)(nil)
	_ nemesis.Lagger     = (*System)(nil)
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
	env.Logf("starting Docker cluster %s: redis primary, %d replica(s) and a Sentinel on each node, reads from %s, from %s", d.Name, env.Nodes-1, s.Read, image)
	rc, err := Up(ctx, d.Client, Options{Name: d.Name, Nodes: env.Nodes, Image: image, Progress: env.Progress, Wait: env.Wait,
		MinReplicas: s.MinReplicas})
	if err != nil {
		d.Client.Close()
		return nil, fmt.Errorf("start the redis cluster in Docker: %w", err)
	}
	env.Logf("cluster up: redis primary %s, replicas %v in Docker cluster %s", rc.Primary(), rc.Replicas(), d.Name)
	return &System{Cluster: rc, d: d, keep: env.Keep,
		redisSys: redisSys{s: rc.sentinels, at: rc, read: s.Read, wait: s.Wait, opWait: env.OpTimeout, idem: env.IdempotencyKeys, logf: env.Logf}}, nil
}

// Docker returns the cluster's containers.
func (sys *System) Docker() *docker.Cluster { return sys.Cluster.Cluster }

// Describe returns node's address as a redis:// URL, and its Sentinel's.
func (sys *redisSys) Describe(node string) string {
	if sys.s.server[node] == "" {
		return ""
	}
	return "redis://" + sys.s.server[node] + " (sentinel " + sys.s.sentinel[node] + ")"
}

// NewClient makes a worker's client: writes through Sentinel; reads on
// the primary, or with --redis-read replica on each replica in turn, each
// worker starting at the next one. A final read's client (after Settle)
// reads its node.
func (sys *redisSys) NewClient(name, node string) (workload.Client, error) {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	o := ClientOptions{Workload: name, Sentinels: sys.s.SentinelAddrs(), Password: sys.s.password, Wait: sys.wait, WaitTimeout: waitTimeout(sys.opWait),
		Timeout: sys.opWait, NodeOf: sys.s.NodeOf, IdempotencyKeys: sys.idem}
	switch {
	case sys.final && node != "":
		o.Replicas = []string{sys.s.server[node]}
	case sys.read == ReadReplica:
		replicas := sys.s.Replicas()
		for i := range replicas {
			o.Replicas = append(o.Replicas, sys.s.server[replicas[(sys.next+i)%len(replicas)]])
		}
		sys.next++
	}
	cl := NewClient(o)
	sys.clients = append(sys.clients, cl)
	return cl, nil
}

// NodeClient is the convergence phase's client of node: its reads are
// node's alone, at any time (as a final read's are).
func (sys *redisSys) NodeClient(name, node string) (workload.Client, error) {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	addr := sys.s.server[node]
	if addr == "" {
		return nil, fmt.Errorf("no node %s in cluster %s", node, sys.s.name)
	}
	cl := NewClient(ClientOptions{Workload: name, Sentinels: sys.s.SentinelAddrs(), Password: sys.s.password, Wait: sys.wait, WaitTimeout: waitTimeout(sys.opWait),
		Timeout: sys.opWait, NodeOf: sys.s.NodeOf, Replicas: []string{addr}})
	sys.clients = append(sys.clients, cl)
	return cl, nil
}

// waitTimeout is WAIT's timeout for an operation timeout: a second, or
// half the operation's time when that is shorter.
func waitTimeout(op time.Duration) time.Duration {
	if op > 0 && op/2 < time.Second {
		return max(op/2, time.Millisecond)
	}
	return time.Second
}

// settleBound bounds the wait before the final reads.
const settleBound = 30 * time.Second

// Settle waits, before the final reads, until the cluster has one primary
// that every Sentinel names and every replica has caught up with it (an
// old primary cut off rejoins as a replica once Sentinel reconfigures
// it). Past the bound the final reads go ahead, with a warning.
func (sys *redisSys) Settle(ctx context.Context) {
	start := time.Now()
	if err := sys.s.WaitSettled(ctx, settleBound); err != nil {
		sys.logf("warning: %v; the final reads show what each node has", err)
	} else if d := time.Since(start); d > time.Second {
		sys.logf("final reads: waited %v for the replicas to follow primary %s", d.Round(time.Millisecond), sys.s.Primary())
	}
	sys.mu.Lock()
	sys.final = true
	sys.mu.Unlock()
}

// failoverBound bounds the wait for Sentinel to promote a replica.
const failoverBound = 30 * time.Second

// Failover waits, once the nemesis has cut the primary off, until the
// Sentinels that can still see each other promote a replica, then heals
// the partition and waits until Sentinel makes the old primary a replica
// of the new one. Nothing is killed: the old primary went on taking the
// writes of the clients still connected to it, and loses them as it
// resynchronizes.
func (sys *redisSys) Failover() (nemesis.FailoverResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*failoverBound)
	defer cancel()
	old := sys.cutOff()
	if old == "" {
		old = sys.s.Primary()
	}
	nodes := sys.at.Nodes()
	var promoted string
	deadline := time.Now().Add(failoverBound)
	for promoted == "" {
		votes := map[string]int{}
		for _, node := range nodes {
			if node == old {
				continue // its Sentinel is cut off with it
			}
			if v, err := sys.s.ask(ctx, node); err == nil && v.primary != old {
				votes[v.primary]++
			}
		}
		for node, n := range votes {
			if n > (len(nodes)-1)/2 {
				promoted = node
			}
		}
		if promoted != "" {
			break
		}
		if time.Now().After(deadline) {
			return nemesis.FailoverResult{}, fmt.Errorf("the Sentinels did not promote a replica within %v of %s being cut off", failoverBound, old)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res := nemesis.FailoverResult{Promoted: promoted}
	if err := sys.at.Heal(); err != nil {
		return res, err
	}
	rejoined := func() (bool, string) {
		ri, err := sys.s.info(ctx, old, "replication")
		if err != nil {
			return false, err.Error()
		}
		if ri["role"] != "slave" || sys.s.byIP[ri["master_host"]] != promoted {
			return false, fmt.Sprintf("%s is %s of %q", old, ri["role"], ri["master_host"])
		}
		return true, ""
	}
	var err error
	if p, ok := sys.at.(poller); ok {
		// In Docker: the wait ends when the container stops, and the
		// error carries its last log lines.
		err = p.Poll(ctx, old, failoverBound, 200*time.Millisecond, rejoined)
	} else {
		err = db.Poll(ctx, failoverBound, 200*time.Millisecond, func() error {
			if ok, why := rejoined(); !ok {
				return errors.New(why)
			}
			return nil
		})
	}
	if err != nil {
		return res, fmt.Errorf("the old primary %s did not rejoin as a replica of %s: %w", old, promoted, err)
	}
	res.Rejoined = old
	return res, nil
}

// cutOff returns the node the partition in force cuts off from every
// other one (the primary the nemesis cut off, which by now the Sentinels
// may no longer name), or "".
func (sys *redisSys) cutOff() string {
	g := sys.at.Grudge()
	for node, drops := range g {
		if len(drops) == len(sys.at.Nodes())-1 {
			return node
		}
	}
	return ""
}

// Lag cuts replica node off from the primary (on), both ways, while
// clients still reach it: it serves reads from what it had (Redis's
// replica-serve-stale-data), and catches up when the cut is undone (off).
func (sys *redisSys) Lag(node string, on bool) error {
	if !on {
		return sys.at.Heal()
	}
	p := sys.s.Primary()
	if node == p {
		return fmt.Errorf("lag %s: it is the primary now", node)
	}
	return sys.at.Partition(map[string][]string{node: {p}, p: {node}})
}

// closeClients closes every client made.
func (sys *redisSys) closeClients() {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	for _, cl := range sys.clients {
		cl.Close()
	}
	sys.clients = nil
}

// Info is what test.json records: the cluster, its images, the engine.
func (sys *System) Info() db.Info {
	return sys.d.Info()
}

// Close closes the clients, saves each node's container log to
// logDir/<node>.log (when logDir is set) and removes the cluster, unless
// it is kept.
func (sys *System) Close(ctx context.Context, logDir string) error {
	sys.closeClients()
	return sys.d.Finish(ctx, sys.Cluster.Cluster, logDir, sys.keep, sys.logf)
}
