package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/history"
)

func TestReadMode(t *testing.T) {
	tests := []struct {
		name    string
		o       ClientOptions
		want    string
		wantErr string
	}{
		{"read mode/nothing set/primary", ClientOptions{}, ReadPrimary, ""},
		{"read mode/replica DSN only/replica", ClientOptions{ReadDSN: "x"}, ReadReplica, ""},
		{"read mode/primary with a replica DSN/primary", ClientOptions{ReadDSN: "x", ReadMode: ReadPrimary}, ReadPrimary, ""},
		{"read mode/lsn-fence with a replica/lsn-fence", ClientOptions{ReadDSN: "x", ReadMode: ReadLSNFence}, ReadLSNFence, ""},
		{"read mode/lsn-fence without a replica/error", ClientOptions{ReadMode: ReadLSNFence}, ReadLSNFence, "needs a replica"},
		{"read mode/unknown/error", ClientOptions{ReadMode: "nearest"}, "nearest", "want primary"},
		{"read mode/read targets only/round-robin", ClientOptions{ReadTargets: []ReadTarget{{"x", "n2"}}}, ReadRoundRobin, ""},
		{"read mode/round-robin without targets/error", ClientOptions{ReadMode: ReadRoundRobin}, ReadRoundRobin, "needs read targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.readMode(); got != tt.want {
				t.Fatalf("readMode() = %q, want %q", got, tt.want)
			}
			err := tt.o.checkReadMode()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("checkReadMode() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestReadModeUnknownFails checks that a client with an unusable read mode
// fails every operation without sending anything (the DSN names no server).
func TestReadModeUnknownFails(t *testing.T) {
	c := NewClient("postgres://postgres@127.0.0.1:1/postgres", ClientOptions{ReadMode: "nearest"})
	for _, f := range []string{"read", "write"} {
		got := c.Invoke(context.Background(), history.Op{Process: 0, Type: history.Invoke, F: f, Key: "k", Value: history.Int(1)})
		if got.Type != history.Fail || !strings.Contains(got.Error, "read mode") {
			t.Fatalf("%s with read mode nearest: %v %q, want fail naming the read mode", f, got.Type, got.Error)
		}
	}
	if c.read != c.primary || c.opts.FenceWait.Seconds() != 1 {
		t.Fatalf("defaults: read target %p (primary %p), fence wait %v", c.read, c.primary, c.opts.FenceWait)
	}
}

// TestRoundRobinTakesTurns checks that reads go to the read targets in
// turn, and writes to the primary (no server answers: the node field
// says where each operation went).
func TestRoundRobinTakesTurns(t *testing.T) {
	c := NewClient("postgres://postgres@127.0.0.1:1/postgres", ClientOptions{Node: "n1", Timeout: 200 * time.Millisecond, ReadTargets: []ReadTarget{
		{"postgres://postgres@127.0.0.1:1/postgres", "n2"}, {"postgres://postgres@127.0.0.1:1/postgres", "n3"},
	}})
	var got []string
	for _, f := range []string{"read", "read", "write", "read"} {
		op := c.Invoke(context.Background(), history.Op{Process: 0, Type: history.Invoke, F: f, Key: "k", Value: history.Int(1)})
		if op.Type != history.Fail {
			t.Fatalf("%s with no server: %v, want fail (nothing sent)", f, op.Type)
		}
		got = append(got, f+"@"+op.Node)
	}
	if want := "read@n2 read@n3 write@n1 read@n2"; strings.Join(got, " ") != want {
		t.Fatalf("operations went to %q, want %q", strings.Join(got, " "), want)
	}
}
