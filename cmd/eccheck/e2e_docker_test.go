package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/run"
)

// These end-to-end tests run `eccheck test --cluster docker` against
// ecstore containers. They skip when no Docker engine answers, and fail
// instead with ECCHECK_REQUIRE_DOCKER=1.

// dockerEngine connects to the engine for a test, or skips it.
func dockerEngine(t *testing.T) *docker.Client { return dockertest.Engine(t) }

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

var (
	e2eImageOnce sync.Once
	e2eImageErr  error
)

// e2eImages builds the ecstore image from this source tree once (the test
// binary is not static, so eccheck test would use whatever
// eccheck/ecstore:latest is) and makes sure the base image exists.
func e2eImages(t *testing.T, c *docker.Client) {
	t.Helper()
	e2eImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eccheck-e2e-docker-")
		if err != nil {
			e2eImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "eccheck")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			e2eImageErr = &buildError{err, string(out)}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := c.Build(ctx, ecstore.Image, docker.BuildOptions{Binary: bin}); err != nil {
			e2eImageErr = err
			return
		}
		if _, err := c.ImageFor(ctx, docker.Base); err != nil {
			_, e2eImageErr = c.Build(ctx, docker.Base, docker.BuildOptions{})
		}
	})
	if e2eImageErr != nil {
		t.Fatalf("images: %v", e2eImageErr)
	}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build of a static eccheck: " + e.err.Error() + "\n" + e.out
}

// checkEngineRecorded checks that test.json describes the engine, so that
// a run can be compared with one on another machine.
func checkEngineRecorded(t *testing.T, cfg run.Config) {
	t.Helper()
	e := cfg.Engine
	if e == nil || e.Version == "" || e.StorageDriver == "" || e.CgroupVersion == "" || e.Kernel == "" {
		t.Errorf("docker/test.json/engine version, storage driver, cgroup version and kernel recorded: %+v", e)
		return
	}
	t.Logf("engine %s, storage driver %s, cgroup v%s (%s)", e.Version, e.StorageDriver, e.CgroupVersion, e.CgroupDriver)
}

// leftovers lists the containers and networks labelled with the cluster.
func leftovers(t *testing.T, c *docker.Client, name string) []string {
	t.Helper()
	ctx := context.Background()
	f := make(client.Filters).Add("label", docker.LabelCluster+"="+name)
	var out []string
	cs, err := c.API().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cs.Items {
		out = append(out, "container "+strings.Join(s.Names, ","))
	}
	ns, err := c.API().NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		out = append(out, "network "+n.Name)
	}
	return out
}

// runDockerE2E runs eccheck test in Docker under a cluster name of its own
// and checks that the node logs were saved and nothing was left behind.
func runDockerE2E(t *testing.T, args ...string) (int, e2eReport) {
	t.Helper()
	c := dockerEngine(t)
	e2eImages(t, c)
	name := "e2e-" + shortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	code, rep, dir := runE2E(t, append([]string{"--cluster", "docker", "--cluster-name", name}, args...)...)
	cfg, err := run.ReadConfig(dir)
	if err != nil {
		t.Fatalf("docker/test.json: %v", err)
	}
	checkEngineRecorded(t, cfg)
	b, err := os.ReadFile(filepath.Join(dir, "nodes", "n1.log"))
	if err != nil || !strings.Contains(string(b), "ecstore n1") {
		t.Errorf("docker/node log/saved: nodes/n1.log: %v, %q", err, b)
	}
	if left := leftovers(t, c, name); len(left) > 0 {
		t.Errorf("docker/teardown/nothing left: %s", strings.Join(left, "; "))
	}
	return code, rep
}

func TestE2EDockerLWWPartitionsBreakSessions(t *testing.T) {
	code, rep := runDockerE2E(t, "--mode", "lww", "--w", "1", "--r", "1", "--workload", "session", "--nemesis", "partition", "--nemesis-cycles", "1", "--nemesis-interval", "5s", "--seed", "11")
	if code != exitInvalid {
		t.Fatalf("docker/lww w1r1 partition/exit 1: exit %d", code)
	}
	expectVerdicts(t, rep, map[string]string{"read-your-writes": "invalid"})
}

func TestE2EDockerRaftPartitionKillValid(t *testing.T) {
	code, rep := runDockerE2E(t, "--mode", "raft", "--nemesis", "partition,kill", "--nemesis-cycles", "2", "--nemesis-interval", "2s", "--recovery", "3s", "--seed", "5")
	if code != exitValid {
		t.Fatalf("docker/raft partition,kill/exit 0: exit %d, results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"linearizable (register)": "valid", "lost-writes (register)": "valid", "lost-writes (set)": "valid"})
}

// Seeds 12, 21 and 22 all gave lost-writes invalid here (1870, 1315 and 927
// lost writes), so the verdict does not hang on one schedule.
func TestE2EDockerLWWClockSkewLosesWrites(t *testing.T) {
	code, rep := runDockerE2E(t, "--mode", "lww", "--workload", "register", "--nemesis", "clock", "--clock-max", "5s", "--nemesis-interval", "2s", "--nemesis-cycles", "2", "--seed", "12")
	if code != exitInvalid {
		t.Fatalf("docker/lww clock skew/exit 1: exit %d, results %+v", code, rep.Results)
	}
	expectVerdicts(t, rep, map[string]string{"lost-writes": "invalid"})
}

// TestE2EDockerClusterDownAfterSIGKILL kills a running `eccheck test
// --cluster docker` with SIGKILL, so it cannot remove its cluster, and
// checks that `eccheck cluster down` removes everything it left behind.
func TestE2EDockerClusterDownAfterSIGKILL(t *testing.T) {
	c := dockerEngine(t)
	e2eImages(t, c)
	dir := t.TempDir()
	bin := filepath.Join(dir, "eccheck")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	name := "e2e-kill-" + shortID()
	t.Cleanup(func() { c.Down(context.Background(), name) })
	var stderr strings.Builder
	cmd := exec.Command(bin, "test", "--cluster", "docker", "--cluster-name", name, "--mode", "lww", "--nemesis", "none", "--time-limit", "60s", "--out", filepath.Join(dir, "runs"), "-q")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	// Wait until the harness has its three node containers running.
	ctx := t.Context()
	f := make(client.Filters).Add("label", docker.LabelCluster+"="+name).Add("label", docker.LabelRole+"=node").Add("status", "running")
	deadline := time.Now().Add(60 * time.Second)
	for {
		cs, err := c.API().ContainerList(ctx, client.ContainerListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs.Items) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker/harness/three running nodes within 60s: %d running; stderr:\n%s", len(cs.Items), stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	waited = true
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("harness ended with %v, want killed by SIGKILL", err)
	}
	left := leftovers(t, c, name)
	if len(left) < 4 {
		t.Errorf("docker/SIGKILL/cluster left behind: %v, want 3 containers and the network", left)
	}

	code, out, errs := runCLI(t, "cluster", "down", "--name", name)
	if code != 0 {
		t.Fatalf("cluster down: exit %d\n%s%s", code, out, errs)
	}
	if left := leftovers(t, c, name); len(left) > 0 {
		t.Errorf("docker/cluster down after SIGKILL/nothing left: %s", strings.Join(left, "; "))
	}
}

// shortID is a short random id for a test's cluster name.
func shortID() string {
	var b [4]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
