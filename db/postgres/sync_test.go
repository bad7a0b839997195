package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/history"
)

func TestPostgresSyncSettings(t *testing.T) {
	tests := []struct {
		name       string
		o          Options
		wantCommit string
		wantNames  string
		wantErr    string
	}{
		{"sync/empty/asynchronous", Options{Nodes: 3}, "", "", ""},
		{"sync/async/asynchronous even with names", Options{Nodes: 3, Sync: SyncAsync, SyncStandbys: []string{"n2"}}, "", "", ""},
		{"sync/remote_apply naming n2/n2 only", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n2"}}, "remote_apply", "FIRST 1 (n2)", ""},
		{"sync/remote_apply naming none/every replica", Options{Nodes: 3, Sync: SyncRemoteApply}, "remote_apply", "FIRST 2 (n2, n3)", ""},
		{"sync/the primary named/error", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n1"}}, "", "", "want a replica"},
		{"sync/a node beyond the cluster/error", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n4"}}, "", "", "want a replica"},
		{"sync/a name with quotes/error", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n2'"}}, "", "", "want a replica"},
		{"sync/a name twice/error", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n2", "n2"}}, "", "", "twice"},
		{"sync/one node/error", Options{Nodes: 1, Sync: SyncRemoteApply}, "", "", "no replica"},
		{"sync/unknown setting/error", Options{Nodes: 3, Sync: "remote_write"}, "", "", "want async or remote_apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commit, names, err := tt.o.syncSettings()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if commit != tt.wantCommit || names != tt.wantNames {
				t.Fatalf("got %q, %q; want %q, %q", commit, names, tt.wantCommit, tt.wantNames)
			}
		})
	}
}

// TestPostgresRemoteApply brings up a primary with
// synchronous_commit=remote_apply waiting for n2 only, and shows that it
// protects only the named standby: with replay paused on n3, 50 writes
// each read back on n2 right after the acknowledgement are never stale
// (read-your-writes valid), while a write read back on n3 is (invalid):
// the primary does not wait for n3.
func TestPostgresRemoteApply(t *testing.T) {
	pc := upPG(t, "sync", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n2"}})
	if mode, names := pc.Sync(); mode != SyncRemoteApply || strings.Join(names, ",") != "n2" {
		t.Fatalf("Sync() = %s %v, want remote_apply [n2]", mode, names)
	}
	var commit, standbys string
	pgQuery(t, pc.PrimaryDSN(), "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')", &commit, &standbys)
	if commit != "remote_apply" || standbys != "FIRST 1 (n2)" {
		t.Fatalf("primary: synchronous_commit %q, synchronous_standby_names %q", commit, standbys)
	}
	var states string
	pgQuery(t, pc.PrimaryDSN(), "SELECT string_agg(application_name || '=' || sync_state, ',' ORDER BY application_name) FROM pg_stat_replication", &states)
	if states != "n2=sync,n3=async" {
		t.Fatalf("pg_stat_replication: %s, want n2=sync,n3=async", states)
	}

	onN2 := NewClient(pc.PrimaryDSN(), ClientOptions{Node: "n1", ReadDSN: pc.DSN("n2"), ReadNode: "n2", ReadMode: ReadReplica})
	defer onN2.Close(context.Background())
	onN3 := NewClient(pc.PrimaryDSN(), ClientOptions{Node: "n1", ReadDSN: pc.DSN("n3"), ReadNode: "n3", ReadMode: ReadReplica})
	defer onN3.Close(context.Background())
	rec2, rec3 := newRecorder(t, "n2"), newRecorder(t, "n3")
	s2 := keyed{t, rec2, 0, "s2", onN2}
	s3 := keyed{t, rec3, 1, "s3", onN3}

	if got := s3.do("write", history.Int(1)); got.Type != history.OK {
		t.Fatalf("write 1 for n3: %v %q", got.Type, got.Error)
	}
	pollRead(t, onN3, "s3", history.Int(1))
	pauseReplay(t, pc, "n3")

	stale := 0
	for i := range 50 {
		if got := s2.do("write", history.Int(int64(i))); got.Type != history.OK {
			t.Fatalf("write %d: %v %q", i, got.Type, got.Error)
		}
		got := s2.do("read", history.Value{})
		if got.Type != history.OK || got.Node != "n2" {
			t.Fatalf("read %d on n2: %v on %s %q", i, got.Type, got.Node, got.Error)
		}
		if !got.Value.Equal(history.Int(int64(i))) {
			stale++
		}
	}
	if stale != 0 {
		t.Fatalf("%d of 50 reads on the named standby n2 were stale, want none", stale)
	}

	if got := s3.do("write", history.Int(2)); got.Type != history.OK {
		t.Fatalf("write 2 with n3 paused: %v %q (the primary must not wait for n3)", got.Type, got.Error)
	}
	if got := s3.do("read", history.Value{}); got.Type != history.OK || !got.Value.Equal(history.Int(1)) {
		t.Fatalf("read on paused n3: %v %s %q, want ok 1 (stale)", got.Type, got.Value, got.Error)
	}

	ctx := context.Background()
	if r := checkers.ReadYourWrites(ctx, checkers.NewInput(rec2.History()), checkers.Options{}); r.Verdict != checkers.Valid {
		t.Fatalf("read-your-writes reading the named standby n2: %v %v, want valid", r.Verdict, r.Anomalies)
	}
	r := checkers.ReadYourWrites(ctx, checkers.NewInput(rec3.History()), checkers.Options{})
	if r.Verdict != checkers.Invalid || len(r.Anomalies) != 1 {
		t.Fatalf("read-your-writes reading n3 (not named): %v with %d anomalies, want invalid with 1", r.Verdict, len(r.Anomalies))
	}
	t.Logf("on n3, not named: %s", r.Anomalies[0].Explanation)
}

func TestParseStandbyNames(t *testing.T) {
	for in, want := range map[string]string{
		"FIRST 2 (n2, n3)": "n2,n3", "FIRST 1 (n3)": "n3", "": "", "n2,n3": "n2,n3", `ANY 1 ("n2", n3)`: "n2,n3",
	} {
		if got := strings.Join(parseStandbyNames(in), ","); got != want {
			t.Errorf("standby names/%q/%q: got %q", in, want, got)
		}
	}
}
