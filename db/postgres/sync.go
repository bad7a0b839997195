package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replication settings, the values of [Options.Sync].
const (
	// SyncAsync is asynchronous streaming replication: the primary
	// acknowledges a commit once it is durable locally.
	SyncAsync = "async"
	// SyncRemoteApply makes the primary acknowledge a commit only once the
	// standbys in synchronous_standby_names have applied it
	// (synchronous_commit=remote_apply), so that reads on those standbys
	// see it. Replicas not named stay asynchronous.
	SyncRemoteApply = "remote_apply"
)

// syncStandbys returns the node names the primary waits for: none when
// asynchronous, SyncStandbys when given, else every replica.
func (o Options) syncStandbys() []string {
	if o.Sync == "" || o.Sync == SyncAsync {
		return nil
	}
	if len(o.SyncStandbys) > 0 {
		return slices.Clone(o.SyncStandbys)
	}
	var all []string
	for i := 2; i <= o.Nodes; i++ {
		all = append(all, fmt.Sprintf("n%d", i))
	}
	return all
}

// syncSettings returns the primary's synchronous_commit and
// synchronous_standby_names ("", "" when asynchronous). Every named
// standby must confirm: FIRST k (names) with k the number of names. Nodes
// must already be defaulted.
func (o Options) syncSettings() (commit, names string, err error) {
	switch o.Sync {
	case "", SyncAsync:
		return "", "", nil
	case SyncRemoteApply:
	default:
		return "", "", fmt.Errorf("cluster %s: sync %q: want %s or %s", o.Name, o.Sync, SyncAsync, SyncRemoteApply)
	}
	standbys := o.syncStandbys()
	if len(standbys) == 0 {
		return "", "", fmt.Errorf("cluster %s: sync %s with no replica to wait for", o.Name, o.Sync)
	}
	seen := map[string]bool{}
	for _, s := range standbys {
		var i int
		if _, err := fmt.Sscanf(s, "n%d", &i); err != nil || fmt.Sprintf("n%d", i) != s || i < 2 || i > o.Nodes {
			return "", "", fmt.Errorf("cluster %s: synchronous standby %q: want a replica, n2 to n%d", o.Name, s, o.Nodes)
		}
		if seen[s] {
			return "", "", fmt.Errorf("cluster %s: synchronous standby %s named twice", o.Name, s)
		}
		seen[s] = true
	}
	return o.Sync, firstOf(standbys), nil
}

// Sync returns the primary's synchronous_commit setting (SyncRemoteApply)
// and the standbys it waits for, or SyncAsync and nil.
func (pc *Cluster) Sync() (string, []string) {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	if pc.syncCommit == "" {
		return SyncAsync, nil
	}
	return pc.syncCommit, slices.Clone(pc.syncStandbys)
}

// waitSync waits, for a synchronous cluster, until the primary's
// pg_stat_replication reports every named standby as sync.
func (pc *Cluster) waitSync(ctx context.Context, timeout time.Duration) error {
	if len(pc.syncStandbys) == 0 {
		return nil
	}
	want := len(pc.syncStandbys)
	return pc.waitPostgres(ctx, pc.Nodes()[0], timeout, func(ctx context.Context, conn *pgx.Conn) (bool, string, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' AND application_name = ANY($1)`, pc.syncStandbys).Scan(&n)
		return err == nil && n == want, fmt.Sprintf("%d of %d synchronous standbys (%s) in sync", n, want, strings.Join(pc.syncStandbys, ", ")), err
	})
}
