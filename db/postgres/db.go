package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// Name is what --db takes for Postgres.
const Name = "postgres"

// DB is PostgreSQL 15 with streaming replicas, in Docker: the system of
// --db postgres.
type DB struct{}

var _ db.DB = DB{}

func (DB) Name() string { return Name }

func (DB) Doc() string {
	return "PostgreSQL 15, a primary and streaming replicas (Docker, or SSH hosts): replica reads, LSN fencing, synchronous replication, failover"
}

func (DB) Backends() []string { return []string{db.BackendDocker, db.BackendSSH} }

func (DB) Images() []docker.ImageSpec { return []docker.ImageSpec{Image} }

func (DB) NewSettings() db.Settings {
	return &Settings{Sync: SyncAsync, Read: ReadPrimary}
}

// Open takes over a running Postgres cluster found by its labels.
func (DB) Open(ctx context.Context, c *docker.Client, cl *docker.Cluster) (db.System, error) {
	pc, err := Open(ctx, cl)
	if err != nil {
		return nil, err
	}
	return &System{Cluster: pc, c: c, keep: true, clientSet: clientSet{topo: pc, logf: func(string, ...any) {}}}, nil
}

// Settings are the --pg-* flags.
type Settings struct {
	Sync, Read string
	ApplyDelay applyDelay
	Standbys   []string
	Promote    string
	Rejoin     bool
	// FakeTime runs the nodes under libfaketime even without clock faults
	// (`eccheck cluster up --fake-time`).
	FakeTime bool
	// Isolation is the isolation level of list-append and rw-register
	// transactions (--pg-isolation).
	Isolation string
}

// reads are the values of --pg-read.
var reads = []string{ReadPrimary, ReadReplica, ReadRoundRobin, ReadLSNFence}

func (s *Settings) Bind(f *pflag.FlagSet, use db.Use) {
	delay := func() {
		f.Var(&s.ApplyDelay, "pg-apply-delay", "postgres: replicas replay each commit this late (recovery_min_apply_delay): replication lag on demand; one delay for every replica (50ms) or one per replica (n2=0s,n3=200ms)")
	}
	rejoin := func() {
		f.BoolVar(&s.Rejoin, "pg-rejoin", false, "postgres: after each failover, bring the old primary back as a replica with pg_rewind (else it stays down)")
	}
	switch use {
	case db.UseMatrix:
		delay()
		rejoin()
	case db.UseCluster:
		f.StringVar(&s.Sync, "pg-sync", SyncAsync, "postgres: replication, async or remote_apply (the primary waits for the --pg-standbys)")
		f.StringSliceVar(&s.Standbys, "pg-standbys", nil, "postgres: with remote_apply, the synchronous standbys, such as n2 (default: every replica)")
		delay()
		f.BoolVar(&s.FakeTime, "fake-time", false, "postgres: run every node under libfaketime (so that 'eccheck nemesis clock' can move their clocks)")
	default:
		f.StringVar(&s.Sync, "pg-sync", SyncAsync, "postgres: replication, async or remote_apply (the primary waits for the --pg-standbys)")
		f.StringVar(&s.Read, "pg-read", ReadPrimary, "postgres: where reads go: primary, replica (each worker sticks to one), round-robin (each read on the next replica) or lsn-fence (replica reads that wait for the worker's last write)")
		delay()
		f.StringSliceVar(&s.Standbys, "pg-standbys", nil, "postgres: with remote_apply, the synchronous standbys, such as n2 (default: every replica)")
		f.StringVar(&s.Promote, "pg-promote", "", "postgres: the replica a failover promotes (default: the one that received the most WAL)")
		rejoin()
		f.StringVar(&s.Isolation, "pg-isolation", IsolationSerializable, "postgres: the isolation level of the list-append and rw-register transactions: "+strings.Join(Isolations, ", "))
	}
}

func (*Settings) FlagPrefix() string { return "pg-" }

// Adjust makes --nemesis default to none: Postgres runs are about
// replication settings first.
func (s *Settings) Adjust(c *db.Common, given func(string) bool) {
	if !given("nemesis") {
		c.Faults = nil
	}
}

// CanDiverge: a replica applies its primary's WAL after it, so for a
// while it can read otherwise, and after a partition or a paused replay
// for longer: the convergence phase is on by default.
func (*Settings) CanDiverge(db.Common) bool { return true }

func (s *Settings) Validate(c db.Common) error {
	if err := db.CheckIdempotencyKeys(c, "postgres", true); err != nil {
		return err
	}
	switch {
	case c.Backend != db.BackendDocker && c.Backend != db.BackendSSH:
		return db.Usagef("--db postgres runs in Docker or on SSH hosts: add --cluster docker, or --cluster ssh --hosts h1,h2,h3")
	case c.Backend == db.BackendSSH && slices.Contains(c.Faults, nemesis.KindFailover):
		return db.Usagef("--nemesis failover: not on SSH hosts yet (partition, kill, pause, clock and lag are); run it with --cluster docker")
	case c.Backend == db.BackendSSH && (s.Promote != "" || s.Rejoin):
		return db.Usagef("--pg-promote and --pg-rejoin go with --nemesis failover, which is not on SSH hosts yet")
	case s.Sync != SyncAsync && s.Sync != SyncRemoteApply:
		return db.Usagef("--pg-sync %q: want %s or %s", s.Sync, SyncAsync, SyncRemoteApply)
	case !slices.Contains(reads, s.Read):
		return db.Usagef("--pg-read %q: want %s", s.Read, strings.Join(reads, ", "))
	case s.Read != ReadPrimary && c.Nodes < 2:
		return db.Usagef("--pg-read %s needs a replica: --nodes 2 or more", s.Read)
	case s.Isolation != "" && !slices.Contains(Isolations, s.Isolation):
		return db.Usagef("--pg-isolation %q: want %s", s.Isolation, strings.Join(Isolations, ", "))
	case len(s.Standbys) > 0 && s.Sync != SyncRemoteApply:
		return db.Usagef("--pg-standbys names synchronous standbys: it goes with --pg-sync %s", SyncRemoteApply)
	}
	if err := s.ApplyDelay.check(c.Nodes); err != nil {
		return err
	}
	for _, r := range s.Standbys {
		if !isReplica(r, c.Nodes) {
			return db.Usagef("--pg-standbys %s: want replicas, n2 to n%d", r, c.Nodes)
		}
	}
	if s.Promote != "" && !isReplica(s.Promote, c.Nodes) {
		return db.Usagef("--pg-promote %s: want a replica, n2 to n%d", s.Promote, c.Nodes)
	}
	if slices.Contains(c.Faults, nemesis.KindLag) && c.Nodes < 2 {
		return db.Usagef("--nemesis lag pauses a replica's replay: --nodes 2 or more")
	}
	if n := Failovers(c.Faults, c.Interval, c.TimeLimit, c.Cycles); n >= c.Nodes && !s.Rejoin {
		return db.Usagef("--nemesis failover: this run's schedule carries out %d failovers, but each kills a primary for good and %d nodes allow %d; use fewer faults (fewer --nemesis-cycles, or a longer --nemesis-interval per --time-limit), more --nodes, or --pg-rejoin", n, c.Nodes, c.Nodes-1)
	}
	return nil
}

// RunName is "postgres-SYNC-READ", with the isolation level when the run
// has transactions: "postgres-async-primary-serializable".
func (s *Settings) RunName(c db.Common) string {
	name := Name + "-" + s.Sync + "-" + s.Read
	if slices.ContainsFunc(c.Workloads, workload.Transactional) && s.Isolation != "" {
		name += "-" + s.Isolation
	}
	return name
}

func (s *Settings) Record() map[string]any {
	m := map[string]any{"pg_sync": s.Sync, "pg_read": s.Read, "pg_apply_delay": s.ApplyDelay.String()}
	if len(s.Standbys) > 0 {
		m["pg_standbys"] = s.Standbys
	}
	if s.Promote != "" {
		m["pg_promote"] = s.Promote
	}
	if s.Rejoin {
		m["pg_rejoin"] = true
	}
	if s.Isolation != "" {
		m["pg_isolation"] = s.Isolation
	}
	return m
}

func (s *Settings) Start(ctx context.Context, env db.Env) (db.System, error) {
	if env.Backend == db.BackendSSH {
		return s.startSSH(ctx, env)
	}
	return s.start(ctx, env)
}

func (*Settings) CellForms() string {
	return "SYNC:READ with SYNC async or remote_apply and READ primary, replica, round-robin or lsn-fence (e.g. async:replica)"
}

func (*Settings) CellHelp() string {
	return `  async:primary           asynchronous replicas, every read on the primary
  async:replica           reads on a replica (each client sticks to one)
  async:lsn-fence         replica reads that wait for the client's last write
  remote_apply:replica    the primary waits until every replica applied
`
}

func (*Settings) DefaultCells() string {
	return "async:primary,async:replica,async:lsn-fence,remote_apply:replica"
}

func (*Settings) DefaultNemeses() string { return "none,failover" }

// Cell parses one Postgres configuration of a report card: SYNC:READ.
func (s *Settings) Cell(spec string, _ db.Common) (db.Settings, error) {
	sync, read, ok := strings.Cut(spec, ":")
	if !ok || (sync != SyncAsync && sync != SyncRemoteApply) || !slices.Contains(reads, read) {
		return nil, fmt.Errorf("postgres configuration %q: want %s", spec, s.CellForms())
	}
	cell := *s
	cell.Sync, cell.Read = sync, read
	return &cell, nil
}

// isReplica reports whether s names a replica (n2 to nN) of an N-node
// cluster.
func isReplica(s string, nodes int) bool {
	for i := 2; i <= nodes; i++ {
		if s == fmt.Sprintf("n%d", i) {
			return true
		}
	}
	return false
}

// Failovers counts the failovers the nemesis carries out in a run of
// limit, or of its first cycles faults when cycles > 0: step i starts at
// (2i+1) intervals and, if the run lasts, fails over at (2i+2); the kinds
// take turns.
func Failovers(faults []string, interval, limit time.Duration, cycles int) int {
	if interval <= 0 || len(faults) == 0 {
		return 0
	}
	n := 0
	for i := 0; cycles > 0 && i < cycles || cycles == 0 && time.Duration(2*i+2)*interval < limit; i++ {
		if faults[i%len(faults)] == nemesis.KindFailover {
			n++
		}
	}
	return n
}
