package sshhost

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Chain is eccheck's iptables chain (filter table) on a host: it holds
// the DROP rules of a partition and is jumped to from INPUT. eccheck adds
// and removes only this chain and that jump (and a jump from OUTPUT that
// an earlier eccheck added); rules of the host's own are never flushed or
// moved.
const Chain = "ECCHECK"

// pathLine gives eccheck's scripts the system directories, which a login
// user's PATH over SSH often lacks (/usr/sbin holds iptables and tc).
const pathLine = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n"

// partitionScript makes the ECCHECK chain when missing, jumps to it from
// the top of INPUT once, flushes it, and drops the packets from each
// address given as an argument. It is a constant: the
// addresses come as arguments, never inside the script.
const partitionScript = `set -e
` + pathLine + `iptables -w -N ECCHECK 2>/dev/null || iptables -w -S ECCHECK >/dev/null
iptables -w -C INPUT -j ECCHECK 2>/dev/null || iptables -w -I INPUT 1 -j ECCHECK
iptables -w -F ECCHECK
for ip in "$@"; do
  iptables -w -A ECCHECK -s "$ip" -j DROP
done
`

// healScript flushes the ECCHECK chain, when there is one.
const healScript = pathLine + `command -v iptables >/dev/null 2>&1 || exit 0
if iptables -w -S ECCHECK >/dev/null 2>&1; then iptables -w -F ECCHECK; fi
`

// removeRulesScript removes every jump to ECCHECK from INPUT and OUTPUT
// (eccheck adds one to INPUT; OUTPUT's come from earlier versions, a
// second from a crashed run), then the chain itself.
const removeRulesScript = `set -e
` + pathLine + `command -v iptables >/dev/null 2>&1 || exit 0
for hook in INPUT OUTPUT; do
  while iptables -w -C $hook -j ECCHECK 2>/dev/null; do iptables -w -D $hook -j ECCHECK; done
done
if iptables -w -S ECCHECK >/dev/null 2>&1; then
  iptables -w -F ECCHECK
  iptables -w -X ECCHECK
fi
`

// checkPeers refuses addresses a partition cannot use: not IPv4 (only
// iptables, not ip6tables, is managed), unspecified, or eccheck's own
// address as the host sees it (the partition would cut eccheck off).
func (h *Host) checkPeers(peers []netip.Addr) ([]string, error) {
	var self netip.Addr
	if a, ok := h.LocalAddr().(*net.TCPAddr); ok {
		self, _ = netip.AddrFromSlice(a.IP)
		self = self.Unmap()
	}
	out := make([]string, 0, len(peers))
	for _, p := range peers {
		p = p.Unmap()
		switch {
		case !p.Is4():
			return nil, fmt.Errorf("peer %v: only IPv4 addresses can be partitioned (iptables)", p)
		case p.IsUnspecified():
			return nil, fmt.Errorf("peer %v: not an address of a host", p)
		case p == self:
			return nil, fmt.Errorf("peer %v is eccheck's own address as %s sees it: partitioning it would cut eccheck off", p, h.hostport)
		}
		out = append(out, p.String())
	}
	return out, nil
}

// Partition makes the host drop every packet from the given peers
// (iptables DROP rules in [Chain], which INPUT jumps to): the host no
// longer hears them, as the Docker backend and Jepsen cut a link; a
// partition both ways is each side dropping the other's packets (and a
// TCP connection breaks either way, its acknowledgements lost). It
// replaces the peers of any earlier partition. Traffic with every other
// address, eccheck's SSH connection included, flows as before. No peers
// heals.
func (h *Host) Partition(ctx context.Context, peers []netip.Addr) error {
	ips, err := h.checkPeers(peers)
	if err != nil {
		return fmt.Errorf("partition %s: %w", h.hostport, err)
	}
	if _, _, err := h.script(ctx, "partition (iptables chain "+Chain+")", partitionScript, ips...); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	return nil
}

// Heal ends the partition: it flushes [Chain] (only that chain), leaving
// the chain and its jumps in place for the next partition. A host with no
// chain has nothing to heal.
func (h *Host) Heal(ctx context.Context) error {
	if _, _, err := h.script(ctx, "heal (flush iptables chain "+Chain+")", healScript); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	return nil
}

// RemoveRules removes what partitions added to the host's firewall: the
// jumps from INPUT and OUTPUT to [Chain], then the chain. Other rules
// stay as they are.
func (h *Host) RemoveRules(ctx context.Context) error {
	if _, _, err := h.script(ctx, "remove iptables chain "+Chain+" and its jumps", removeRulesScript); err != nil {
		return fmt.Errorf("remove rules: %w", err)
	}
	return nil
}
