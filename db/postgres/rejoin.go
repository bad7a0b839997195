// This file holds how a node a failover killed comes back: Rejoin, with
// pg_rewind or a clone.

package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/docker"
)

// Rejoin brings back an old primary (or any node that is down and fenced)
// as a replica of the primary now, the way an operator repairs it: a
// replication slot for it on the primary, then its container started with
// the rejoin file, so that it runs pg_rewind from the primary (throwing
// away the writes no replica had received) and starts as a standby
// through that slot; with clone, or when the rewound node does not come
// up streaming, it is cloned afresh with pg_basebackup instead (as
// Patroni's reinit does). It returns when the primary sees it streaming,
// with how it rejoined: "pg_rewind", "pg_basebackup" and why, or "no
// rewind" for a node that was a replica. In a cluster whose every replica
// is a synchronous standby it becomes one again. A node that runs (a
// second primary, started by hand) is refused: kill it first.
func (pc *Cluster) Rejoin(node string, clone bool) (how string, err error) {
	pc.fmu.Lock()
	defer pc.fmu.Unlock()
	if _, err := pc.Node(node); err != nil {
		return "", err
	}
	if pc.noPrimary != nil {
		return "", fmt.Errorf("rejoin %s: %w", node, pc.noPrimary)
	}
	if !pc.isFenced(node) {
		return "", fmt.Errorf("rejoin %s: it is not down after a failover (replicas: %s)", node, orNone(pc.Replicas()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if run, _, err := pc.State(ctx, node); err != nil {
		return "", fmt.Errorf("rejoin %s: %w", node, err)
	} else if run {
		return "", fmt.Errorf("rejoin %s: it is running (a second primary?); kill it first ('eccheck nemesis kill --node %s')", node, node)
	}
	mode := ""
	if clone {
		mode = "clone"
	}
	primary := pc.Primary()
	if how, err = pc.rejoin(ctx, node, primary, mode); err != nil {
		return "", err
	}
	// In a cluster whose every replica is a synchronous standby, the node
	// becomes one again. (A failover sets the standbys it leaves itself.)
	pc.pmu.Lock()
	var names string
	if pc.syncAll && !slices.Contains(pc.syncStandbys, node) {
		pc.syncCommit = SyncRemoteApply
		pc.syncStandbys = append(pc.syncStandbys, node)
		slices.Sort(pc.syncStandbys)
		names = firstOf(pc.syncStandbys)
	}
	pc.pmu.Unlock()
	if names != "" {
		if err := pc.setStandbyNames(ctx, primary, names); err != nil {
			return how, fmt.Errorf("rejoin %s: %w", node, err)
		}
	}
	return how, nil
}

// rejoin brings n, which is down, back as a replica of primary (see
// [Cluster.Rejoin]); mode "clone" clones it at once, "rewind"
// runs pg_rewind even on a node that was a replica (one that received
// WAL past primary's promotion point). The caller holds fmu.
func (pc *Cluster) rejoin(ctx context.Context, node, primary, mode string) (how string, err error) {
	p, err := pc.Node(primary)
	if err != nil {
		return "", err
	}
	if pc.cutOff(node, primary) {
		return "", fmt.Errorf("rejoin %s: a partition in force cuts it off from the primary %s, which pg_rewind needs; heal first", node, primary)
	}
	if _, err := pc.ensureSlot(ctx, primary, node); err != nil {
		return "", fmt.Errorf("rejoin %s: %w", node, err)
	}
	// pg_rewind reads the source's timeline from its control file, which
	// a promoted replica updates only at its next checkpoint.
	if err := pc.exec(ctx, primary, `CHECKPOINT`); err != nil {
		return "", fmt.Errorf("rejoin %s: %w", node, err)
	}
	how, err = pc.rejoinOnce(ctx, node, primary, p.IP.String(), mode, 60*time.Second)
	if err != nil && mode != "clone" {
		// A rewound node that cannot follow (the WAL it needs is gone,
		// say) is cloned instead; its data directory is thrown away
		// either way.
		first, firstHow := err, how
		if kerr := pc.Cluster.Kill(node); kerr != nil {
			return "", killedAgainErr(node, first, kerr)
		}
		how, err = pc.rejoinOnce(ctx, node, primary, p.IP.String(), "clone", 90*time.Second)
		if err == nil {
			short, _, _ := strings.Cut(first.Error(), "; its last log lines")
			how = "pg_basebackup: after " + firstHow + ", " + short
		} else {
			err = fmt.Errorf("%w; before that, %s failed: %v", err, firstHow, first)
		}
	}
	if err != nil {
		// A failure leaves the node down again, never running in a role
		// nobody chose.
		if kerr := pc.Cluster.Kill(node); kerr != nil {
			return "", killedAgainErr(node, err, kerr)
		}
		return "", fmt.Errorf("rejoin %s: %w; %s is down again: see its log ('eccheck cluster logs %s'), then 'eccheck nemesis rejoin --node %s'", node, err, node, node, node)
	}
	pc.setFenced(node, false)
	return how, nil
}

// killedAgainErr is the error of a rejoin of node that failed with err
// and whose kill, to leave it down again, failed with kerr.
func killedAgainErr(node string, err, kerr error) error {
	return fmt.Errorf("rejoin %s: %w (and it could not be killed again: %v; kill it by hand: 'eccheck nemesis kill --node %s')", node, err, kerr, node)
}

// rejoinOnce starts n, which is down, with a new rejoin file naming the
// primary at ip and the mode (see [Cluster.rejoin]), and waits
// (within bound) until it is a replica streaming primary's timeline. It
// returns how the node's script rejoined, from its log, and leaves n
// running whatever happens.
func (pc *Cluster) rejoinOnce(ctx context.Context, node, primary, ip, mode string, bound time.Duration) (string, error) {
	tli, err := pc.timeline(ctx, primary)
	if err != nil {
		return "", err
	}
	// The generation only has to differ from the last one the node
	// applied, whichever process wrote that.
	started := time.Now()
	gen := started.UnixNano()
	if err := pc.WriteFile(node, rejoinFile, fmt.Appendf(nil, "%d %s %s\n", gen, ip, mode)); err != nil {
		return "", err
	}
	// Started without waiting for it to answer, and with the partition
	// in force applied again.
	if err := pc.StartContainer(ctx, node); err != nil {
		return "", err
	}
	// One wait: the node answers as a replica and streams the primary's
	// timeline. A node whose log says it cannot follow (the WAL it asks
	// for is gone on the primary, or it is past the fork) never will:
	// that ends the wait at once, as does a node that answers as a
	// primary.
	mark := fmt.Sprintf("eccheck: rejoin generation %d by ", gen)
	how := "how: see its log"
	readLog := func(ctx context.Context) string {
		logs, err := pc.LogsSince(ctx, node, started)
		if err != nil {
			return ""
		}
		i := strings.LastIndex(logs, mark)
		if i < 0 {
			return ""
		}
		how, logs, _ = strings.Cut(logs[i+len(mark):], "\n")
		return logs
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var why string
	polls := 0
	err = pc.Poll(wctx, node, bound, 200*time.Millisecond, func() (bool, string) {
		if polls++; polls%5 == 0 {
			if line := cannotFollow(readLog(wctx)); line != "" {
				why = fmt.Sprintf("it does not stream from %s: %s", primary, line)
				stop()
				return false, why
			}
		}
		cctx, cancel := context.WithTimeout(wctx, 3*time.Second)
		defer cancel()
		var rec bool
		if err := pc.query(cctx, node, `SELECT pg_is_in_recovery()`, &rec); err != nil {
			return false, err.Error()
		}
		if !rec {
			why = "it came up as a primary, not a replica (split brain avoided)"
			stop()
			return false, why
		}
		got, err := pc.streamedTimeline(cctx, node)
		if err != nil {
			return false, err.Error()
		}
		return got == tli, fmt.Sprintf("a replica, not yet streaming timeline %d from %s", tli, primary)
	})
	readLog(ctx)
	if err != nil && why != "" {
		logs, _ := pc.LogTail(ctx, node, "20")
		err = fmt.Errorf("%s; its last log lines:\n%s", why, docker.Indent(logs))
	}
	return how, err
}

// cannotFollow returns the first line of a replica's log that says it
// cannot follow its primary: the WAL it asked for has been removed there,
// or it received WAL past the point where the primary's timeline forked;
// or "".
func cannotFollow(logs string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "requested WAL segment") && strings.Contains(l, "has already been removed") ||
			strings.Contains(l, "forked off current database system timeline") ||
			strings.Contains(l, "not in this server's history") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
