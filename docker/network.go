// This file holds what a cluster's network and names are: its name, its
// subnet and ports, and removing what carries its label.

package docker

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// namePattern is what a cluster name may be: it becomes part of container
// and network names and of a label value.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,29}$`)

// RunClusterName is the name of a test run's cluster when none is given:
// eccheck-test-<8 hex digits>.
func RunClusterName() string {
	var b [4]byte
	crand.Read(b[:])
	return "eccheck-test-" + hex.EncodeToString(b[:])
}

// ValidName checks a cluster name.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("cluster name %q: want 1-30 lowercase letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// subnetCandidates are the /24s a cluster network may use; Up takes the
// first that no Docker network and no host interface uses.
func subnetCandidates() []netip.Prefix {
	var out []netip.Prefix
	for _, second := range []byte{30, 31} {
		for third := 0; third < 32; third++ {
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, second, byte(third), 0}), 24))
		}
	}
	return out
}

func clusterFilter(name string) client.Filters {
	return make(client.Filters).Add("label", LabelCluster+"="+name)
}

// usedSubnets returns the subnets of every Docker network and the host's
// interface addresses.
func (c *Client) usedSubnets(ctx context.Context) ([]netip.Prefix, error) {
	res, err := c.api.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var used []netip.Prefix
	for _, n := range res.Items {
		for _, cfg := range n.IPAM.Config {
			if cfg.Subnet.IsValid() {
				used = append(used, cfg.Subnet)
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	return used, nil
}

// createNetwork creates the cluster's bridge network on the first free
// candidate subnet, retrying the next one when the engine reports an
// overlap (another cluster came up at the same time).
func (c *Client) createNetwork(ctx context.Context, name, netName string) (netip.Prefix, error) {
	used, err := c.usedSubnets(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	var lastErr error
	for _, p := range subnetCandidates() {
		if slices.ContainsFunc(used, p.Overlaps) {
			continue
		}
		gw := hostAddr(p, 1)
		_, err := c.api.NetworkCreate(ctx, netName, client.NetworkCreateOptions{
			Driver: "bridge",
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: p, Gateway: gw}}},
			Labels: c.labels(name),
		})
		if err == nil {
			return p, nil
		}
		lastErr = err
		if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already exists") {
			return netip.Prefix{}, fmt.Errorf("network %s already exists: run 'eccheck cluster down --cluster-name %s' first", netName, name)
		}
		if !strings.Contains(err.Error(), "overlap") {
			return netip.Prefix{}, fmt.Errorf("create network %s on %s: %w", netName, p, err)
		}
	}
	return netip.Prefix{}, fmt.Errorf("create network %s: no free subnet among 172.30.0-31.0/24 and 172.31.0-31.0/24 (last error: %v)", netName, lastErr)
}

// hostAddr returns the k-th address of p (.11 for k = 11 in a /24).
func hostAddr(p netip.Prefix, k int) netip.Addr {
	a := p.Masked().Addr()
	for range k {
		a = a.Next()
	}
	return a
}

// freePorts picks n free TCP ports on 127.0.0.1, holding each until all
// are picked so that no two are the same. It picks at random below the
// kernel's ephemeral range: a port the kernel hands out for ":0" is one it
// hands out again soon after, to the next process asking (another eccheck
// publishing its cluster: the second container start then fails with
// "port is already allocated", seen once with two test packages at once),
// and ephemeral ports are also the local side of outgoing connections.
//
// Ports in skip are never picked: those published by the containers of
// other eccheck clusters, stopped ones included, whose ports are free on
// the host while they are down but which take them back when they start.
func freePorts(n int, skip map[int]bool) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := 10000, ephemeralLow()-1
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi-lo >= 1000 && tries < 1000 {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo+1)))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // taken: pick another
			}
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		if skip[l.Addr().(*net.TCPAddr).Port] {
			ls = append(ls, l) // held, so that ":0" does not hand it out again
			continue
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// Down removes the cluster: every container and network labelled
// eccheck.cluster=NAME (nodes, helpers, and what a crashed run left).
func (cl *Cluster) Down(ctx context.Context) error { return cl.c.Down(ctx, cl.name) }

// Down removes every container and network labelled eccheck.cluster=name.
// Nothing to remove is not an error.
func (c *Client) Down(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	var errs []error
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: clusterFilter(name)})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, s := range res.Items {
		if _, err := c.api.ContainerRemove(ctx, s.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", strings.Join(s.Names, ","), err))
		}
	}
	nets, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: clusterFilter(name)})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range nets.Items {
		if _, err := c.api.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ClusterNames returns the names of every cluster with a container or a
// network carrying the label eccheck.cluster.
func (c *Client) ClusterNames(ctx context.Context) ([]string, error) {
	f := make(client.Filters).Add("label", LabelCluster)
	seen := map[string]bool{}
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, s := range res.Items {
		seen[s.Labels[LabelCluster]] = true
	}
	nets, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets.Items {
		seen[n.Labels[LabelCluster]] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}
