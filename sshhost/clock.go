// This file moves a host's own clock (CLOCK_REALTIME, with date -s), for
// users who let eccheck do so: the clock every program on the host reads,
// not a file one program reads, as Jepsen's bump and strobe do.

package sshhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ClockFile records how far eccheck has moved the host's clock, in
// nanoseconds: [Host.SetClockOffset] keeps it, and [Host.Down] (which a
// later `eccheck cluster down` runs) moves the clock back by it, whatever
// run left it.
const ClockFile = Root + "/hostclock"

// ErrClockDenied is wrapped by the error of a host that does not let root
// set its clock: a container without CAP_SYS_TIME, or a machine whose
// clock a hypervisor keeps.
var ErrClockDenied = errors.New("the host does not let root set its clock (date -s: Operation not permitted)")

// clockScript sets the host's clock to the real time plus $2 nanoseconds,
// where the real time is the host's clock minus the offset recorded in $3
// (0 when there is none), and records $2 there (removes the record for
// 0). The record is written before the clock moves, and put back when
// date -s fails, so that a script cut short never leaves a move
// unrecorded. $1 is "set", or "probe", which sets the clock to what it
// reads (a few microseconds back: a check that date -s is allowed) and
// records nothing. A "set" that does not move the clock runs no date -s.
// It prints the offset it replaced.
const clockScript = `set -e
` + pathLine + `mode=$1 want=$2 file=$3
cur=0
if [ -s "$file" ]; then read -r cur < "$file" || true; fi
case ${cur#-} in ''|*[!0-9]*) echo "eccheck-clock: $file holds '$cur', not an offset in nanoseconds: remove it once the clock is right" >&2; exit 3 ;; esac
if [ "$mode" = probe ]; then want=$cur; fi
delta=$((want - cur))
record() {
  if [ "$1" = 0 ]; then
    rm -f -- "$file"
  else
    mkdir -p -- "${file%/*}"
    echo "$1" > "$file.new"
    mv -f -- "$file.new" "$file"
  fi
}
if [ "$mode" = set ]; then record "$want"; fi
if [ "$mode" = probe ] || [ "$delta" != 0 ]; then
  now=$(date +%s%N)
  t=$((now + delta))
  if ! out=$(date -s "@$((t / 1000000000)).$(printf '%09d' $((t % 1000000000)))" 2>&1); then
    if [ "$mode" = set ]; then record "$cur"; fi
    echo "eccheck-denied: $out" >&2
    exit 4
  fi
fi
echo "$cur"
`

// clock runs clockScript and words its failures.
func (h *Host) clock(ctx context.Context, mode string, offset time.Duration) (time.Duration, error) {
	out, _, err := h.script(ctx, "clock "+mode+" "+offset.String(), clockScript, mode, strconv.FormatInt(offset.Nanoseconds(), 10), ClockFile)
	var ce *CommandError
	if errors.As(err, &ce) && ce.Status == 4 && strings.Contains(ce.Stderr, "eccheck-denied: ") {
		_, msg, _ := strings.Cut(ce.Stderr, "eccheck-denied: ")
		return 0, fmt.Errorf("clock of %s: %w: %s (a container without CAP_SYS_TIME, or a machine whose clock its hypervisor keeps: leave --ssh-host-clock off there)", h.hostport, ErrClockDenied, strings.TrimSpace(msg))
	}
	if err != nil {
		return 0, fmt.Errorf("clock of %s: %w", h.hostport, err)
	}
	prev, perr := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if perr != nil {
		return 0, fmt.Errorf("clock of %s: the script printed %q", h.hostport, out)
	}
	return time.Duration(prev), nil
}

// SetClockOffset sets the host's own clock to the real time plus offset
// (date -s, as root), the real time being the host's clock less what
// eccheck had moved it by (recorded in [ClockFile]); 0 puts it back. It
// fails, wrapping [ErrClockDenied], where root may not set the clock.
// A time daemon (systemd-timesyncd, chrony, ntpd) pulls the clock back:
// stop it first.
func (h *Host) SetClockOffset(ctx context.Context, offset time.Duration) error {
	_, err := h.clock(ctx, "set", offset)
	return err
}

// ProbeClock checks that root may set the host's clock: it sets it to
// what it reads (moving it back by the microseconds that takes) and
// changes nothing else; the error wraps [ErrClockDenied] where it may not.
func (h *Host) ProbeClock(ctx context.Context) error {
	_, err := h.clock(ctx, "probe", 0)
	return err
}
