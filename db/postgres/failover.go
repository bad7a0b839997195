package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Start starts a killed node again and waits until it accepts
// connections. An old primary that a failover killed stays down and Start
// returns nil: it would come back as a second primary with writes no
// replica has, and does not rejoin without pg_rewind.
func (pc *PostgresCluster) Start(node string) error {
	if pc.isFenced(node) {
		return nil
	}
	return pc.Cluster.Start(node)
}

// Pause freezes node; an old primary a failover killed is left as it is.
func (pc *PostgresCluster) Pause(node string) error {
	if pc.isFenced(node) {
		return nil
	}
	return pc.Cluster.Pause(node)
}

func (pc *PostgresCluster) isFenced(node string) bool {
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
// [PostgresCluster.FailoverTo]), sets the synchronous standbys left, and
// only then reports it as [PostgresCluster.Primary], so that writers
// that reconnect find it. It returns the old primary and the new one ("" if
// none was promoted). Nothing changes when no candidate answers as a
// replica; it fails when no replica is left to promote.
func (pc *PostgresCluster) Failover() (old, promoted string, err error) {
	return pc.FailoverTo("")
}

// FailoverTo is [PostgresCluster.Failover] promoting node, or choosing as
// Failover does when node is empty. Promoting a replica that is behind (an
// asynchronous one, or a standby that is not synchronous) loses the writes
// it had not received, acknowledged or not, and a replica that had received
// more than it cannot follow it: when its log says so, that replica is
// rewound (pg_rewind from the new primary, or a clone if that fails) and
// loses the difference too, and the progress writer ([Cluster.SetProgress])
// says so. A replica that does not follow within 15 s for another reason
// (paused, cut off, a long apply delay) is left as it is, and the error
// names it.
func (pc *PostgresCluster) FailoverTo(node string) (old, promoted string, err error) {
	pc.fmu.Lock()
	defer pc.fmu.Unlock()
	ctx, cancel := faultCtx()
	defer cancel()
	old = pc.Primary()
	replicas := pc.Replicas()
	syncCommit, syncStandbys := pc.Sync()
	if node != "" && !slices.Contains(replicas, node) {
		return old, "", fmt.Errorf("failover to %s: not a replica of cluster %s (replicas: %s)", node, pc.name, orNone(replicas))
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
	ctx, cancelRest := faultCtx()
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
		n, err := pc.Node(r)
		if err == nil {
			pc.setFenced(r, true)
			if err = pc.Cluster.Kill(r); err != nil {
				pc.setFenced(r, false)
			}
		}
		if err == nil {
			rctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			var how string
			how, err = pc.rejoin(rctx, n, promoted, "rewind")
			cancel()
			if err == nil {
				pc.notef("failover: %s had received WAL past the promotion point of %s (its log says so); rejoined by %s, it follows %s", r, promoted, how, promoted)
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

// firstOf is synchronous_standby_names waiting for every one of names
// ("" for none).
func firstOf(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("FIRST %d (%s)", len(names), strings.Join(names, ", "))
}

// setStandbyNames sets and reloads node's synchronous_standby_names.
func (pc *PostgresCluster) setStandbyNames(ctx context.Context, node, names string) error {
	if err := pc.exec(ctx, node, `ALTER SYSTEM SET synchronous_standby_names = `+quote(names)); err != nil {
		return fmt.Errorf("synchronous standbys of %s: %w", node, err)
	}
	if err := pc.exec(ctx, node, `SELECT pg_reload_conf()`); err != nil {
		return fmt.Errorf("reload %s: %w", node, err)
	}
	return nil
}

// ensureSlot makes sure primary has node's replication slot, and returns
// its name.
func (pc *PostgresCluster) ensureSlot(ctx context.Context, primary, node string) (string, error) {
	slot := "eccheck_" + node
	err := pc.exec(ctx, primary, `SELECT pg_create_physical_replication_slot(`+quote(slot)+`, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = `+quote(slot)+`)`)
	return slot, err
}

// streamedTimeline returns the timeline node's walreceiver is streaming,
// or 0 when it is not streaming.
func (pc *PostgresCluster) streamedTimeline(ctx context.Context, node string) (uint64, error) {
	var tli int64
	err := pc.query(ctx, node, `SELECT coalesce((SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'), 0)::bigint`, &tli)
	return uint64(tli), err
}

// cutOff reports whether a partition in force separates a and b.
func (pc *PostgresCluster) cutOff(a, b string) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return slices.Contains(pc.grudge[a], b) || slices.Contains(pc.grudge[b], a)
}

// timeline returns the timeline node writes WAL on now (from the name of
// its current WAL file).
func (pc *PostgresCluster) timeline(ctx context.Context, node string) (uint64, error) {
	var file string
	if err := pc.query(ctx, node, `SELECT pg_walfile_name(pg_current_wal_lsn())`, &file); err != nil {
		return 0, err
	}
	if len(file) < 8 {
		return 0, fmt.Errorf("timeline of %s: WAL file name %q", node, file)
	}
	return strconv.ParseUint(file[:8], 16, 32)
}

// LastRewound returns the replicas the last failover rewound: they had
// received WAL past its promotion point, and lost it.
func (pc *PostgresCluster) LastRewound() []string {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	return slices.Clone(pc.rewound)
}

// setFenced marks node as an old primary that stays down, or not.
func (pc *PostgresCluster) setFenced(node string, on bool) {
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
func (pc *PostgresCluster) promote(node string) error {
	n, err := pc.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := pc.detach(ctx, node); err != nil {
		pc.notef("promote %s: %v; promoting it anyway", node, err)
	}
	first := pc.promoteOnce(ctx, node)
	if first == nil {
		return nil
	}
	logs, _ := pc.c.logs(ctx, n.ID, "20")
	pc.notef("promote %s: %v; restarting it to promote it again; its last log lines:\n%s", node, first, indent(logs))
	if err := pc.Cluster.Kill(node); err != nil {
		return fmt.Errorf("promote %s: %w (and it could not be killed to restart it: %v); its last log lines:\n%s", node, first, err, indent(logs))
	}
	if err := pc.Cluster.Start(node); err != nil {
		return fmt.Errorf("promote %s: %w; then restarting it failed: %v", node, first, err)
	}
	if err := pc.promoteOnce(ctx, node); err != nil {
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		logs, _ = pc.c.logs(lctx, n.ID, "20")
		return fmt.Errorf("promote %s: %w; restarted, again: %v; its last log lines:\n%s", node, first, err, indent(logs))
	}
	pc.notef("promote %s: promoted after the restart", node)
	return nil
}

// detach stops node's replication from its primary: primary_conninfo
// emptied and reloaded, then a wait (up to 5 s) until it has no
// walreceiver.
func (pc *PostgresCluster) detach(ctx context.Context, node string) error {
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
func (pc *PostgresCluster) promoteOnce(ctx context.Context, node string) error {
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

// What [PostgresCluster.followState] saw of a replica.
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
func (pc *PostgresCluster) followState(ctx context.Context, primary, replica string, tli uint64, since time.Time, bound time.Duration) int {
	n, err := pc.Node(replica)
	if err != nil {
		return unknown_
	}
	deadline := time.Now().Add(bound)
	for polls := 1; ; polls++ {
		if polls%5 == 0 || time.Now().After(deadline) {
			if logs, err := pc.c.logsSince(ctx, n.ID, since); err == nil && cannotFollow(logs) != "" {
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
func (pc *PostgresCluster) follow(ctx context.Context, r string, p *Node) error {
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
func (pc *PostgresCluster) standbys(ctx context.Context, candidates []string) ([]string, string) {
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
func (pc *PostgresCluster) mostAdvanced(ctx context.Context, replicas []string) (string, error) {
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

// parseLSN reads a WAL position such as "0/3000148"; nil or unreadable is
// 0.
func parseLSN(s *string) uint64 {
	if s == nil {
		return 0
	}
	hi, lo, ok := strings.Cut(*s, "/")
	if !ok {
		return 0
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0
	}
	return h<<32 | l
}

// quote makes s a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// exec runs one statement on node.
func (pc *PostgresCluster) exec(ctx context.Context, node, q string) error {
	return pc.query(ctx, node, q)
}

// query runs one statement on a Postgres node through its published port
// and scans its single row into dest (nothing to scan: the statement is
// executed).
func (cl *Cluster) query(ctx context.Context, node, q string, dest ...any) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresDSN(n.HostPort))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", node, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if len(dest) == 0 {
		_, err = conn.Exec(ctx, q)
	} else {
		err = conn.QueryRow(ctx, q).Scan(dest...)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", q, node, err)
	}
	return nil
}

// DB returns the store the cluster's nodes run: DBEcstore or DBPostgres.
func (cl *Cluster) DB() string {
	if cl.ecstore() {
		return DBEcstore
	}
	return cl.db
}

// PostgresRoles asks each running node of a Postgres cluster whether it is
// in recovery: "primary" or "replica" for each node that answers (two
// primaries are a split brain), the container state for the others, and
// "no answer" for a running node that does not answer.
func (cl *Cluster) PostgresRoles(ctx context.Context) map[string]string {
	roles := map[string]string{}
	for _, n := range cl.nodes {
		if n.State != "running" {
			roles[n.Name] = n.State
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var rec bool
		err := cl.query(cctx, n.Name, `SELECT pg_is_in_recovery()`, &rec)
		cancel()
		switch {
		case err != nil:
			roles[n.Name] = "no answer"
		case rec:
			roles[n.Name] = "replica"
		default:
			roles[n.Name] = "primary"
		}
	}
	return roles
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// OpenPostgres finds the running Postgres cluster name by its labels, as
// [Client.Open] does, and asks its running nodes which one is the primary
// (pg_is_in_recovery() false) and, of that primary, which standbys it
// waits for. Nodes that are down count as fenced: a failover does not
// promote them. Which old primaries a failover killed is not kept
// anywhere: starting one by hand brings back a second primary.
func (c *Client) OpenPostgres(ctx context.Context, name string) (*PostgresCluster, error) {
	cl, err := c.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	if cl.db != DBPostgres {
		return nil, fmt.Errorf("cluster %s runs %s, not postgres", name, cl.db)
	}
	pc := &PostgresCluster{Cluster: cl, fenced: map[string]bool{}}
	var primaries, errs []string
	for _, n := range cl.nodes {
		if n.State != "running" {
			// Down: an old primary, or a killed replica; neither is
			// promoted.
			pc.fenced[n.Name] = true
			continue
		}
		var rec bool
		if err := pc.query(ctx, n.Name, `SELECT pg_is_in_recovery()`, &rec); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if !rec {
			primaries = append(primaries, n.Name)
		}
	}
	switch len(primaries) {
	case 0:
		return nil, fmt.Errorf("cluster %s: no running node is a primary (%s)", name, orNone(errs))
	case 1:
		pc.primary = primaries[0]
	default:
		return nil, fmt.Errorf("cluster %s: %s all take writes (an old primary started again after a failover?): keep the one with the newer timeline ('eccheck cluster status'), kill the others ('eccheck nemesis kill --node NODE') and bring them back with 'eccheck nemesis rejoin --node NODE'", name, strings.Join(primaries, " and "))
	}
	var commit, names string
	if err := pc.query(ctx, pc.primary, `SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')`, &commit, &names); err != nil {
		return nil, err
	}
	if standbys := parseStandbyNames(names); len(standbys) > 0 {
		pc.syncCommit, pc.syncStandbys = commit, standbys
		// Every node but the primary and those down waits: as if none was named.
		pc.syncAll = slices.Equal(standbys, pc.Replicas())
	}
	return pc, nil
}

// parseStandbyNames reads the node names of synchronous_standby_names as
// eccheck writes it: "FIRST k (n2, n3)", or a bare list.
func parseStandbyNames(s string) []string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
		s = s[i+1 : len(s)-1]
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.Trim(strings.TrimSpace(n), `"`); n != "" {
			out = append(out, n)
		}
	}
	return out
}

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
func (pc *PostgresCluster) Rejoin(node string, clone bool) (how string, err error) {
	pc.fmu.Lock()
	defer pc.fmu.Unlock()
	n, err := pc.Node(node)
	if err != nil {
		return "", err
	}
	if !pc.isFenced(node) {
		return "", fmt.Errorf("rejoin %s: it is not down after a failover (replicas: %s)", node, orNone(pc.Replicas()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if run, _, err := pc.running(ctx, n); err != nil {
		return "", fmt.Errorf("rejoin %s: %w", node, err)
	} else if run {
		return "", fmt.Errorf("rejoin %s: it is running (a second primary?); kill it first ('eccheck nemesis kill --node %s')", node, node)
	}
	mode := ""
	if clone {
		mode = "clone"
	}
	primary := pc.Primary()
	if how, err = pc.rejoin(ctx, n, primary, mode); err != nil {
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
// [PostgresCluster.Rejoin]); mode "clone" clones it at once, "rewind"
// runs pg_rewind even on a node that was a replica (one that received
// WAL past primary's promotion point). The caller holds fmu.
func (pc *PostgresCluster) rejoin(ctx context.Context, n *Node, primary, mode string) (how string, err error) {
	node := n.Name
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
	how, err = pc.rejoinOnce(ctx, n, primary, p.IP.String(), mode, 60*time.Second)
	if err != nil && mode != "clone" {
		// A rewound node that cannot follow (the WAL it needs is gone,
		// say) is cloned instead; its data directory is thrown away
		// either way.
		first, firstHow := err, how
		if kerr := pc.Cluster.Kill(node); kerr != nil {
			return "", killedAgainErr(node, first, kerr)
		}
		how, err = pc.rejoinOnce(ctx, n, primary, p.IP.String(), "clone", 90*time.Second)
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
// primary at ip and the mode (see [PostgresCluster.rejoin]), and waits
// (within bound) until it is a replica streaming primary's timeline. It
// returns how the node's script rejoined, from its log, and leaves n
// running whatever happens.
func (pc *PostgresCluster) rejoinOnce(ctx context.Context, n *Node, primary, ip, mode string, bound time.Duration) (string, error) {
	tli, err := pc.timeline(ctx, primary)
	if err != nil {
		return "", err
	}
	// The generation only has to differ from the last one the node
	// applied, whichever process wrote that.
	started := time.Now()
	gen := started.UnixNano()
	if err := pc.c.writeEccheckFile(ctx, n.ID, "rejoin", fmt.Appendf(nil, "%d %s %s\n", gen, ip, mode)); err != nil {
		return "", err
	}
	if err := pc.c.startNodes(ctx, []*Node{n}); err != nil {
		return "", err
	}
	if err := pc.partitionAgain(ctx, n); err != nil {
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
		logs, err := pc.c.logsSince(ctx, n.ID, started)
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
	err = pc.pollNode(wctx, n, time.Now().Add(bound), bound, 200*time.Millisecond, func() (bool, string) {
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
		if err := pc.query(cctx, n.Name, `SELECT pg_is_in_recovery()`, &rec); err != nil {
			return false, err.Error()
		}
		if !rec {
			why = "it came up as a primary, not a replica (split brain avoided)"
			stop()
			return false, why
		}
		got, err := pc.streamedTimeline(cctx, n.Name)
		if err != nil {
			return false, err.Error()
		}
		return got == tli, fmt.Sprintf("a replica, not yet streaming timeline %d from %s", tli, primary)
	})
	readLog(ctx)
	if err != nil && why != "" {
		logs, _ := pc.c.logs(ctx, n.ID, "20")
		err = fmt.Errorf("%s; its last log lines:\n%s", why, indent(logs))
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

// Lag pauses (on) or resumes (off) WAL replay on a replica
// (pg_wal_replay_pause / pg_wal_replay_resume): it goes on receiving WAL
// and serving reads, ever staler. Resuming a node that is down or no
// longer in recovery (promoted since) succeeds and does nothing.
func (pc *PostgresCluster) Lag(node string, on bool) error {
	if _, err := pc.Node(node); err != nil {
		return err
	}
	ctx, cancel := faultCtx()
	defer cancel()
	if !on && (pc.isFenced(node) || node == pc.Primary()) {
		return nil
	}
	q := `SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()`
	if on {
		q = `SELECT pg_wal_replay_pause()`
	}
	if err := pc.exec(ctx, node, q); err != nil {
		n, _ := pc.Node(node)
		if run, _, rerr := pc.running(ctx, n); !on && rerr == nil && !run {
			return nil // down: a restart replays anyway
		}
		return fmt.Errorf("lag %s: %w", node, err)
	}
	return nil
}
