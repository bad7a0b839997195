package ecstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// engine connects to the Docker engine, or skips the test (fails it with
// ECCHECK_REQUIRE_DOCKER=1).
func engine(t *testing.T) *docker.Client { return dockertest.Engine(t) }

// images builds the ecstore image from this source tree and makes sure
// the base image (the network helper) exists, ignoring the user's image
// overrides.
func images(t *testing.T, c *docker.Client) {
	t.Helper()
	t.Setenv("ECCHECK_IMAGES_FILE", filepath.Join(t.TempDir(), "images.json"))
	o := docker.BuildOptions{Binary: staticBinary(t), Progress: dockertest.Writer(t)}
	if _, err := c.Build(t.Context(), Image, o); err != nil {
		t.Fatalf("images/ecstore: %v", err)
	}
	start := time.Now()
	if _, err := c.Build(t.Context(), docker.Base, o); err != nil {
		t.Fatalf("images/base: %v", err)
	}
	t.Logf("images ready in %v", time.Since(start).Round(time.Second))
}

// staticBinary returns a static eccheck binary built from this source
// tree, once per test run, as a clean clone has none.
func staticBinary(t *testing.T) string { return dockertest.Eccheck(t) }

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
		Logf:   t.Logf, Progress: dockertest.Writer(t),
	})
	if err != nil {
		return nil, err
	}
	return sys.(*dockerSystem), nil
}
