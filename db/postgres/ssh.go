// This file runs Postgres on hosts of the user's, reached over SSH:
// Debian's postgresql-15 on every host (installed when missing), a primary
// made with initdb on the first host and streaming replicas cloned from it
// with pg_basebackup on the others, each node one supervised postgres
// process (package sshcluster), the faults done with the hosts' own
// tools, and the clock through libfaketime.

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/sshcluster"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
)

// Postgres on an SSH host.
const (
	// SSHPort is the port eccheck's Postgres nodes listen on over SSH:
	// not 5432, which a host's own Debian cluster (15/main) may hold.
	SSHPort = 15432
	// sshBin holds Debian's postgresql-15 programs.
	sshBin = "/usr/lib/postgresql/15/bin"
	// sshPackage is the Debian package eccheck installs when a host
	// lacks it.
	sshPackage = "postgresql-15"
)

// sshSystem is a Postgres cluster on SSH hosts: the primary n1 on the
// first host and streaming replicas on the others, every node listening
// on port SSHPort with password (SCRAM) authentication; the password is
// random per cluster and kept on the hosts only in files root or the
// postgres user can read.
type sshSystem struct {
	*sshcluster.Cluster
	clientSet
	password string
	fakeTime bool // the nodes run under libfaketime
}

var (
	_ db.SSHOpener    = DB{}
	_ db.System       = (*sshSystem)(nil)
	_ db.Hosted       = (*sshSystem)(nil)
	_ db.Roler        = (*sshSystem)(nil)
	_ db.Describer    = (*sshSystem)(nil)
	_ db.NodeReader   = (*sshSystem)(nil)
	_ nemesis.Lagger  = (*sshSystem)(nil)
	_ nemesis.Cluster = (*sshSystem)(nil)
)

// Paths of a cluster on a host.
func sshData(cluster, node string) string {
	return path.Join(sshcluster.NodeDir(cluster, node), "data")
}
func sshClock(cluster, node string) string {
	return path.Join(sshcluster.NodeDir(cluster, node), "faketime")
}

// sshDSN is the connection string of a node at addr.
func sshDSN(addr, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password), Host: addr, Path: "/postgres", RawQuery: "sslmode=disable&connect_timeout=5"}
	return u.String()
}

// Primary is n1: failovers are not carried out on SSH hosts yet.
func (sys *sshSystem) Primary() string { return "n1" }

// Replicas are every node but n1.
func (sys *sshSystem) Replicas() []string { return sys.Nodes()[1:] }

// Fenced is empty: no failover fences a node on SSH hosts.
func (sys *sshSystem) Fenced() []string { return nil }

// DSN returns node's connection string (with the cluster's password), or
// "" for an unknown node.
func (sys *sshSystem) DSN(node string) string {
	addr := sys.Addr(node)
	if addr == "" {
		return ""
	}
	return sshDSN(addr, sys.password)
}

// Describe returns node's connection string without the password, and
// where the hosts keep it: `cluster status` prints it every time.
func (sys *sshSystem) Describe(node string) string {
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable (password: sudo cat %s on any host)", sys.Addr(node), sshcluster.SecretFile(sys.Name()))
}

// fakeTimeScript prints the path of libfaketime on the host, or fails
// saying it is missing.
const fakeTimeScript = `lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
if [ -z "$lib" ]; then
  echo "eccheck-missing: libfaketime (Debian package faketime), which clock faults on Postgres need" >&2
  exit 3
fi
echo "$lib"
`

// hostLibs maps a host to its libfaketime, found by the checks of the
// hosts, which run at once.
type hostLibs struct {
	mu sync.Mutex
	m  map[string]string
}

// installTimeout bounds the check of a host, which may install
// postgresql-15.
const installTimeout = 10 * time.Minute

// sshCheck returns the check of a host for a Postgres node: it installs
// postgresql-15 when missing and, with fakeTime, finds libfaketime
// (whose path it records in libs for h).
func sshCheck(fakeTime bool, libs *hostLibs) func(ctx context.Context, h *sshhost.Host) error {
	return func(ctx context.Context, h *sshhost.Host) error {
		ctx, cancel := context.WithTimeout(ctx, installTimeout)
		defer cancel()
		if _, err := h.EnsurePackage(ctx, sshPackage, sshBin+"/postgres"); err != nil {
			return err
		}
		if !fakeTime {
			return nil
		}
		out, _, err := h.Run(ctx, sshhost.Command("sh", "-c", fakeTimeScript))
		var ce *sshhost.CommandError
		if errors.As(err, &ce) && strings.Contains(ce.Stderr, "eccheck-missing: ") {
			_, msg, _ := strings.Cut(ce.Stderr, "eccheck-missing: ")
			return fmt.Errorf("host %s: %s", h.Name(), strings.TrimSpace(msg))
		}
		if err != nil {
			return fmt.Errorf("host %s: libfaketime: %w", h.Name(), err)
		}
		libs.mu.Lock()
		libs.m[h.Name()] = strings.TrimSpace(out)
		libs.mu.Unlock()
		return nil
	}
}

// sshPrimaryScript makes the primary's data directory: $1 the node's
// directory, $2 the file holding the password (root's alone: never an
// argument, which any user of the host could read in ps), $3 the port, $4 synchronous_commit and $5
// synchronous_standby_names (none when empty). Every client and replica
// authenticates with the password (SCRAM); local connections through
// the node's own socket directory are trusted.
const sshPrimaryScript = `set -eu
dir=$1 pwsrc=$2 port=$3 synccommit=$4 standbys=$5
D=$dir/data
install -d -o postgres -g postgres -m 700 "$dir"
umask 077
cp -- "$pwsrc" "$dir/pwfile"
chown postgres:postgres "$dir/pwfile"
runuser -u postgres -- ` + sshBin + `/initdb -D "$D" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pwfile" >/dev/null
rm -f "$dir/pwfile"
cat >>"$D/postgresql.conf" <<EOF
listen_addresses = '*'
port = $port
unix_socket_directories = '$dir'
password_encryption = 'scram-sha-256'
` + replicationConf + `EOF
` + syncConf + `echo "host all all 0.0.0.0/0 scram-sha-256" >>"$D/pg_hba.conf"
echo "host replication all 0.0.0.0/0 scram-sha-256" >>"$D/pg_hba.conf"
`

// sshReplicaScript clones the primary into a replica's data directory
// through its replication slot: $1 the node's directory, $2 the file
// holding the password (root's alone), $3 the primary's address, $4 the port, $5 the slot, $6 the node's name
// (its application_name) and $7 recovery_min_apply_delay in ms.
const sshReplicaScript = `set -eu
dir=$1 pwsrc=$2 primary=$3 port=$4 slot=$5 name=$6 applydelay=$7
D=$dir/data
install -d -o postgres -g postgres -m 700 "$dir"
umask 077
read pw < "$pwsrc"
# pg_basebackup reads the password from a passfile of the postgres
# user's, removed once the copy is made.
trap 'rm -f "$dir/pgpass"' EXIT
printf '*:*:*:postgres:%s\n' "$pw" >"$dir/pgpass"
chown postgres:postgres "$dir/pgpass"
runuser -u postgres -- env PGPASSFILE="$dir/pgpass" ` + sshBin + `/pg_basebackup -h "$primary" -p "$port" -U postgres -D "$D" -X stream -S "$slot"
rm -f "$dir/pgpass"
touch "$D/standby.signal"
cat >>"$D/postgresql.auto.conf" <<EOF
unix_socket_directories = '$dir'
primary_conninfo = 'host=$primary port=$port user=postgres password=$pw application_name=$name'
primary_slot_name = '$slot'
EOF
if [ "$applydelay" != 0 ]; then
  echo "recovery_min_apply_delay = '${applydelay}ms'" >>"$D/postgresql.auto.conf"
fi
chown -R postgres:postgres "$D"
`

// startSSH brings up the cluster on env.Hosts: postgresql-15 on every
// host, the primary on the first, a replica cloned from it through a slot
// of its own on each other; it returns when every node answers, the
// primary sees every replica streaming and the workloads' tables have
// reached the replicas. On failure it removes what it made.
func (s *Settings) startSSH(ctx context.Context, env db.Env) (db.System, error) {
	fakeTime := (slices.Contains(env.Faults, nemesis.KindClock) || s.FakeTime) && !env.HostClock
	o := Options{Nodes: len(env.Hosts), Sync: s.Sync, SyncStandbys: s.Standbys, ApplyDelay: s.ApplyDelay.all, ApplyDelays: s.ApplyDelay.per}
	syncCommit, standbyNames, err := o.syncSettings()
	if err != nil {
		return nil, db.UsageError{Err: err}
	}
	libs := &hostLibs{m: map[string]string{}}
	cl, err := sshcluster.New(ctx, env, SSHPort, sshCheck(fakeTime, libs))
	if err != nil {
		return nil, err
	}
	var pw [16]byte
	rand.Read(pw[:])
	sys := &sshSystem{Cluster: cl, password: hex.EncodeToString(pw[:]), fakeTime: fakeTime}
	sys.clientSet = clientSet{topo: sys, read: s.Read, iso: s.Isolation, wait: env.OpTimeout, idem: env.IdempotencyKeys, logf: env.Logf}
	name, hosts, nodes := cl.Name(), cl.Hosts(), cl.Nodes()
	for i, n := range nodes {
		spec := sshhost.ProcessSpec{Cluster: name, Name: n, User: "postgres", Cmd: []string{sshBin + "/postgres", "-D", sshData(name, n)}}
		if fakeTime {
			spec.Env = []string{"LD_PRELOAD=" + libs.m[hosts[i].Name()], "FAKETIME_TIMESTAMP_FILE=" + sshClock(name, n), "FAKETIME_NO_CACHE=1"}
		}
		cl.Specs = append(cl.Specs, spec)
	}
	cl.Ready = sys.ready
	cl.OnStart = sys.clearLock
	env.Logf("starting cluster %s on %d SSH hosts: postgres primary on %s and %d replica(s), %s, reads from %s", name, len(hosts), hosts[0].Name(), len(hosts)-1, s.Sync, s.Read)
	wait := env.Wait
	if wait == 0 {
		wait = 90 * time.Second
	}
	if err := sys.up(ctx, syncCommit, standbyNames, o, wait); err != nil {
		sys.closeClients(ctx)
		return nil, cl.Abandon(ctx, fmt.Errorf("start the postgres cluster on SSH hosts: %w", err))
	}
	var up []string
	for i, n := range nodes {
		up = append(up, n+"="+cl.Addrs[i])
	}
	env.Logf("cluster up: postgres primary n1, replicas %v on SSH hosts, cluster %s (%s)", nodes[1:], name, strings.Join(up, ", "))
	return sys, nil
}

// up makes and starts the nodes, the primary first.
func (sys *sshSystem) up(ctx context.Context, syncCommit, standbyNames string, o Options, wait time.Duration) error {
	name, hosts, nodes := sys.Name(), sys.Hosts(), sys.Nodes()
	if err := sys.WriteSecret(ctx, sys.password); err != nil {
		return err
	}
	if err := sys.WriteManifest(ctx, sys.Manifest(Name)); err != nil {
		return err
	}
	if sys.fakeTime {
		if err := sshcluster.Each(len(hosts), func(i int) error {
			return hosts[i].Upload(ctx, sshClock(name, nodes[i]), 0o644, strings.NewReader(docker.FakeTimeOffset(0)+"\n"))
		}); err != nil {
			return err
		}
	}
	if _, _, err := hosts[0].Sudo(ctx, sshhost.Command("sh", "-c", sshPrimaryScript, "eccheck-initdb", sshcluster.NodeDir(name, nodes[0]), sshcluster.SecretFile(name), strconv.Itoa(SSHPort), syncCommit, standbyNames)); err != nil {
		return fmt.Errorf("initdb of the primary on %s: %w", hosts[0].Name(), err)
	}
	if err := sys.StartNode(ctx, 0, wait); err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		if err := queryOne(ctx, sys.DSN(nodes[0]), `SELECT pg_create_physical_replication_slot(`+quote("eccheck_"+n)+`)`); err != nil {
			return fmt.Errorf("replication slot of %s on the primary: %w", n, err)
		}
	}
	primaryIP := sys.IPs[0].String()
	if err := sshcluster.Each(len(hosts)-1, func(j int) error {
		i := j + 1
		n := nodes[i]
		if _, _, err := hosts[i].Sudo(ctx, sshhost.Command("sh", "-c", sshReplicaScript, "eccheck-basebackup", sshcluster.NodeDir(name, n), sshcluster.SecretFile(name), primaryIP, strconv.Itoa(SSHPort), "eccheck_"+n, n, strconv.FormatInt(o.applyDelay(n).Milliseconds(), 10))); err != nil {
			return fmt.Errorf("clone the primary to %s on %s: %w", n, hosts[i].Name(), err)
		}
		return sys.StartNode(ctx, i, wait)
	}); err != nil {
		return err
	}
	if err := sys.waitStreaming(ctx, len(nodes)-1, wait); err != nil {
		return err
	}
	return sys.setup(ctx)
}

// ready waits, at most d, until node i accepts a connection and is in
// the role it should be (a replica in recovery, the primary not).
func (sys *sshSystem) ready(ctx context.Context, i int, d time.Duration) error {
	want := i > 0
	return db.Poll(ctx, d, 200*time.Millisecond, func() error {
		var rec bool
		if err := queryOne(ctx, sys.DSN(sys.Nodes()[i]), `SELECT pg_is_in_recovery()`, &rec); err != nil {
			return err
		}
		if rec != want {
			return fmt.Errorf("pg_is_in_recovery() is %v", rec)
		}
		return nil
	})
}

// waitStreaming waits, at most d, until the primary sees n replicas
// streaming.
func (sys *sshSystem) waitStreaming(ctx context.Context, n int, d time.Duration) error {
	return db.Poll(ctx, d, 200*time.Millisecond, func() error {
		var streaming int
		if err := queryOne(ctx, sys.DSN("n1"), `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'`, &streaming); err != nil {
			return err
		}
		if streaming < n {
			return fmt.Errorf("%d of %d replicas streaming", streaming, n)
		}
		return nil
	})
}

// SetClock moves node's clock through libfaketime's timestamp file
// (whole seconds), which the node's processes read on every clock call,
// or with --ssh-host-clock the host's own clock.
func (sys *sshSystem) SetClock(node string, offset time.Duration) error {
	if sys.HostClock() {
		return sys.SetHostClock(node, offset)
	}
	if !sys.fakeTime {
		return fmt.Errorf("set clock of %s: the nodes do not run under libfaketime (start the cluster with --nemesis clock, or 'cluster up --fake-time')", node)
	}
	if err := sys.WriteNodeFile(node, "faketime", docker.FakeTimeOffset(offset)+"\n"); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// Lag pauses (on) or resumes (off) WAL replay on a replica.
func (sys *sshSystem) Lag(node string, on bool) error {
	i, err := sys.Node(node)
	if err != nil {
		return err
	}
	if i == 0 {
		if on {
			return fmt.Errorf("lag %s: the primary replays no WAL", node)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshcluster.Timeout)
	defer cancel()
	q := `SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()`
	if on {
		q = `SELECT pg_wal_replay_pause()`
	}
	if err := queryOne(ctx, sys.DSN(node), q); err != nil {
		if st, serr := sys.Hosts()[i].Status(ctx, sys.Name(), node); !on && serr == nil && st.State != sshhost.Running {
			return nil // down: a restart replays anyway
		}
		return fmt.Errorf("lag %s: %w", node, err)
	}
	return nil
}

// Roles asks each node whether it is in recovery: "primary", "replica",
// or why it did not answer.
func (sys *sshSystem) Roles(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, n := range sys.Nodes() {
		role, err := roleOf(ctx, sys.DSN(n))
		if err != nil {
			role = "no answer"
		}
		out[n] = role
	}
	return out
}

// Close closes the clients, then fetches the logs and removes the
// cluster from the hosts, unless it is kept.
func (sys *sshSystem) Close(ctx context.Context, logDir string) error {
	sys.closeClients(ctx)
	return sys.Cluster.Close(ctx, logDir)
}

// OpenSSH takes over the Postgres cluster running on hosts, for `eccheck
// nemesis` and `eccheck cluster status`: its manifest says the nodes, and
// the password file on the first host (root's alone) the password.
func (DB) OpenSSH(ctx context.Context, hosts []string, cfg sshhost.Config, name string) (db.System, error) {
	cl, m, password, err := sshcluster.OpenSecret(ctx, hosts, cfg, name, Name)
	if err != nil {
		return nil, err
	}
	sys := &sshSystem{Cluster: cl, password: password, fakeTime: len(m.Env) > 0}
	sys.clientSet = clientSet{topo: sys, read: ReadPrimary, logf: func(string, ...any) {}}
	cl.Ready = sys.ready
	cl.OnStart = sys.clearLock
	return sys, nil
}

// clearLock removes the lock file a killed postmaster left in node i's
// data directory (its process group is gone: Start checked), so that a
// process that took its pid since cannot make the restart refuse.
func (sys *sshSystem) clearLock(ctx context.Context, i int) error {
	_, _, err := sys.Hosts()[i].Sudo(ctx, "rm -f -- "+sshhost.Quote(path.Join(sshData(sys.Name(), sys.Nodes()[i]), "postmaster.pid")))
	return err
}
