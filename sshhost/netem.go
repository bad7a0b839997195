package sshhost

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// QdiscHandle is the handle of the root qdisc eccheck puts on an
// interface to delay or drop the traffic to some peers; a root qdisc with
// another handle other than the kernel's default (0:) is the host's own,
// and eccheck refuses to replace it.
const QdiscHandle = "ecc:"

// ErrNoNetem means the host's kernel has no sch_netem qdisc (tc says
// "Specified qdisc kind is unknown"): tc cannot delay or drop packets
// there. eccheck has changed nothing when it says so.
var ErrNoNetem = errors.New("the kernel has no sch_netem qdisc (tc: Specified qdisc kind is unknown), so tc cannot delay or drop packets on this host")

// Link is what [Host.Netem] does to the packets a host sends to its
// peers.
type Link struct {
	// Delay delays every packet; Jitter varies the delay by up to that
	// much either way (it needs a Delay).
	Delay, Jitter time.Duration
	// Loss drops that share of the packets at random, in percent (0 to
	// 100).
	Loss float64
}

// netemArgs returns tc's netem arguments for l ("delay 200000us 50000us
// loss 20%").
func netemArgs(l Link) (string, error) {
	switch {
	case l.Delay < 0 || l.Jitter < 0:
		return "", fmt.Errorf("delay %v, jitter %v: want 0 or more", l.Delay, l.Jitter)
	case l.Jitter > 0 && l.Delay == 0:
		return "", fmt.Errorf("jitter %v without a delay", l.Jitter)
	case l.Jitter > l.Delay:
		return "", fmt.Errorf("jitter %v larger than the delay %v", l.Jitter, l.Delay)
	case l.Loss < 0 || l.Loss > 100:
		return "", fmt.Errorf("loss of %v%%: want 0 to 100", l.Loss)
	case l.Delay == 0 && l.Loss == 0:
		return "", errors.New("neither a delay nor a loss: use ClearNetem to remove one")
	}
	var args []string
	if l.Delay > 0 {
		args = append(args, "delay", strconv.FormatInt(l.Delay.Microseconds(), 10)+"us")
		if l.Jitter > 0 {
			args = append(args, strconv.FormatInt(l.Jitter.Microseconds(), 10)+"us")
		}
	}
	if l.Loss > 0 {
		args = append(args, "loss", strconv.FormatFloat(l.Loss, 'f', -1, 64)+"%")
	}
	return strings.Join(args, " "), nil
}

// netemScript removes the qdiscs eccheck left on every interface, and
// then, unless $1 (netem's arguments, made by netemArgs from numbers) is
// empty, puts on each interface that routes to a peer ($2...) a root htb
// qdisc with eccheck's handle, one class holding a netem qdisc, and a u32
// filter per peer sending its packets to that class; other traffic
// (eccheck's SSH connection too) passes untouched. It checks every
// interface before changing any, undoes what it did when a step fails,
// and names the failed step on standard error ("eccheck-step netem: ...").
const netemScript = pathLine + `spec=$1; shift
if ! command -v tc >/dev/null 2>&1; then
  [ -z "$spec" ] && exit 0
  echo "eccheck-step tc: no tc on this host (Debian package iproute2)" >&2; exit 3
fi
ours() { tc qdisc show dev "$1" root | grep -q '^qdisc [a-z_]* ecc: '; }
for d in $(ls /sys/class/net); do
  if ours "$d"; then tc qdisc del dev "$d" root || exit 1; fi
done
[ -n "$spec" ] || exit 0
route() { ip -o route get "$1" | sed -n 's/.* dev \([^ ]*\).*/\1/p'; }
devs=
for ip in "$@"; do
  d=$(route "$ip")
  if [ -z "$d" ]; then echo "eccheck-step route: no route to $ip" >&2; exit 3; fi
  case " $devs " in *" $d "*) ;; *) devs="$devs $d" ;; esac
done
for d in $devs; do
  root=$(tc qdisc show dev "$d" root)
  case "$root" in
    ""|"qdisc "*" 0: root"*) ;;
    *) echo "eccheck-step check: $d has a root qdisc eccheck did not add, which it will not replace: $root" >&2; exit 3 ;;
  esac
done
changed=
step() {
  s=$1; shift
  if ! out=$("$@" 2>&1); then
    for c in $changed; do tc qdisc del dev "$c" root 2>/dev/null; done
    echo "eccheck-step $s: $out" >&2
    exit 3
  fi
}
for d in $devs; do
  step htb tc qdisc add dev "$d" root handle ecc: htb
  changed="$changed $d"
  step class tc class add dev "$d" parent ecc: classid ecc:1 htb rate 10gbit
  step netem tc qdisc add dev "$d" parent ecc:1 handle ecd: netem $spec
  for ip in "$@"; do
    [ "$(route "$ip")" = "$d" ] || continue
    step filter tc filter add dev "$d" parent ecc: protocol ip prio 1 u32 match ip dst "$ip"/32 flowid ecc:1
  done
done
`

// Netem makes the host delay or drop (tc netem, as l says) the packets it
// sends to the given peers, on the interfaces that route to them, and
// replaces what an earlier call did. Traffic to other addresses, eccheck's
// SSH connection included, is left alone. It needs the kernel's htb, netem
// and u32; without sch_netem the error wraps [ErrNoNetem] and nothing was
// changed. An interface whose root qdisc is the host's own (not the
// kernel's default) is refused rather than replaced.
func (h *Host) Netem(ctx context.Context, peers []netip.Addr, l Link) error {
	spec, err := netemArgs(l)
	if err != nil {
		return fmt.Errorf("netem on %s: %w", h.hostport, err)
	}
	if len(peers) == 0 {
		return fmt.Errorf("netem on %s: no peers", h.hostport)
	}
	ips, err := h.checkPeers(peers)
	if err != nil {
		return fmt.Errorf("netem on %s: %w", h.hostport, err)
	}
	return h.netem(ctx, "tc netem "+spec, append([]string{spec}, ips...))
}

// ClearNetem removes the qdiscs [Host.Netem] put on the host's interfaces
// (those with handle [QdiscHandle]), which gives them back the kernel's
// default.
func (h *Host) ClearNetem(ctx context.Context) error {
	return h.netem(ctx, "remove eccheck's qdiscs", []string{""})
}

// netem runs netemScript and explains a failed step.
func (h *Host) netem(ctx context.Context, label string, args []string) error {
	_, _, err := h.script(ctx, label, netemScript, args...)
	if err == nil {
		return nil
	}
	var ce *CommandError
	if !errors.As(err, &ce) {
		return fmt.Errorf("netem: %w", err)
	}
	step, text := failedStep(ce.Stderr)
	unknown := strings.Contains(text, "kind is unknown") || strings.Contains(text, "Unknown filter")
	switch {
	case step == "netem" && unknown:
		return fmt.Errorf("netem on %s: %w", h.hostport, ErrNoNetem)
	case step == "htb" && unknown:
		return fmt.Errorf("netem on %s: the kernel has no htb qdisc (sch_htb), which eccheck puts netem under: %w", h.hostport, err)
	case step == "filter" && unknown:
		return fmt.Errorf("netem on %s: the kernel has no u32 classifier (cls_u32), which picks the peers' packets: %w", h.hostport, err)
	}
	return fmt.Errorf("netem: %w", err)
}

// failedStep returns the step netemScript names on its standard error
// ("eccheck-step STEP: TEXT"), and what the step said from there on.
func failedStep(stderr string) (step, text string) {
	i := strings.Index(stderr, "eccheck-step ")
	if i < 0 {
		return "", stderr
	}
	step, text, _ = strings.Cut(stderr[i+len("eccheck-step "):], ": ")
	return step, text
}
