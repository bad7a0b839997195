package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Chain is the iptables chain in a node's network namespace that holds
// eccheck's DROP rules; only the filter table is touched (Docker's
// embedded DNS lives in the nat table).
const Chain = "ECCHECK"

// rulesScript makes the ECCHECK chain, hooks it into INPUT once, flushes
// it, and drops packets from each address given as an argument. It is a
// constant: the addresses come as arguments, never inside the script.
const rulesScript = `set -e
iptables -w -N ECCHECK 2>/dev/null || true
iptables -w -C INPUT -j ECCHECK 2>/dev/null || iptables -w -I INPUT -j ECCHECK
iptables -w -F ECCHECK
for ip in "$@"; do iptables -w -A ECCHECK -s "$ip" -j DROP; done
`

// Partition replaces any previous partition: grudge[a] lists the nodes
// whose packets a drops, as iptables DROP rules on INPUT in a's network
// namespace (so a neither gets their messages nor their replies). Nodes
// not named get no rules. A killed node gets its rules when it starts.
func (cl *Cluster) Partition(grudge map[string][]string) error {
	for a, bs := range grudge {
		if _, err := cl.Node(a); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		for _, b := range bs {
			if _, err := cl.Node(b); err != nil {
				return fmt.Errorf("partition: %w", err)
			}
		}
	}
	cl.mu.Lock()
	cl.grudge = map[string][]string{}
	for a, bs := range grudge {
		cl.grudge[a] = append([]string(nil), bs...)
	}
	cl.mu.Unlock()
	return cl.applyAll()
}

// Grudge returns the partition in force (a copy): node -> the nodes whose
// packets it drops.
func (cl *Cluster) Grudge() map[string][]string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	g := map[string][]string{}
	for a, bs := range cl.grudge {
		g[a] = append([]string(nil), bs...)
	}
	return g
}

// Heal removes every partition and link fault: it flushes the ECCHECK and
// ECCHECK-LOSS chains and removes the root qdisc of every running node,
// and clears the delays set through ecstore's transport hook.
func (cl *Cluster) Heal() error {
	cl.mu.Lock()
	cl.grudge = nil
	cl.mu.Unlock()
	return errors.Join(cl.applyAll(), cl.clearLinks())
}

// applyAll applies the grudge in force to every running or paused node, in
// parallel.
func (cl *Cluster) applyAll() error {
	ctx, cancel := FaultContext()
	defer cancel()
	cl.mu.Lock()
	g := cl.grudge
	cl.mu.Unlock()
	errs := make(chan error, len(cl.nodes))
	for _, n := range cl.nodes {
		go func() {
			insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
			if err != nil {
				errs <- fmt.Errorf("inspect %s: %w", n.Name, err)
				return
			}
			if insp.Container.State == nil || !insp.Container.State.Running {
				errs <- nil // killed: Start applies the rules
				return
			}
			errs <- cl.applyRules(ctx, n, g[n.Name])
		}()
	}
	var all []error
	for range cl.nodes {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// applyRules runs the helper in n's network namespace so that n drops
// packets from the nodes in drops (none: the chain is flushed).
func (cl *Cluster) applyRules(ctx context.Context, n *Node, drops []string) error {
	args := []string{"sh", "-c", rulesScript, "eccheck-rules"}
	for _, d := range drops {
		peer, err := cl.Node(d)
		if err != nil {
			return err
		}
		args = append(args, peer.IP.String())
	}
	if err := cl.runHelper(ctx, n, args); err != nil {
		return fmt.Errorf("iptables in %s: %w", n.Name, err)
	}
	return nil
}

// runHelper runs cmd in a short-lived helper container in n's network
// namespace (see [Cluster.runHelperOutput]).
func (cl *Cluster) runHelper(ctx context.Context, n *Node, cmd []string) error {
	_, err := cl.runHelperOutput(ctx, n, cmd)
	return err
}

// runHelperOutput runs cmd in a short-lived container from the base image
// that shares n's network namespace, with CAP_NET_ADMIN and no other
// capability (bookworm's iptables talks nftables over netlink: verified
// that partitions, loss and tbf work without CAP_NET_RAW), and
// removes it afterwards, even when ctx ends. It returns the helper's output
// (stdout and stderr); on a non-zero exit the error carries its last lines.
func (cl *Cluster) runHelperOutput(ctx context.Context, n *Node, cmd []string) (string, error) {
	return cl.runIn(ctx, n, cmd, &container.HostConfig{
		NetworkMode: container.NetworkMode("container:" + n.ID),
		CapDrop:     []string{"ALL"},
		CapAdd:      []string{"NET_ADMIN"},
	})
}

// RunHelper runs cmd in a short-lived helper container from the base
// image, labelled as node's helper, with host (the namespaces it shares
// with node and its capabilities), and removes it afterwards; it returns
// the helper's output, and on a non-zero exit an error with its last
// lines. It is for what needs a tool beside a node (a signal to one of
// its processes, as the Postgres tests send to freeze a promotion).
func (cl *Cluster) RunHelper(ctx context.Context, node string, cmd []string, host *container.HostConfig) (string, error) {
	n, err := cl.Node(node)
	if err != nil {
		return "", err
	}
	return cl.runIn(ctx, n, cmd, host)
}

// runIn runs cmd in a short-lived helper container from the base image,
// labelled as n's helper, with host (the namespaces it shares with n and
// its capabilities), as [Cluster.runHelperOutput] describes.
func (cl *Cluster) runIn(ctx context.Context, n *Node, cmd []string, host *container.HostConfig) (string, error) {
	img, err := cl.c.ImageFor(ctx, Base)
	if err != nil {
		return "", fmt.Errorf("helper: %w", err)
	}
	res, err := cl.c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      img,
			Entrypoint: cmd[:1],
			Cmd:        cmd[1:],
			Labels:     cl.c.labels(cl.name, LabelRole, "helper", LabelNode, n.Name),
		},
		HostConfig: host,
	})
	if err != nil {
		return "", fmt.Errorf("create helper: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		cl.c.api.ContainerRemove(rctx, res.ID, client.ContainerRemoveOptions{Force: true})
	}()
	if _, err := cl.c.api.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start helper: %w", err)
	}
	wr := cl.c.api.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case r := <-wr.Result:
		code = r.StatusCode
	case err := <-wr.Error:
		return "", fmt.Errorf("wait for helper: %w", err)
	}
	out, _ := cl.c.logs(ctx, res.ID, "all")
	if code != 0 {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		return out, fmt.Errorf("helper exited %d: %s", code, strings.Join(lines, "\n"))
	}
	return out, nil
}

// NeedsHelper reports whether a run with these nemesis faults needs the
// helper image ([Base]): partitions (a failover starts with one) are
// iptables rules that a helper applies.
func NeedsHelper(faults []string) bool {
	for _, f := range faults {
		if f == "partition" || f == "failover" {
			return true
		}
	}
	return false
}
