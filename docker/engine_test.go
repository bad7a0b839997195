package docker

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// engine connects to the Docker engine for a test. It skips the test with
// a message when no engine answers, unless ECCHECK_REQUIRE_DOCKER=1, when
// it fails instead.
func engine(t *testing.T) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx)
	if err != nil {
		if os.Getenv("ECCHECK_REQUIRE_DOCKER") == "1" {
			t.Fatalf("ECCHECK_REQUIRE_DOCKER=1 but: %v", err)
		}
		t.Skipf("no Docker engine (set ECCHECK_REQUIRE_DOCKER=1 to fail instead): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", p)
	return len(p), nil
}

// TestMain marks what these tests create with this process as its owner
// and first removes what test binaries that were killed left behind (the
// same as internal/dockertest.Main, which this package cannot import).
func TestMain(m *testing.M) {
	os.Setenv("ECCHECK_OWNER", ProcessOwner())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	if c, err := Connect(ctx); err == nil {
		if swept, err := c.Sweep(ctx, OwnerAlive); len(swept) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "docker tests: removed what killed test runs left: %v (%v)\n", swept, err)
		}
		c.Close()
	}
	cancel()
	os.Exit(m.Run())
}

// labelled counts the containers and networks carrying eccheck.cluster=name.
func labelled(t *testing.T, c *Client, name string) (containers, networks int) {
	t.Helper()
	ctx := context.Background()
	cs, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: clusterFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: clusterFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs.Items), len(ns.Items)
}

// eventually retries f every 100 ms until it returns nil or d passes.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
