// Package redis is the system Redis with Sentinel (--db redis): a primary
// and replicas of Debian's redis-server with a redis-sentinel on every
// node, in containers, driven through go-redis, whose clients find the
// primary through Sentinel and follow its failovers as applications do.
package redis

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

// Name is what --db takes for Redis.
const Name = "redis"

// DB is Redis 7 with Sentinel in Docker: the system of --db redis.
type DB struct{}

var _ db.DB = DB{}

func (DB) Name() string { return Name }

func (DB) Doc() string {
	return "Redis 7 (Debian's redis-server and redis-sentinel), a primary, asynchronous replicas and Sentinel failover (Docker, or SSH hosts): replica reads, WAIT"
}

func (DB) Backends() []string { return []string{db.BackendDocker, db.BackendSSH} }

func (DB) Images() []docker.ImageSpec { return []docker.ImageSpec{Image} }

func (DB) NewSettings() db.Settings { return &Settings{Read: ReadPrimary} }

// Open takes over a running Redis cluster found by its labels.
func (DB) Open(_ context.Context, c *docker.Client, cl *docker.Cluster) (db.System, error) {
	if cl.DB() != Name {
		return nil, fmt.Errorf("cluster %s runs %s, not redis", cl.Name(), cl.DB())
	}
	cl.SetReady(pings)
	rc, err := newCluster(cl)
	if err != nil {
		return nil, err
	}
	return &System{Cluster: rc, d: db.Opened(c, cl), keep: true, redisSys: redisSys{s: rc.sentinels, at: rc, read: ReadPrimary, logf: func(string, ...any) {}}}, nil
}

// Settings are the --redis-* flags.
type Settings struct {
	Read        string
	Wait        int
	MinReplicas int
}

func (s *Settings) Bind(f *pflag.FlagSet, use db.Use) {
	minReplicas := func() {
		f.IntVar(&s.MinReplicas, "redis-min-replicas", 0, "redis: min-replicas-to-write on every node: a primary refuses writes while fewer replicas are connected (0: never)")
	}
	switch use {
	case db.UseMatrix:
		minReplicas()
	case db.UseCluster:
		minReplicas()
	default:
		f.StringVar(&s.Read, "redis-read", ReadPrimary, "redis: where reads go: primary (the one Sentinel names) or replica (each read on the next replica in turn)")
		f.IntVar(&s.Wait, "redis-wait", 0, "redis: follow each write with WAIT for this many replicas (1 s); a write fewer acknowledged is info (0: no WAIT)")
		minReplicas()
	}
}

func (*Settings) FlagPrefix() string { return "redis-" }

// Adjust makes --nemesis default to none: Redis runs are about
// replication settings first.
func (s *Settings) Adjust(c *db.Common, given func(string) bool) {
	if !given("nemesis") {
		c.Faults = nil
	}
}

// CanDiverge: replicas copy the primary asynchronously, and a primary cut
// off goes on taking writes until Sentinel fails over: the convergence
// phase is on by default.
func (*Settings) CanDiverge(db.Common) bool { return true }

func (s *Settings) Validate(c db.Common) error {
	if err := db.NoSagas(c, "redis"); err != nil {
		return err
	}
	if err := db.CheckIdempotencyKeys(c, "redis", true); err != nil {
		return err
	}
	if err := db.NoTransactions(c, "redis"); err != nil {
		return err
	}
	switch {
	case c.Backend != db.BackendDocker && c.Backend != db.BackendSSH:
		return db.Usagef("--db redis runs in Docker or on SSH hosts: add --cluster docker, or --cluster ssh --hosts h1,h2,h3")
	case !slices.Contains(Reads, s.Read):
		return db.Usagef("--redis-read %q: want %s", s.Read, strings.Join(Reads, " or "))
	case s.Read == ReadReplica && c.Nodes < 2:
		return db.Usagef("--redis-read replica needs a replica: --nodes 2 or more")
	case s.Wait < 0 || s.Wait > c.Nodes-1:
		return db.Usagef("--redis-wait %d: want 0 to %d (the replicas of --nodes %d)", s.Wait, c.Nodes-1, c.Nodes)
	case s.MinReplicas < 0 || s.MinReplicas > c.Nodes-1:
		return db.Usagef("--redis-min-replicas %d: want 0 to %d (the replicas of --nodes %d)", s.MinReplicas, c.Nodes-1, c.Nodes)
	case c.Nodes < 1 || c.Nodes > 9:
		return db.Usagef("--nodes %d: want 1 to 9", c.Nodes)
	case slices.Contains(c.Faults, nemesis.KindClock) && !(c.Backend == db.BackendSSH && c.HostClock):
		return db.Usagef("--nemesis clock: Debian's redis-server allocates with jemalloc, which reads the clock while libfaketime is still loading, and the server does not start under it (libfaketime: \"Cannot recover from unexpected recursive calls to clock_gettime()\"); use partition, kill, pause, failover or lag, or on SSH hosts --ssh-host-clock")
	case slices.Contains(c.Faults, nemesis.KindFailover) && c.Nodes < 3:
		return db.Usagef("--nemesis failover: Sentinel needs a majority to promote a replica once the primary is cut off: --nodes 3 or more")
	}
	return nil
}

// RunName is "redis-READ", with the WAIT: "redis-primary-wait1".
func (s *Settings) RunName(db.Common) string {
	name := Name + "-" + s.Read
	if s.Wait > 0 {
		name += "-wait" + strconv.Itoa(s.Wait)
	}
	return name
}

func (s *Settings) Record() map[string]any {
	return map[string]any{"redis_read": s.Read, "redis_wait": s.Wait, "redis_min_replicas": s.MinReplicas}
}

func (s *Settings) Start(ctx context.Context, env db.Env) (db.System, error) {
	if env.Backend == db.BackendSSH {
		return s.startSSH(ctx, env)
	}
	return s.start(ctx, env)
}

const cellForms = "READ or READ:waitN, READ primary or replica (e.g. primary:wait1)"

func (*Settings) CellForms() string { return cellForms }

func (*Settings) CellHelp() string {
	return `  primary                 every read on the primary Sentinel names
  replica                 each read on the next replica in turn
  primary:wait1           writes followed by WAIT 1 (info when no replica acknowledged)
`
}

func (*Settings) DefaultCells() string   { return "primary,replica,primary:wait1" }
func (*Settings) DefaultNemeses() string { return "none,failover,lag" }

var cellSpec = regexp.MustCompile(`^(primary|replica)(?::wait([0-9]))?$`)

// Cell parses one Redis configuration of a report card: READ[:waitN].
func (s *Settings) Cell(spec string, c db.Common) (db.Settings, error) {
	m := cellSpec.FindStringSubmatch(spec)
	if m == nil {
		return nil, fmt.Errorf("redis configuration %q: want %s", spec, cellForms)
	}
	cell := *s
	cell.Read = m[1]
	cell.Wait, _ = strconv.Atoi(m[2])
	if cell.Wait > c.Nodes-1 {
		return nil, fmt.Errorf("redis configuration %q: WAIT for %d replicas, but --nodes %d has %d", spec, cell.Wait, c.Nodes, c.Nodes-1)
	}
	return &cell, nil
}
