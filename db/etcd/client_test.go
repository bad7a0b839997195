package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
)

// Each outcome class: a write whose fate is open is info; one etcd
// refused before proposing it, a lost compare, and any read that did not
// complete are fail.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		read bool
		want history.Type
	}{
		{"ok write", nil, false, history.OK},
		{"ok read", nil, true, history.OK},
		{"read timed out", context.DeadlineExceeded, true, history.Fail},
		{"read without a leader", rpctypes.ErrNoLeader, true, history.Fail},
		{"write timed out", context.DeadlineExceeded, false, history.Info},
		{"write cancelled at the run's end", context.Canceled, false, history.Info},
		{"leader changed during the write", rpctypes.ErrLeaderChanged, false, history.Info},
		{"request timed out in the server", rpctypes.ErrTimeout, false, history.Info},
		{"no leader (may have been proposed)", rpctypes.ErrNoLeader, false, history.Info},
		{"lost connection", errors.New("rpc error: code = Unavailable desc = error reading from server: EOF"), false, history.Info},
		{"compare false", errNoMatch, false, history.Fail},
		{"too many requests", rpctypes.ErrTooManyRequests, false, history.Fail},
		{"no space", rpctypes.ErrNoSpace, false, history.Fail},
		{"wrapped refusal", fmt.Errorf("put: %w", rpctypes.ErrRequestTooLarge), false, history.Fail},
		{"proposal dropped", errors.New("raft proposal dropped"), false, history.Fail},
		{"counter: the read before the CAS failed", definite{errors.New("read before the compare-and-set: deadline")}, false, history.Fail},
		{"unknown operation", fmt.Errorf("%w: nope", errUsage), false, history.Fail},
	} {
		got, text := Classify(c.err, c.read)
		if got != c.want {
			t.Errorf("classify/%s: %v (%q), want %v", c.name, got, text, c.want)
		}
		if (c.err == nil) != (text == "") {
			t.Errorf("classify/%s: text %q for error %v", c.name, text, c.err)
		}
	}
}

func TestValidate(t *testing.T) {
	docker := db.Common{Backend: db.BackendDocker, Nodes: 3}
	for _, c := range []struct {
		name   string
		s      Settings
		common db.Common
		want   string // a substring of the usage error; "" for none
	}{
		{"defaults", Settings{Read: ReadLinearizable}, docker, ""},
		{"serializable", Settings{Read: ReadSerializable}, docker, ""},
		{"in this process", Settings{Read: ReadLinearizable}, db.Common{Backend: db.BackendLocal, Nodes: 3}, "--cluster docker"},
		{"bad read", Settings{Read: "quorum"}, docker, `--etcd-read "quorum"`},
		{"clock", Settings{Read: ReadLinearizable}, withFaults(docker, nemesis.KindPartition, nemesis.KindClock), "libfaketime"},
		{"failover", Settings{Read: ReadLinearizable}, withFaults(docker, nemesis.KindFailover), "elects its own leader"},
		{"lag", Settings{Read: ReadLinearizable}, withFaults(docker, nemesis.KindLag), "--nemesis lag"},
		{"kill, pause, partition", Settings{Read: ReadLinearizable}, withFaults(docker, nemesis.KindKill, nemesis.KindPause, nemesis.KindPartition), ""},
	} {
		err := c.s.Validate(c.common)
		var ue db.UsageError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("validate/%s: %v", c.name, err)
		case c.want != "" && (err == nil || !errors.As(err, &ue) || !contains(err.Error(), c.want)):
			t.Errorf("validate/%s: %v, want a usage error naming %q", c.name, err, c.want)
		}
	}
}

func withFaults(c db.Common, faults ...string) db.Common {
	c.Faults = faults
	return c
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// The default nemesis (partition,clock) loses its clock for etcd; a
// --nemesis given by hand is left for Validate to refuse.
func TestAdjust(t *testing.T) {
	s := &Settings{Read: ReadLinearizable}
	c := db.Common{Faults: []string{nemesis.KindPartition, nemesis.KindClock}}
	s.Adjust(&c, func(string) bool { return false })
	if !slices.Equal(c.Faults, []string{nemesis.KindPartition}) {
		t.Errorf("adjust/default nemesis: %v, want partition", c.Faults)
	}
	c = db.Common{Faults: []string{nemesis.KindClock}}
	s.Adjust(&c, func(f string) bool { return f == "nemesis" })
	if !slices.Equal(c.Faults, []string{nemesis.KindClock}) {
		t.Errorf("adjust/given nemesis: %v, want it kept", c.Faults)
	}
}

func TestCell(t *testing.T) {
	s := &Settings{Read: ReadLinearizable}
	for _, r := range Reads {
		cell, err := s.Cell(r, db.Common{})
		if err != nil || cell.(*Settings).Read != r || cell.RunName(db.Common{}) != "etcd-"+r {
			t.Errorf("cell/%s: %v, %+v", r, err, cell)
		}
	}
	if _, err := s.Cell("quorum", db.Common{}); err == nil {
		t.Errorf("cell/quorum: no error")
	}
	if cells := s.DefaultCells(); cells != "linearizable,serializable" {
		t.Errorf("default cells %q", cells)
	}
}
