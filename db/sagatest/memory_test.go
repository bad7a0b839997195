package sagatest

import (
	"testing"

	"github.com/eccheck/eccheck/workload"
)

// The reference holds to its own suite.
func TestMemoryConforms(t *testing.T) {
	m := NewMemory()
	Run(t, func(*testing.T) workload.Client { return m })
}
