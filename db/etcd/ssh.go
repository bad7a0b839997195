// This file runs etcd on hosts of the user's, reached over SSH: Debian's
// etcd-server on every host (installed when missing), one member per host
// as a supervised process of the etcd user, authentication on, and the
// faults done with the hosts' own tools (package sshcluster).

package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/sshcluster"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
)

// etcd on an SSH host.
const (
	// SSHClientPort and SSHPeerPort are the ports eccheck's members
	// listen on over SSH: not 2379 and 2380, which the etcd service that
	// Debian's package starts may hold.
	SSHClientPort = 12379
	SSHPeerPort   = 12380
	sshBinary     = "/usr/bin/etcd"
	sshPackage    = "etcd-server"
	// sshUser runs the members: the user Debian's package makes.
	sshUser = "etcd"
)

// sshSystem is an etcd cluster on SSH hosts: member n1 on the first
// host, and so on, with authentication on (the root user, a random
// password kept on the hosts in a file only root reads), so that on a
// real network no one else writes to it. The members' peer traffic is
// plain HTTP: keep the hosts on a network of their own.
type sshSystem struct {
	*sshcluster.Cluster
	members
}

var (
	_ db.SSHOpener    = DB{}
	_ db.System       = (*sshSystem)(nil)
	_ db.Hosted       = (*sshSystem)(nil)
	_ db.Roler        = (*sshSystem)(nil)
	_ db.Describer    = (*sshSystem)(nil)
	_ nemesis.Cluster = (*sshSystem)(nil)
)

// sshCommand is member i's command line on its host.
func sshCommand(cluster string, i int, nodes []string, ips []string) []string {
	var initial []string
	for j, n := range nodes {
		initial = append(initial, fmt.Sprintf("%s=http://%s:%d", n, ips[j], SSHPeerPort))
	}
	return []string{sshBinary,
		"--name", nodes[i],
		"--data-dir", path.Join(sshcluster.NodeDir(cluster, nodes[i]), "data"),
		"--listen-client-urls", fmt.Sprintf("http://0.0.0.0:%d", SSHClientPort),
		"--advertise-client-urls", fmt.Sprintf("http://%s:%d", ips[i], SSHClientPort),
		"--listen-peer-urls", fmt.Sprintf("http://%s:%d", ips[i], SSHPeerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://%s:%d", ips[i], SSHPeerPort),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "eccheck-" + cluster,
	}
}

// startSSH brings up the members on env.Hosts, waits until they agree on
// a leader, and turns authentication on. On failure it removes what it
// made.
func (s *Settings) startSSH(ctx context.Context, env db.Env) (db.System, error) {
	cl, err := sshcluster.New(ctx, env, SSHClientPort, func(ctx context.Context, h *sshhost.Host) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		_, err := h.EnsurePackage(ctx, sshPackage, sshBinary)
		return err
	})
	if err != nil {
		return nil, err
	}
	var pw [16]byte
	rand.Read(pw[:])
	sys := &sshSystem{Cluster: cl}
	sys.members = members{view: cl, auth: &Auth{User: "root", Password: hex.EncodeToString(pw[:])}, read: s.Read, wait: env.OpTimeout, logf: env.Logf}
	name, hosts, nodes := cl.Name(), cl.Hosts(), cl.Nodes()
	var ips []string
	for _, ip := range cl.IPs {
		ips = append(ips, ip.String())
	}
	for i, n := range nodes {
		cl.Specs = append(cl.Specs, sshhost.ProcessSpec{Cluster: name, Name: n, User: sshUser, Cmd: sshCommand(name, i, nodes, ips)})
	}
	// A member answers its status as soon as it runs, with or without a
	// leader (it needs the others for one): they start at once.
	cl.Ready = sys.ready
	env.Logf("starting cluster %s on %d SSH hosts: %d etcd members, %s reads", name, len(hosts), len(nodes), s.Read)
	wait := env.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	if err := sys.up(ctx, wait); err != nil {
		sys.closeClients()
		return nil, cl.Abandon(ctx, fmt.Errorf("start the etcd cluster on SSH hosts: %w", err))
	}
	var up []string
	for i, n := range nodes {
		up = append(up, n+"="+cl.Addrs[i])
	}
	env.Logf("cluster up: etcd members on SSH hosts, cluster %s (%s; roles %v)", name, strings.Join(up, ", "), sys.Roles(ctx))
	return sys, nil
}

// up writes the password, the manifest and the members' directories,
// starts the members, waits for a leader everywhere, and turns
// authentication on.
func (sys *sshSystem) up(ctx context.Context, wait time.Duration) error {
	name, hosts, nodes := sys.Name(), sys.Hosts(), sys.Nodes()
	if err := sys.WriteSecret(ctx, sys.auth.Password); err != nil {
		return err
	}
	if err := sshcluster.Each(len(hosts), func(i int) error {
		_, _, err := hosts[i].Sudo(ctx, sshhost.Command("install", "-d", "-o", sshUser, "-g", sshUser, "-m", "700", sshcluster.NodeDir(name, nodes[i])))
		return err
	}); err != nil {
		return err
	}
	if err := sys.WriteManifest(ctx, sys.Manifest(Name)); err != nil {
		return err
	}
	if err := sshcluster.Each(len(hosts), func(i int) error { return sys.StartNode(ctx, i, wait) }); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for i, n := range nodes {
		if err := db.Poll(ctx, time.Until(deadline), 200*time.Millisecond, func() error {
			st, err := status(ctx, sys.Addrs[i], nil)
			if err == nil && st.Leader == 0 {
				err = fmt.Errorf("no leader yet")
			}
			return err
		}); err != nil {
			return fmt.Errorf("etcd member %s knows no leader: %w", n, err)
		}
	}
	return sys.enableAuth(ctx)
}

// enableAuth makes the root user with the cluster's password, turns
// authentication on (from then on every request for data needs it), and
// checks that no other user or role was made meanwhile.
func (sys *sshSystem) enableAuth(ctx context.Context) error {
	var addrs []string
	for _, n := range sys.Nodes() {
		addrs = append(addrs, sys.Addr(n))
	}
	cli, err := newEtcd(addrs, nil)
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(cctx, sys.auth.User, sys.auth.Password); err != nil {
		return fmt.Errorf("etcd: add user %s: %w", sys.auth.User, err)
	}
	if _, err := cli.UserGrantRole(cctx, sys.auth.User, "root"); err != nil {
		return fmt.Errorf("etcd: grant root to %s: %w", sys.auth.User, err)
	}
	if _, err := cli.AuthEnable(cctx); err != nil {
		return fmt.Errorf("etcd: enable authentication: %w", err)
	}
	// Until now anyone who reached a member could have made a user or a
	// role of their own: fail rather than hand over a cluster with one.
	acli, err := newEtcd(addrs, sys.auth)
	if err != nil {
		return err
	}
	defer acli.Close()
	users, err := acli.UserList(cctx)
	if err != nil {
		return fmt.Errorf("etcd: list users: %w", err)
	}
	roles, err := acli.RoleList(cctx)
	if err != nil {
		return fmt.Errorf("etcd: list roles: %w", err)
	}
	// etcd 3.4 lists no role for the built-in root; a later one may.
	if len(users.Users) != 1 || users.Users[0] != sys.auth.User || len(roles.Roles) > 1 || len(roles.Roles) == 1 && roles.Roles[0] != "root" {
		return fmt.Errorf("etcd: users %v and roles %v appeared while authentication was off (someone else reaches port %d): not using this cluster", users.Users, roles.Roles, SSHClientPort)
	}
	return nil
}

// ready waits, at most d, until member i answers its status (with or
// without a leader).
func (sys *sshSystem) ready(ctx context.Context, i int, d time.Duration) error {
	return db.Poll(ctx, d, 200*time.Millisecond, func() error {
		_, err := statusAuth(ctx, sys.Addrs[i], sys.auth)
		return err
	})
}

// SetClock moves node's host clock with --ssh-host-clock (a Go program
// reads the clock without libc, so libfaketime cannot move etcd's);
// without it there is nothing to move.
func (sys *sshSystem) SetClock(node string, offset time.Duration) error {
	if sys.HostClock() {
		return sys.SetHostClock(node, offset)
	}
	return fmt.Errorf("set clock of %s: etcd reads the clock without libc, so only the host's own clock moves it: start the cluster with --ssh-host-clock", node)
}

// Roles names each member's role, as its status says.
func (sys *sshSystem) Roles(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, n := range sys.Nodes() {
		out[n] = roleOf(ctx, sys.Addr(n), sys.auth)
	}
	return out
}

// Describe returns node's client URL and how to log in.
func (sys *sshSystem) Describe(node string) string {
	return fmt.Sprintf("http://%s (user root; password: sudo cat %s on any host)", sys.Addr(node), sshcluster.SecretFile(sys.Name()))
}

// Close closes the clients, then fetches the logs and removes the
// cluster from the hosts, unless it is kept.
func (sys *sshSystem) Close(ctx context.Context, logDir string) error {
	sys.closeClients()
	return sys.Cluster.Close(ctx, logDir)
}

// OpenSSH takes over the etcd cluster running on hosts, for `eccheck
// nemesis` and `eccheck cluster status`: its manifest says the members,
// the password file on the first host the root user's password.
func (DB) OpenSSH(ctx context.Context, hosts []string, cfg sshhost.Config, name string) (db.System, error) {
	cl, _, password, err := sshcluster.OpenSecret(ctx, hosts, cfg, name, Name)
	if err != nil {
		return nil, err
	}
	sys := &sshSystem{Cluster: cl}
	sys.members = members{view: cl, auth: &Auth{User: "root", Password: password}, read: ReadLinearizable, logf: func(string, ...any) {}}
	cl.Ready = sys.ready
	return sys, nil
}
