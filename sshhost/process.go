package sshhost

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Root is eccheck's directory on a host: Root/CLUSTER holds a cluster's
// pidfiles and logs (and what its system keeps there, such as data
// directories). [Host.Down] removes it.
const Root = "/var/lib/eccheck"

// namePattern is what a cluster or process name may be: it becomes a
// path component on the host.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// validName checks a cluster or process name.
func validName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q: want 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit", what, name)
	}
	return nil
}

// ClusterDir returns the directory of cluster on a host, Root/CLUSTER.
func ClusterDir(cluster string) string { return path.Join(Root, cluster) }

// PIDFile and LogFile return where a process of cluster keeps its pid
// (with its start time, so that a reused pid is never taken for it) and
// its output.
func PIDFile(cluster, name string) string { return path.Join(Root, cluster, name+".pid") }

// LogFile: see [PIDFile].
func LogFile(cluster, name string) string { return path.Join(Root, cluster, name+".log") }

// procFunc is a shell function: proc PIDFILE sets pid and state and
// succeeds when the process the pidfile names is alive and is the one
// that wrote it (its start time, field 22 of /proc/PID/stat, matches the
// one recorded), not a zombie.
const procFunc = `proc() {
  [ -s "$1" ] || return 1
  read pid start < "$1" || return 1
  [ -r "/proc/$pid/stat" ] || return 1
  set -- $(sed 's/^.*) //' "/proc/$pid/stat")
  [ "${20}" = "$start" ] || return 1
  state=$1
  [ "$state" != Z ] && [ "$state" != X ]
}
`

// treeFunc defines tree PID, which prints PID and its descendants, and
// signal SIG PID, which sends SIG to the process, its process group, and
// every descendant and the group each leads: a server's children may call
// setsid and leave the group (Postgres's backends, walsenders and
// walreceiver do), so signalling the group alone would stop or kill only
// the parent. Unless SIG is CONT the process is stopped first, so that it
// forks no child while its tree is listed.
const treeFunc = `tree() {
  echo "$1"
  for c in $(pgrep -P "$1" 2>/dev/null); do tree "$c"; done
}
signal() {
  [ "$1" = CONT ] || kill -s STOP "$2" 2>/dev/null || true
  for p in $(tree "$2"); do
    pkill --signal "$1" -g "$p" 2>/dev/null || true
    kill -s "$1" "$p" 2>/dev/null || true
  done
}
`

// startScript starts "$@" as a process group of its own (setsid), with
// no terminal, its output appended to the log file and its pid and start
// time in the pidfile, written by the process itself before it execs the
// command. $1 is the cluster directory, $2 the process name, $3 the user
// to run as (empty: root), $4 the working directory (empty: the cluster
// directory), $5 the command as the log shows it (without the
// environment, which may hold secrets). It prints the pidfile, and fails (exit 4) when the process
// already runs, or (exit 5, with the log's end) when it is gone at once.
const startScript = `set -e
` + pathLine + procFunc + `dir=$1; name=$2; user=$3; wd=$4; show=$5; shift 5
mkdir -p -- "$dir"
pidf="$dir/$name.pid"; log="$dir/$name.log"
if proc "$pidf"; then echo "eccheck-running: it already runs as process $pid" >&2; exit 4; fi
rm -f -- "$pidf"
if [ -n "$user" ]; then
  g=$(id -g -- "$user")
  set -- setpriv --reuid="$user" --regid="$g" --init-groups -- "$@"
fi
[ -n "$wd" ] || wd=$dir
cd -- "$wd"
echo "eccheck: $(date -u +%Y-%m-%dT%H:%M:%SZ) start: $show" >> "$log"
setsid sh -c 'echo "$$ $(sed "s/^.*) //" /proc/$$/stat | cut -d" " -f20)" > "$0.new" && mv -f "$0.new" "$0" && exec "$@"' "$pidf" "$@" >> "$log" 2>&1 < /dev/null &
i=0
while [ ! -s "$pidf" ]; do
  i=$((i+1))
  if [ $i -gt 100 ]; then echo "no pidfile $pidf 10 s after the start" >&2; exit 1; fi
  sleep 0.1
done
for i in 1 2 3; do
  if ! proc "$pidf"; then echo "eccheck-exited: it ended at once; the end of $log:" >&2; tail -n 20 "$log" >&2; exit 5; fi
  sleep 0.1
done
cat "$pidf"
`

// signalScript sends signal $2 to the process in pidfile $1, its group
// and its descendants (see treeFunc) and waits (10 s at most) until the process is $3: gone,
// stopped or running. It fails with exit 4 when the process is not alive.
const signalScript = `set -e
` + pathLine + procFunc + treeFunc + `pidf=$1; sig=$2; want=$3
if ! proc "$pidf"; then echo "eccheck-not-running" >&2; exit 4; fi
# pkill -g, not kill -- -PGID: procps-ng 4.0.2's kill takes -40 for a
# signal number, not a process group.
signal "$sig" "$pid"
i=0
while :; do
  case $want in
    gone) proc "$pidf" || break ;;
    stopped) proc "$pidf" || { echo "eccheck-not-running" >&2; exit 4; }; [ "$state" = T ] && break ;;
    running) proc "$pidf" || { echo "eccheck-not-running" >&2; exit 4; }; [ "$state" != T ] && break ;;
  esac
  i=$((i+1))
  if [ $i -gt 100 ]; then echo "process $pid is still in state $state 10 s after SIG$sig" >&2; exit 1; fi
  sleep 0.1
done
`

// statusScript prints the state and pid of the process in pidfile $1:
// its /proc state letter when alive, "exited PID" when it is not,
// "none" when there is no pidfile.
const statusScript = pathLine + procFunc + `if [ ! -e "$1" ]; then echo none; exit 0; fi
if proc "$1"; then echo "$state $pid"; exit 0; fi
pid=0; read pid start < "$1" 2>/dev/null || true
echo "exited ${pid:-0}"
`

// ProcessSpec says what [Host.Start] runs.
type ProcessSpec struct {
	// Cluster and Name place the process's pidfile and log file:
	// Root/CLUSTER/NAME.pid and .log.
	Cluster, Name string
	// Cmd is the command and its arguments; it runs with no terminal,
	// standard input from /dev/null.
	Cmd []string
	// Env adds KEY=VALUE entries to its environment (through env(1)).
	Env []string
	// User runs it as that user (setpriv, which execs it: the pid stays
	// the command's); empty means root.
	User string
	// Dir is its working directory; empty means the cluster directory.
	Dir string
}

// ProcessState is what [Host.Status] found.
type ProcessState string

// Process states.
const (
	Running ProcessState = "running" // alive, not stopped
	Paused  ProcessState = "paused"  // stopped by SIGSTOP (ps state T)
	Exited  ProcessState = "exited"  // a pidfile whose process is gone
	NoProc  ProcessState = "none"    // no pidfile
)

// ProcessStatus is one of eccheck's processes on a host.
type ProcessStatus struct {
	Cluster, Name string
	PID           int
	State         ProcessState
}

// ErrNotRunning is wrapped by the error of a signal to a process that is
// not alive.
var ErrNotRunning = errors.New("not running")

// envKey is what an environment variable's name may be.
var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// startArgv returns startScript's arguments for spec.
func startArgv(spec ProcessSpec) ([]string, error) {
	if err := validName("cluster", spec.Cluster); err != nil {
		return nil, err
	}
	if err := validName("process", spec.Name); err != nil {
		return nil, err
	}
	if len(spec.Cmd) == 0 || spec.Cmd[0] == "" {
		return nil, fmt.Errorf("process %s: no command", spec.Name)
	}
	if spec.Dir != "" && !path.IsAbs(spec.Dir) {
		return nil, fmt.Errorf("process %s: working directory %q is not absolute", spec.Name, spec.Dir)
	}
	argv := []string{ClusterDir(spec.Cluster), spec.Name, spec.User, spec.Dir, Command(spec.Cmd...)}
	if len(spec.Env) > 0 {
		argv = append(argv, "env")
		for _, e := range spec.Env {
			if !envKey.MatchString(e) {
				return nil, fmt.Errorf("process %s: environment entry %q: want KEY=VALUE", spec.Name, e)
			}
			argv = append(argv, e)
		}
	}
	return append(argv, spec.Cmd...), nil
}

// Start starts a process on the host as root (or spec.User), detached:
// a session and process group of its own (setsid) that outlives eccheck's
// SSH connection, its output in [LogFile] and its pid in [PIDFile]. It
// fails when the process already runs, and when it ends at once (with
// the end of its log).
func (h *Host) Start(ctx context.Context, spec ProcessSpec) (ProcessStatus, error) {
	argv, err := startArgv(spec)
	if err != nil {
		return ProcessStatus{}, fmt.Errorf("start on %s: %w", h.hostport, err)
	}
	out, _, err := h.script(ctx, "start "+spec.Cluster+"/"+spec.Name+": "+Command(spec.Cmd...), startScript, argv...)
	var ce *CommandError
	if errors.As(err, &ce) {
		who := fmt.Sprintf("start %s/%s on %s", spec.Cluster, spec.Name, h.hostport)
		switch {
		case ce.Status == 4 && strings.Contains(ce.Stderr, "eccheck-running: "):
			_, msg, _ := strings.Cut(ce.Stderr, "eccheck-running: ")
			return ProcessStatus{}, fmt.Errorf("%s: %s (kill it first)", who, strings.TrimSpace(msg))
		case ce.Status == 5 && strings.Contains(ce.Stderr, "eccheck-exited: "):
			_, msg, _ := strings.Cut(ce.Stderr, "eccheck-exited: ")
			return ProcessStatus{}, fmt.Errorf("%s: %s: %s", who, Command(spec.Cmd...), strings.TrimSpace(msg))
		}
	}
	if err != nil {
		return ProcessStatus{}, fmt.Errorf("start: %w", err)
	}
	f := strings.Fields(out)
	pid := 0
	if len(f) > 0 {
		pid, _ = strconv.Atoi(f[0])
	}
	if pid <= 0 {
		return ProcessStatus{}, fmt.Errorf("start %s/%s on %s: the pidfile holds %q", spec.Cluster, spec.Name, h.hostport, out)
	}
	return ProcessStatus{Cluster: spec.Cluster, Name: spec.Name, PID: pid, State: Running}, nil
}

// signal sends sig to the process group of cluster/name and waits until
// the process is want (gone, stopped, running).
func (h *Host) signal(ctx context.Context, cluster, name, sig, want string) error {
	if err := validName("cluster", cluster); err != nil {
		return err
	}
	if err := validName("process", name); err != nil {
		return err
	}
	_, _, err := h.script(ctx, fmt.Sprintf("SIG%s to %s/%s", sig, cluster, name), signalScript, PIDFile(cluster, name), sig, want)
	var ce *CommandError
	if errors.As(err, &ce) && ce.Status == 4 && strings.Contains(ce.Stderr, "eccheck-not-running") {
		return fmt.Errorf("SIG%s to %s/%s on %s: %w", sig, cluster, name, h.hostport, ErrNotRunning)
	}
	return err
}

// Kill sends SIGKILL to cluster's process name, its process group and
// its descendants (those that left the group too) and waits until it is
// gone. The error wraps [ErrNotRunning] when it was
// not alive.
func (h *Host) Kill(ctx context.Context, cluster, name string) error {
	return h.signal(ctx, cluster, name, "KILL", "gone")
}

// Pause stops the process, its group and its descendants with SIGSTOP
// and waits until the process is stopped (ps state T).
func (h *Host) Pause(ctx context.Context, cluster, name string) error {
	return h.signal(ctx, cluster, name, "STOP", "stopped")
}

// Resume continues a paused process, its group and its descendants with
// SIGCONT.
func (h *Host) Resume(ctx context.Context, cluster, name string) error {
	return h.signal(ctx, cluster, name, "CONT", "running")
}

// Status reports the state of cluster's process name.
func (h *Host) Status(ctx context.Context, cluster, name string) (ProcessStatus, error) {
	st := ProcessStatus{Cluster: cluster, Name: name}
	if err := validName("cluster", cluster); err != nil {
		return st, err
	}
	if err := validName("process", name); err != nil {
		return st, err
	}
	out, _, err := h.script(ctx, "status of "+cluster+"/"+name, statusScript, PIDFile(cluster, name))
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.State, st.PID, err = parseState(strings.TrimSpace(out))
	if err != nil {
		return st, fmt.Errorf("status of %s/%s on %s: %w", cluster, name, h.hostport, err)
	}
	return st, nil
}

// parseState reads statusScript's answer ("S 123", "exited 123", "none").
func parseState(s string) (ProcessState, int, error) {
	if s == "none" {
		return NoProc, 0, nil
	}
	letter, p, ok := strings.Cut(s, " ")
	pid, err := strconv.Atoi(p)
	if !ok || err != nil {
		return "", 0, fmt.Errorf("unexpected answer %q", s)
	}
	switch letter {
	case "exited":
		return Exited, pid, nil
	case "T", "t":
		return Paused, pid, nil
	}
	return Running, pid, nil
}
