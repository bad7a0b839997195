// Package galera is the system MariaDB Galera Cluster (--db galera):
// nodes of Debian's mariadb-server with the galera-4 provider in
// containers, every one taking reads and writes, driven through
// go-sql-driver/mysql. Galera certifies each transaction on every node
// before it commits, but applies it on the other nodes later: a read on
// another node can miss a write already acknowledged unless
// wsrep_sync_wait makes it wait.
package galera

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
)

// Name is what --db takes for Galera.
const Name = "galera"

// DB is MariaDB Galera Cluster in Docker: the system of --db galera.
type DB struct{}

var _ db.DB = DB{}

func (DB) Name() string { return Name }

func (DB) Doc() string {
	return "MariaDB 10.11 Galera Cluster (Debian's mariadb-server and galera-4), every node a primary (Docker): wsrep_sync_wait, reads on another node, whole-cluster crash"
}

func (DB) Backends() []string { return []string{db.BackendDocker} }

func (DB) Images() []docker.ImageSpec { return []docker.ImageSpec{Image} }

func (DB) NewSettings() db.Settings { return &Settings{Read: ReadOwn, FlushLog: 1} }

// Open takes over a running Galera cluster found by its labels.
func (DB) Open(_ context.Context, c *docker.Client, cl *docker.Cluster) (db.System, error) {
	if cl.DB() != Name {
		return nil, fmt.Errorf("cluster %s runs %s, not galera", cl.Name(), cl.DB())
	}
	cl.SetReady(answers)
	return &System{Cluster: newCluster(cl), d: db.Opened(c, cl), keep: true, read: ReadOwn, logf: func(string, ...any) {}}, nil
}

// Settings are the --galera-* flags.
type Settings struct {
	// Read is --galera-read.
	Read string
	// SyncWait is wsrep_sync_wait on every node (--galera-sync-wait).
	SyncWait int
	// FlushLog is innodb_flush_log_at_trx_commit (--galera-flush-log).
	FlushLog int
	// FakeTime runs the nodes under libfaketime even without clock
	// faults (`eccheck cluster up --galera-fake-time`).
	FakeTime bool
	// Isolation is the isolation level of list-append and rw-register
	// transactions (--galera-isolation).
	Isolation string
}

func (s *Settings) Bind(f *pflag.FlagSet, use db.Use) {
	server := func() {
		f.IntVar(&s.SyncWait, "galera-sync-wait", 0, "galera: wsrep_sync_wait on every node, the bitmask of statements that first wait for the node to apply what the cluster committed (1 reads, 2 updates and deletes, 4 inserts and replaces, 8 SHOW; 0 as MariaDB ships)")
		f.IntVar(&s.FlushLog, "galera-flush-log", 1, "galera: innodb_flush_log_at_trx_commit on every node: 1 flushes InnoDB's log at each commit (MariaDB's default), 2 writes it at commit and flushes once a second, 0 writes and flushes once a second")
	}
	switch use {
	case db.UseMatrix:
		f.IntVar(&s.FlushLog, "galera-flush-log", 1, "galera: innodb_flush_log_at_trx_commit on every node: 1 flushes InnoDB's log at each commit (MariaDB's default), 2 writes it at commit and flushes once a second, 0 writes and flushes once a second")
	case db.UseCluster:
		server()
		f.BoolVar(&s.FakeTime, "galera-fake-time", false, "galera: run every node under libfaketime (so that 'eccheck nemesis clock' can move their clocks)")
	default:
		f.StringVar(&s.Read, "galera-read", ReadOwn, "galera: where a worker reads: own (the node it writes to) or other (the next node, which applies its writes later)")
		f.StringVar(&s.Isolation, "galera-isolation", IsolationRepeatableRead, "galera: the isolation level of the list-append and rw-register transactions: read-committed or repeatable-read (MariaDB's default)")
		server()
	}
}

func (*Settings) FlagPrefix() string { return "galera-" }

// Adjust makes --nemesis default to none: Galera runs are about its
// settings first.
func (s *Settings) Adjust(c *db.Common, given func(string) bool) {
	if !given("nemesis") {
		c.Faults = nil
	}
}

// CanDiverge: a node applies the others' write sets after certifying
// them, so a lagging node reads otherwise for a while (wsrep_sync_wait 0):
// the convergence phase is on by default.
func (*Settings) CanDiverge(db.Common) bool { return true }

func (s *Settings) Validate(c db.Common) error {
	if err := db.NoSagas(c, "galera"); err != nil {
		return err
	}
	if err := db.CheckIdempotencyKeys(c, "galera", false); err != nil {
		return err
	}
	switch {
	case c.Backend != db.BackendDocker:
		return db.Usagef("--db galera runs in Docker: add --cluster docker")
	case !slices.Contains(Reads, s.Read):
		return db.Usagef("--galera-read %q: want %s", s.Read, strings.Join(Reads, " or "))
	case s.Read == ReadOther && c.Nodes < 2:
		return db.Usagef("--galera-read other needs another node: --nodes 2 or more")
	case s.Isolation != "" && !slices.Contains(Isolations, s.Isolation):
		return db.Usagef("--galera-isolation %q: want %s (Galera does not certify serializable transactions across nodes)", s.Isolation, strings.Join(Isolations, " or "))
	case s.SyncWait < 0 || s.SyncWait > 15:
		return db.Usagef("--galera-sync-wait %d: want a bitmask from 0 to 15 (1 reads, 2 updates and deletes, 4 inserts and replaces, 8 SHOW)", s.SyncWait)
	case s.FlushLog < 0 || s.FlushLog > 2:
		return db.Usagef("--galera-flush-log %d: want 0, 1 or 2 (innodb_flush_log_at_trx_commit)", s.FlushLog)
	case c.Nodes < 1 || c.Nodes > 9:
		return db.Usagef("--nodes %d: want 1 to 9", c.Nodes)
	case slices.Contains(c.Faults, nemesis.KindFailover):
		return db.Usagef("--nemesis failover: every Galera node is a primary, there is none to replace; use partition, kill, pause, clock, lag or crash")
	}
	return nil
}

// RunName is "galera-READ", with the sync wait and a flush setting
// other than the default: "galera-other-sync1", "galera-own-flush0".
func (s *Settings) RunName(db.Common) string {
	name := Name + "-" + s.Read
	if s.SyncWait > 0 {
		name += "-sync" + strconv.Itoa(s.SyncWait)
	}
	if s.FlushLog != 1 {
		name += "-flush" + strconv.Itoa(s.FlushLog)
	}
	return name
}

func (s *Settings) Record() map[string]any {
	m := map[string]any{"galera_read": s.Read, "galera_sync_wait": s.SyncWait, "galera_flush_log": s.FlushLog}
	if s.Isolation != "" {
		m["galera_isolation"] = s.Isolation
	}
	return m
}

func (s *Settings) Start(ctx context.Context, env db.Env) (db.System, error) {
	return s.start(ctx, env)
}

const cellForms = "READ or READ:syncN, READ own or other (e.g. other:sync1)"

func (*Settings) CellForms() string { return cellForms }

func (*Settings) CellHelp() string {
	return `  own                     reads on the node the worker writes to
  other                   reads on the next node (which applies the writes later)
  other:sync1             the same with wsrep_sync_wait 1 (reads wait for the node to catch up)
`
}

func (*Settings) DefaultCells() string   { return "own,other,other:sync1" }
func (*Settings) DefaultNemeses() string { return "none,partition,lag" }

var cellSpec = regexp.MustCompile(`^(own|other)(?::sync([0-9]|1[0-5]))?$`)

// Cell parses one Galera configuration of a report card: READ[:syncN].
func (s *Settings) Cell(spec string, c db.Common) (db.Settings, error) {
	m := cellSpec.FindStringSubmatch(spec)
	if m == nil {
		return nil, fmt.Errorf("galera configuration %q: want %s", spec, cellForms)
	}
	cell := *s
	cell.Read = m[1]
	cell.SyncWait, _ = strconv.Atoi(m[2])
	if cell.Read == ReadOther && c.Nodes < 2 {
		return nil, fmt.Errorf("galera configuration %q: reads on another node need --nodes 2 or more", spec)
	}
	return &cell, nil
}
