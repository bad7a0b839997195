package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
)

// serverError is an error reply, as go-redis returns one.
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

// Each outcome class: a write whose fate is open is info, so is one WAIT
// saw on too few replicas; a refused write, a lost compare, a connection
// never made and any read that did not complete are fail.
func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, c := range []struct {
		name string
		err  error
		read bool
		want history.Type
	}{
		{"ok write", nil, false, history.OK},
		{"ok read", nil, true, history.OK},
		{"read timed out", context.DeadlineExceeded, true, history.Fail},
		{"read refused by a loading replica", serverError("LOADING Redis is loading the dataset in memory"), true, history.Fail},
		{"write timed out", context.DeadlineExceeded, false, history.Info},
		{"connection lost after the write was sent", read, false, history.Info},
		{"connection never made", dial, false, history.Fail},
		{"wrapped dial error", fmt.Errorf("redis: %w", dial), false, history.Fail},
		{"write on a replica", serverError("READONLY You can't write against a read only replica."), false, history.Fail},
		{"too few replicas for min-replicas-to-write", serverError("NOREPLICAS Not enough good replicas to write."), false, history.Fail},
		{"WAIT saw too few replicas", fmt.Errorf("%w: WAIT 1 saw 0 within 1s", errWait), false, history.Info},
		{"compare false", errNoMatch, false, history.Fail},
		{"unknown operation", fmt.Errorf("%w: nope", errUsage), false, history.Fail},
		{"a plain error that is no reply", errors.New("READONLY but not from a server"), false, history.Info},
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
	three := db.Common{Backend: db.BackendDocker, Nodes: 3}
	for _, c := range []struct {
		name   string
		s      Settings
		common db.Common
		want   string // a substring of the usage error; "" for none
	}{
		{"defaults", Settings{Read: ReadPrimary}, three, ""},
		{"replica reads, WAIT 2, min replicas 1", Settings{Read: ReadReplica, Wait: 2, MinReplicas: 1}, three, ""},
		{"in this process", Settings{Read: ReadPrimary}, db.Common{Backend: db.BackendLocal, Nodes: 3}, "--cluster docker"},
		{"bad read", Settings{Read: "any"}, three, `--redis-read "any"`},
		{"replica reads on one node", Settings{Read: ReadReplica}, db.Common{Backend: db.BackendDocker, Nodes: 1}, "--nodes 2"},
		{"WAIT for more replicas than exist", Settings{Read: ReadPrimary, Wait: 3}, three, "--redis-wait 3"},
		{"min replicas beyond the replicas", Settings{Read: ReadPrimary, MinReplicas: 3}, three, "--redis-min-replicas 3"},
		{"clock", Settings{Read: ReadPrimary}, db.Common{Backend: db.BackendDocker, Nodes: 3, Faults: []string{nemesis.KindClock}}, "libfaketime"},
		{"failover on two nodes", Settings{Read: ReadPrimary}, db.Common{Backend: db.BackendDocker, Nodes: 2, Faults: []string{nemesis.KindFailover}}, "majority"},
	} {
		err := c.s.Validate(c.common)
		var ue db.UsageError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("validate/%s: %v", c.name, err)
		case c.want != "" && (err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("validate/%s: %v, want a usage error naming %q", c.name, err, c.want)
		}
	}
}

func TestCell(t *testing.T) {
	s := &Settings{Read: ReadPrimary}
	three := db.Common{Nodes: 3}
	for spec, want := range map[string]string{"primary": "redis-primary", "replica": "redis-replica", "primary:wait1": "redis-primary-wait1", "replica:wait2": "redis-replica-wait2"} {
		cell, err := s.Cell(spec, three)
		if err != nil || cell.RunName(three) != want {
			t.Errorf("cell/%s: %v, %v, want run %s", spec, err, cell, want)
		}
	}
	for _, bad := range []string{"any", "primary:wait", "primary:wait3", "primary:w1"} {
		if _, err := s.Cell(bad, three); err == nil {
			t.Errorf("cell/%s: no error", bad)
		}
	}
}
