package galera

import (
	"testing"

	"github.com/eccheck/eccheck/internal/dockertest"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }
