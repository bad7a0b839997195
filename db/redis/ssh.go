// This file runs Redis with Sentinel on hosts of the user's, reached over
// SSH: Debian's redis-server and redis-sentinel on every host (installed
// when missing), a server and a Sentinel per host as one supervised
// process of the redis user, a password on both, and the faults done with
// the hosts' own tools (package sshcluster).

package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/sshcluster"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
)

// Redis on an SSH host.
const (
	// SSHPort and SSHSentinelPort are the ports eccheck's servers and
	// Sentinels listen on over SSH: not 6379 and 26379, which the
	// services Debian's packages start may hold.
	SSHPort         = 16379
	SSHSentinelPort = 16380
	// sshUser runs the servers and Sentinels: the user Debian's package
	// makes.
	sshUser = "redis"
)

// sshSystem is a Redis cluster on SSH hosts: n1 the first primary, the
// others its replicas, a Sentinel beside every server; servers and
// Sentinels want the cluster's random password (requirepass, masterauth,
// Sentinel's auth-pass and sentinel-pass), kept on the hosts in files only
// root and the redis user read.
type sshSystem struct {
	*sshcluster.Cluster
	redisSys
}

var (
	_ db.SSHOpener       = DB{}
	_ db.System          = (*sshSystem)(nil)
	_ db.Hosted          = (*sshSystem)(nil)
	_ db.Roler           = (*sshSystem)(nil)
	_ db.Describer       = (*sshSystem)(nil)
	_ db.NodeReader      = (*sshSystem)(nil)
	_ nemesis.Failoverer = (*sshSystem)(nil)
	_ nemesis.Lagger     = (*sshSystem)(nil)
)

// sshConfigScript writes a node's configuration files, as root, owned by
// the redis user: $1 the node's directory, $2 the file holding the
// password (never an argument), $3 the role, $4 the first primary's
// address, $5 and $6 the server's and Sentinel's ports, $7 the quorum,
// $8 and $9 Sentinel's down-after and failover timeouts in ms, ${10}
// min-replicas-to-write, ${11} the host's address, which its server and
// Sentinel announce (the one eccheck knows it by, whatever interface a
// connection leaves from). Sentinel and the server rewrite them on every
// reconfiguration (CONFIG REWRITE), so a node started again comes back in
// the role it last had, as in Docker.
const sshConfigScript = `set -eu
dir=$1 pwsrc=$2 role=$3 primary=$4 port=$5 sport=$6 quorum=$7 down=$8 failover=$9 minreplicas=${10} self=${11}
install -d -o ` + sshUser + ` -g ` + sshUser + ` -m 700 "$dir"
read -r pw < "$pwsrc"
umask 077
cat >"$dir/sentinel.conf" <<EOF
port $sport
bind 0.0.0.0
dir $dir
requirepass $pw
sentinel announce-ip $self
sentinel sentinel-pass $pw
` + sentinelConf + `sentinel auth-pass ` + MasterName + ` $pw
EOF
cat >"$dir/redis.conf" <<EOF
port $port
bind 0.0.0.0
dir $dir
replica-announce-ip $self
requirepass $pw
masterauth $pw
` + serverConf + `EOF
if [ "$role" = replica ]; then echo "replicaof $primary $port" >>"$dir/redis.conf"; fi
chown ` + sshUser + `:` + sshUser + ` "$dir/sentinel.conf" "$dir/redis.conf"
`

// sshNodeCommand runs a node's Sentinel in the background and its server
// in the foreground, both logging to the node's log: one process tree,
// which kill, pause and resume reach whole. The umask keeps the
// configuration files they rewrite (CONFIG REWRITE), password and all,
// the redis user's alone.
func sshNodeCommand(dir string) []string {
	return []string{"sh", "-c", `umask 077; /usr/bin/redis-sentinel "$0/sentinel.conf" & exec /usr/bin/redis-server "$0/redis.conf"`, dir}
}

// startSSH brings up the nodes on env.Hosts and waits until the cluster
// has settled (one primary every Sentinel names, every replica linked
// and caught up). On failure it removes what it made.
func (s *Settings) startSSH(ctx context.Context, env db.Env) (db.System, error) {
	cl, err := sshcluster.New(ctx, env, SSHPort, func(ctx context.Context, h *sshhost.Host) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if _, err := h.EnsurePackage(ctx, "redis-server", "/usr/bin/redis-server"); err != nil {
			return err
		}
		_, err := h.EnsurePackage(ctx, "redis-sentinel", "/usr/bin/redis-sentinel")
		return err
	})
	if err != nil {
		return nil, err
	}
	var pw [16]byte
	rand.Read(pw[:])
	sys := newSSHSystem(cl, hex.EncodeToString(pw[:]))
	sys.read, sys.wait, sys.opWait, sys.idem, sys.logf = s.Read, s.Wait, env.OpTimeout, env.IdempotencyKeys, env.Logf
	name, hosts, nodes := cl.Name(), cl.Hosts(), cl.Nodes()
	for _, n := range nodes {
		cl.Specs = append(cl.Specs, sshhost.ProcessSpec{Cluster: name, Name: n, User: sshUser, Cmd: sshNodeCommand(sshcluster.NodeDir(name, n))})
	}
	env.Logf("starting cluster %s on %d SSH hosts: redis primary, %d replica(s) and a Sentinel on each host, reads from %s", name, len(hosts), len(hosts)-1, s.Read)
	wait := env.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	if err := sys.up(ctx, s.MinReplicas, wait); err != nil {
		sys.closeClients()
		return nil, cl.Abandon(ctx, fmt.Errorf("start the redis cluster on SSH hosts: %w", err))
	}
	env.Logf("cluster up: redis primary %s, replicas %v on SSH hosts, cluster %s", sys.s.Primary(), sys.s.Replicas(), name)
	return sys, nil
}

// newSSHSystem makes the system of cl, whose servers and Sentinels want
// password.
func newSSHSystem(cl *sshcluster.Cluster, password string) *sshSystem {
	var ips []string
	for _, ip := range cl.IPs {
		ips = append(ips, ip.String())
	}
	sys := &sshSystem{Cluster: cl}
	sys.redisSys = redisSys{s: newSentinels(cl.Name(), cl.Nodes(), ips, SSHPort, SSHSentinelPort, password), at: cl, read: ReadPrimary, logf: func(string, ...any) {}}
	cl.Ready = sys.ready
	return sys
}

// up writes the password, the manifest and each node's configuration,
// starts the nodes, the primary first, and waits until they settle.
func (sys *sshSystem) up(ctx context.Context, minReplicas int, wait time.Duration) error {
	name, hosts, nodes := sys.Name(), sys.Hosts(), sys.Nodes()
	if err := sys.WriteSecret(ctx, sys.s.password); err != nil {
		return err
	}
	if err := sys.WriteManifest(ctx, sys.Manifest(Name)); err != nil {
		return err
	}
	quorum := len(nodes)/2 + 1
	if err := sshcluster.Each(len(hosts), func(i int) error {
		role := "replica"
		if i == 0 {
			role = "primary"
		}
		_, _, err := hosts[i].Sudo(ctx, sshhost.Command("sh", "-c", sshConfigScript, "eccheck-redis", sshcluster.NodeDir(name, nodes[i]), sshcluster.SecretFile(name),
			role, sys.IPs[0].String(), strconv.Itoa(SSHPort), strconv.Itoa(SSHSentinelPort), strconv.Itoa(quorum),
			strconv.FormatInt((2*time.Second).Milliseconds(), 10), strconv.FormatInt((6*time.Second).Milliseconds(), 10), strconv.Itoa(minReplicas), sys.IPs[i].String()))
		return err
	}); err != nil {
		return err
	}
	if err := sys.StartNode(ctx, 0, wait); err != nil {
		return err
	}
	if err := sshcluster.Each(len(hosts)-1, func(j int) error { return sys.StartNode(ctx, j+1, wait) }); err != nil {
		return err
	}
	return sys.s.WaitSettled(ctx, wait)
}

// ready waits, at most d, until node i's server answers PING.
func (sys *sshSystem) ready(ctx context.Context, i int, d time.Duration) error {
	addr := sys.s.server[sys.Nodes()[i]]
	return db.Poll(ctx, d, 200*time.Millisecond, func() error {
		c := goredis.NewClient(&goredis.Options{Addr: addr, Password: sys.s.password, MaxRetries: -1, DialTimeout: 2 * time.Second})
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return c.Ping(cctx).Err()
	})
}

// Primary is the node the Sentinels name as the primary.
func (sys *sshSystem) Primary() string { return sys.s.Primary() }

// Replicas are every node but the primary.
func (sys *sshSystem) Replicas() []string { return sys.s.Replicas() }

// SetClock moves node's host clock with --ssh-host-clock; libfaketime
// and Debian's jemalloc-linked redis-server clash at startup (see
// Settings.Validate), so without it there is nothing to move.
func (sys *sshSystem) SetClock(node string, offset time.Duration) error {
	if sys.HostClock() {
		return sys.SetHostClock(node, offset)
	}
	return fmt.Errorf("set clock of %s: redis-server does not start under libfaketime: start the cluster with --ssh-host-clock", node)
}

// Roles names each node's role as its server says.
func (sys *sshSystem) Roles(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, n := range sys.Nodes() {
		out[n] = sys.s.role(ctx, n)
	}
	return out
}

// Describe returns node's server and Sentinel, and where the password is.
func (sys *sshSystem) Describe(node string) string {
	return sys.redisSys.Describe(node) + " (password: sudo cat " + path.Clean(sshcluster.SecretFile(sys.Name())) + " on any host)"
}

// Close closes the clients, then fetches the logs and removes the
// cluster from the hosts, unless it is kept.
func (sys *sshSystem) Close(ctx context.Context, logDir string) error {
	sys.closeClients()
	return sys.Cluster.Close(ctx, logDir)
}

// OpenSSH takes over the Redis cluster running on hosts, for `eccheck
// nemesis` and `eccheck cluster status`.
func (DB) OpenSSH(ctx context.Context, hosts []string, cfg sshhost.Config, name string) (db.System, error) {
	cl, _, password, err := sshcluster.OpenSecret(ctx, hosts, cfg, name, Name)
	if err != nil {
		return nil, err
	}
	return newSSHSystem(cl, password), nil
}
