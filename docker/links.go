package docker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// LossChain is the iptables chain (filter table, hooked into INPUT) that
// holds the random-loss rules; Heal flushes it with [Chain].
const LossChain = "ECCHECK-LOSS"

// lossScript makes the ECCHECK-LOSS chain, hooks it into INPUT once,
// flushes it, and then, unless the probability ($1) is 0, drops that share
// of the packets from each address that follows. It is a constant: the
// values come as arguments.
const lossScript = `set -e
iptables -w -N ECCHECK-LOSS 2>/dev/null || true
iptables -w -C INPUT -j ECCHECK-LOSS 2>/dev/null || iptables -w -I INPUT -j ECCHECK-LOSS
iptables -w -F ECCHECK-LOSS
p="$1"; shift
[ "$p" = 0 ] && exit 0
for ip in "$@"; do iptables -w -A ECCHECK-LOSS -s "$ip" -m statistic --mode random --probability "$p" -j DROP; done
`

// bandwidthScript replaces the root qdisc of eth0 with a token bucket at
// rate $1, or just removes it when $1 is empty.
const bandwidthScript = `tc qdisc del dev eth0 root 2>/dev/null || true
[ -z "$1" ] && exit 0
tc qdisc add dev eth0 root tbf rate "$1" burst 32kbit latency 400ms
`

// netemScript puts a netem delay of $1 on eth0's egress; it fails with
// "Specified qdisc kind is unknown" on a kernel without sch_netem.
const netemScript = `tc qdisc replace dev eth0 root netem delay "$1"`

// unnetemScript removes eth0's root qdisc when it is a netem one.
const unnetemScript = `if tc qdisc show dev eth0 | grep -q ' netem '; then tc qdisc del dev eth0 root; fi`

// clearScript flushes both chains and removes eth0's root qdisc.
const clearScript = `iptables -w -F ECCHECK 2>/dev/null || true
iptables -w -F ECCHECK-LOSS 2>/dev/null || true
tc qdisc del dev eth0 root 2>/dev/null || true
`

// statusScript lists both chains and eth0's qdiscs.
const statusScript = `iptables -w -S ECCHECK 2>/dev/null || true
iptables -w -S ECCHECK-LOSS 2>/dev/null || true
tc qdisc show dev eth0
`

// ratePattern is what a tc rate may be (a number and a unit).
var ratePattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$`)

// ValidRate checks a tc rate such as 1mbit or 500kbit.
func ValidRate(rate string) error {
	if !ratePattern.MatchString(rate) {
		return fmt.Errorf("rate %q: want a number and one of bit, kbit, mbit, gbit, bps, kbps, mbps, gbps (such as 1mbit)", rate)
	}
	return nil
}

// State reports whether node's container runs, and whether it is paused.
func (cl *Cluster) State(ctx context.Context, node string) (running, paused bool, err error) {
	n, err := cl.Node(node)
	if err != nil {
		return false, false, err
	}
	return cl.running(ctx, n)
}

// running reports whether n's container runs, and whether it is paused.
func (cl *Cluster) running(ctx context.Context, n *Node) (running, paused bool, err error) {
	insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
	if err != nil {
		return false, false, fmt.Errorf("inspect %s: %w", n.Name, err)
	}
	if st := insp.Container.State; st != nil {
		return st.Running, st.Paused, nil
	}
	return false, false, nil
}

// peerIPs returns the addresses of peer, or of every node but node when
// peer is empty.
func (cl *Cluster) peerIPs(node, peer string) ([]string, error) {
	if peer != "" {
		if peer == node {
			return nil, fmt.Errorf("peer %s is node %s itself", peer, node)
		}
		p, err := cl.Node(peer)
		if err != nil {
			return nil, err
		}
		return []string{p.IP.String()}, nil
	}
	var out []string
	for _, p := range cl.nodes {
		if p.Name != node {
			out = append(out, p.IP.String())
		}
	}
	return out, nil
}

// Loss drops the given share (0 to 100 percent) of the packets node
// receives from peer, or from every other node when peer is empty, at
// random (the iptables statistic match in the ECCHECK-LOSS chain); the
// host still reaches node through its published port. 0 removes the loss.
// It replaces any loss set on node before.
func (cl *Cluster) Loss(node, peer string, percent float64) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("loss of %v%%: want 0 to 100", percent)
	}
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ips, err := cl.peerIPs(node, peer)
	if err != nil {
		return err
	}
	ctx, cancel := FaultContext()
	defer cancel()
	args := append([]string{"sh", "-c", lossScript, "eccheck-loss", strconv.FormatFloat(percent/100, 'f', -1, 64)}, ips...)
	if err := cl.runHelper(ctx, n, args); err != nil {
		return fmt.Errorf("loss on %s: %w", node, err)
	}
	return nil
}

// Bandwidth limits node's outgoing traffic to rate (tc tbf on eth0, such
// as "1mbit"); "" removes the limit. It replaces eth0's root qdisc.
func (cl *Cluster) Bandwidth(node, rate string) error {
	if rate != "" {
		if err := ValidRate(rate); err != nil {
			return err
		}
	}
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := FaultContext()
	defer cancel()
	if err := cl.runHelper(ctx, n, []string{"sh", "-c", bandwidthScript, "eccheck-bandwidth", rate}); err != nil {
		return fmt.Errorf("bandwidth of %s: %w", node, err)
	}
	return nil
}

// How a delay was applied.
const (
	DelayNetem = "tc netem"              // a netem qdisc on the node's eth0
	DelayHook  = "the system's own hook" // the system delays its own messages (see [Cluster.SetDelayHook])
)

// ErrNoNetem means the kernel has no sch_netem ("Specified qdisc kind is
// unknown"), so tc cannot delay packets.
var ErrNoNetem = errors.New("the kernel has no sch_netem qdisc (tc: Specified qdisc kind is unknown)")

// DelayResult says how [Cluster.Delay] delayed a node's messages.
type DelayResult struct {
	// Method is DelayNetem or DelayHook.
	Method string
	// Note explains a fallback in one sentence (empty when none).
	Note string
}

// Delay delays node's messages to peer (every peer when empty) by d; 0
// removes the delay. Delays to every peer go through tc netem when the
// kernel has it; when it lacks sch_netem (detected from tc's error), and
// for a single peer, the system's own hook delays its messages instead
// ([Cluster.SetDelayHook]; ecstore has one), which the result says.
func (cl *Cluster) Delay(node, peer string, d time.Duration) (DelayResult, error) {
	if d < 0 {
		return DelayResult{}, fmt.Errorf("delay of %v: want 0 or more", d)
	}
	n, err := cl.Node(node)
	if err != nil {
		return DelayResult{}, err
	}
	if _, err := cl.peerIPs(node, peer); err != nil {
		return DelayResult{}, err
	}
	ctx, cancel := FaultContext()
	defer cancel()
	if d == 0 {
		if err := cl.runHelper(ctx, n, []string{"sh", "-c", unnetemScript}); err != nil {
			return DelayResult{}, fmt.Errorf("remove netem on %s: %w", node, err)
		}
		return DelayResult{Method: DelayHook}, cl.SetDelay(node, peer, 0)
	}
	if peer != "" {
		return DelayResult{Method: DelayHook, Note: "a delay to one peer goes through " + cl.db + "'s own transport hook"}, cl.SetDelay(node, peer, d)
	}
	err = cl.runHelper(ctx, n, []string{"sh", "-c", netemScript, "eccheck-netem", fmt.Sprintf("%dms", d.Milliseconds())})
	switch {
	case err == nil:
		return DelayResult{Method: DelayNetem}, nil
	case strings.Contains(err.Error(), "qdisc kind is unknown"):
		note := ErrNoNetem.Error() + ": " + cl.db + " delays its own peer messages instead (its client traffic is not delayed)"
		return DelayResult{Method: DelayHook, Note: note}, cl.SetDelay(node, "", d)
	}
	return DelayResult{}, fmt.Errorf("delay on %s: %w", node, err)
}

// SetDelay makes node from delay its peer messages to node to (every peer
// when empty) by d through the system's own hook ([Cluster.SetDelayHook]);
// 0 removes the delay. A system without a hook has no such delay to
// remove, and cannot add one.
func (cl *Cluster) SetDelay(from, to string, d time.Duration) error {
	if _, err := cl.Node(from); err != nil {
		return err
	}
	cl.mu.Lock()
	hook := cl.delayHook
	cl.mu.Unlock()
	if hook == nil {
		if d == 0 {
			return nil
		}
		return fmt.Errorf("delay on %s: the kernel has no netem, and %s nodes have no transport hook of their own to delay with", from, cl.db)
	}
	return hook(from, to, d)
}

// clearLinks removes loss rules and qdiscs from every running node, and
// the delays of the system's own hook from every running, unpaused one.
func (cl *Cluster) clearLinks() error {
	ctx, cancel := FaultContext()
	defer cancel()
	errs := make(chan error, len(cl.nodes))
	for _, n := range cl.nodes {
		go func() {
			run, paused, err := cl.running(ctx, n)
			if err != nil || !run {
				errs <- err
				return
			}
			if err := cl.runHelper(ctx, n, []string{"sh", "-c", clearScript}); err != nil {
				errs <- fmt.Errorf("clear links of %s: %w", n.Name, err)
				return
			}
			cl.mu.Lock()
			hook := cl.delayHook
			cl.mu.Unlock()
			if !paused && hook != nil {
				if err := hook(n.Name, "", 0); err != nil && !strings.Contains(err.Error(), "404") {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var all []error
	for range cl.nodes {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// NodeFaults are the faults in force on one node, as far as the node's
// container and network namespace can tell; a system that knows more
// (ecstore's clock offset and hook delays) fills in the rest.
type NodeFaults struct {
	Node  string
	State string // running, paused, exited...
	// Drops are the nodes whose packets the ECCHECK chain drops.
	Drops []string
	// Loss maps a node to the share of its packets dropped at random (0-1).
	Loss map[string]float64
	// Qdisc is eth0's root qdisc when it is not the default ("tbf rate
	// 1Mbit ...", "netem delay 200ms").
	Qdisc string
	// ClockOffset is the node's clock offset and DelaysMs its hook's
	// delays, as its system reports them.
	ClockOffset time.Duration
	DelaysMs    map[string]int64
	// Unreachable says why the system could not report them.
	Unreachable string
}

var (
	dropRule = regexp.MustCompile(`^-A ECCHECK -s ([0-9.]+)(/32)? -j DROP$`)
	lossRule = regexp.MustCompile(`^-A ECCHECK-LOSS -s ([0-9.]+)(/32)? -m statistic --mode random --probability ([0-9.]+) -j DROP$`)
)

// Faults reports the faults in force on every node.
func (cl *Cluster) Faults(ctx context.Context) ([]NodeFaults, error) {
	byIP := map[string]string{}
	for _, n := range cl.nodes {
		byIP[n.IP.String()] = n.Name
	}
	var out []NodeFaults
	for _, n := range cl.nodes {
		f := NodeFaults{Node: n.Name, State: n.State}
		run, paused, err := cl.running(ctx, n)
		if err != nil {
			return nil, err
		}
		switch {
		case paused:
			f.State = "paused"
		case run:
			f.State = "running"
		default:
			f.State = "stopped"
		}
		if run {
			text, err := cl.runHelperOutput(ctx, n, []string{"sh", "-c", statusScript})
			if err != nil {
				return nil, fmt.Errorf("faults of %s: %w", n.Name, err)
			}
			parseFaults(&f, text, byIP)
		}
		out = append(out, f)
	}
	return out, nil
}

// parseFaults reads the helper's listing of both chains and eth0's qdiscs.
func parseFaults(f *NodeFaults, text string, byIP map[string]string) {
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if m := dropRule.FindStringSubmatch(line); m != nil {
			f.Drops = append(f.Drops, nameOr(byIP, m[1]))
		} else if m := lossRule.FindStringSubmatch(line); m != nil {
			p, _ := strconv.ParseFloat(m[3], 64)
			if f.Loss == nil {
				f.Loss = map[string]float64{}
			}
			f.Loss[nameOr(byIP, m[1])] = p
		} else if rest, ok := strings.CutPrefix(line, "qdisc "); ok && strings.Contains(line, " root ") {
			kind, _, _ := strings.Cut(rest, " ")
			if kind != "noqueue" && kind != "pfifo_fast" && kind != "fq_codel" {
				f.Qdisc = rest
			}
		}
	}
	slices.Sort(f.Drops)
}

func nameOr(byIP map[string]string, ip string) string {
	if n, ok := byIP[ip]; ok {
		return n
	}
	return ip
}
