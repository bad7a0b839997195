package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eccheck/eccheck/docker"
)

// etcd inside a node container.
const (
	clientPort = 2379
	peerPort   = 2380
	dataDir    = "/var/lib/etcd/eccheck"
)

// Image is the image etcd members run: Debian's etcd-server (etcd 3.4 on
// bookworm) in a debootstrap of its own.
var Image = docker.ImageSpec{
	Role: "etcd", Repo: "eccheck/etcd",
	Packages: append(docker.BasePackages(), "etcd-server"),
	Path:     docker.BasePath,
	Doc:      "the base plus Debian's etcd-server",
}

// Options configure an etcd cluster.
type Options struct {
	// Name names the cluster: network eccheck-NAME, containers
	// eccheck-NAME-n1..., label eccheck.cluster=NAME.
	Name string
	// Nodes is the member count; 0 means 3.
	Nodes int
	// Image is the etcd image; empty means the one [docker.Client.ImageFor]
	// gives for [Image].
	Image string
	// Wait bounds the wait for every member to answer and know a leader;
	// 0 means 60s.
	Wait time.Duration
	// Progress receives progress lines; nil discards.
	Progress io.Writer
}

// Cluster is an etcd cluster in containers: a [docker.Cluster]
// (partitions, link faults, kill, pause) whose members found each other
// at their fixed addresses.
type Cluster struct {
	*docker.Cluster
}

// Up starts an etcd cluster: Nodes members, each started with the whole
// initial membership at the fixed addresses of its network, and waits
// until every member answers and they agree on a leader. On failure it
// removes what it created.
func Up(ctx context.Context, c *docker.Client, o Options) (ec *Cluster, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Wait == 0 {
		o.Wait = 60 * time.Second
	}
	if o.Image == "" {
		if o.Image, err = c.ImageFor(ctx, Image); err != nil {
			return nil, err
		}
	}
	cl, err := c.Up(ctx, docker.ClusterSpec{
		Name: o.Name, DB: Name, Nodes: o.Nodes, Image: o.Image, Port: clientPort,
		Cmd:   func(n *docker.Node, nodes []*docker.Node) []string { return command(o.Name, n, nodes) },
		Ready: answers, Wait: o.Wait, Progress: o.Progress,
	})
	if err != nil {
		return nil, err
	}
	ec = &Cluster{Cluster: cl}
	if err := ec.WaitLeader(ctx, o.Wait); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := cl.Down(dctx); derr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, derr)
		}
		return nil, err
	}
	return ec, nil
}

// command is a member's command line: its name, its data directory in
// the container (kept across a kill and start, so a restarted member
// rejoins with its log), its URLs at its fixed address, and the initial
// cluster of every member. The default heartbeat (100 ms) and election
// timeout (1 s) are etcd's own.
func command(cluster string, n *docker.Node, nodes []*docker.Node) []string {
	var initial []string
	for _, m := range nodes {
		initial = append(initial, fmt.Sprintf("%s=http://%s:%d", m.Name, m.IP, peerPort))
	}
	return []string{"etcd",
		"--name", n.Name,
		"--data-dir", dataDir,
		"--listen-client-urls", fmt.Sprintf("http://0.0.0.0:%d", clientPort),
		"--advertise-client-urls", fmt.Sprintf("http://%s:%d", n.IP, clientPort),
		"--listen-peer-urls", fmt.Sprintf("http://0.0.0.0:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://%s:%d", n.IP, peerPort),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "eccheck-" + cluster,
	}
}

// answers is the readiness probe of a member: it answers a status
// request (with or without a leader, so that a member started while cut
// off counts as up).
func answers(ctx context.Context, _ *docker.Node, addr string) (bool, string) {
	_, err := status(ctx, addr, nil)
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

// status asks the member at addr for its status, within 2 s (as auth's
// user, when set).
func status(ctx context.Context, addr string, auth *Auth) (*clientv3.StatusResponse, error) {
	cli, err := newEtcd([]string{addr}, auth)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cli.Status(cctx, addr)
}

// WaitLeader waits until every member answers and names the same leader.
func (ec *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, node := range ec.Nodes() {
		addr := ec.Addr(node)
		err := ec.Poll(ctx, node, time.Until(deadline), 200*time.Millisecond, func() (bool, string) {
			st, err := status(ctx, addr, nil)
			switch {
			case err != nil:
				return false, err.Error()
			case st.Leader == 0:
				return false, "no leader yet"
			}
			return true, ""
		})
		if err != nil {
			return fmt.Errorf("etcd member %s knows no leader: %w", node, err)
		}
	}
	return nil
}

// Roles names each member's role: "leader", "follower", "no leader" (a
// member cut off from the majority), its container's state when it does
// not run (exited, paused), or "no answer".
func (ec *Cluster) Roles(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, node := range ec.Nodes() {
		if n, _ := ec.Node(node); n != nil && n.State != "" && n.State != "running" {
			out[node] = n.State
			continue
		}
		out[node] = roleOf(ctx, ec.Addr(node), nil)
	}
	return out
}

// statusAuth asks the member at addr for its status without logging in
// (etcd answers a status without it, and logging in needs a quorum, which
// a member cut off has not), and as auth's user when the member wants one.
func statusAuth(ctx context.Context, addr string, auth *Auth) (*clientv3.StatusResponse, error) {
	st, err := status(ctx, addr, nil)
	if err != nil && auth != nil && (errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrPermissionDenied) || strings.Contains(err.Error(), "user name is empty")) {
		return status(ctx, addr, auth)
	}
	return st, err
}

// roleOf is the role of the member at addr: "leader", "follower", "no
// leader" (cut off from the majority) or "no answer".
func roleOf(ctx context.Context, addr string, auth *Auth) string {
	st, err := statusAuth(ctx, addr, auth)
	switch {
	case err != nil:
		return "no answer"
	case st.Leader == 0:
		return "no leader"
	case st.Leader == st.Header.MemberId:
		return "leader"
	}
	return "follower"
}

// Endpoint returns node's client URL.
func (ec *Cluster) Endpoint(node string) string {
	if a := ec.Addr(node); a != "" {
		return "http://" + a
	}
	return ""
}
