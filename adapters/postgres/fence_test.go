package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/history"
)

func TestReadMode(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		want    string
		wantErr string
	}{
		{"read mode/nothing set/primary", Options{}, ReadPrimary, ""},
		{"read mode/replica DSN only/replica", Options{ReadDSN: "x"}, ReadReplica, ""},
		{"read mode/primary with a replica DSN/primary", Options{ReadDSN: "x", ReadMode: ReadPrimary}, ReadPrimary, ""},
		{"read mode/lsn-fence with a replica/lsn-fence", Options{ReadDSN: "x", ReadMode: ReadLSNFence}, ReadLSNFence, ""},
		{"read mode/lsn-fence without a replica/error", Options{ReadMode: ReadLSNFence}, ReadLSNFence, "needs a replica"},
		{"read mode/unknown/error", Options{ReadMode: "nearest"}, "nearest", "want primary"},
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
	c := New("postgres://postgres@127.0.0.1:1/postgres", Options{ReadMode: "nearest"})
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
