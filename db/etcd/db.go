// Package etcd is the system etcd (--db etcd): a cluster of Debian's
// etcd-server in containers, driven through the official Go client
// (go.etcd.io/etcd/client/v3), with reads linearizable (etcd's default,
// through the leader's read index) or serializable (served by the member
// asked, possibly stale).
package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
)

// Name is what --db takes for etcd.
const Name = "etcd"

// DB is etcd in Docker: the system of --db etcd.
type DB struct{}

var _ db.DB = DB{}

func (DB) Name() string { return Name }

func (DB) Doc() string {
	return "etcd 3.4 (Debian's etcd-server), a Raft cluster (Docker, or SSH hosts): linearizable or serializable reads"
}

func (DB) Backends() []string { return []string{db.BackendDocker, db.BackendSSH} }

func (DB) Images() []docker.ImageSpec { return []docker.ImageSpec{Image} }

func (DB) NewSettings() db.Settings { return &Settings{Read: ReadLinearizable} }

// Open takes over a running etcd cluster found by its labels.
func (DB) Open(_ context.Context, c *docker.Client, cl *docker.Cluster) (db.System, error) {
	if cl.DB() != Name {
		return nil, fmt.Errorf("cluster %s runs %s, not etcd", cl.Name(), cl.DB())
	}
	cl.SetReady(answers)
	ec := &Cluster{Cluster: cl}
	return &System{Cluster: ec, d: db.Opened(c, cl), keep: true, members: members{view: ec, read: ReadLinearizable, logf: func(string, ...any) {}}}, nil
}

// Settings are the --etcd-* flags.
type Settings struct {
	// Read is --etcd-read.
	Read string
}

func (s *Settings) Bind(f *pflag.FlagSet, use db.Use) {
	if use != db.UseTest {
		return // the servers have no setting of ours; a card's cells set the reads
	}
	f.StringVar(&s.Read, "etcd-read", ReadLinearizable, "etcd: how reads are served: linearizable (etcd's default: confirmed by the leader, fail without a quorum) or serializable (the member asked answers from what it has: faster, possibly stale)")
}

func (*Settings) FlagPrefix() string { return "etcd-" }

// Adjust drops the clock fault from the default --nemesis: libfaketime
// cannot move a Go program's clock.
func (*Settings) Adjust(c *db.Common, given func(string) bool) {
	if !given("nemesis") {
		c.Faults = slices.DeleteFunc(slices.Clone(c.Faults), func(k string) bool { return k == nemesis.KindClock })
	}
}

func (s *Settings) Validate(c db.Common) error {
	if err := db.NoSagas(c, "etcd"); err != nil {
		return err
	}
	if err := db.CheckIdempotencyKeys(c, "etcd", false); err != nil {
		return err
	}
	if err := db.NoTransactions(c, "etcd"); err != nil {
		return err
	}
	switch {
	case c.Backend != db.BackendDocker && c.Backend != db.BackendSSH:
		return db.Usagef("--db etcd runs in Docker or on SSH hosts: add --cluster docker, or --cluster ssh --hosts h1,h2,h3")
	case !slices.Contains(Reads, s.Read):
		return db.Usagef("--etcd-read %q: want %s", s.Read, strings.Join(Reads, " or "))
	case slices.Contains(c.Faults, nemesis.KindClock) && !(c.Backend == db.BackendSSH && c.HostClock):
		return db.Usagef("--nemesis clock: etcd is a Go program, which reads the clock without libc, so libfaketime cannot move its clock (and etcd's Raft orders by terms and indexes, not time); use partition, kill or pause, or on SSH hosts --ssh-host-clock")
	case slices.Contains(c.Faults, nemesis.KindFailover):
		return db.Usagef("--nemesis failover: etcd elects its own leader; to make it change, kill, pause or partition the leader (--nemesis kill,pause,partition)")
	case slices.Contains(c.Faults, nemesis.KindLag):
		return db.Usagef("--nemesis lag pauses a Postgres replica's replay; for etcd, delay links with 'eccheck nemesis delay'")
	case c.Nodes < 1 || c.Nodes > 9:
		return db.Usagef("--nodes %d: want 1 to 9 etcd members (3 or 5 are usual)", c.Nodes)
	}
	return nil
}

func (s *Settings) RunName(db.Common) string { return Name + "-" + s.Read }

func (s *Settings) Record() map[string]any { return map[string]any{"etcd_read": s.Read} }

func (s *Settings) Start(ctx context.Context, env db.Env) (db.System, error) {
	if env.Backend == db.BackendSSH {
		return s.startSSH(ctx, env)
	}
	return s.start(ctx, env)
}

func (*Settings) CellForms() string { return "READ: linearizable or serializable" }

func (*Settings) CellHelp() string {
	return `  linearizable            reads confirmed by the leader (etcd's default)
  serializable            reads served by the member asked, without the leader
`
}

func (*Settings) DefaultCells() string   { return "linearizable,serializable" }
func (*Settings) DefaultNemeses() string { return "none,partition,kill" }

// Cell parses one etcd configuration of a report card: the read setting.
func (s *Settings) Cell(spec string, _ db.Common) (db.Settings, error) {
	if !slices.Contains(Reads, spec) {
		return nil, fmt.Errorf("etcd configuration %q: want %s", spec, s.CellForms())
	}
	return &Settings{Read: spec}, nil
}
