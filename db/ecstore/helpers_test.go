package ecstore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) {
	code := 0
	func() {
		defer func() {
			if binPath != "" && binErr == nil {
				os.RemoveAll(filepath.Dir(binPath))
			}
		}()
		os.Setenv("ECCHECK_OWNER", docker.ProcessOwner())
		dockertest.Sweep()
		code = m.Run()
	}()
	os.Exit(code)
}

// engine connects to the Docker engine, or skips the test (fails it with
// ECCHECK_REQUIRE_DOCKER=1).
func engine(t *testing.T) *docker.Client { return dockertest.Engine(t) }

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
		dir, err := os.MkdirTemp("", "eccheck-ecstore-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "eccheck")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/eccheck")
		cmd.Dir = filepath.Join("..", "..")
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

// clusterFilter selects what carries the cluster's label.
func clusterFilter(name string) client.Filters {
	return make(client.Filters).Add("label", docker.LabelCluster+"="+name)
}

// upDocker brings up an ecstore cluster of 3 nodes in Docker with s's
// settings, as eccheck test does but kept (the test removes it).
func upDocker(t *testing.T, c *docker.Client, name string, s *Settings) (*dockerSystem, error) {
	t.Helper()
	if s.SetImpl == "" {
		s.SetImpl = "orset"
	}
	if s.PrimaryReads == "" {
		s.PrimaryReads = "any"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sys, err := s.startDocker(ctx, db.Env{
		Common: db.Common{Backend: db.BackendDocker, Nodes: 3, ClusterName: name, Keep: true, Faults: []string{"partition"}},
		Logf:   t.Logf, Progress: testWriter{t},
	})
	if err != nil {
		return nil, err
	}
	return sys.(*dockerSystem), nil
}
