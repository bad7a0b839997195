// Package db defines what eccheck needs of a system under test (Jepsen
// calls this protocol db): a [DB] names a system and its settings, and
// [Settings.Start] brings up a cluster of it, a [System], which the nemesis
// injects faults into and the workload's clients talk to.
//
// Everything about one system lives in one folder below this one
// (db/ecstore, db/postgres): its client, its cluster setup on each backend,
// its flags and its own faults. The one registry of systems is in
// cmd/eccheck. Optional capabilities (a failover, a rejoin, node roles) are
// small interfaces a System may also implement; commands find them with a
// type assertion.
package db

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/sshhost"
	"github.com/eccheck/eccheck/workload"
)

// The backends a cluster runs on.
const (
	BackendLocal  = "local"  // in this process
	BackendDocker = "docker" // in containers, through the Docker Engine API
	BackendSSH    = "ssh"    // on hosts of the user's, reached over SSH
)

// DB is one kind of system under test, as --db names it.
type DB interface {
	// Name is what --db takes, such as "ecstore".
	Name() string
	// Doc describes the system in one line, for help text.
	Doc() string
	// Backends lists the backends its clusters run on.
	Backends() []string
	// Images are the container images its Docker clusters run, which
	// `eccheck images build` builds (the shared Debian base aside).
	Images() []docker.ImageSpec
	// NewSettings returns its settings at their defaults.
	NewSettings() Settings
	// Open takes over a running Docker cluster of this system that cl
	// found by its labels (one made by `eccheck cluster up`, or kept by
	// --keep), for `eccheck nemesis` and `eccheck cluster status`.
	Open(ctx context.Context, c *docker.Client, cl *docker.Cluster) (System, error)
}

// Use says which command binds a system's flags: each takes those that
// mean something to it.
type Use int

const (
	UseTest    Use = iota // eccheck test: every setting of a run
	UseCluster            // eccheck cluster up: the settings of the servers
	UseMatrix             // eccheck matrix: those every cell of a card shares
)

// Settings are a system's own settings: its flags, their checks, what
// test.json records of them, and the cells of a report card.
type Settings interface {
	// Bind defines the system's flags that a command of this use takes
	// on fs.
	Bind(fs *pflag.FlagSet, use Use)
	// FlagPrefix is the prefix of the system's own flag names, such as
	// "pg-": one of them given with another --db is a usage error. An
	// empty prefix means its flags are left unused with another --db.
	FlagPrefix() string
	// Adjust sets the defaults of common settings that differ for this
	// system (a backend's timeouts, say); given reports whether the user
	// set a flag.
	Adjust(c *Common, given func(flag string) bool)
	// Validate checks the settings against the common ones before
	// anything starts. Its errors name the flag at fault and are usage
	// errors.
	Validate(c Common) error
	// RunName names a run of these settings, such as "ecstore-lww-w1r1".
	RunName(c Common) string
	// Record is what test.json records of the settings, merged into its
	// top level ("mode", "w", "pg_sync", ...).
	Record() map[string]any
	// Start brings up a cluster on c.Backend, waits until it answers and
	// returns it; on failure it leaves nothing running.
	Start(ctx context.Context, env Env) (System, error)

	// CellForms describes the configurations `eccheck matrix --modes`
	// takes in one line, CellHelp one per line for --help; DefaultCells
	// and DefaultNemeses are the card's defaults.
	CellForms() string
	CellHelp() string
	DefaultCells() string
	DefaultNemeses() string
	// Cell returns these settings changed as one configuration of a
	// report card says, such as "lww:w1r1"; errors are usage errors.
	Cell(spec string, c Common) (Settings, error)
}

// Common are the settings every system shares: the flags of `eccheck
// test` that are not a system's own.
type Common struct {
	Backend   string
	Nodes     int
	Workloads []string
	// Faults are the nemesis's fault kinds; Interval, Cycles and
	// ClockMax configure it.
	Faults   []string
	Interval time.Duration
	Cycles   int
	ClockMax time.Duration
	// Shapes are the partition shapes the nemesis draws from; empty
	// means every shape the node count allows.
	Shapes []string
	// TimeLimit is how long the workload runs (a bound with Cycles).
	TimeLimit time.Duration
	// OpTimeout bounds each operation; Recovery is the wait after the
	// heal before the final reads.
	OpTimeout, Recovery time.Duration
	// ClusterName names a Docker cluster (or, on SSH hosts, the
	// cluster's directory there); Keep leaves it running.
	ClusterName string
	Keep        bool
	// Hosts are the SSH hosts of --cluster ssh, node i on host i
	// (--hosts); SSH says how to log in to them (--ssh-*).
	Hosts []string
	SSH   sshhost.Config
	// HostClock makes clock faults on SSH hosts move the hosts' own
	// clocks (--ssh-host-clock) instead of what one node reads.
	HostClock bool
	// Retry is how many times a client retries an operation whose
	// attempt ended info (--retry); IdempotencyKeys makes every request
	// carry a key the system dedupes by (--idempotency-keys: see
	// [IdempotentWorkloads]).
	Retry           int
	IdempotencyKeys bool
	// Converge bounds the convergence phase after the heal (--converge;
	// 0: no such phase).
	Converge time.Duration
	// Saga configures the saga workload (--saga-*).
	Saga workload.SagaOptions
}

// IdempotentWorkloads are the workloads whose writes a system dedupes by
// idempotency key: counter adds (a retried add must not count twice).
var IdempotentWorkloads = []string{workload.Counter}

// CheckIdempotencyKeys refuses --idempotency-keys for a system that does
// not dedupe (supported false), or with no workload it applies to.
func CheckIdempotencyKeys(c Common, system string, supported bool) error {
	if !c.IdempotencyKeys {
		return nil
	}
	if !supported {
		return Usagef("--idempotency-keys: %s does not dedupe requests by key (ecstore, postgres and redis do)", system)
	}
	if !slices.ContainsFunc(c.Workloads, func(w string) bool { return slices.Contains(IdempotentWorkloads, w) }) {
		return Usagef("--idempotency-keys applies to the %s workload's adds; --workload %s has none", strings.Join(IdempotentWorkloads, ", "), strings.Join(c.Workloads, ","))
	}
	return nil
}

// Env is what [Settings.Start] gets: the common settings and where the run
// goes.
type Env struct {
	Common
	// Dir is the run directory; Close saves node logs in Dir/nodes.
	Dir string
	// Logf prints a progress line (nothing when quiet).
	Logf func(format string, args ...any)
	// Progress receives longer progress (image builds, a cluster coming
	// up); nil when quiet.
	Progress io.Writer
	// Wait bounds the wait for every node to answer; 0 means the
	// system's own default.
	Wait time.Duration
}

// System is a running cluster of a system under test.
type System interface {
	nemesis.Cluster
	// NewClient makes the client of one worker of workload bound to
	// node, or roaming across the nodes when node is "". After Settle,
	// the clients it makes are the final reads' (one per node).
	NewClient(workload, node string) (workload.Client, error)
	// Settle is called once the faults are healed and the recovery wait
	// is over, before the final reads: a system waits there for what its
	// recovery needs (a replica to replay its primary's WAL).
	Settle(ctx context.Context)
	// Info is what test.json records of the running cluster.
	Info() Info
	// Close saves each node's log into logDir and removes the cluster,
	// unless it is kept; ctx is a fresh one, so that it works after an
	// interrupt.
	Close(ctx context.Context, logDir string) error
}

// Info describes a running cluster for test.json.
type Info struct {
	// ClusterName is the Docker cluster's name.
	ClusterName string
	// Images maps an image role to the image the cluster runs.
	Images map[string]string
	// Engine is the Docker engine's version, storage driver and cgroup.
	Engine *docker.Engine
}

// Diverger is Settings whose replicas can disagree (asynchronous
// replication, last-write-wins, a lagging replica read): for them the
// convergence phase is on by default (eccheck test without --converge).
// Settings without it, or reporting false (a Raft log read through its
// leader), have no such phase unless asked.
type Diverger interface {
	CanDiverge(c Common) bool
}

// DefaultConverge bounds the convergence phase that is on by default.
const DefaultConverge = 10 * time.Second

// NodeReader is a System whose reads can be pinned to one node at any
// time, not only in the final phase: the convergence phase reads each
// node through it. NodeClient fails for a node that is no longer a member
// (a failover fenced it off); the phase then leaves that node out. A
// System without it is read through NewClient(workload, node).
type NodeReader interface {
	NodeClient(workload, node string) (workload.Client, error)
}

// Containers is a System in Docker containers: the link faults of
// `eccheck nemesis` (loss, bandwidth, delay) act on its cluster.
type Containers interface {
	Docker() *docker.Cluster
}

// SSHOpener is a DB whose clusters run on SSH hosts (--cluster ssh): it
// takes over a cluster running there, for `eccheck nemesis` and `eccheck
// cluster status`. name picks the cluster when the hosts run several
// ("" means the only one); a name or hosts that do not fit are usage
// errors. The System's Close then only closes the connections: the
// cluster stays, faults in force included.
type SSHOpener interface {
	OpenSSH(ctx context.Context, hosts []string, cfg sshhost.Config, name string) (System, error)
}

// Linker is a System on SSH hosts whose links can be delayed or made
// lossy (tc netem on the hosts, where the kernel has it): Link makes
// node's host delay or drop what it sends to peer's host (every peer's
// when peer is ""), replacing the link fault node had; a zero Link
// removes it.
type Linker interface {
	Link(node, peer string, l sshhost.Link) error
}

// HostedNode is one node of a System on SSH hosts.
type HostedNode struct {
	Node, Host, Addr string
	// State is its process's state (running, paused, exited, none).
	State string
}

// Hosted is a System on SSH hosts: where each node runs and answers, and
// its log (`eccheck cluster status`, `eccheck cluster logs`).
type Hosted interface {
	Name() string
	HostedNodes(ctx context.Context) ([]HostedNode, error)
	Log(ctx context.Context, node string) (string, error)
}

// Roler is a System whose nodes have roles (primary, replica) that `eccheck
// cluster status` shows; a role of "primary" on two nodes is a split
// brain.
type Roler interface {
	Roles(ctx context.Context) map[string]string
}

// Describer is a System that says how to reach a node (a connection
// string), for `eccheck cluster up` to print.
type Describer interface {
	Describe(node string) string
}

// FailoverTarget is a System whose failover can promote a replica chosen
// by hand (`eccheck nemesis failover --to`); it also reports the replicas
// a promotion can go to.
type FailoverTarget interface {
	nemesis.Failoverer
	FailoverTo(node string) (nemesis.FailoverResult, error)
	Replicas() []string
}

// Rejoiner is a System that brings a node a failover killed back as a
// replica (`eccheck nemesis rejoin`). It returns how the node came back.
type Rejoiner interface {
	Rejoin(node string, clone bool) (how string, err error)
}

// NodeStatus is a System that reports what it knows of a node's faults
// beyond its container's: its clock offset and transport delays
// (`eccheck nemesis status`).
type NodeStatus interface {
	NodeStatus(ctx context.Context, node string) (clock time.Duration, delaysMs map[string]int64, err error)
}

// Progresser is a System that reports what its fault methods do beyond
// their plain effect (a retried promotion) on w.
type Progresser interface {
	SetProgress(w io.Writer)
}

// UsageError marks an error in how eccheck was called (a bad flag, a
// combination that cannot work): the command exits 3, before it starts
// anything.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// NoTransactions refuses the transactional workloads (list-append,
// rw-register) for a system that does not run transactions yet: a usage
// error naming the workload, the system and those that do.
func NoTransactions(c Common, system string) error {
	for _, w := range c.Workloads {
		if workload.Transactional(w) {
			return Usagef("--workload %s: %s does not run transactions yet (ecstore, postgres and galera do)", w, system)
		}
	}
	return nil
}

// NoSagas refuses the saga workload for a system whose operations are not
// atomic enough to run its steps: a usage error naming the system and
// those that do.
func NoSagas(c Common, system string) error {
	if slices.Contains(c.Workloads, workload.Saga) {
		return Usagef("--workload saga: %s does not run the saga workload's steps (ecstore in raft and primary modes, and postgres, do)", system)
	}
	return nil
}

// Usagef returns a [UsageError] with a formatted message.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// Docker is what every system's start in Docker begins with: a connection
// to the engine, the images the cluster runs, its name and the engine's
// facts for test.json.
type Docker struct {
	Client *docker.Client
	// Images are the references by role ("ecstore", "base", ...).
	Images map[string]string
	// Name is the cluster's name: env.ClusterName, or one for this run.
	Name string
	// Engine describes the engine; nil when it could not be asked (a
	// warning then says so).
	Engine *docker.Engine
}

// Opened is the Docker of a cluster found running (by `eccheck cluster
// status` or `eccheck nemesis`), through the connection c.
func Opened(c *docker.Client, cl *docker.Cluster) *Docker {
	return &Docker{Client: c, Images: map[string]string{}, Name: cl.Name()}
}

// Info is what test.json records of a cluster started from d.
func (d *Docker) Info() Info {
	return Info{ClusterName: d.Name, Images: d.Images, Engine: d.Engine}
}

// Finish saves each node's container log to logDir/<node>.log (when
// logDir is set), removes cl unless keep, and closes the connection to
// the engine: the end of every system's Close.
func (d *Docker) Finish(ctx context.Context, cl *docker.Cluster, logDir string, keep bool, logf func(string, ...any)) error {
	defer d.Client.Close()
	return cl.Finish(ctx, logDir, keep, logf)
}

// StartDocker connects to the engine and makes sure the images of specs
// exist (building them when missing), and the base image too when
// env.Faults need the network helper. On error nothing is left open.
func StartDocker(ctx context.Context, env Env, specs ...docker.ImageSpec) (*Docker, error) {
	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if docker.NeedsHelper(env.Faults) {
		specs = append(specs, docker.Base)
	}
	d := &Docker{Client: c, Images: map[string]string{}, Name: env.ClusterName}
	bo := docker.BuildOptions{Progress: env.Progress}
	for _, spec := range specs {
		ref, err := c.Ensure(ctx, spec, bo, env.Logf)
		if err != nil {
			c.Close()
			return nil, err
		}
		d.Images[spec.Role] = ref
	}
	if d.Name == "" {
		d.Name = docker.RunClusterName()
	}
	if e, err := c.Engine(ctx); err == nil {
		d.Engine = &e
	} else {
		env.Logf("warning: %v", err)
	}
	return d, nil
}

// Poll calls f every pause until it succeeds, for bound at most; the
// error then wraps f's last one. It ends early when ctx does.
func Poll(ctx context.Context, bound, pause time.Duration, f func() error) error {
	deadline := time.Now().Add(bound)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", bound, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(pause):
		}
	}
}
