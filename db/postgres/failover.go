package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/docker"
)

// Start starts a killed node again and waits until it accepts
// connections. An old primary that a failover killed stays down and Start
// returns nil: it would come back as a second primary with writes no
// replica has, and does not rejoin without pg_rewind.
func (pc *Cluster) Start(node string) error {
	if pc.isFenced(node) {
		return nil
	}
	return pc.Cluster.Start(node)
}

// Pause freezes node; an old primary a failover killed is left as it is.
func (pc *Cluster) Pause(node string) error {
	if pc.isFenced(node) {
		return nil
	}
	return pc.Cluster.Pause(node)
}

func (pc *Cluster) isFenced(node string) bool {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	return pc.fenced[node]
}

// Failover replaces the primary the way an operator (or Patroni) does when
// it is lost: it kills the primary for good, promotes the replica that has
// received the most WAL (pg_promote; in a synchronous cluster, the most
// advanced of the synchronous standbys, which hold every acknowledged
// commit), makes the new primary wait for the synchronous standbys that
// are left, points the other replicas at it (primary_conninfo, a
// replication slot of their own on it) and waits (15 s) until they stream
// its timeline, rewinding those whose log says they cannot (see
// [Cluster.FailoverTo]), sets the synchronous standbys left, and
// only then reports it as [Cluster.Primary], so that writers
// that reconnect find it. It returns the old primary and the new one ("" if
// none was promoted). Nothing changes when no candidate answers as a
// replica; it fails when no replica is left to promote.
func (pc *Cluster) Failover() (old, promoted string, err error) {
	return pc.FailoverTo("")
}

// FailoverTo is [Cluster.Failover] promoting node, or choosing as
// Failover does when node is empty. Promoting a replica that is behind (an
// asynchronous one, or a standby that is not synchronous) loses the writes
// it had not received, acknowledged or not, and a replica that had received
// more than it cannot follow it: when its log says so, that replica is
// rewound (pg_rewind from the new primary, or a clone if that fails) and
// loses the difference too, and the progress writer ([Cluster.SetProgress])
// says so. A replica that does not follow within 15 s for another reason
// (paused, cut off, a long apply delay) is left as it is, and the error
// names it.
func (pc *Cluster) FailoverTo(node string) (old, promoted string, err error) {
	pc.fmu.Lock()
	defer pc.fmu.Unlock()
	if pc.noPrimary != nil {
		return "", "", pc.noPrimary
	}
	ctx, cancel := docker.FaultContext()
	defer cancel()
	old = pc.Primary()
	replicas := pc.Replicas()
	syncCommit, syncStandbys := pc.Sync()
	if node != "" && !slices.Contains(replicas, node) {
		return old, "", fmt.Errorf("failover to %s: not a replica of cluster %s (replicas: %s)", node, pc.Name(), orNone(replicas))
	}
	if len(replicas) == 0 {
		return old, "", fmt.Errorf("failover from %s: no replica left to promote (old primaries %s do not rejoin without pg_rewind: see 'eccheck nemesis rejoin')", old, orNone(pc.Fenced()))
	}
	candidates := replicas
	switch {
	case node != "":
		candidates = []string{node}
	case syncCommit != SyncAsync:
		candidates = nil
		for _, r := range replicas {
			if slices.Contains(syncStandbys, r) {
				candidates = append(candidates, r)
			}
		}
	}
	// Nothing changes unless a candidate answers as a replica.
	alive, why := pc.standbys(ctx, candidates)
	if len(alive) == 0 {
		return old, "", fmt.Errorf("failover from %s: no replica to promote answers among %s (%s); nothing was changed: start or resume one, or name one to promote", old, orNone(candidates), why)
	}
	// Fence first, so that no Start brings the old primary back meanwhile.
	pc.setFenced(old, true)
	if err := pc.Cluster.Kill(old); err != nil {
		pc.setFenced(old, false)
		return old, "", fmt.Errorf("failover: %w", err)
	}
	target, err := pc.mostAdvanced(ctx, alive)
	if err != nil {
		return old, "", fmt.Errorf("failover from %s: %w; no replica was promoted, so the cluster has no primary now", old, err)
	}
	if err := pc.promote(target); err != nil {
		return old, "", fmt.Errorf("failover from %s: %w; the cluster has no primary now", old, err)
	}
	promoted = target
	// The promotion had a time budget of its own; what follows gets a
	// fresh one.
	ctx, cancelRest := docker.FaultContext()
	defer cancelRest()
	var errs []error
	p, err := pc.Node(promoted)
	if err != nil {
		return old, promoted, err
	}
	tli, err := pc.timeline(ctx, promoted)
	if err != nil {
		errs = append(errs, err)
	}
	var following []string
	since := time.Now()
	for _, r := range replicas {
		if r == promoted {
			continue
		}
		if err := pc.follow(ctx, r, p); err != nil {
			errs = append(errs, fmt.Errorf("point %s at %s: %w", r, promoted, err))
			continue
		}
		following = append(following, r)
	}
	var diverged []string
	for _, r := range following {
		switch pc.followState(ctx, promoted, r, tli, since, 15*time.Second) {
		case following_:
		case diverged_:
			diverged = append(diverged, r)
		default:
			errs = append(errs, fmt.Errorf("%s does not follow %s within 15 s (timeline %d not received; see its log, 'eccheck cluster logs %s')", r, promoted, tli, r))
		}
	}
	// A replica that received WAL past the promotion point (the promoted
	// one was behind it) cannot follow, as its log says: it is rewound
	// from the new primary as an old primary is, as Patroni does, and
	// loses that WAL.
	var rewound []string
	for _, r := range diverged {
		if pc.cutOff(r, promoted) {
			errs = append(errs, fmt.Errorf("%s received WAL past the promotion point of %s and needs a rewind, but a partition cuts it off: heal, then kill it and 'eccheck nemesis rejoin --node %s'", r, promoted, r))
			continue
		}
		_, err := pc.Node(r)
		if err == nil {
			pc.setFenced(r, true)
			if err = pc.Cluster.Kill(r); err != nil {
				pc.setFenced(r, false)
			}
		}
		if err == nil {
			rctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			var how string
			how, err = pc.rejoin(rctx, r, promoted, "rewind")
			cancel()
			if err == nil {
				pc.Notef("failover: %s had received WAL past the promotion point of %s (its log says so); rejoined by %s, it follows %s", r, promoted, how, promoted)
				rewound = append(rewound, r)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s received WAL past the promotion point of %s, and rewinding it failed: %w", r, promoted, err))
		}
	}
	// The synchronous standbys left (a rewind that failed leaves its node
	// out), set on the new primary before writers find it; set to none
	// when there are none, since a promoted replica may carry the old
	// primary's list in its copied configuration.
	var left []string
	if syncCommit != SyncAsync {
		for _, s := range syncStandbys {
			if s != promoted && s != old && !pc.isFenced(s) {
				left = append(left, s)
			}
		}
	}
	if err := pc.setStandbyNames(ctx, promoted, firstOf(left)); err != nil {
		errs = append(errs, err)
	} else if syncCommit != SyncAsync {
		pc.pmu.Lock()
		pc.syncStandbys = left
		if len(left) == 0 {
			pc.syncCommit = ""
		}
		pc.pmu.Unlock()
	}
	pc.pmu.Lock()
	pc.primary = promoted
	pc.rewound = rewound
	pc.pmu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return old, promoted, fmt.Errorf("failover from %s to %s: %w", old, promoted, err)
	}
	return old, promoted, nil
}

// LastRewound returns the replicas the last failover rewound: they had
// received WAL past its promotion point, and lost it.
func (pc *Cluster) LastRewound() []string {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	return slices.Clone(pc.rewound)
}

// setFenced marks node as an old primary that stays down, or not.
func (pc *Cluster) setFenced(node string, on bool) {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	if on {
		pc.fenced[node] = true
	} else {
		delete(pc.fenced, node)
	}
}

// promote promotes node with pg_promote, with a bound of its own, and
// checks that it left recovery; when the call fails it asks the node
// whether it promoted anyway. First it detaches node from the old primary
// (primary_conninfo emptied, and a wait of up to 5 s for its walreceiver
// to stop): promotion waits for the walreceiver to stop, and one still
// reaching for the dead primary can hold it up. A node still in recovery
// after 30 s (CI saw one stay so for a minute) is restarted, detached as
// it now is, and promoted once more.
func (pc *Cluster) promote(node string) error {
	if _, err := pc.Node(node); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := pc.detach(ctx, node); err != nil {
		pc.Notef("promote %s: %v; promoting it anyway", node, err)
	}
	first := pc.promoteOnce(ctx, node)
	if first == nil {
		return nil
	}
	logs, _ := pc.LogTail(ctx, node, "20")
	pc.Notef("promote %s: %v; restarting it to promote it again; its last log lines:\n%s", node, first, docker.Indent(logs))
	if err := pc.Cluster.Kill(node); err != nil {
		return fmt.Errorf("promote %s: %w (and it could not be killed to restart it: %v); its last log lines:\n%s", node, first, err, docker.Indent(logs))
	}
	if err := pc.Cluster.Start(node); err != nil {
		return fmt.Errorf("promote %s: %w; then restarting it failed: %v", node, first, err)
	}
	if err := pc.promoteOnce(ctx, node); err != nil {
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		logs, _ = pc.LogTail(lctx, node, "20")
		return fmt.Errorf("promote %s: %w; restarted, again: %v; its last log lines:\n%s", node, first, err, docker.Indent(logs))
	}
	pc.Notef("promote %s: promoted after the restart", node)
	return nil
}

// detach stops node's replication from its primary: primary_conninfo
// emptied and reloaded, then a wait (up to 5 s) until it has no
// walreceiver.
func (pc *Cluster) detach(ctx context.Context, node string) error {
	for _, q := range []string{`ALTER SYSTEM SET primary_conninfo = ''`, `SELECT pg_reload_conf()`} {
		if err := pc.exec(ctx, node, q); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var receivers int
		err := pc.query(ctx, node, `SELECT count(*) FROM pg_stat_wal_receiver`, &receivers)
		if err == nil && receivers == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("its walreceiver did not stop within 5 s of primary_conninfo emptied")
			}
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promoteOnce calls pg_promote on node, waiting up to promoteWait, and reports
// nil if the node has left recovery (whatever the call returned).
func (pc *Cluster) promoteOnce(ctx context.Context, node string) error {
	var done bool
	err := pc.query(ctx, node, fmt.Sprintf(`SELECT pg_promote(true, %d)`, max(1, int(promoteWait/time.Second))), &done)
	if err == nil && done {
		return nil
	}
	var rec bool
	if qerr := pc.query(ctx, node, `SELECT pg_is_in_recovery()`, &rec); qerr == nil && !rec {
		return nil // promoted after all
	}
	if err == nil {
		err = fmt.Errorf("pg_promote did not finish within %v", promoteWait)
	}
	return err
}

// promoteWait is how long one pg_promote waits for the promotion to
// finish (whole seconds).
var promoteWait = 30 * time.Second

// What [Cluster.followState] saw of a replica.
const (
	unknown_   = iota // neither within the bound
	following_        // streaming WAL of the new timeline
	diverged_         // its log says it cannot follow
)

// followState waits (within bound) until replica streams WAL of timeline
// tli, the new primary's, or its log since then says it cannot (the new
// timeline forked off before its recovery point, or its starting point
// is not in the primary's history: it received WAL past the promotion
// point). A replica that diverged can stream the old timeline up to the
// fork for a moment, so streaming alone is no proof.
func (pc *Cluster) followState(ctx context.Context, primary, replica string, tli uint64, since time.Time, bound time.Duration) int {
	if _, err := pc.Node(replica); err != nil {
		return unknown_
	}
	deadline := time.Now().Add(bound)
	for polls := 1; ; polls++ {
		if polls%5 == 0 || time.Now().After(deadline) {
			if logs, err := pc.LogsSince(ctx, replica, since); err == nil && cannotFollow(logs) != "" {
				return diverged_
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return unknown_
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		got, err := pc.streamedTimeline(cctx, replica)
		cancel()
		if err == nil && tli != 0 && got == tli {
			return following_
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// follow points replica r at the new primary p: a replication slot of its
// own on p, and primary_conninfo and primary_slot_name changed and
// reloaded on r, which then follows p's new timeline (recovery_target_timeline
// is latest by default).
func (pc *Cluster) follow(ctx context.Context, r string, p *docker.Node) error {
	slot, err := pc.ensureSlot(ctx, p.Name, r)
	if err != nil {
		return err
	}
	conninfo := fmt.Sprintf("host=%s port=%d user=postgres application_name=%s", p.IP, postgresPort, r)
	for _, q := range []string{
		`ALTER SYSTEM SET primary_conninfo = ` + quote(conninfo),
		`ALTER SYSTEM SET primary_slot_name = ` + quote(slot),
		`SELECT pg_reload_conf()`,
	} {
		if err := pc.exec(ctx, r, q); err != nil {
			return err
		}
	}
	return nil
}

// standbys returns the nodes of candidates that answer and are in
// recovery, and why the others are not.
func (pc *Cluster) standbys(ctx context.Context, candidates []string) ([]string, string) {
	var alive, why []string
	for _, r := range candidates {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var rec bool
		err := pc.query(cctx, r, `SELECT pg_is_in_recovery()`, &rec)
		cancel()
		switch {
		case err != nil:
			why = append(why, err.Error())
		case !rec:
			why = append(why, r+" is not in recovery (a second primary?)")
		default:
			alive = append(alive, r)
		}
	}
	return alive, strings.Join(why, "; ")
}

// mostAdvanced returns the replica that has received (or replayed) the
// most WAL; a replica that does not answer is passed over.
func (pc *Cluster) mostAdvanced(ctx context.Context, replicas []string) (string, error) {
	best, bestLSN := "", uint64(0)
	var errs []error
	for _, r := range replicas {
		var recv, replay *string
		err := pc.query(ctx, r, `SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text`, &recv, &replay)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
			continue
		}
		lsn := max(parseLSN(recv), parseLSN(replay))
		if best == "" || lsn > bestLSN {
			best, bestLSN = r, lsn
		}
	}
	if best == "" {
		return "", fmt.Errorf("no replica answered: %w", errors.Join(errs...))
	}
	return best, nil
}

// Lag pauses (on) or resumes (off) WAL replay on a replica
// (pg_wal_replay_pause / pg_wal_replay_resume): it goes on receiving WAL
// and serving reads, ever staler. Resuming a node that is down or no
// longer in recovery (promoted since) succeeds and does nothing.
func (pc *Cluster) Lag(node string, on bool) error {
	if _, err := pc.Node(node); err != nil {
		return err
	}
	ctx, cancel := docker.FaultContext()
	defer cancel()
	if !on && (pc.isFenced(node) || node == pc.Primary()) {
		return nil
	}
	q := `SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()`
	if on {
		q = `SELECT pg_wal_replay_pause()`
	}
	if err := pc.exec(ctx, node, q); err != nil {
		if run, _, rerr := pc.State(ctx, node); !on && rerr == nil && !run {
			return nil // down: a restart replays anyway
		}
		return fmt.Errorf("lag %s: %w", node, err)
	}
	return nil
}
