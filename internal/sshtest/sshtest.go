// Package sshtest gives the tests of the ssh backend hosts to reach:
// containers of [HostImage] on a private network, each running sshd as
// its main process with a host key and an authorized user key that the
// test made itself (Go crypto), and a known_hosts file that lists them, so
// that host-key checking is exercised for real. Once a host runs, tests
// reach it only through SSH, never through the Docker API.
//
// Tests skip without a Docker engine unless ECCHECK_REQUIRE_DOCKER=1 (see
// package dockertest, whose Main a test package should use as its
// TestMain, so that what a killed test binary left is swept).
package sshtest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/results"
	"github.com/eccheck/eccheck/run"
	"github.com/eccheck/eccheck/sshhost"
)

// User is the login user of the test hosts: not root, with sudo without
// a password. root accepts the same key.
const User = "eccheck"

// keyDir is where a host's container finds the keys the test made.
const keyDir = "/etc/eccheck-test"

// entrypoint sets a host up from the keys in keyDir and runs sshd in the
// foreground as the container's main process: the user with sudo, the
// authorized key for it and for root, and sshd with only the test's host
// key. PAM is off: its loginuid module fails in a container, and sshd
// then needs an account that is not locked ('*' rather than '!').
const entrypoint = `set -e
u=` + User + `
id -u $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u
usermod -p '*' $u
echo "$u ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/$u
chmod 0440 /etc/sudoers.d/$u
for home in /root /home/$u; do
  mkdir -p $home/.ssh
  cp ` + keyDir + `/authorized_keys $home/.ssh/authorized_keys
  chmod 0700 $home/.ssh
done
chown -R $u:$u /home/$u/.ssh
mkdir -p /run/sshd
chmod 0755 /run/sshd
exec /usr/sbin/sshd -D -e -h ` + keyDir + `/host_key -o UsePAM=no -o PermitRootLogin=prohibit-password
`

// NewKey makes an ed25519 key pair: the private key in OpenSSH's format
// at dir/name (mode 0600) and the public key at dir/name.pub. It returns
// the private key's path and the public key.
func NewKey(t testing.TB, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	pemBytes, pub := newKeyPEM(t)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, pub
}

// newKeyPEM makes an ed25519 key pair and returns the private key in
// OpenSSH's PEM format.
func newKeyPEM(t testing.TB) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), spub
}

// KnownHost is one line of a known_hosts file.
type KnownHost struct {
	Addr string // host:port
	Key  ssh.PublicKey
}

// WriteKnownHosts writes a known_hosts file with one line per entry.
func WriteKnownHosts(t testing.TB, path string, entries ...KnownHost) {
	t.Helper()
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(knownhosts.Line([]string{e.Addr}, e.Key) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Host is one test host.
type Host struct {
	// Name is its host name (h1, h2...).
	Name string
	// Addr is where this machine reaches its sshd (host:port): its
	// address on the private network, or a port published on 127.0.0.1
	// when this machine has no route to that network (a remote engine).
	Addr string
	// IP is its address on the private network, where the other hosts
	// reach it (what a partition names).
	IP netip.Addr
	// HostKey is its sshd's host key.
	HostKey ssh.PublicKey
	// Container is its container's name.
	Container string
}

// Hosts are the test hosts of one test.
type Hosts struct {
	// Cluster names them: the label eccheck.cluster of their containers
	// and network.
	Cluster string
	Hosts   []Host
	// Config logs in as [User] with the user key, checking host keys
	// against a known_hosts file that lists every host.
	Config sshhost.Config
	// Dir holds the keys and the known_hosts file.
	Dir string
}

// Addrs returns the hosts' SSH addresses (host:port), in order.
func (hs *Hosts) Addrs() []string {
	out := make([]string, len(hs.Hosts))
	for i, h := range hs.Hosts {
		out[i] = h.Addr
	}
	return out
}

// Dial logs in to host i with hs.Config; the connection is closed when
// the test ends.
func (hs *Hosts) Dial(t testing.TB, i int) *sshhost.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := sshhost.Dial(ctx, hs.Hosts[i].Addr, hs.Config)
	if err != nil {
		t.Fatalf("dial %s: %v", hs.Hosts[i].Name, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// started numbers the host sets of this test binary.
var started atomic.Int32

// Start starts n test hosts on a private network and waits until each
// sshd lets the test's user in; they are removed when the test ends,
// whatever happens (and by a later test binary's sweep if this one is
// killed). It builds [HostImage] first when it does not exist (debootstrap,
// a few minutes, once per machine). It skips the test without a Docker
// engine, unless ECCHECK_REQUIRE_DOCKER=1.
func Start(t testing.TB, n int) *Hosts {
	t.Helper()
	if n < 1 || n > 20 {
		t.Fatalf("sshtest.Start: %d hosts: want 1 to 20", n)
	}
	c := dockertest.Engine(t)
	dockertest.Images(t, c, HostImage)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref, err := c.ImageFor(ctx, HostImage)
	if err != nil {
		t.Fatal(err)
	}
	hs := &Hosts{Cluster: fmt.Sprintf("ssh%d-%d", os.Getpid()%100000, started.Add(1)), Dir: t.TempDir()}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Down(dctx, hs.Cluster); err != nil {
			t.Errorf("remove test hosts %s: %v", hs.Cluster, err)
		}
	})
	keyFile, userKey := NewKey(t, hs.Dir, "id_ed25519")
	known := filepath.Join(hs.Dir, "known_hosts")
	hs.Config = sshhost.Config{User: User, KeyFile: keyFile, KnownHosts: known}
	api := c.API()
	netName := "eccheck-" + hs.Cluster
	if _, err := api.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge", Labels: labels(hs.Cluster, "")}); err != nil {
		t.Fatalf("create network %s: %v", netName, err)
	}
	port := network.MustParsePort("22/tcp")
	var entries []KnownHost
	for i := range n {
		h, err := startHost(ctx, api, ref, hs.Cluster, netName, fmt.Sprintf("h%d", i+1), port, ssh.MarshalAuthorizedKey(userKey), t)
		if err != nil {
			t.Fatal(err)
		}
		hs.Hosts = append(hs.Hosts, h)
		entries = append(entries, KnownHost{Addr: h.Addr, Key: h.HostKey})
	}
	WriteKnownHosts(t, known, entries...)
	for _, h := range hs.Hosts {
		if err := waitSSH(ctx, h, hs.Config); err != nil {
			t.Fatalf("test host %s (%s): %v", h.Name, h.Container, err)
		}
	}
	t.Logf("sshtest: %d host(s) of cluster %s: %s", n, hs.Cluster, strings.Join(hs.Addrs(), " "))
	return hs
}

// labels returns the labels of what Start creates: the cluster's, the
// owner's (so that dockertest's sweep finds what a killed test left), and
// a host's name.
func labels(cluster, node string) map[string]string {
	m := map[string]string{docker.LabelCluster: cluster, docker.LabelRole: RoleHost}
	if o := os.Getenv("ECCHECK_OWNER"); o != "" {
		m[docker.LabelOwner] = o
	}
	if node != "" {
		m[docker.LabelNode] = node
	}
	return m
}

// startHost creates host name's container with a new host key and the
// authorized key (copied in before it starts), starts it, and returns
// where it is.
func startHost(ctx context.Context, api *client.Client, ref, cluster, netName, name string, port network.Port, authorized []byte, t testing.TB) (Host, error) {
	h := Host{Name: name, Container: "eccheck-" + cluster + "-" + name}
	hostKey, hostPub := newKeyPEM(t)
	h.HostKey = hostPub
	res, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: h.Container,
		Config: &container.Config{
			Image: ref, Hostname: name,
			Entrypoint:   []string{"/bin/sh", "-c", entrypoint},
			Labels:       labels(cluster, name),
			ExposedPorts: network.PortSet{port: {}},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(netName),
			// iptables and tc inside the host's own network namespace.
			CapAdd: []string{"NET_ADMIN"},
			PortBindings: network.PortMap{port: {{
				HostIP: netip.MustParseAddr("127.0.0.1"),
			}}},
		},
	})
	if err != nil {
		return h, fmt.Errorf("create container %s: %w", h.Container, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{strings.TrimPrefix(keyDir, "/") + "/host_key", 0o600, hostKey},
		{strings.TrimPrefix(keyDir, "/") + "/authorized_keys", 0o644, authorized},
	}
	tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(keyDir, "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Now()})
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Now()})
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		return h, err
	}
	if _, err := api.CopyToContainer(ctx, res.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf}); err != nil {
		return h, fmt.Errorf("copy keys into %s: %w", h.Container, err)
	}
	if _, err := api.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return h, fmt.Errorf("start container %s: %w", h.Container, err)
	}
	insp, err := api.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	if err != nil {
		return h, fmt.Errorf("inspect %s: %w", h.Container, err)
	}
	ns := insp.Container.NetworkSettings
	if ns == nil || ns.Networks[netName] == nil || !ns.Networks[netName].IPAddress.IsValid() {
		return h, fmt.Errorf("container %s has no address on %s", h.Container, netName)
	}
	h.IP = ns.Networks[netName].IPAddress
	h.Addr = net.JoinHostPort(h.IP.String(), "22")
	if !routable(h.IP) {
		for _, b := range ns.Ports[port] {
			h.Addr = net.JoinHostPort("127.0.0.1", b.HostPort)
		}
	}
	if _, err := strconv.Atoi(h.Addr[strings.LastIndexByte(h.Addr, ':')+1:]); err != nil {
		return h, fmt.Errorf("container %s: no published SSH port", h.Container)
	}
	return h, nil
}

// routable reports whether this machine has an interface on ip's network
// (the bridge of a local engine), and so reaches it directly.
func routable(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}

// waitSSH dials h until its sshd lets cfg's user in (a minute at most).
func waitSSH(ctx context.Context, h Host, cfg sshhost.Config) error {
	deadline := time.Now().Add(time.Minute)
	for {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sh, err := sshhost.Dial(dctx, h.Addr, cfg)
		cancel()
		if err == nil {
			sh.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("sshd does not let %s in after a minute: %w", cfg.User, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Args are the flags that point eccheck at the hosts: --cluster ssh, the
// hosts, the test user, its key and the known_hosts file that lists them.
func (hs *Hosts) Args() []string {
	return []string{"--cluster", "ssh", "--hosts", strings.Join(hs.Addrs(), ","), "--ssh-user", hs.Config.User,
		"--ssh-key", hs.Config.KeyFile, "--ssh-known-hosts", hs.Config.KnownHosts}
}

// Leftovers lists what eccheck left on host i, as sshhost lists it over
// SSH (rules, qdiscs, processes, directories).
func (hs *Hosts) Leftovers(t testing.TB, i int) sshhost.Leftovers {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := hs.Dial(t, i).Leftovers(ctx)
	if err != nil {
		t.Fatalf("leftovers on %s: %v", hs.Hosts[i].Name, err)
	}
	return l
}

// NoLeftovers fails the test for anything of eccheck's left on any host.
func (hs *Hosts) NoLeftovers(t testing.TB, what string) {
	t.Helper()
	for i, h := range hs.Hosts {
		if l := hs.Leftovers(t, i); !l.Empty() {
			t.Errorf("ssh/%s/nothing left on %s: %s", what, h.Name, l)
		}
	}
}

// Test runs `eccheck test` with args on the hosts (after [Hosts.Args];
// see dockertest.Test), checks that test.json records --cluster ssh, that
// every node's log was saved into the run directory and holds what mark
// says it must (mark("n1")), and that nothing was left on the hosts; it
// returns the exit code, the report, the history and the run directory.
func (hs *Hosts) Test(t *testing.T, mark func(node string) string, args ...string) (int, results.Report, history.History, string) {
	t.Helper()
	start := time.Now()
	code, rep, dir := dockertest.Test(t, append(hs.Args(), args...)...)
	t.Logf("eccheck test on SSH hosts: exit %d in %v", code, time.Since(start).Round(time.Second))
	cfg, err := run.ReadConfig(dir)
	if err != nil || cfg.Cluster != "ssh" {
		t.Errorf("ssh/test.json/cluster ssh recorded: %v, %q", err, cfg.Cluster)
	}
	for i := range hs.Hosts {
		n := fmt.Sprintf("n%d", i+1)
		b, err := os.ReadFile(filepath.Join(dir, "nodes", n+".log"))
		if err != nil || !strings.Contains(string(b), mark(n)) {
			t.Errorf("ssh/node log %s/saved, holding %q: %v, %d bytes", n, mark(n), err, len(b))
		}
	}
	hs.NoLeftovers(t, "after the run")
	h, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return code, rep, h, dir
}

// Secret reads cluster's secret (its password) from root's file on the
// first host (sshcluster.SecretFile), and fails the test unless it is
// there, long enough, and absent from printed (what eccheck printed).
func (hs *Hosts) Secret(t *testing.T, cluster, printed string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, err := hs.Dial(t, 0).Sudo(ctx, "cat "+sshhost.Quote(filepath.Join(sshhost.ClusterDir(cluster), "password")))
	secret := strings.TrimSpace(out)
	if err != nil || len(secret) < 16 || strings.Contains(printed, secret) {
		t.Fatalf("ssh/password/in root's file, not printed: %v, %q", err, printed)
	}
	return secret
}
