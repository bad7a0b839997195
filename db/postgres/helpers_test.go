package postgres

import (
	"context"
	"testing"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// engine connects to the Docker engine, or skips the test (fails it with
// ECCHECK_REQUIRE_DOCKER=1).
func engine(t *testing.T) *docker.Client { return dockertest.Engine(t) }

// reopen opens pc's cluster afresh, as a command of another process does.
func reopen(pc *Cluster) (*Cluster, error) {
	cl, err := pc.Engine().Open(context.Background(), pc.Name())
	if err != nil {
		return nil, err
	}
	return Open(context.Background(), cl)
}
