// Package dockertest holds what the tests that need a Docker engine share:
// connecting to the engine (skipping the test when none answers, failing
// it instead with ECCHECK_REQUIRE_DOCKER=1), an owner label on everything
// they create, and a sweep of what earlier test binaries left behind when
// a timeout or a signal killed them.
package dockertest

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/docker"
	"github.com/moby/moby/client"
)

// Main is the TestMain of a package with Docker tests: it marks everything
// this test binary creates with its owner label (so that a later run can
// sweep it should this one be killed), sweeps what dead test binaries
// left, runs the tests and exits.
func Main(m *testing.M) {
	os.Setenv("ECCHECK_OWNER", docker.ProcessOwner())
	Sweep()
	code := m.Run()
	removeBinary()
	os.Exit(code)
}

// Sweep removes the clusters of test binaries that are no longer running.
// Without an engine it does nothing: the tests say so themselves.
func Sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := docker.Connect(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	swept, err := c.Sweep(ctx, docker.OwnerAlive)
	if len(swept) > 0 {
		fmt.Fprintf(os.Stderr, "dockertest: removed %d cluster(s) that killed test runs left behind: %s\n", len(swept), strings.Join(swept, ", "))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: sweep: %v\n", err)
	}
}

// Engine connects to the Docker engine for a test. It skips the test with
// a message when no engine answers (or with -short), unless
// ECCHECK_REQUIRE_DOCKER=1, when it fails instead.
func Engine(t testing.TB) *docker.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Docker engine; -short skips it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := docker.Connect(ctx)
	if err != nil {
		if os.Getenv("ECCHECK_REQUIRE_DOCKER") == "1" {
			t.Fatalf("ECCHECK_REQUIRE_DOCKER=1 but: %v", err)
		}
		t.Skipf("no Docker engine (set ECCHECK_REQUIRE_DOCKER=1 to fail instead): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Writer returns a writer that sends what is written to it (progress of
// image builds and clusters coming up) to t's log.
func Writer(t testing.TB) io.Writer { return testWriter{t} }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", p)
	return len(p), nil
}

// ClusterFilter selects what carries the cluster's label.
func ClusterFilter(name string) client.Filters {
	return make(client.Filters).Add("label", docker.LabelCluster+"="+name)
}

// Eventually retries f every 100 ms until it returns nil or d passes, and
// returns its last error.
func Eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Images builds each image of specs that does not exist yet (once per
// machine, under the build lock), with its progress in t's log.
func Images(t testing.TB, c *docker.Client, specs ...docker.ImageSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, spec := range specs {
		if _, err := c.Build(ctx, spec, docker.BuildOptions{Progress: Writer(t)}); err != nil {
			t.Fatalf("images/%s: %v", spec.Role, err)
		}
	}
}

// ClusterName returns a cluster name for a test, prefix and this
// process's id, and removes that cluster when the test ends.
func ClusterName(t testing.TB, c *docker.Client, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Down(ctx, name); err != nil {
			t.Errorf("down %s: %v", name, err)
		}
	})
	return name
}
