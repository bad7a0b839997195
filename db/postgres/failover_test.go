package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/moby/moby/client"

	"github.com/eccheck/eccheck/history"
)

// primaryClient is a register client that writes and reads on whatever
// node is the cluster's primary when it connects.
func primaryClient(pc *Cluster, timeout time.Duration) *Client {
	return NewClient("", ClientOptions{Timeout: timeout, Primary: func() (string, string) {
		p := pc.Primary()
		return pc.DSN(p), p
	}})
}

// pgDo runs one operation on key k and returns its completion.
func pgDo(c *Client, f string, v history.Value) history.Op {
	return c.Invoke(context.Background(), history.Op{Process: 1, Type: history.Invoke, F: f, Key: "k", Value: v})
}

// readUntilOK reads k through c until a read succeeds (the first after a
// failover finds its connection gone).
func readUntilOK(t *testing.T, c *Client) history.Op {
	t.Helper()
	var op history.Op
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if op = pgDo(c, "read", history.Nil()); op.Type == history.OK {
			return op
		}
	}
	t.Fatalf("no read succeeded in 30 s (last: %s %s)", op.Type, op.Error)
	return op
}

// running reports whether node's container runs.
func nodeRunning(t *testing.T, pc *Cluster, node string) bool {
	t.Helper()
	n, err := pc.Node(node)
	if err != nil {
		t.Fatal(err)
	}
	insp, err := pc.Engine().API().ContainerInspect(context.Background(), n.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return insp.Container.State != nil && insp.Container.State.Running
}

// TestPostgresAsyncFailoverLosesAckedWrite: with asynchronous replication
// the primary, cut off from its replicas, acknowledges a write that no
// replica receives; after the failover that write is gone, though the
// client was told it committed. The old primary stays down (Start does not
// bring it back), the promoted replica takes writes, and the other replica
// follows it.
func TestPostgresAsyncFailoverLosesAckedWrite(t *testing.T) {
	pc := upPG(t, "fo", Options{Nodes: 3})
	c := primaryClient(pc, 3*time.Second)
	defer c.Close(context.Background())
	if op := pgDo(c, "write", history.Int(1)); op.Type != history.OK || op.Node != "n1" {
		t.Fatalf("write 1 on n1: %+v", op)
	}
	for _, r := range pc.Replicas() {
		waitRead(t, NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN(r), ReadNode: r}), history.Int(1))
	}
	if err := pc.Partition(isolate3("n1")); err != nil {
		t.Fatal(err)
	}
	if op := pgDo(c, "write", history.Int(2)); op.Type != history.OK {
		t.Fatalf("write 2 on the cut-off primary: %+v, want ok (asynchronous)", op)
	}
	start := time.Now()
	old, promoted, err := pc.Failover()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover %s -> %s in %v", old, promoted, time.Since(start).Round(time.Millisecond))
	if old != "n1" || promoted == "n1" || pc.Primary() != promoted || strings.Join(pc.Fenced(), ",") != "n1" {
		t.Fatalf("failover %s -> %s, Primary %s, Fenced %v", old, promoted, pc.Primary(), pc.Fenced())
	}
	if err := pc.Heal(); err != nil {
		t.Fatal(err)
	}
	again, err := reopen(pc)
	if err != nil || again.Primary() != promoted {
		t.Fatalf("OpenPostgres after the failover: %v, primary %v; want %s", err, again, promoted)
	}
	if err := pc.Start("n1"); err != nil || nodeRunning(t, pc, "n1") {
		t.Fatalf("Start(n1) = %v, running %v: the old primary must stay down", err, nodeRunning(t, pc, "n1"))
	}
	if op := readUntilOK(t, c); op.Node != promoted || !op.Value.Equal(history.Int(1)) {
		t.Fatalf("read after the failover: %+v, want 1 from %s (the acknowledged write of 2 lost)", op, promoted)
	}
	if op := pgDo(c, "write", history.Int(3)); op.Type != history.OK || op.Node != promoted {
		t.Fatalf("write 3 on the new primary: %+v", op)
	}
	other := pc.Replicas()
	if len(other) != 1 {
		t.Fatalf("replicas after the failover: %v, want one", other)
	}
	waitRead(t, NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN(other[0]), ReadNode: other[0]}), history.Int(3))
	if _, _, err := pc.Failover(); err != nil {
		t.Fatalf("second failover: %v", err)
	}
	if _, _, err := pc.Failover(); err == nil || !strings.Contains(err.Error(), "no replica left") {
		t.Fatalf("third failover of 3 nodes = %v, want no replica left", err)
	}
}

// isolate3 cuts node off from the other two of n1..n3, both ways.
func isolate3(node string) map[string][]string {
	g := map[string][]string{}
	for _, o := range []string{"n1", "n2", "n3"} {
		if o != node {
			g[node] = append(g[node], o)
			g[o] = []string{node}
		}
	}
	return g
}

// TestPostgresSyncFailoverKeepsAckedWrites: with remote_apply and every
// replica a synchronous standby, the cut-off primary acknowledges nothing:
// the write's wait for the standbys is cancelled at the client's timeout
// and Postgres answers with its warning that the transaction committed
// locally but might not have been replicated, which the adapter records as
// info, never ok. After the failover every acknowledged write is there,
// the new primary waits for the standby that is left, and that standby
// follows it.
func TestPostgresSyncFailoverKeepsAckedWrites(t *testing.T) {
	pc := upPG(t, "sfo", Options{Nodes: 3, Sync: SyncRemoteApply})
	c := primaryClient(pc, 2*time.Second)
	defer c.Close(context.Background())
	if op := pgDo(c, "write", history.Int(1)); op.Type != history.OK {
		t.Fatalf("write 1: %+v", op)
	}
	if err := pc.Partition(isolate3("n1")); err != nil {
		t.Fatal(err)
	}
	op := pgDo(c, "write", history.Int(2))
	if op.Type != history.Info || !strings.Contains(op.Error, "committed locally") {
		t.Fatalf("write 2 on the cut-off primary: %s %q, want info with Postgres's committed-locally warning", op.Type, op.Error)
	}
	t.Logf("write 2: %s %s", op.Type, op.Error)
	_, promoted, err := pc.Failover()
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Heal(); err != nil {
		t.Fatal(err)
	}
	if op := readUntilOK(t, c); !op.Value.Equal(history.Int(1)) {
		t.Fatalf("read after the failover: %+v, want 1 (acknowledged; 2 was never acknowledged)", op)
	}
	other := pc.Replicas()[0]
	if again, err := reopen(pc); err != nil || again.Primary() != promoted || strings.Join(again.syncStandbys, ",") != other || again.syncCommit != SyncRemoteApply {
		t.Fatalf("OpenPostgres after the failover: %v; want primary %s waiting for %s", err, promoted, other)
	}
	var names string
	pgQuery(t, pc.PrimaryDSN(), "SELECT current_setting('synchronous_standby_names')", &names)
	if names != "FIRST 1 ("+other+")" {
		t.Fatalf("%s waits for %q, want FIRST 1 (%s)", promoted, names, other)
	}
	// An acknowledged write on the new primary was applied on the standby
	// left: it follows the new primary, synchronously.
	var w history.Op
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if w = pgDo(c, "write", history.Int(3)); w.Type == history.OK {
			break
		}
	}
	if w.Type != history.OK {
		t.Fatalf("write 3 on %s: %+v", promoted, w)
	}
	var v string
	pgQuery(t, pc.DSN(other), "SELECT v::text FROM registers WHERE k = 'k'", &v)
	if v != "3" {
		t.Fatalf("%s right after the acknowledged write of 3 holds %s", other, v)
	}
}

// TestPostgresNodeFaults runs the generic faults on Postgres nodes: a
// replica cut off from the primary stops replaying and catches up after
// the heal; a replica whose replay is paused serves old values until it
// resumes; a killed primary restarts with its acknowledged writes; a
// paused replica answers again after resume; a clock offset through
// libfaketime shows in now() and goes away at 0.
func TestPostgresNodeFaults(t *testing.T) {
	pc := upPG(t, "nf", Options{Nodes: 3, FakeTime: true})
	c := primaryClient(pc, 3*time.Second)
	defer c.Close(context.Background())
	onN2 := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n2"), ReadNode: "n2"})
	defer onN2.Close(context.Background())
	pgDo(c, "write", history.Int(1))
	waitRead(t, onN2, history.Int(1))

	// Partition: n2 misses the write until the heal.
	if err := pc.Partition(map[string][]string{"n2": {"n1"}, "n1": {"n2"}}); err != nil {
		t.Fatal(err)
	}
	if op := pgDo(c, "write", history.Int(2)); op.Type != history.OK {
		t.Fatalf("write 2: %+v", op)
	}
	time.Sleep(time.Second)
	if op := pgDo(onN2, "read", history.Nil()); op.Type != history.OK || !op.Value.Equal(history.Int(1)) {
		t.Fatalf("read on the cut-off n2 a second after write 2: %+v, want 1", op)
	}
	if err := pc.Heal(); err != nil {
		t.Fatal(err)
	}
	waitRead(t, onN2, history.Int(2))

	// Lag: n2 stops replaying, still serves reads, catches up on resume.
	if err := pc.Lag("n2", true); err != nil {
		t.Fatal(err)
	}
	if op := pgDo(c, "write", history.Int(7)); op.Type != history.OK {
		t.Fatalf("write 7: %+v", op)
	}
	time.Sleep(500 * time.Millisecond)
	if op := pgDo(onN2, "read", history.Nil()); op.Type != history.OK || !op.Value.Equal(history.Int(2)) {
		t.Fatalf("read on the lagging n2 half a second after write 7: %+v, want 2", op)
	}
	if err := pc.Lag("n2", false); err != nil {
		t.Fatal(err)
	}
	waitRead(t, onN2, history.Int(7))
	if op := pgDo(c, "write", history.Int(2)); op.Type != history.OK {
		t.Fatalf("write 2 again: %+v", op)
	}
	if err := pc.Lag("n1", false); err != nil {
		t.Fatalf("resume on the primary (nothing to resume) = %v, want nil", err)
	}

	// Kill and start the primary: the acknowledged write survives.
	if err := pc.Kill("n1"); err != nil {
		t.Fatal(err)
	}
	if op := pgDo(c, "read", history.Nil()); op.Type == history.OK {
		t.Fatalf("read on the killed primary: %+v, want fail", op)
	}
	if err := pc.Start("n1"); err != nil {
		t.Fatal(err)
	}
	if op := readUntilOK(t, c); !op.Value.Equal(history.Int(2)) {
		t.Fatalf("read after the restart: %+v, want 2", op)
	}

	// Pause and resume a replica.
	if err := pc.Pause("n3"); err != nil {
		t.Fatal(err)
	}
	onN3 := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n3"), ReadNode: "n3", Timeout: time.Second})
	defer onN3.Close(context.Background())
	if op := pgDo(onN3, "read", history.Nil()); op.Type != history.Fail {
		t.Fatalf("read on the paused n3: %+v, want fail", op)
	}
	if err := pc.Resume("n3"); err != nil {
		t.Fatal(err)
	}
	waitRead(t, onN3, history.Int(2))

	// Clock: n2's processes see an hour ahead, then the real time again.
	// A connection made the instant the clock jumps an hour may be reset
	// (seen once: the backend's own timers read the jumped clock); what
	// the test asks is where the clock is, so it asks again, for a while.
	skew := func() time.Duration {
		var ts time.Time
		var err error
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if err = pgQueryErr(pc.DSN("n2"), "SELECT clock_timestamp()", &ts); err == nil || time.Now().After(deadline) {
				break
			}
			t.Logf("asking n2 for its clock: %v (again)", err)
		}
		if err != nil {
			t.Fatalf("n2's clock: %v", err)
		}
		return time.Until(ts)
	}
	if err := pc.SetClock("n2", time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := skew(); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("n2's clock after +1h: %v ahead", d)
	}
	if err := pc.SetClock("n2", 0); err != nil {
		t.Fatal(err)
	}
	if d := skew(); d < -time.Minute || d > time.Minute {
		t.Fatalf("n2's clock after reset: %v ahead", d)
	}
	waitRead(t, onN2, history.Int(2))
}

// TestPostgresRejoin: an old primary started plainly after a failover comes
// back as a second primary with the write only it had (split brain); killed
// again and rejoined, it runs pg_rewind, throws that write away, follows
// the new primary, and can be promoted by the next failover.
func TestPostgresRejoin(t *testing.T) {
	pc := upPG(t, "rj", Options{Nodes: 3})
	c := primaryClient(pc, 3*time.Second)
	defer c.Close(context.Background())
	pgDo(c, "write", history.Int(1))
	for _, r := range pc.Replicas() {
		waitRead(t, NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN(r), ReadNode: r}), history.Int(1))
	}
	if err := pc.Partition(isolate3("n1")); err != nil {
		t.Fatal(err)
	}
	if op := pgDo(c, "write", history.Int(2)); op.Type != history.OK {
		t.Fatalf("write 2 on the cut-off n1: %+v", op)
	}
	_, promoted, err := pc.Failover()
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Heal(); err != nil {
		t.Fatal(err)
	}
	onN1 := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n1"), ReadNode: "n1", Timeout: 3 * time.Second})
	defer onN1.Close(context.Background())

	// Started by hand, past the fence: a second primary.
	if err := pc.Cluster.Start("n1"); err != nil {
		t.Fatal(err)
	}
	var rec bool
	pgQuery(t, pc.DSN("n1"), "SELECT pg_is_in_recovery()", &rec)
	if rec {
		t.Fatal("n1 started plainly after the failover is in recovery; want a second primary")
	}
	waitRead(t, onN1, history.Int(2))
	// Taken over by another command, the cluster still opens (status,
	// logs and faults by hand work), but a failover refuses, naming both.
	two, err := reopen(pc)
	if err != nil {
		t.Fatalf("Open with two primaries: %v, want the cluster for status and faults", err)
	}
	if _, _, err := two.Failover(); err == nil || !strings.Contains(err.Error(), "all take writes") {
		t.Fatalf("Failover with two primaries = %v, want an error naming both", err)
	}
	if _, err := pc.Rejoin("n1", false); err == nil || !strings.Contains(err.Error(), "kill it first") {
		t.Fatalf("Rejoin of the running n1 = %v, want kill it first", err)
	}

	// Killed and rejoined: pg_rewind, then a replica of the new primary.
	if err := pc.Cluster.Kill("n1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if how, err := pc.Rejoin("n1", false); err != nil || how != "pg_rewind" {
		logs, _ := pc.Logs(context.Background(), "n1")
		t.Fatalf("Rejoin(n1) = %q, %v; want pg_rewind\n%s", how, err, logs)
	}
	t.Logf("n1 rejoined in %v", time.Since(start).Round(time.Millisecond))
	pgQuery(t, pc.DSN("n1"), "SELECT pg_is_in_recovery()", &rec)
	if !rec || !slices.Contains(pc.Replicas(), "n1") || len(pc.Fenced()) != 0 {
		t.Fatalf("after Rejoin: n1 in recovery %v, replicas %v, fenced %v", rec, pc.Replicas(), pc.Fenced())
	}
	if op := pgDo(c, "read", history.Nil()); op.Type == history.OK && !op.Value.Equal(history.Int(1)) {
		t.Fatalf("read on %s: %+v, want 1", promoted, op)
	}
	waitRead(t, onN1, history.Int(1)) // its own write of 2 is gone
	if op := readUntilOK(t, c); op.Node != promoted {
		t.Fatalf("primary read from %s, want %s", op.Node, promoted)
	}
	if op := pgDo(c, "write", history.Int(3)); op.Type != history.OK {
		t.Fatalf("write 3 on %s: %+v", promoted, op)
	}
	waitRead(t, onN1, history.Int(3))
	logs, _ := pc.Logs(context.Background(), "n1")
	if !strings.Contains(logs, "rejoining as a replica") || !strings.Contains(logs, "pg_rewind") {
		t.Errorf("n1's log does not show the rewind:\n%s", logs)
	}
	// A killed replica (standby.signal in its data directory) rejoins
	// too, through a cluster opened afresh (generations differ).
	var other string
	for _, r := range pc.Replicas() {
		if r != "n1" {
			other = r
		}
	}
	if err := pc.Cluster.Kill(other); err != nil {
		t.Fatal(err)
	}
	again, err := reopen(pc)
	if err != nil {
		t.Fatal(err)
	}
	if how, err := again.Rejoin(other, false); err != nil || how != "no rewind: it was a replica" {
		logs, _ := pc.Logs(context.Background(), other)
		t.Fatalf("Rejoin(%s), a killed replica = %q, %v; want no rewind\n%s", other, how, err, logs)
	}
	onOther := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN(other), ReadNode: other})
	defer onOther.Close(context.Background())
	waitRead(t, onOther, history.Int(3))
	// Cloned afresh on request (what follows a rewind that cannot).
	if err := pc.Cluster.Kill(other); err != nil {
		t.Fatal(err)
	}
	if again, err = reopen(pc); err != nil {
		t.Fatal(err)
	}
	if how, err := again.Rejoin(other, true); err != nil || how != "pg_basebackup" {
		logs, _ := pc.Logs(context.Background(), other)
		t.Fatalf("Rejoin(%s, clone) = %q, %v; want pg_basebackup\n%s", other, how, err, logs)
	}
	if op := pgDo(c, "write", history.Int(4)); op.Type != history.OK {
		t.Fatalf("write 4 on %s: %+v", promoted, op)
	}
	waitRead(t, onOther, history.Int(4))

	// Three nodes again: two more failovers.
	var last string
	for range 2 {
		if last, _, err = pc.Failover(); err != nil {
			t.Fatalf("failover after the rejoin: %v", err)
		}
	}
	// The WAL since the last shared checkpoint recycled on the primary
	// (no wal_keep_size, segments switched and checkpointed past): the
	// old primary rewinds but cannot stream, and is cloned instead.
	ctx := context.Background()
	primary := pc.Primary()
	for _, q := range []string{`ALTER SYSTEM SET wal_keep_size = 0`, `SELECT pg_reload_conf()`, `CREATE TABLE churn (x int)`} {
		if err := pc.exec(ctx, primary, q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		for _, q := range []string{fmt.Sprintf(`INSERT INTO churn VALUES (%d)`, i), `SELECT pg_switch_wal()`, `CHECKPOINT`} {
			if err := pc.exec(ctx, primary, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	start = time.Now()
	how, err := pc.Rejoin(last, false)
	// Cloned either way: mostly after the rewind, when the node does not
	// stream; sometimes at once, when pg_rewind itself fails on a phantom
	// .s.PGSQL.5432 entry in the data directory of the primary, a node
	// that rejoined earlier (its first start after a rewind or a clone
	// leaves one, on this Docker's overlay filesystem; it cannot even be
	// removed).
	want := "pg_basebackup:"
	if err != nil || !strings.HasPrefix(how, want) {
		logs, _ := pc.Logs(ctx, last)
		t.Fatalf("Rejoin(%s) with its WAL gone = %q, %v; want %q...\n%s", last, how, err, want, logs)
	}
	t.Logf("%s rejoined in %v: %s", last, time.Since(start).Round(time.Millisecond), how)
	var rows int
	pgQuery(t, pc.DSN(last), "SELECT count(*) FROM churn", &rows)
	if rows != 4 {
		t.Fatalf("%s after the clone has %d rows of churn, want 4", last, rows)
	}
}

// freezeStartup stops a Postgres node's startup (recovery) process and
// prints its state once it shows stopped (T): a process running on a CPU
// when the signal comes stops a moment later.
const freezeStartup = `pid=$(pgrep -f '^postgres: startup')
kill -STOP $pid
for i in $(seq 50); do
  st=$(ps -o stat= -p $pid)
  case $st in T*) echo $st; exit 0;; esac
  sleep 0.1
done
echo "still $st"; exit 1`

// TestPostgresPromoteRestart: a replica whose recovery (startup) process
// is frozen cannot finish a promotion; the failover restarts it and
// promotes it again, and says so.
func TestPostgresPromoteRestart(t *testing.T) {
	pc := upPG(t, "pr", Options{Nodes: 2})
	defer func(w time.Duration) { promoteWait = w }(promoteWait)
	promoteWait = 2 * time.Second
	c := primaryClient(pc, 3*time.Second)
	defer c.Close(context.Background())
	if op := pgDo(c, "write", history.Int(1)); op.Type != history.OK {
		t.Fatalf("write 1: %+v", op)
	}
	waitRead(t, NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n2"), ReadNode: "n2"}), history.Int(1))
	n2, _ := pc.Node("n2")
	out, err := pc.RunHelper(context.Background(), "n2", []string{"sh", "-c", freezeStartup}, &container.HostConfig{
		PidMode:     container.PidMode("container:" + n2.ID),
		NetworkMode: "none",
		CapDrop:     []string{"ALL"},
		CapAdd:      []string{"KILL"},
	})
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "T") {
		t.Fatalf("freeze n2's startup process: %v, ps says %q", err, out)
	}
	var notes bytes.Buffer
	pc.SetProgress(&notes)
	old, promoted, err := pc.Failover()
	if err != nil || old != "n1" || promoted != "n2" {
		t.Fatalf("Failover() = %s, %s, %v; want n1, n2", old, promoted, err)
	}
	if !strings.Contains(notes.String(), "restarting it to promote it again") || !strings.Contains(notes.String(), "promoted after the restart") {
		t.Errorf("progress notes do not tell of the restart:\n%s", notes.String())
	}
	if op := readUntilOK(t, c); op.Node != "n2" || !op.Value.Equal(history.Int(1)) {
		t.Fatalf("read after the failover: %+v, want 1 from n2", op)
	}
	if op := pgDo(c, "write", history.Int(2)); op.Type != history.OK {
		t.Fatalf("write 2 on n2: %+v", op)
	}
}

// TestPostgresFailoverRewindsDivergedReplica: promoting a replica that is
// behind (cut off from the primary while n2 received a write) leaves n2
// with WAL past the promotion point; the failover rewinds n2 from the new
// primary, so that it follows again, without the write the new primary
// never had.
func TestPostgresFailoverRewindsDivergedReplica(t *testing.T) {
	pc := upPG(t, "dv", Options{Nodes: 3})
	c := primaryClient(pc, 3*time.Second)
	defer c.Close(context.Background())
	onN2 := NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n2"), ReadNode: "n2"})
	defer onN2.Close(context.Background())
	if op := pgDo(c, "write", history.Int(1)); op.Type != history.OK {
		t.Fatalf("write 1: %+v", op)
	}
	for _, r := range pc.Replicas() {
		waitRead(t, NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN(r), ReadNode: r}), history.Int(1))
	}
	if err := pc.Partition(map[string][]string{"n1": {"n3"}, "n3": {"n1"}}); err != nil {
		t.Fatal(err)
	}
	if op := pgDo(c, "write", history.Int(2)); op.Type != history.OK {
		t.Fatalf("write 2: %+v", op)
	}
	waitRead(t, onN2, history.Int(2))
	var notes bytes.Buffer
	pc.SetProgress(&notes)
	start := time.Now()
	old, promoted, err := pc.FailoverTo("n3")
	if err != nil || old != "n1" || promoted != "n3" {
		t.Fatalf("FailoverTo(n3) = %s, %s, %v; want n1, n3\n%s", old, promoted, err, notes.String())
	}
	t.Logf("failover to the behind n3 in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(notes.String()))
	if !strings.Contains(notes.String(), "n2 had received WAL past the promotion point of n3") || !strings.Contains(notes.String(), "rejoined by pg_rewind") {
		t.Errorf("progress notes do not tell of n2's rewind:\n%s", notes.String())
	}
	if !slices.Equal(pc.LastRewound(), []string{"n2"}) {
		t.Errorf("LastRewound() = %v, want n2", pc.LastRewound())
	}
	if !slices.Equal(pc.Replicas(), []string{"n2"}) || !slices.Equal(pc.Fenced(), []string{"n1"}) {
		t.Fatalf("after the failover: replicas %v, fenced %v; want n2, n1", pc.Replicas(), pc.Fenced())
	}
	if err := pc.Heal(); err != nil {
		t.Fatal(err)
	}
	waitRead(t, onN2, history.Int(1)) // the write of 2 is gone from n2 too
	if op := readUntilOK(t, c); op.Node != "n3" || !op.Value.Equal(history.Int(1)) {
		t.Fatalf("read after the failover: %+v, want 1 from n3", op)
	}
	if op := pgDo(c, "write", history.Int(3)); op.Type != history.OK || op.Node != "n3" {
		t.Fatalf("write 3 on n3: %+v", op)
	}
	waitRead(t, onN2, history.Int(3))
}

// TestPostgresNamedStandbyTwoFailovers: with only n2 named a synchronous
// standby, failing over to n2 leaves none; failing over again to n3, whose
// configuration was copied from n1 and still names n2, must not leave n3
// waiting for the dead n2: every commit would hang.
func TestPostgresNamedStandbyTwoFailovers(t *testing.T) {
	pc := upPG(t, "ns", Options{Nodes: 3, Sync: SyncRemoteApply, SyncStandbys: []string{"n2"}})
	c := primaryClient(pc, 3*time.Second)
	defer c.Close(context.Background())
	if op := pgDo(c, "write", history.Int(1)); op.Type != history.OK {
		t.Fatalf("write 1: %+v", op)
	}
	waitRead(t, NewClient(pc.PrimaryDSN(), ClientOptions{ReadDSN: pc.DSN("n3"), ReadNode: "n3"}), history.Int(1))
	for i, to := range []string{"n2", "n3"} {
		if _, promoted, err := pc.FailoverTo(to); err != nil || promoted != to {
			t.Fatalf("FailoverTo(%s) = %s, %v", to, promoted, err)
		}
		var names string
		pgQuery(t, pc.PrimaryDSN(), "SELECT current_setting('synchronous_standby_names')", &names)
		if names != "" {
			t.Fatalf("%s waits for %q after the failover, want none", to, names)
		}
		readUntilOK(t, c)
		if op := pgDo(c, "write", history.Int(int64(i+2))); op.Type != history.OK || op.Node != to {
			t.Fatalf("write %d on %s: %+v, want ok", i+2, to, op)
		}
	}
}
