package docker

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestOwnerAlive(t *testing.T) {
	if !OwnerAlive(ProcessOwner()) {
		t.Fatalf("owner/this process/alive: %s is not", ProcessOwner())
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	dead := "pid:" + hostID() + ":" + strconv.Itoa(cmd.Process.Pid) + ":" + strconv.FormatUint(startTime(os.Getpid()), 10)
	if OwnerAlive(dead) {
		t.Fatalf("owner/exited process/not alive: %s is", dead)
	}
	// The same PID seen from another PID namespace (a test job in another
	// container on a shared engine) is not judged from here.
	elsewhere := "pid:" + hostID() + "0:" + strconv.Itoa(cmd.Process.Pid) + ":1"
	if !OwnerAlive(elsewhere) {
		t.Fatalf("owner/process of another PID namespace/alive: %s is not", elsewhere)
	}
	if !strings.Contains(ProcessOwner(), hostID()) || !strings.HasPrefix(hostID(), strings.TrimSpace(readFile(t, "/proc/sys/kernel/random/boot_id"))) {
		t.Fatalf("owner/names the boot id and PID namespace: %s", ProcessOwner())
	}
	if !OwnerAlive("alice") || !OwnerAlive("pid:x:y") || !OwnerAlive("pid:x:y:z") {
		t.Fatal("owner/other shapes/never swept")
	}
	if startTime(os.Getpid()) == 0 {
		t.Fatal("owner/start time/read from /proc")
	}
}

// TestSweep: a cluster whose owner process is gone is removed; one whose
// owner runs, and one created with no owner (eccheck cluster up), stay.
func TestSweep(t *testing.T) {
	c := engine(t)
	ctx := t.Context()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	suffix := strconv.Itoa(os.Getpid() % 100000)
	names := map[string]string{
		"sweep-dead-" + suffix: "pid:" + hostID() + ":" + strconv.Itoa(cmd.Process.Pid) + ":1",
		"sweep-live-" + suffix: ProcessOwner(),
		"sweep-none-" + suffix: "",
	}
	for name, owner := range names {
		t.Cleanup(func() { c.Down(context.Background(), name) })
		c.owner = owner
		if _, err := c.createNetwork(ctx, name, "eccheck-"+name); err != nil {
			t.Fatal(err)
		}
	}
	c.owner = ProcessOwner()
	swept, err := c.Sweep(ctx, OwnerAlive)
	if err != nil || !slices.Contains(swept, "sweep-dead-"+suffix) || slices.Contains(swept, "sweep-live-"+suffix) || slices.Contains(swept, "sweep-none-"+suffix) {
		t.Fatalf("sweep/dead owner only/removed: %v, %v", swept, err)
	}
	if _, ns := labelled(t, c, "sweep-dead-"+suffix); ns != 0 {
		t.Fatalf("sweep/dead owner/network removed: %d left", ns)
	}
	if _, ns := labelled(t, c, "sweep-live-"+suffix); ns != 1 {
		t.Fatalf("sweep/live owner/network kept: %d", ns)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
