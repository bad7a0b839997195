package sshhost_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
	"github.com/eccheck/eccheck/sshhost"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// TestHosts runs every test of real sshd hosts on one pair of them (two
// containers of sshtest.HostImage), reached only over SSH.
func TestHosts(t *testing.T) {
	start := time.Now()
	hs := sshtest.Start(t, 2)
	t.Logf("2 hosts up in %v", time.Since(start).Round(time.Millisecond))
	a, b := hs.Dial(t, 0), hs.Dial(t, 1)
	t.Run("run/captures-output-and-status", func(t *testing.T) { testRun(t, hs, a) })
	t.Run("dial/refusals-are-clear", func(t *testing.T) { testDialErrors(t, hs) })
	t.Run("upload/round-trips", func(t *testing.T) { testUpload(t, a) })
	t.Run("partition/blocks-and-heals", func(t *testing.T) { testPartition(t, hs, a, b) })
	t.Run("process/start-pause-resume-kill", func(t *testing.T) { testProcess(t, hs, a) })
	t.Run("netem/works-or-says-no-netem", func(t *testing.T) { testNetem(t, hs, a) })
	t.Run("down/leaves-nothing", func(t *testing.T) {
		for _, h := range []*sshhost.Host{a, b} {
			if err := h.Down(ctx(t)); err != nil {
				t.Fatal(err)
			}
			assertClean(t, h)
		}
	})
}

// ctx is a context for one step of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// assertClean fails the test unless nothing of eccheck's is left on h.
func assertClean(t *testing.T, h *sshhost.Host) {
	t.Helper()
	l, err := h.Leftovers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !l.Empty() {
		t.Fatalf("%s: eccheck left:\n%s", h, l)
	}
}

func testRun(t *testing.T, hs *sshtest.Hosts, h *sshhost.Host) {
	out, errOut, err := h.Run(ctx(t), "echo out; echo err >&2")
	if err != nil || out != "out\n" || errOut != "err\n" {
		t.Fatalf("Run = %q, %q, %v; want out, err, nil", out, errOut, err)
	}
	out, _, err = h.Run(ctx(t), "id -un")
	if err != nil || strings.TrimSpace(out) != sshtest.User {
		t.Fatalf("id -un = %q, %v; want %s", out, err, sshtest.User)
	}
	out, _, err = h.Sudo(ctx(t), "id -u; echo \"$0\"")
	if err != nil || out != "0\nsh\n" {
		t.Fatalf("Sudo(id -u) = %q, %v; want 0 and sh", out, err)
	}
	out, errOut, err = h.Run(ctx(t), "echo partial; echo 'no such thing' >&2; exit 3")
	var ce *sshhost.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("exit 3: err = %v (%T), want a *CommandError", err, err)
	}
	if ce.Status != 3 || out != "partial\n" || errOut != "no such thing\n" {
		t.Fatalf("exit 3: status %d, stdout %q, stderr %q", ce.Status, out, errOut)
	}
	for _, want := range []string{h.String(), "exit 3", "exit status 3", "no such thing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	t.Logf("a failed command reads: %v", err)
	_, _, err = h.Run(ctx(t), "kill -9 $$")
	if !errors.As(err, &ce) || ce.Signal != "KILL" {
		t.Errorf("a command killed by SIGKILL: err = %v", err)
	}
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if _, _, err := h.Run(c, "sleep 30"); !errors.Is(err, context.DeadlineExceeded) || time.Since(begin) > 10*time.Second {
		t.Errorf("a command past its context: err = %v after %v", err, time.Since(begin))
	}
	// Sessions at once beyond MaxSessions wait their turn.
	errs := make(chan error, 3*sshhost.MaxSessions)
	for i := range cap(errs) {
		go func() {
			out, _, err := h.Run(context.Background(), fmt.Sprintf("sleep 0.2; echo %d", i))
			if err == nil && strings.TrimSpace(out) != fmt.Sprint(i) {
				err = fmt.Errorf("command %d printed %q", i, out)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := h.Check(ctx(t)); err != nil {
		t.Errorf("Check: %v", err)
	}
	// A connection the host drops is made again by the next command: kill
	// the sshd processes serving a second connection (every sshd process
	// of the user that is not an ancestor of this very command).
	h2 := hs.Dial(t, 0)
	port := h2.LocalAddr().(*net.TCPAddr).Port
	out, _, err = h.Sudo(ctx(t), `anc=" "; p=$$
while [ "$p" -gt 1 ]; do anc="$anc$p "; p=$(ps -o ppid= -p "$p" | tr -d ' '); done
for pid in $(pgrep -f '^sshd: `+sshtest.User+`'); do
  case "$anc" in *" $pid "*) ;; *) kill -9 "$pid" && echo "$pid" ;; esac
done`)
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("kill the sshd of the second connection: %q, %v", out, err)
	}
	t.Logf("killed sshd process(es) %s", strings.Fields(out))
	if out, _, err := h2.Run(ctx(t), "echo back"); err != nil || out != "back\n" {
		t.Fatalf("after the host dropped the connection: %q, %v", out, err)
	}
	if h2.LocalAddr().(*net.TCPAddr).Port == port {
		t.Error("the connection was not made again")
	}
}

func testDialErrors(t *testing.T, hs *sshtest.Hosts) {
	addr := hs.Hosts[0].Addr
	dial := func(cfg sshhost.Config) error {
		h, err := sshhost.Dial(ctx(t), addr, cfg)
		if err == nil {
			h.Close()
		}
		return err
	}
	check := func(name string, err, want error, words ...string) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", name, err, want)
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", name, err, w)
			}
		}
		t.Logf("%s: %v", name, err)
	}
	dir := t.TempDir()

	wrongKey, _ := sshtest.NewKey(t, dir, "wrong")
	cfg := hs.Config
	cfg.KeyFile = wrongKey
	check("wrong key", dial(cfg), sshhost.ErrAuthRefused, wrongKey, "authorized_keys", sshtest.User)

	unknown := filepath.Join(dir, "known_hosts_other")
	sshtest.WriteKnownHosts(t, unknown, sshtest.KnownHost{Addr: hs.Hosts[1].Addr, Key: hs.Hosts[1].HostKey})
	cfg = hs.Config
	cfg.KnownHosts = unknown
	check("unknown host key", dial(cfg), sshhost.ErrHostKeyUnknown, unknown, "insecure", "ssh-keyscan")

	changed := filepath.Join(dir, "known_hosts_changed")
	sshtest.WriteKnownHosts(t, changed, sshtest.KnownHost{Addr: addr, Key: hs.Hosts[1].HostKey})
	cfg.KnownHosts = changed
	check("changed host key", dial(cfg), sshhost.ErrHostKeyChanged, changed+":1", "ssh-keygen -R")

	cfg.KnownHosts = filepath.Join(dir, "missing")
	if err := dial(cfg); err == nil || !strings.Contains(err.Error(), cfg.KnownHosts) || !strings.Contains(err.Error(), "insecure") {
		t.Errorf("a missing known_hosts file: err = %v", err)
	}

	cfg.KnownHosts = unknown
	cfg.Insecure = true
	if err := dial(cfg); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if cfg.Warning() == "" {
		t.Error("an insecure config has no warning")
	}

	root := hs.Config
	root.User = "root"
	rh, err := sshhost.Dial(ctx(t), addr, root)
	if err != nil {
		t.Fatalf("root: %v", err)
	}
	defer rh.Close()
	if out, _, err := rh.Sudo(ctx(t), "id -u"); err != nil || out != "0\n" {
		t.Errorf("root's Sudo (no sudo needed) = %q, %v", out, err)
	}

	// A port nobody listens on: sshd's host, port 1.
	cfg = hs.Config
	cfg.Port = 1
	h, err := sshhost.Dial(ctx(t), hs.Hosts[0].IP.String(), cfg)
	if err == nil {
		h.Close()
	}
	check("unreachable", err, sshhost.ErrUnreachable, hs.Hosts[0].IP.String()+":1")
}

func testUpload(t *testing.T, h *sshhost.Host) {
	body := make([]byte, 1<<20+17)
	rand.Read(body)
	path := sshhost.ClusterDir("upload-test") + "/sub/blob"
	if err := h.Upload(ctx(t), path, 0o640, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := h.Download(ctx(t), path, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("downloaded %d bytes, not the %d uploaded", got.Len(), len(body))
	}
	out, _, err := h.Sudo(ctx(t), "stat -c '%a %U' "+path+"; ls -A "+sshhost.ClusterDir("upload-test")+"/sub")
	if err != nil || out != "640 root\nblob\n" {
		t.Fatalf("mode, owner and directory after upload: %q, %v; want 640 root and only blob", out, err)
	}
	// Replaced whole; a failed upload leaves the old file and no temporary.
	if err := h.Upload(ctx(t), path, 0o600, strings.NewReader("second\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.Upload(ctx(t), "/proc/eccheck/x", 0o600, strings.NewReader("x")); err == nil {
		t.Error("an upload into /proc succeeded")
	} else {
		t.Logf("a failed upload reads: %v", err)
	}
	out, _, err = h.Sudo(ctx(t), "cat "+path+"; ls -A "+sshhost.ClusterDir("upload-test")+"/sub")
	if err != nil || out != "second\nblob\n" {
		t.Fatalf("after a second upload: %q, %v", out, err)
	}
	// A reader that fails half way: the old file stays, whole.
	half := io.MultiReader(strings.NewReader(strings.Repeat("x", 100000)), iotest.ErrReader(errors.New("disk on fire")))
	if err := h.Upload(ctx(t), path, 0o600, half); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("an upload from a failing reader: %v", err)
	} else {
		t.Logf("an upload from a failing reader reads: %v", err)
	}
	out, _, err = h.Sudo(ctx(t), "cat "+path+"; ls -A "+sshhost.ClusterDir("upload-test")+"/sub")
	if err != nil || out != "second\nblob\n" {
		t.Fatalf("after an upload from a failing reader: %q, %v", out, err)
	}
	// Onto a directory: refused, not moved into it.
	if err := h.Upload(ctx(t), sshhost.ClusterDir("upload-test")+"/sub", 0o600, strings.NewReader("x")); err == nil {
		t.Error("an upload over a directory succeeded")
	}
	if out, _, _ := h.Sudo(ctx(t), "ls -A "+sshhost.ClusterDir("upload-test")+" "+sshhost.ClusterDir("upload-test")+"/sub"); strings.Contains(out, "eccheck-upload") {
		t.Errorf("a temporary file was left:\n%s", out)
	}
	if err := h.Upload(ctx(t), "relative/path", 0o600, strings.NewReader("")); err == nil {
		t.Error("a relative path was accepted")
	}
	if _, _, err := h.Sudo(ctx(t), "rm -rf "+sshhost.ClusterDir("upload-test")+" && rmdir "+sshhost.Root); err != nil {
		t.Fatal(err)
	}
}

// reaches reports whether from opens a TCP connection to to's sshd (over
// the private network) within 2 s; it runs on from, over SSH.
func reaches(t *testing.T, from *sshhost.Host, to netip.Addr) bool {
	t.Helper()
	_, _, err := from.Run(ctx(t), fmt.Sprintf("timeout 2 bash -c 'exec 3<>/dev/tcp/%s/22'", to))
	var ce *sshhost.CommandError
	if err != nil && !errors.As(err, &ce) {
		t.Fatal(err)
	}
	return err == nil
}

func testPartition(t *testing.T, hs *sshtest.Hosts, a, b *sshhost.Host) {
	ipA, ipB := hs.Hosts[0].IP, hs.Hosts[1].IP
	if !reaches(t, a, ipB) || !reaches(t, b, ipA) {
		t.Fatal("the hosts do not reach each other before any partition")
	}
	// A rule of the host's own, in INPUT, above where eccheck jumps.
	const foreign = "INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 9 -j DROP"
	if _, _, err := a.Sudo(ctx(t), "iptables -w -A "+foreign); err != nil {
		t.Fatal(err)
	}
	foreignThere := func(when string) {
		t.Helper()
		out, _, err := a.Sudo(ctx(t), "iptables -w -S INPUT")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "-A "+foreign) {
			t.Fatalf("%s: the host's own rule is gone: iptables -S INPUT:\n%s", when, out)
		}
	}
	begin := time.Now()
	if err := a.Partition(ctx(t), []netip.Addr{ipB}); err != nil {
		t.Fatal(err)
	}
	t.Logf("partition applied in %v", time.Since(begin).Round(time.Millisecond))
	if reaches(t, a, ipB) || reaches(t, b, ipA) {
		t.Fatal("the hosts still reach each other across the partition")
	}
	l, err := a.Leftovers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !l.Chain || len(l.Jumps) != 1 || len(l.Rules) != 1 {
		t.Fatalf("leftovers during the partition:\n%s", l)
	}
	t.Logf("leftovers during the partition:\n%s", l)
	// Applying it again replaces it (no second jump, no doubled rule).
	if err := a.Partition(ctx(t), []netip.Addr{ipB}); err != nil {
		t.Fatal(err)
	}
	if l2, _ := a.Leftovers(ctx(t)); len(l2.Jumps) != 1 || len(l2.Rules) != 1 {
		t.Fatalf("leftovers after partitioning twice:\n%s", l2)
	}
	begin = time.Now()
	if err := a.Heal(ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("healed in %v", time.Since(begin).Round(time.Millisecond))
	if !reaches(t, a, ipB) || !reaches(t, b, ipA) {
		t.Fatal("the hosts do not reach each other after the heal")
	}
	foreignThere("after heal")
	if err := a.RemoveRules(ctx(t)); err != nil {
		t.Fatal(err)
	}
	foreignThere("after removing eccheck's rules")
	assertClean(t, a)
	out, _, err := a.Sudo(ctx(t), "iptables -w -S")
	if err != nil || strings.Contains(out, sshhost.Chain) {
		t.Fatalf("after RemoveRules iptables -S still names %s (or failed: %v):\n%s", sshhost.Chain, err, out)
	}
	if _, _, err := a.Sudo(ctx(t), "iptables -w -D "+foreign); err != nil {
		t.Fatal(err)
	}
	// Peers a partition cannot take.
	self := netip.MustParseAddr(strings.Split(a.LocalAddr().String(), ":")[0])
	for _, bad := range []netip.Addr{self, netip.MustParseAddr("::1"), netip.IPv4Unspecified()} {
		if err := a.Partition(ctx(t), []netip.Addr{bad}); err == nil {
			t.Errorf("partition from %v was accepted", bad)
		}
	}
	assertClean(t, a)
}

// psState returns the ps state letter of pid on h.
func psState(t *testing.T, h *sshhost.Host, pid int) string {
	t.Helper()
	out, _, err := h.Run(ctx(t), fmt.Sprintf("ps -o stat= -p %d", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// testProcessTree checks that pause, resume and kill reach a child that
// left the process's group and session (setsid), as a Postgres backend
// does: the signal goes to the whole tree, not only to the group.
func testProcessTree(t *testing.T, h *sshhost.Host, cluster string) {
	const name = "parent"
	st, err := h.Start(ctx(t), sshhost.ProcessSpec{Cluster: cluster, Name: name, Cmd: []string{"sh", "-c", "setsid sleep 1000 & exec sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if err := dockertest.Eventually(10*time.Second, func() error {
		out, _, err := h.Run(ctx(t), fmt.Sprintf("pgrep -P %d || true", st.PID))
		if _, serr := fmt.Sscan(strings.TrimSpace(out), &child); err != nil || serr != nil {
			return fmt.Errorf("no child of %d yet: %q, %v", st.PID, out, err)
		}
		// The child is found before it has called setsid, maybe.
		out, _, err = h.Run(ctx(t), fmt.Sprintf("ps -o pgid=,sid=,comm= -p %d", child))
		if f := strings.Fields(out); err != nil || len(f) != 3 || f[0] == fmt.Sprint(st.PID) || f[1] == fmt.Sprint(st.PID) || f[2] != "sleep" {
			return fmt.Errorf("tree/precondition/the child %d left the parent's group and session: %q, %v", child, out, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Pause(ctx(t), cluster, name); err != nil {
		t.Fatal(err)
	}
	// Pause waits for the parent alone; the child's SIGSTOP lands soon
	// after.
	if err := dockertest.Eventually(5*time.Second, func() error {
		if s := psState(t, h, child); !strings.HasPrefix(s, "T") {
			return fmt.Errorf("tree/pause/the child outside the group stopped too: state %q", s)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := h.Resume(ctx(t), cluster, name); err != nil {
		t.Fatal(err)
	}
	if err := dockertest.Eventually(5*time.Second, func() error {
		if s := psState(t, h, child); strings.HasPrefix(s, "T") {
			return fmt.Errorf("tree/resume/the child runs again: state %q", s)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := h.Kill(ctx(t), cluster, name); err != nil {
		t.Fatal(err)
	}
	if err := dockertest.Eventually(10*time.Second, func() error {
		if out, _, _ := h.Run(ctx(t), fmt.Sprintf("ps -o pid= -p %d || true", child)); strings.TrimSpace(out) != "" {
			return fmt.Errorf("tree/kill/the child outside the group is gone: ps %q", out)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func testProcess(t *testing.T, hs *sshtest.Hosts, h *sshhost.Host) {
	const cluster, name = "proc-test", "sleeper"
	t.Cleanup(func() { // what a failure left, so that it fails no later test
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.Down(c)
	})
	// Started over a connection of its own, closed at once: the process
	// outlives it.
	starter := hs.Dial(t, 0)
	st, err := starter.Start(ctx(t), sshhost.ProcessSpec{Cluster: cluster, Name: name, Cmd: []string{"sleep", "1000"}, Env: []string{"ECCHECK_NODE=n1"}})
	if err != nil {
		t.Fatal(err)
	}
	starter.Close()
	time.Sleep(200 * time.Millisecond)
	if got, err := h.Status(ctx(t), cluster, name); err != nil || got.State != sshhost.Running || got.PID != st.PID {
		t.Fatalf("Status after the starting connection closed = %+v, %v; want running pid %d", got, err, st.PID)
	}
	if _, err := h.Start(ctx(t), sshhost.ProcessSpec{Cluster: cluster, Name: name, Cmd: []string{"sleep", "1000"}}); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("a second start of a running process: %v", err)
	}
	out, _, err := h.Sudo(ctx(t), fmt.Sprintf("ps -o pid=,pgid=,sid=,user=,args= -p %d; tr '\\0' '\\n' < /proc/%d/environ | grep ECCHECK_NODE || true", st.PID, st.PID))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) < 6 || f[0] != fmt.Sprint(st.PID) || f[1] != f[0] || f[2] != f[0] || f[3] != "root" || f[4] != "sleep" {
		t.Fatalf("ps of the started process (want its own session and group, root, sleep):\n%s", out)
	}
	if !strings.Contains(out, "ECCHECK_NODE=n1") {
		t.Errorf("the process's environment lacks ECCHECK_NODE=n1: %s", out)
	}
	if s := psState(t, h, st.PID); !strings.HasPrefix(s, "S") && !strings.HasPrefix(s, "R") {
		t.Fatalf("state %q, want S (sleeping)", s)
	}
	if err := h.Pause(ctx(t), cluster, name); err != nil {
		t.Fatal(err)
	}
	if s := psState(t, h, st.PID); !strings.HasPrefix(s, "T") {
		t.Fatalf("paused: state %q, want T", s)
	}
	if got, err := h.Status(ctx(t), cluster, name); err != nil || got.State != sshhost.Paused || got.PID != st.PID {
		t.Fatalf("Status of the paused process = %+v, %v", got, err)
	}
	if err := h.Resume(ctx(t), cluster, name); err != nil {
		t.Fatal(err)
	}
	if s := psState(t, h, st.PID); !strings.HasPrefix(s, "S") && !strings.HasPrefix(s, "R") {
		t.Fatalf("resumed: state %q, want S", s)
	}
	if got, _ := h.Status(ctx(t), cluster, name); got.State != sshhost.Running {
		t.Fatalf("Status of the resumed process = %+v", got)
	}
	l, err := h.Leftovers(ctx(t))
	if err != nil || len(l.Processes) != 1 || l.Processes[0].Name != name || l.Processes[0].Cluster != cluster {
		t.Fatalf("leftovers with the process running (%v):\n%s", err, l)
	}
	if err := h.Pause(ctx(t), cluster, name); err != nil {
		t.Fatal(err)
	}
	if err := h.Kill(ctx(t), cluster, name); err != nil { // a paused process too
		t.Fatal(err)
	}
	if out, _, err := h.Run(ctx(t), fmt.Sprintf("ps -o pid= -p %d || true", st.PID)); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("ps after kill: %q, %v", out, err)
	}
	if got, _ := h.Status(ctx(t), cluster, name); got.State != sshhost.Exited {
		t.Fatalf("Status after kill = %+v", got)
	}
	if err := h.Kill(ctx(t), cluster, name); !errors.Is(err, sshhost.ErrNotRunning) {
		t.Errorf("kill of a dead process: %v, want ErrNotRunning", err)
	}
	l, err = h.Leftovers(ctx(t))
	if err != nil || len(l.Processes) != 0 {
		t.Fatalf("leftovers after kill (%v):\n%s", err, l)
	}
	testProcessTree(t, h, cluster)
	if got, _ := h.Status(ctx(t), cluster, "never"); got.State != sshhost.NoProc {
		t.Errorf("Status of a process never started = %+v", got)
	}
	// A command that ends at once is an error with its log's end, when it
	// ends within Start's short look (on a loaded machine it may not:
	// then Status says it exited).
	_, err = h.Start(ctx(t), sshhost.ProcessSpec{Cluster: cluster, Name: "broken", Cmd: []string{"sh", "-c", "echo cannot start >&2; exit 1"}})
	switch {
	case err != nil && !strings.Contains(err.Error(), "cannot start"):
		t.Errorf("start of a command that exits at once: %v", err)
	case err != nil:
		t.Logf("a start that failed at once reads: %v", err)
	default:
		if err := dockertest.Eventually(10*time.Second, func() error {
			if st, err := h.Status(ctx(t), cluster, "broken"); err != nil || st.State != sshhost.Exited {
				return fmt.Errorf("status of a process that exits at once: %+v, %v", st, err)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	// As another user, in the directory given.
	st, err = h.Start(ctx(t), sshhost.ProcessSpec{Cluster: cluster, Name: "other", Cmd: []string{"sh", "-c", "pwd > /tmp/eccheck-wd; exec sleep 1000"}, User: "nobody", Dir: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	err = dockertest.Eventually(10*time.Second, func() error {
		out, _, err = h.Sudo(ctx(t), fmt.Sprintf("ps -o user=,args= -p %d; cat /tmp/eccheck-wd", st.PID))
		return err
	})
	if f := strings.Fields(out); err != nil || strings.Join(f, " ") != "nobody sleep 1000 /tmp" {
		t.Errorf("a process as nobody in /tmp: %q, %v", out, err)
	}
	var log bytes.Buffer
	if err := h.Download(ctx(t), sshhost.LogFile(cluster, "broken"), &log); err != nil || !strings.Contains(log.String(), "cannot start") {
		t.Errorf("log of the broken process: %q, %v", log.String(), err)
	}
	if _, _, err := h.Sudo(ctx(t), "rm -f /tmp/eccheck-wd"); err != nil {
		t.Error(err)
	}
	if err := h.Down(ctx(t)); err != nil {
		t.Fatal(err)
	}
	assertClean(t, h)
}

func testNetem(t *testing.T, hs *sshtest.Hosts, a *sshhost.Host) {
	err := a.Netem(ctx(t), []netip.Addr{hs.Hosts[1].IP}, sshhost.Link{Delay: 100 * time.Millisecond, Loss: 5})
	switch {
	case errors.Is(err, sshhost.ErrNoNetem):
		t.Logf("this kernel has no netem, as expected here: %v", err)
		assertClean(t, a)
		return
	case err != nil:
		t.Fatal(err)
	}
	l, err := a.Leftovers(ctx(t))
	if err != nil || len(l.Qdiscs) == 0 {
		t.Fatalf("leftovers with netem in force (%v):\n%s", err, l)
	}
	t.Logf("netem works here:\n%s", l)
	if err := a.ClearNetem(ctx(t)); err != nil {
		t.Fatal(err)
	}
	assertClean(t, a)
}

// TestNoDocker checks what needs no host at all.
func TestNoDockerDialErrors(t *testing.T) {
	dir := t.TempDir()
	key, _ := sshtest.NewKey(t, dir, "k")
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, nil, 0o600)
	for _, tc := range []struct {
		name, host string
		cfg        sshhost.Config
		want       string
	}{
		{"key/missing", "127.0.0.1", sshhost.Config{KeyFile: filepath.Join(dir, "nope"), KnownHosts: known}, "no such file"},
		{"key/not-a-key", "127.0.0.1", sshhost.Config{KeyFile: known, KnownHosts: known}, "ssh key"},
		{"host/bad-port", "127.0.0.1:x", sshhost.Config{KeyFile: key, KnownHosts: known}, "NAME:PORT"},
		{"host/empty", "", sshhost.Config{KeyFile: key, KnownHosts: known}, "empty host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sshhost.Dial(context.Background(), tc.host, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}
