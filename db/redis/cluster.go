package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/eccheck/eccheck/docker"
)

// Redis inside a node container: the server, and a Sentinel beside it.
const (
	redisPort    = 6379
	sentinelPort = 26379
	nodeDir      = "/var/lib/redis/eccheck"
	// MasterName is the name the Sentinels monitor the primary under.
	MasterName = "eccheck"
)

// Image is the image Redis nodes run: Debian's redis-server and
// redis-sentinel (Redis 7.0 on bookworm) in a debootstrap of its own.
var Image = docker.ImageSpec{
	Role: "redis", Repo: "eccheck/redis",
	Packages: append(docker.BasePackages(), "redis-server", "redis-sentinel"),
	Path:     docker.BasePath,
	Doc:      "the base plus Debian's redis-server and redis-sentinel",
}

// serverConf is what every server's redis.conf holds, in Docker and on
// SSH hosts, after its port, address and directory: an append-only file
// fsynced every second (a killed node restarts with its data), no RDB
// snapshots, and min-replicas-to-write $minreplicas.
const serverConf = `appendonly yes
appendfsync everysec
save ""
min-replicas-to-write $minreplicas
min-replicas-max-lag 10
`

// sentinelConf is what every Sentinel's sentinel.conf holds after its
// port, address, directory and passwords: the primary to watch at
// $primary, port $port, with quorum $quorum, and the down-after and
// failover timeouts $down and $failover (ms).
const sentinelConf = `sentinel monitor ` + MasterName + ` $primary $port $quorum
sentinel down-after-milliseconds ` + MasterName + ` $down
sentinel failover-timeout ` + MasterName + ` $failover
sentinel parallel-syncs ` + MasterName + ` 1
`

// nodeScript starts a node: a Sentinel in the background and the Redis
// server in the foreground, both logging to the container's output. The
// first start writes both configuration files (a replica's names the
// primary); a restarted container keeps them, as Sentinel and Redis
// rewrite them (CONFIG REWRITE) on every reconfiguration, so a node comes
// back in the role it last had. The server keeps an append-only file
// (fsync every second), so a killed node restarts with its data rather
// than empty. Arguments: role, the first primary's address, the quorum,
// Sentinel's down-after and failover timeouts in ms, and
// min-replicas-to-write.
const nodeScript = `set -eu
role=$1 primary=$2 quorum=$3 down=$4 failover=$5 minreplicas=$6 port=6379
D=` + nodeDir + `
mkdir -p "$D"
if [ ! -s "$D/sentinel.conf" ]; then
  cat >"$D/sentinel.conf" <<EOF
port ` + "26379" + `
bind 0.0.0.0
protected-mode no
dir $D
` + sentinelConf + `EOF
fi
if [ ! -s "$D/redis.conf" ]; then
  cat >"$D/redis.conf" <<EOF
port 6379
bind 0.0.0.0
protected-mode no
dir $D
` + serverConf + `EOF
  if [ "$role" = replica ]; then echo "replicaof $primary 6379" >>"$D/redis.conf"; fi
fi
redis-sentinel "$D/sentinel.conf" &
exec redis-server "$D/redis.conf"
`

// Options configure a Redis cluster.
type Options struct {
	// Name names the cluster (see [docker.ClusterSpec]).
	Name string
	// Nodes is the node count, the first primary (n1) included; 0 means 3.
	Nodes int
	// Image is the redis image; empty means the one [docker.Client.ImageFor]
	// gives for [Image].
	Image string
	// DownAfter is how long a Sentinel waits for an unreachable primary
	// before it calls it down; 0 means 2s. FailoverTimeout is Sentinel's
	// failover-timeout; 0 means 6s.
	DownAfter, FailoverTimeout time.Duration
	// MinReplicas is min-replicas-to-write on every node: a primary
	// refuses writes while fewer replicas are connected (0: never).
	MinReplicas int
	// Wait bounds the readiness wait; 0 means 60s.
	Wait time.Duration
	// Progress receives progress lines; nil discards.
	Progress io.Writer
}

// Cluster is a Redis primary with replicas and a Sentinel on every node,
// in containers: a [docker.Cluster] whose primary the Sentinels replace
// when it is unreachable.
type Cluster struct {
	*docker.Cluster
	*sentinels
}

// sentinels is what eccheck knows of a Redis cluster's nodes, in Docker
// or on SSH hosts: where each server and Sentinel answers, the password
// they want (none in Docker), and the primary the Sentinels name.
type sentinels struct {
	name  string
	nodes []string
	// server and sentinel map a node to its server's and its
	// Sentinel's address (ip:port); byIP maps a node's IP (what Sentinel
	// hands out) to its name.
	server, sentinel, byIP map[string]string
	password               string

	mu      sync.Mutex
	primary string // the primary last seen
}

// newSentinels makes the sentinels of nodes at ips (the addresses
// Sentinel hands out), servers on port redisPort and Sentinels on
// sentinelPort unless given.
func newSentinels(name string, nodes, ips []string, serverPort, sentinelPort int, password string) *sentinels {
	s := &sentinels{name: name, nodes: nodes, server: map[string]string{}, sentinel: map[string]string{}, byIP: map[string]string{}, password: password, primary: nodes[0]}
	for i, n := range nodes {
		s.server[n] = net.JoinHostPort(ips[i], strconv.Itoa(serverPort))
		s.sentinel[n] = net.JoinHostPort(ips[i], strconv.Itoa(sentinelPort))
		s.byIP[ips[i]] = n
	}
	return s
}

// Up starts a Redis cluster: n1 the primary, the others its replicas, a
// Sentinel on every node watching it with a majority quorum. It returns
// once every server answers, every replica is linked to the primary and
// every Sentinel knows every replica and every other Sentinel. Sentinel
// hands out the nodes' bridge addresses, so this host must reach them
// (the engine runs here); on failure it removes what it created.
func Up(ctx context.Context, c *docker.Client, o Options) (rc *Cluster, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.DownAfter == 0 {
		o.DownAfter = 2 * time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 6 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 60 * time.Second
	}
	if o.Image == "" {
		if o.Image, err = c.ImageFor(ctx, Image); err != nil {
			return nil, err
		}
	}
	quorum := o.Nodes/2 + 1
	cl, err := c.Up(ctx, docker.ClusterSpec{
		Name: o.Name, DB: Name, Nodes: o.Nodes, Image: o.Image, Port: redisPort,
		Cmd: func(n *docker.Node, nodes []*docker.Node) []string {
			role := "replica"
			if n.Name == "n1" {
				role = "primary"
			}
			return []string{"sh", "-c", nodeScript, "eccheck-redis", role, nodes[0].IP.String(), strconv.Itoa(quorum),
				strconv.FormatInt(o.DownAfter.Milliseconds(), 10), strconv.FormatInt(o.FailoverTimeout.Milliseconds(), 10), strconv.Itoa(o.MinReplicas)}
		},
		// No clock: libfaketime and Debian's jemalloc-linked
		// redis-server clash at startup (see Settings.Validate).
		Ready: pings, Wait: o.Wait, Progress: o.Progress,
	})
	if err != nil {
		return nil, err
	}
	rc, err = newCluster(cl)
	if err == nil {
		err = rc.WaitSettled(ctx, o.Wait)
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := cl.Down(dctx); derr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, derr)
		}
		return nil, err
	}
	return rc, nil
}

// newCluster wraps cl, checking that this host reaches its nodes at their
// bridge addresses, which is where Sentinel sends clients.
func newCluster(cl *docker.Cluster) (*Cluster, error) {
	var ips []string
	for _, name := range cl.Nodes() {
		n, err := cl.Node(name)
		if err != nil {
			return nil, err
		}
		bridge := net.JoinHostPort(n.IP.String(), strconv.Itoa(redisPort))
		if a := cl.Addr(name); a != bridge {
			return nil, fmt.Errorf("redis cluster %s: Sentinel hands clients the nodes' bridge addresses (%s), which this host does not reach (the engine is remote, or ECCHECK_PUBLISHED_PORTS is set); run eccheck on the engine's host", cl.Name(), bridge)
		}
		ips = append(ips, n.IP.String())
	}
	return &Cluster{Cluster: cl, sentinels: newSentinels(cl.Name(), cl.Nodes(), ips, redisPort, sentinelPort, "")}, nil
}

// pings is the readiness probe of a node: its server answers PING.
func pings(ctx context.Context, _ *docker.Node, addr string) (bool, string) {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Ping(cctx).Err(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// SentinelAddrs returns every node's Sentinel address, in node order.
func (rc *sentinels) SentinelAddrs() []string {
	var out []string
	for _, name := range rc.nodes {
		out = append(out, rc.sentinel[name])
	}
	return out
}

// NodeOf names the node at addr (ip:port), or "".
func (rc *sentinels) NodeOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return rc.byIP[host]
}

// info returns INFO section of the server on node, as key: value.
func (rc *sentinels) info(ctx context.Context, node, section string) (map[string]string, error) {
	c := goredis.NewClient(&goredis.Options{Addr: rc.server[node], Password: rc.password, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	text, err := c.Info(cctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// sentinelView is what one Sentinel says of the primary: its node, and
// how many replicas and other Sentinels it knows.
type sentinelView struct {
	primary            string
	replicas, sentinel int
}

// ask asks node's Sentinel about the primary.
func (rc *sentinels) ask(ctx context.Context, node string) (sentinelView, error) {
	addr, ok := rc.sentinel[node]
	if !ok {
		return sentinelView{}, fmt.Errorf("no node %s in cluster %s", node, rc.name)
	}
	s := goredis.NewSentinelClient(&goredis.Options{Addr: addr, Password: rc.password, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer s.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := s.Master(cctx, MasterName).Result()
	if err != nil {
		return sentinelView{}, err
	}
	v := sentinelView{primary: rc.byIP[m["ip"]]}
	v.replicas, _ = strconv.Atoi(m["num-slaves"])
	v.sentinel, _ = strconv.Atoi(m["num-other-sentinels"])
	if v.primary == "" {
		return v, fmt.Errorf("sentinel on %s names an unknown primary %s", node, m["ip"])
	}
	return v, nil
}

// Primary returns the node the Sentinels name as the primary: the answer
// of most of those that answer (a Sentinel cut off may lag behind), or
// the one last seen when none answers.
func (rc *sentinels) Primary() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	votes := map[string]int{}
	for _, node := range rc.nodes {
		if v, err := rc.ask(ctx, node); err == nil {
			votes[v.primary]++
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	best := 0
	for node, n := range votes {
		if n > best || n == best && node < rc.primary {
			rc.primary, best = node, n
		}
	}
	return rc.primary
}

// Replicas returns every node but the primary, in node order.
func (rc *sentinels) Replicas() []string {
	p := rc.Primary()
	return slices.DeleteFunc(slices.Clone(rc.nodes), func(n string) bool { return n == p })
}

// errNotSettled says what is not yet as it should be.
var errNotSettled = errors.New("not settled")

// settled checks that every running node's Sentinel names the same
// primary, knows every other replica and Sentinel, that the primary says
// it is one, and that every other node is its replica, linked and at its
// replication offset.
func (rc *sentinels) settled(ctx context.Context) error {
	var primary string
	nodes := rc.nodes
	for _, node := range nodes {
		v, err := rc.ask(ctx, node)
		switch {
		case err != nil:
			return fmt.Errorf("%w: sentinel on %s: %v", errNotSettled, node, err)
		case primary != "" && v.primary != primary:
			return fmt.Errorf("%w: sentinels disagree on the primary (%s, %s)", errNotSettled, primary, v.primary)
		case v.replicas != len(nodes)-1 || v.sentinel != len(nodes)-1:
			return fmt.Errorf("%w: sentinel on %s knows %d replicas and %d other sentinels, want %d", errNotSettled, node, v.replicas, v.sentinel, len(nodes)-1)
		}
		primary = v.primary
	}
	pi, err := rc.info(ctx, primary, "replication")
	if err != nil {
		return fmt.Errorf("%w: primary %s: %v", errNotSettled, primary, err)
	}
	if pi["role"] != "master" {
		return fmt.Errorf("%w: %s, which the sentinels name, is a %s", errNotSettled, primary, pi["role"])
	}
	for _, node := range nodes {
		if node == primary {
			continue
		}
		ri, err := rc.info(ctx, node, "replication")
		switch {
		case err != nil:
			return fmt.Errorf("%w: replica %s: %v", errNotSettled, node, err)
		case ri["role"] != "slave" || rc.byIP[ri["master_host"]] != primary || ri["master_link_status"] != "up":
			return fmt.Errorf("%w: %s is %s of %s, link %s; want a replica of %s", errNotSettled, node, ri["role"], ri["master_host"], ri["master_link_status"], primary)
		case ri["slave_repl_offset"] != pi["master_repl_offset"]:
			return fmt.Errorf("%w: replica %s at offset %s of %s", errNotSettled, node, ri["slave_repl_offset"], pi["master_repl_offset"])
		}
	}
	rc.mu.Lock()
	rc.primary = primary
	rc.mu.Unlock()
	return nil
}

// WaitSettled waits until the cluster is settled (see settled): one
// primary everyone agrees on, every replica linked and caught up.
func (rc *sentinels) WaitSettled(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		err := rc.settled(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis cluster %s not settled within %v: %w", rc.name, bound, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Roles names each node's role as its server says ("master", "slave"),
// or its container's state when it does not run, or "no answer".
func (rc *Cluster) Roles(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, node := range rc.Nodes() {
		if n, _ := rc.Node(node); n != nil && n.State != "" && n.State != "running" {
			out[node] = n.State
			continue
		}
		out[node] = rc.role(ctx, node)
	}
	return out
}

// role is what node's server says it is: "primary", "replica", or "no
// answer".
func (rc *sentinels) role(ctx context.Context, node string) string {
	ri, err := rc.info(ctx, node, "replication")
	switch {
	case err != nil:
		return "no answer"
	case ri["role"] == "master":
		return "primary"
	}
	return "replica"
}
