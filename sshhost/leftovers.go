// This file holds what eccheck left on a host, how it is all removed,
// and what a host must have for eccheck to work there.

package sshhost

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Leftovers is what eccheck left on a host: the state [Host.Down]
// removes, and tests assert the absence of.
type Leftovers struct {
	// Chain: the iptables chain [Chain] exists.
	Chain bool
	// Rules are the rules in it, as iptables -S prints them.
	Rules []string
	// Jumps are the rules that jump to it ("-A INPUT -j ECCHECK").
	Jumps []string
	// Qdiscs are the root qdiscs with eccheck's handle ("eth0: qdisc htb
	// ecc: root ...").
	Qdiscs []string
	// Processes are the live processes named by pidfiles under [Root].
	Processes []ProcessStatus
	// Dirs are Root and its cluster directories.
	Dirs []string
	// ClockOffset is how far eccheck moved the host's own clock
	// ([ClockFile]); 0 when it did not.
	ClockOffset time.Duration
}

// Empty reports whether nothing of eccheck's is left.
func (l Leftovers) Empty() bool {
	return !l.Chain && len(l.Rules)+len(l.Jumps)+len(l.Qdiscs)+len(l.Processes)+len(l.Dirs) == 0 && l.ClockOffset == 0
}

// String lists what is left, one item per line, or says "nothing".
func (l Leftovers) String() string {
	if l.Empty() {
		return "nothing"
	}
	var lines []string
	if l.Chain {
		lines = append(lines, "iptables chain "+Chain)
	}
	for _, r := range l.Rules {
		lines = append(lines, "rule "+r)
	}
	for _, j := range l.Jumps {
		lines = append(lines, "jump "+j)
	}
	for _, q := range l.Qdiscs {
		lines = append(lines, "qdisc "+q)
	}
	for _, p := range l.Processes {
		lines = append(lines, fmt.Sprintf("process %s/%s (pid %d, %s)", p.Cluster, p.Name, p.PID, p.State))
	}
	for _, d := range l.Dirs {
		lines = append(lines, "directory "+d)
	}
	if l.ClockOffset != 0 {
		lines = append(lines, fmt.Sprintf("the host's clock, moved by %+v", l.ClockOffset))
	}
	return strings.Join(lines, "\n")
}

// leftoversScript prints one line per thing of eccheck's on the host
// ($1 is Root): "chain", "rule RULE", "jump RULE", "qdisc DEV: QDISC",
// "dir PATH", "process PIDFILE PID STATE", "clock NANOSECONDS".
const leftoversScript = pathLine + procFunc + `root=$1
if command -v iptables >/dev/null 2>&1; then
  if iptables -w -S ECCHECK >/dev/null 2>&1; then
    echo chain
    iptables -w -S ECCHECK | grep '^-A ' | sed 's/^/rule /'
  fi
  for hook in INPUT OUTPUT FORWARD; do
    iptables -w -S $hook 2>/dev/null | grep -e '-j ECCHECK$' | sed 's/^/jump /'
  done
fi
if command -v tc >/dev/null 2>&1; then
  for d in $(ls /sys/class/net); do
    tc qdisc show dev "$d" root | grep '^qdisc [a-z_]* ecc: ' | sed "s/^/qdisc $d: /"
  done
fi
if [ -d "$root" ]; then
  echo "dir $root"
  for c in "$root"/*/; do [ -d "$c" ] && echo "dir ${c%/}"; done
  for f in "$root"/*/*.pid; do
    [ -e "$f" ] || continue
    if proc "$f"; then echo "process $f $pid $state"; fi
  done
  if [ -s "$root/hostclock" ]; then echo "clock $(cat "$root/hostclock")"; fi
fi
exit 0
`

// parseLeftovers reads leftoversScript's lines.
func parseLeftovers(text string) (Leftovers, error) {
	var l Leftovers
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "chain":
			l.Chain = true
		case "rule":
			l.Rules = append(l.Rules, rest)
		case "jump":
			l.Jumps = append(l.Jumps, rest)
		case "qdisc":
			l.Qdiscs = append(l.Qdiscs, rest)
		case "dir":
			l.Dirs = append(l.Dirs, rest)
		case "clock":
			n, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				return l, fmt.Errorf("unexpected line %q", line)
			}
			l.ClockOffset = time.Duration(n)
		case "process":
			f := strings.Fields(rest)
			if len(f) != 3 {
				return l, fmt.Errorf("unexpected line %q", line)
			}
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				return l, fmt.Errorf("unexpected line %q", line)
			}
			st, _, _ := parseState(f[2] + " " + f[1])
			l.Processes = append(l.Processes, ProcessStatus{
				Cluster: path.Base(path.Dir(f[0])), Name: strings.TrimSuffix(path.Base(f[0]), ".pid"), PID: pid, State: st,
			})
		default:
			return l, fmt.Errorf("unexpected line %q", line)
		}
	}
	return l, nil
}

// Leftovers lists what eccheck left on the host: its iptables chain,
// rules and jumps, its qdiscs, its live processes (by pidfile, of every
// cluster) and its directories.
func (h *Host) Leftovers(ctx context.Context) (Leftovers, error) {
	out, _, err := h.script(ctx, "list eccheck's leftovers", leftoversScript, Root)
	if err != nil {
		return Leftovers{}, fmt.Errorf("leftovers: %w", err)
	}
	l, err := parseLeftovers(out)
	if err != nil {
		return l, fmt.Errorf("leftovers on %s: %w", h.hostport, err)
	}
	return l, nil
}

// killAllScript kills every live process named by a pidfile under $1,
// with its group and descendants (see treeFunc), and waits (10 s at
// most) until they are gone.
const killAllScript = pathLine + procFunc + treeFunc + `root=$1
for f in "$root"/*/*.pid; do
  [ -e "$f" ] || continue
  if proc "$f"; then signal KILL "$pid"; fi
done
for f in "$root"/*/*.pid; do
  [ -e "$f" ] || continue
  i=0
  while proc "$f"; do
    i=$((i+1))
    if [ $i -gt 100 ]; then echo "process $pid ($f) is still alive 10 s after SIGKILL" >&2; exit 1; fi
    sleep 0.1
  done
done
exit 0
`

// Down removes everything eccheck put on the host, whatever run left it:
// it kills the processes of every pidfile under [Root], puts the host's
// clock back where eccheck moved it ([ClockFile]), removes its iptables
// chain and jumps ([Host.RemoveRules]) and its qdiscs
// ([Host.ClearNetem]), then Root itself. Packages stay. Fetch logs
// first: they go with Root.
func (h *Host) Down(ctx context.Context) error {
	var errs []error
	if _, _, err := h.script(ctx, "kill eccheck's processes", killAllScript, Root); err != nil {
		errs = append(errs, fmt.Errorf("down: %w", err))
	}
	errs = append(errs, h.RemoveRules(ctx), h.ClearNetem(ctx))
	if err := h.SetClockOffset(ctx, 0); err != nil {
		// The record of the offset stays, for another try.
		errs = append(errs, fmt.Errorf("down: %w (%s keeps the offset to undo)", err, ClockFile))
		if _, _, err := h.sudo(ctx, "remove "+Root+" but "+ClockFile, nil, nil, "find", Root, "-mindepth", "1", "-maxdepth", "1", "!", "-name", "hostclock", "-exec", "rm", "-rf", "--", "{}", "+"); err != nil {
			errs = append(errs, fmt.Errorf("down: %w", err))
		}
		return errors.Join(errs...)
	}
	if _, _, err := h.sudo(ctx, "remove "+Root, nil, nil, "rm", "-rf", "--", Root); err != nil {
		errs = append(errs, fmt.Errorf("down: %w", err))
	}
	return errors.Join(errs...)
}

// checkScript prints the tools eccheck needs that the host lacks, as
// "TOOL(PACKAGE)".
const checkScript = pathLine + `for t in iptables:iptables tc:iproute2 ip:iproute2 ps:procps pkill:procps setsid:util-linux setpriv:util-linux mktemp:coreutils sed:sed; do
  command -v "${t%%:*}" >/dev/null 2>&1 || printf '%s(%s) ' "${t%%:*}" "${t#*:}"
done
`

// Check makes sure eccheck can work on the host: that the login user may
// use sudo without a password (unless it is root), and that the tools it
// runs are there (iptables, tc and ip, ps and pkill, setsid and setpriv);
// the error names the missing ones and their Debian packages.
func (h *Host) Check(ctx context.Context) error {
	out, _, err := h.script(ctx, "check eccheck's tools", checkScript)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if missing := strings.Fields(out); len(missing) > 0 {
		return fmt.Errorf("%s lacks %s: install them (Debian packages in parentheses)", h.hostport, strings.Join(missing, ", "))
	}
	return nil
}
