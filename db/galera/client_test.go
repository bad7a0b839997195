package galera

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/nemesis"
)

// Each outcome class: a statement the server rolled back (a certification
// failure, a node outside the primary component) is fail; an error during
// COMMIT, an interrupted query, a lost connection or a timeout after the
// statement was sent is info; a connection never made and any read that
// did not complete are fail.
func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, c := range []struct {
		name string
		err  error
		read bool
		want history.Type
	}{
		{"ok write", nil, false, history.OK},
		{"ok read", nil, true, history.OK},
		{"read timed out", context.DeadlineExceeded, true, history.Fail},
		{"read on a node outside the primary component", &mysql.MySQLError{Number: erUnknownCom, Message: "WSREP has not yet prepared node for application use"}, true, history.Fail},
		{"certification failure", &mysql.MySQLError{Number: erLockDeadlock, Message: "Deadlock found when trying to get lock; try restarting transaction"}, false, history.Fail},
		{"write on a node outside the primary component", &mysql.MySQLError{Number: erUnknownCom, Message: "WSREP has not yet prepared node for application use"}, false, history.Fail},
		{"lock wait timeout", &mysql.MySQLError{Number: erLockWaitTimeout, Message: "Lock wait timeout exceeded"}, false, history.Fail},
		{"error during COMMIT", &mysql.MySQLError{Number: erErrorDuringCommit, Message: "Got error 6 \"No such device or address\" during COMMIT"}, false, history.Info},
		{"query interrupted", &mysql.MySQLError{Number: erQueryInterrupted, Message: "Query execution was interrupted"}, false, history.Info},
		{"an error number not known to roll back", &mysql.MySQLError{Number: 4242, Message: "something new"}, false, history.Info},
		{"write timed out", context.DeadlineExceeded, false, history.Info},
		{"connection lost after the write was sent", mysql.ErrInvalidConn, false, history.Info},
		{"connection never made", dial, false, history.Fail},
		{"wrapped dial error", fmt.Errorf("galera: %w", dial), false, history.Fail},
		{"bad connection before anything was sent", driver.ErrBadConn, false, history.Fail},
		{"compare false", errNoMatch, false, history.Fail},
		{"duplicate key of a CAS from nil", fmt.Errorf("%w: %v", errNoMatch, &mysql.MySQLError{Number: erDupEntry}), false, history.Fail},
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
	three := db.Common{Backend: db.BackendDocker, Nodes: 3}
	faults := func(k ...string) db.Common { c := three; c.Faults = k; return c }
	for _, c := range []struct {
		name   string
		s      Settings
		common db.Common
		want   string // a substring of the usage error; "" for none
	}{
		{"defaults", Settings{Read: ReadOwn, FlushLog: 1}, three, ""},
		{"other reads, causal, flush 0, every fault but failover", Settings{Read: ReadOther, SyncWait: 1, FlushLog: 0},
			faults(nemesis.KindPartition, nemesis.KindKill, nemesis.KindPause, nemesis.KindClock, nemesis.KindLag, nemesis.KindCrash), ""},
		{"in this process", Settings{Read: ReadOwn, FlushLog: 1}, db.Common{Backend: db.BackendLocal, Nodes: 3}, "--cluster docker"},
		{"bad read", Settings{Read: "any", FlushLog: 1}, three, `--galera-read "any"`},
		{"other reads on one node", Settings{Read: ReadOther, FlushLog: 1}, db.Common{Backend: db.BackendDocker, Nodes: 1}, "--nodes 2"},
		{"sync wait beyond the bitmask", Settings{Read: ReadOwn, SyncWait: 16, FlushLog: 1}, three, "--galera-sync-wait 16"},
		{"negative sync wait", Settings{Read: ReadOwn, SyncWait: -1, FlushLog: 1}, three, "--galera-sync-wait -1"},
		{"flush 3", Settings{Read: ReadOwn, FlushLog: 3}, three, "--galera-flush-log 3"},
		{"failover", Settings{Read: ReadOwn, FlushLog: 1}, faults(nemesis.KindFailover), "every Galera node is a primary"},
		{"serializable transactions", Settings{Read: ReadOwn, FlushLog: 1, Isolation: "serializable"}, three, "--galera-isolation"},
		{"read committed transactions", Settings{Read: ReadOwn, FlushLog: 1, Isolation: IsolationReadCommitted}, three, ""},
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
	s := &Settings{Read: ReadOwn, FlushLog: 1}
	three := db.Common{Nodes: 3}
	for spec, want := range map[string]string{"own": "galera-own", "other": "galera-other", "other:sync1": "galera-other-sync1", "own:sync15": "galera-own-sync15"} {
		cell, err := s.Cell(spec, three)
		if err != nil || cell.RunName(three) != want {
			t.Errorf("cell/%s: %v, %v, want run %s", spec, err, cell, want)
		}
	}
	for _, bad := range []string{"any", "other:sync", "other:sync16", "own:s1"} {
		if _, err := s.Cell(bad, three); err == nil {
			t.Errorf("cell/%s: no error", bad)
		}
	}
	if _, err := s.Cell("other", db.Common{Nodes: 1}); err == nil {
		t.Error("cell/other on one node: no error")
	}
	if got := (&Settings{Read: ReadOwn, FlushLog: 0}).RunName(three); got != "galera-own-flush0" {
		t.Errorf("run name with flush 0: %s", got)
	}
}

// The position a recover start printed, and the node a restart starts
// from: the highest seqno, the first by name among equals.
func TestRecoveredPosition(t *testing.T) {
	log := "2026-12-06 10:00:00 0 [Note] WSREP: Recovered position: 48a82f65-f15a-11f1-baf4-2b6a31fee972:23\neccheck-recovered: 48a82f65-f15a-11f1-baf4-2b6a31fee972:23\n"
	pos, err := parseRecovered(log)
	if err != nil || pos.Seqno != 23 || pos.UUID != "48a82f65-f15a-11f1-baf4-2b6a31fee972" {
		t.Fatalf("parse: %+v, %v", pos, err)
	}
	if _, err := parseRecovered("eccheck-recovered: none\n"); err == nil || !strings.Contains(err.Error(), "no position") {
		t.Fatalf("parse of none: %v, want an error saying so", err)
	}
	if _, err := parseRecovered("starting\n"); err == nil {
		t.Fatal("parse of a log without the line: no error")
	}
	u := "48a82f65-f15a-11f1-baf4-2b6a31fee972"
	for _, c := range []struct {
		pos  map[string]Position
		want string
	}{
		{map[string]Position{"n1": {u, 20}, "n2": {u, 23}, "n3": {u, 22}}, "n2"},
		{map[string]Position{"n3": {u, 23}, "n1": {u, 23}, "n2": {u, 23}}, "n1"},
		{map[string]Position{"n1": {u, -1}, "n2": {u, -1}, "n3": {u, 5}}, "n3"},
	} {
		if got := mostAdvanced(c.pos); got != c.want {
			t.Errorf("most advanced of %v: %s, want %s", c.pos, got, c.want)
		}
	}
}
