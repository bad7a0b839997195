package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// staticBinary builds a static eccheck binary once per test run, as a clean
// clone has none.
func staticBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eccheck-docker-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "eccheck")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/eccheck")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build of a static eccheck: %v\n%s", binErr, binPath)
	}
	return binPath
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
	code := m.Run()
	if binPath != "" && binErr == nil {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
