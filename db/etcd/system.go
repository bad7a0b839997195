package etcd

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/workload"
)

// System is a test's etcd cluster in Docker: the nemesis acts on its
// containers (partitions, kill, pause, link faults) and each worker's
// client talks to the member the workload bound it to.
type System struct {
	*Cluster
	members
	d    *db.Docker
	keep bool
}

// view is what the clients need to know of a cluster, in Docker or on
// SSH hosts: its members and where each answers.
type view interface {
	Name() string
	Nodes() []string
	Addr(node string) string
}

// members makes the workers' clients of a cluster's members, waits for
// them before the final reads, and closes the clients.
type members struct {
	view view
	auth *Auth         // the clients' credentials, when auth is on
	read string        // --etcd-read
	wait time.Duration // the per-operation timeout
	logf func(string, ...any)

	mu      sync.Mutex
	clients []*Client
}

var (
	_ db.System     = (*System)(nil)
	_ db.Containers = (*System)(nil)
	_ db.Roler      = (*System)(nil)
	_ db.Describer  = (*System)(nil)
)

// start connects to the engine, makes sure the image exists (building it
// when missing) and brings up the members. On error it leaves nothing
// running, --keep or not.
func (s *Settings) start(ctx context.Context, env db.Env) (db.System, error) {
	d, err := db.StartDocker(ctx, env, Image)
	if err != nil {
		return nil, err
	}
	image := d.Images[Image.Role]
	env.Logf("starting Docker cluster %s: %d etcd members, %s reads, from %s", d.Name, env.Nodes, s.Read, image)
	ec, err := Up(ctx, d.Client, Options{Name: d.Name, Nodes: env.Nodes, Image: image, Progress: env.Progress, Wait: env.Wait})
	if err != nil {
		d.Client.Close()
		return nil, fmt.Errorf("start the etcd cluster in Docker: %w", err)
	}
	roles := ec.Roles(ctx)
	env.Logf("cluster up: etcd members %v in Docker cluster %s (roles %v)", ec.Nodes(), d.Name, roles)
	return &System{Cluster: ec, d: d, keep: env.Keep,
		members: members{view: ec, read: s.Read, wait: env.OpTimeout, logf: env.Logf}}, nil
}

// Docker returns the cluster's containers.
func (sys *System) Docker() *docker.Cluster { return sys.Cluster.Cluster }

// Describe returns node's client URL.
func (sys *System) Describe(node string) string { return sys.Endpoint(node) }

// NewClient makes a worker's client bound to node's endpoint, or with
// every member's endpoint when node is "" (the client then balances its
// requests over them).
func (m *members) NewClient(name, node string) (workload.Client, error) {
	nodes := []string{node}
	if node == "" {
		nodes = m.view.Nodes()
	}
	var endpoints []string
	for _, n := range nodes {
		a := m.view.Addr(n)
		if a == "" {
			return nil, fmt.Errorf("etcd: no member %s in cluster %s", n, m.view.Name())
		}
		endpoints = append(endpoints, a)
	}
	cl, err := NewClient(endpoints, ClientOptions{Workload: name, Read: m.read, Timeout: m.wait, Node: node, Auth: m.auth})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.clients = append(m.clients, cl)
	m.mu.Unlock()
	return cl, nil
}

// closeClients closes every client made.
func (m *members) closeClients() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cl := range m.clients {
		cl.Close()
	}
	m.clients = nil
}

// settleBound bounds the wait, before the final reads, for every member
// to apply what the cluster has committed.
const settleBound = 15 * time.Second

// Settle waits, before the final reads, until every member has applied
// the cluster's revision of now (a member cut off until the heal catches
// up from the leader's log): with serializable reads, a final read then
// shows what the cluster has, not what the member missed. Past the bound
// the final reads go ahead, with a warning.
func (m *members) Settle(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, settleBound)
	defer cancel()
	var addrs []string
	for _, n := range m.view.Nodes() {
		addrs = append(addrs, m.view.Addr(n))
	}
	cli, err := newEtcd(addrs, m.auth)
	if err != nil {
		m.logf("warning: final reads: %v", err)
		return
	}
	defer cli.Close()
	var target int64
	for target == 0 {
		// A linearizable read: the revision every acknowledged write is
		// at or below.
		res, err := cli.Get(ctx, "eccheck/settle")
		if err == nil {
			target = res.Header.Revision
			break
		}
		if ctx.Err() != nil {
			m.logf("warning: final reads: the cluster's revision: %v", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	nodes := m.view.Nodes()
	for i, node := range nodes {
		start := time.Now()
		member, err := newEtcd([]string{m.view.Addr(node)}, m.auth)
		if err != nil {
			m.logf("warning: final reads of %s: %v", node, err)
			continue
		}
		// Each member a fair share of what is left of the bound: one
		// that is down does not take the others' time.
		share := time.Until(deadline(ctx)) / time.Duration(len(nodes)-i)
		err = db.Poll(ctx, share, 50*time.Millisecond, func() error {
			rev, err := appliedRevision(ctx, member)
			if err != nil {
				return err
			}
			if rev < target {
				return fmt.Errorf("at revision %d of %d", rev, target)
			}
			return nil
		})
		member.Close()
		switch {
		case err != nil:
			m.logf("warning: etcd member %s had not applied revision %d within %v; its final reads show what it has: %v", node, target, share.Round(time.Millisecond), err)
		case time.Since(start) > time.Second:
			m.logf("final reads of %s: waited %v for it to apply revision %d", node, time.Since(start).Round(time.Millisecond), target)
		}
	}
}

// deadline is ctx's deadline (Settle's always has one).
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// appliedRevision is the revision the member cli is bound to has applied:
// the header of a serializable read, which the member answers alone.
func appliedRevision(ctx context.Context, cli *clientv3.Client) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := cli.Get(cctx, "eccheck/settle", clientv3.WithSerializable())
	if err != nil {
		return 0, err
	}
	return res.Header.Revision, nil
}

// Info is what test.json records: the cluster, its images, the engine.
func (sys *System) Info() db.Info {
	return sys.d.Info()
}

// Close closes the clients, saves each member's container log to
// logDir/<node>.log (when logDir is set) and removes the cluster, unless
// it is kept.
func (sys *System) Close(ctx context.Context, logDir string) error {
	sys.closeClients()
	return sys.d.Finish(ctx, sys.Cluster.Cluster, logDir, sys.keep, sys.logf)
}
