package ecstore

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// Name is what --db takes for ecstore.
const Name = "ecstore"

// DB is ecstore, eccheck's own store with a known guarantee per mode: the
// system of --db ecstore, in this process or in containers.
type DB struct{}

var _ db.DB = DB{}

func (DB) Name() string { return Name }

func (DB) Doc() string {
	return "eccheck's own store (lww, hlc, mvr, primary, raft; sessions; CRDTs), in this process or in Docker"
}

func (DB) Backends() []string { return []string{db.BackendLocal, db.BackendDocker, db.BackendSSH} }

func (DB) Images() []docker.ImageSpec { return []docker.ImageSpec{Image} }

func (DB) NewSettings() db.Settings {
	return &Settings{Mode: store.ModeLWW, W: 1, R: 1, SetImpl: store.SetORSet, CounterImpl: store.CounterPN, PrimaryReads: "any"}
}

// Open takes over a running ecstore cluster found by its labels: its
// readiness probe and its delay hook are ecstore's.
func (DB) Open(_ context.Context, c *docker.Client, cl *docker.Cluster) (db.System, error) {
	if cl.DB() != Name && cl.DB() != "" {
		return nil, fmt.Errorf("cluster %s runs %s, not ecstore", cl.Name(), cl.DB())
	}
	return newDockerSystem(c, cl, nil, true, Options{}, func(string, ...any) {}), nil
}

// SagaModes are the modes that run the saga workload's operations, each
// atomically: raft (as one log entry) and primary (under the primary's
// lock, replayed by its followers). lww and hlc have nothing to make a
// step's check and its write one action.
var SagaModes = []string{store.ModeRaft, store.ModePrimary}

// Settings are ecstore's flags: the mode, its quorums, its sets and
// counters, and whether clients carry session tokens.
type Settings struct {
	Mode    string
	N, W, R int
	SetImpl string
	// CounterImpl is store.CounterPN or store.CounterG; empty (a report
	// card's configuration) means store.CounterPN.
	CounterImpl  string
	PrimaryReads string
	Sessions     bool
}

// DynamoModes are the modes of the Dynamo-style engine: N/W/R quorums,
// CRDT counters and sets.
var DynamoModes = []string{store.ModeLWW, store.ModeHLC, store.ModeMVR}

// TxnModes are the modes that run transactions: raft as one log entry,
// lww, hlc and primary one micro-operation after another. mvr's registers
// answer siblings, not the one value a transaction's read needs.
var TxnModes = []string{store.ModeLWW, store.ModeHLC, store.ModePrimary, store.ModeRaft}

func (s *Settings) Bind(f *pflag.FlagSet, use db.Use) {
	if use == db.UseMatrix {
		return // a card's configurations set all of these
	}
	f.StringVar(&s.Mode, "mode", store.ModeLWW, "ecstore mode: "+strings.Join(store.Modes, ", ")+" (mvr: lww's replication with multi-value registers, concurrent writes kept as siblings)")
	f.IntVar(&s.N, "n", 0, "replicas per key in lww, hlc and mvr (0 = every node)")
	f.IntVar(&s.W, "w", 1, "write quorum in lww, hlc and mvr")
	f.IntVar(&s.R, "r", 1, "read quorum in lww, hlc and mvr")
	f.StringVar(&s.SetImpl, "set-impl", store.SetORSet, "sets in lww and hlc: orset (a CRDT) or lww-blob (one last-write-wins value); mvr: orset")
	f.StringVar(&s.CounterImpl, "counter-impl", store.CounterPN, "counters in lww, hlc and mvr: pn (a PN-Counter) or g (a G-Counter: increments only, a negative add fails)")
	f.StringVar(&s.PrimaryReads, "primary-reads", "any", "primary mode: reads from any node, or from the primary")
	if use == db.UseTest {
		f.BoolVar(&s.Sessions, "sessions", false, "clients carry session tokens (read-your-writes and monotonic reads even in lww)")
	}
}

// FlagPrefix is empty: ecstore's flags are left unused with another --db.
func (*Settings) FlagPrefix() string { return "" }

func (*Settings) Adjust(*db.Common, func(string) bool) {}

// CanDiverge: every mode's replicas can disagree for a while but raft's
// (its reads go through the leader) and primary's read from the primary
// alone; so the convergence phase is on by default for the others.
func (s *Settings) CanDiverge(db.Common) bool {
	return s.Mode != store.ModeRaft && !(s.Mode == store.ModePrimary && s.PrimaryReads == "primary")
}

// Validate checks the flags against the node count, as each node would
// when it starts, so that a bad combination is a usage error before
// anything is created.
func (s *Settings) Validate(c db.Common) error {
	if err := db.CheckIdempotencyKeys(c, "ecstore", true); err != nil {
		return err
	}
	if i := slices.IndexFunc(c.Workloads, workload.Transactional); s.Sessions && i >= 0 {
		return db.Usagef("--sessions and --workload %s: session tokens cover single-key operations, not transactions", c.Workloads[i])
	}
	if !slices.Contains(store.Modes, s.Mode) {
		return db.Usagef("--mode %q: want %s", s.Mode, strings.Join(store.Modes, ", "))
	}
	if s.Mode == store.ModeMVR {
		if i := slices.IndexFunc(c.Workloads, workload.Transactional); i >= 0 {
			return db.Usagef("--workload %s: ecstore runs transactions in --mode %s, not mvr: a transaction's read needs one value per register, and an mvr register holds siblings", c.Workloads[i], strings.Join(TxnModes, ", "))
		}
		switch {
		case s.Sessions:
			return db.Usagef("--sessions and --mode mvr: a session token holds a timestamp per key, and mvr orders writes by version vectors, not timestamps; mvr runs without sessions")
		case s.SetImpl == store.SetLWWBlob:
			return db.Usagef("--set-impl lww-blob and --mode mvr: lww-blob keeps a set in a last-write-wins register, which mvr does not have; use --set-impl orset")
		}
	}
	switch {
	case s.CounterImpl != "" && s.CounterImpl != store.CounterPN && s.CounterImpl != store.CounterG:
		return db.Usagef("--counter-impl %q: want %s or %s", s.CounterImpl, store.CounterPN, store.CounterG)
	case s.CounterImpl == store.CounterG && !slices.Contains(DynamoModes, s.Mode):
		return db.Usagef("--counter-impl g: G-Counters are in --mode %s, not %s", strings.Join(DynamoModes, ", "), s.Mode)
	}
	if slices.Contains(c.Workloads, workload.Saga) {
		switch {
		case !slices.Contains(SagaModes, s.Mode):
			return db.Usagef("--workload saga: ecstore runs sagas in --mode %s, not %s", strings.Join(SagaModes, " and "), s.Mode)
		case s.Sessions:
			return db.Usagef("--sessions and --workload saga: session tokens cover single-key operations, not saga steps")
		}
	}
	if c.IdempotencyKeys && (s.Mode == store.ModeLWW || s.Mode == store.ModeHLC) && (slices.Contains(c.Faults, nemesis.KindKill) || slices.Contains(c.Faults, nemesis.KindCrash)) {
		return db.Usagef("--idempotency-keys with --mode %s and --nemesis kill or crash: an lww node keeps the keys of the adds it applied in memory, and a killed node restarts without them, so a retry to it would apply again; use --mode raft or primary, or leave kill out", s.Mode)
	}
	if slices.Contains(c.Faults, nemesis.KindFailover) {
		return db.Usagef("--nemesis failover: a failover needs a cluster with a primary to replace (--db postgres); ecstore's primary mode fails over by itself under kill and partition")
	}
	if slices.Contains(c.Faults, nemesis.KindLag) {
		return db.Usagef("--nemesis lag: pausing a replica's replay needs --db postgres; for ecstore, delay links with 'eccheck nemesis delay'")
	}
	n := s.N
	if n == 0 {
		n = c.Nodes
	}
	switch {
	case s.N < 0 || s.N > c.Nodes:
		return db.Usagef("--n %d: want 0 (every node) to --nodes (%d): the replicas of each key", s.N, c.Nodes)
	case s.W < 1 || s.W > n:
		return db.Usagef("--w %d: want 1 to %d (--n, or every node when --n is 0): the replicas a write waits for", s.W, n)
	case s.R < 1 || s.R > n:
		return db.Usagef("--r %d: want 1 to %d (--n, or every node when --n is 0): the replicas a read asks", s.R, n)
	case s.SetImpl != store.SetORSet && s.SetImpl != store.SetLWWBlob:
		return db.Usagef("--set-impl %q: want %s or %s", s.SetImpl, store.SetORSet, store.SetLWWBlob)
	case s.PrimaryReads != "any" && s.PrimaryReads != "primary":
		return db.Usagef("--primary-reads %q: want any or primary", s.PrimaryReads)
	}
	return nil
}

// RunName is "ecstore-MODE", with the quorums in lww, hlc and mvr and
// the counters when they are G-Counters: "ecstore-lww-w1r1",
// "ecstore-mvr-w2r2-gcounter".
func (s *Settings) RunName(db.Common) string {
	name := Name + "-" + s.Mode
	if slices.Contains(DynamoModes, s.Mode) {
		name += fmt.Sprintf("-w%dr%d", s.W, s.R)
	}
	if s.CounterImpl == store.CounterG {
		name += "-gcounter"
	}
	return name
}

func (s *Settings) Record() map[string]any {
	m := map[string]any{"mode": s.Mode, "sessions": s.Sessions}
	if s.N != 0 {
		m["n"] = s.N
	}
	if s.W != 0 {
		m["w"] = s.W
	}
	if s.R != 0 {
		m["r"] = s.R
	}
	if s.SetImpl != "" {
		m["set_impl"] = s.SetImpl
	}
	if s.CounterImpl != "" {
		m["counter_impl"] = s.CounterImpl
	}
	return m
}

func (s *Settings) Start(ctx context.Context, env db.Env) (db.System, error) {
	switch env.Backend {
	case db.BackendDocker:
		return s.startDocker(ctx, env)
	case db.BackendSSH:
		return s.startSSH(ctx, env)
	}
	return s.startLocal(ctx, env)
}

const cellForms = "raft, lww, lww:w1r1, lww:w2r2, lww:n3w2r2 (N replicas, W, R), hlc, hlc:w1r1, mvr, mvr:w2r2, primary, primary:reads-primary; any but mvr +sessions"

func (*Settings) CellForms() string { return cellForms }

func (*Settings) CellHelp() string {
	return `  raft                    consensus; reads confirmed by the leader
  lww, lww:w1r1           last-write-wins, W=1 R=1 over every node
  lww:w2r2, lww:n3w2r2    with quorums W and R (and N replicas per key)
  hlc, hlc:w1r1, ...      hybrid logical clock stamps, same quorum forms
  mvr, mvr:w2r2, ...      multi-value registers (siblings), same quorum forms
  primary                 asynchronous primary, reads from any node
  primary:reads-primary   reads from the primary
Any of them but mvr +sessions (lww:w1r1+sessions) runs the clients with session tokens.
`
}

func (*Settings) DefaultCells() string   { return "raft,lww:w1r1,lww:w2r2,hlc,primary" }
func (*Settings) DefaultNemeses() string { return "none,partition,clock" }

var quorumSpec = regexp.MustCompile(`^(?:n([0-9]+))?w([0-9]+)r([0-9]+)$`)

// Cell parses one configuration of a report card for a cluster of
// c.Nodes nodes: "raft", "lww:w2r2", "primary:reads-primary", any of them
// "+sessions".
func (s *Settings) Cell(spec string, c db.Common) (db.Settings, error) {
	cell := &Settings{W: 1, R: 1, PrimaryReads: "any", SetImpl: store.SetORSet}
	bad := func(why string) (db.Settings, error) {
		return nil, fmt.Errorf("configuration %q: %s (accepted forms: %s)", spec, why, cellForms)
	}
	rest, sessions := strings.CutSuffix(spec, "+sessions")
	cell.Sessions = sessions
	mode, param, hasParam := strings.Cut(rest, ":")
	cell.Mode = mode
	switch mode {
	case store.ModeRaft:
		if hasParam {
			return bad("raft takes no parameters")
		}
	case store.ModePrimary:
		switch {
		case !hasParam, param == "reads-any":
		case param == "reads-primary":
			cell.PrimaryReads = "primary"
		default:
			return bad(fmt.Sprintf("unknown primary parameter %q", param))
		}
	case store.ModeLWW, store.ModeHLC, store.ModeMVR:
		if mode == store.ModeMVR && sessions {
			return bad("mvr runs without sessions")
		}
		if !hasParam {
			break
		}
		m := quorumSpec.FindStringSubmatch(param)
		if m == nil {
			return bad(fmt.Sprintf("quorums %q: want wWrR or nNwWrR, e.g. w2r2", param))
		}
		cell.N, _ = strconv.Atoi(m[1])
		cell.W, _ = strconv.Atoi(m[2])
		cell.R, _ = strconv.Atoi(m[3])
		replicas := c.Nodes
		if cell.N > 0 {
			replicas = cell.N
		}
		if cell.N > c.Nodes || cell.W < 1 || cell.R < 1 || cell.W > replicas || cell.R > replicas {
			return bad(fmt.Sprintf("need 1 <= W, R <= N <= %d nodes", c.Nodes))
		}
	default:
		return bad(fmt.Sprintf("unknown mode %q", mode))
	}
	return cell, nil
}
