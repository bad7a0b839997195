package ecstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
	"github.com/eccheck/eccheck/workload"
)

// Image is the image ecstore nodes run: FROM scratch with a static eccheck
// binary, entrypoint `eccheck store serve`, and /var/lib/ecstore for the
// node's data directory and clock file.
var Image = docker.ImageSpec{
	Role: "ecstore", Repo: "eccheck/ecstore", Static: true,
	Entrypoint: []string{"/eccheck", "store", "serve"}, Dirs: []string{"var/lib/ecstore", "tmp"},
	Doc: "a static eccheck binary running 'eccheck store serve'",
}

// Ports and paths inside an ecstore node container.
const (
	port      = 7001               // the client and peer HTTP API; Raft on 8001
	nodeDir   = "/var/lib/ecstore" // holds the data directory and the clock file
	clockFile = nodeDir + "/clock"
	dataDir   = nodeDir + "/data"
)

// clients makes the workers' clients of a cluster whose nodes are at
// addr(node): bound to a node, or roaming across all of them.
type clients struct {
	nodes    []string
	addr     func(node string) string
	sessions bool
	timeout  time.Duration
	idem     bool // --idempotency-keys
	mvr      bool // multi-value registers (--mode mvr)
}

func (c clients) NewClient(name, node string) (workload.Client, error) {
	o := Options{Workload: workload.Kind(name), Sessions: c.sessions, Timeout: c.timeout, IdempotencyKeys: c.idem, MultiValue: c.mvr}
	if node == "" {
		addrs := make([]string, len(c.nodes))
		for i, n := range c.nodes {
			addrs[i] = c.addr(n)
		}
		return NewRoaming(addrs, o), nil
	}
	return New(c.addr(node), o), nil
}

// Settle has nothing to wait for: recovery is the anti-entropy that the
// recovery wait gives time to.
func (clients) Settle(context.Context) {}

// localSystem is an ecstore cluster in this process.
type localSystem struct {
	*store.LocalCluster
	clients
	dir  string // the run directory, whose data/ the nodes use
	logs *nodeLogs
}

var _ db.System = (*localSystem)(nil)

func (s *Settings) config(opTimeout time.Duration) store.Config {
	return store.Config{Mode: s.Mode, N: s.N, W: s.W, R: s.R, SetImpl: s.SetImpl, CounterImpl: s.CounterImpl, PrimaryReads: s.PrimaryReads,
		RequestTimeout: opTimeout / 2, AntiEntropy: 500 * time.Millisecond, FailoverTimeout: time.Second}
}

// startLocal starts the nodes in this process, each logging to
// Dir/nodes/<node>.log.
func (s *Settings) startLocal(ctx context.Context, env db.Env) (db.System, error) {
	logs := &nodeLogs{dir: filepath.Join(env.Dir, "nodes"), files: map[string]*os.File{}}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	local, err := store.StartLocal(sctx, store.LocalOptions{Nodes: env.Nodes, Node: s.config(env.OpTimeout), DataDir: filepath.Join(env.Dir, "data"), LogfFor: logs.logf})
	if err != nil {
		logs.close()
		return nil, fmt.Errorf("start the %s cluster: %w", s.Mode, err)
	}
	env.Logf("cluster up: %d %s nodes in this process (%s)", env.Nodes, s.Mode, strings.Join(local.Nodes(), ", "))
	return &localSystem{LocalCluster: local, dir: env.Dir, logs: logs,
		clients: clients{nodes: local.Nodes(), addr: local.Addr, sessions: s.Sessions, timeout: env.OpTimeout, idem: env.IdempotencyKeys, mvr: s.Mode == store.ModeMVR}}, nil
}

func (*localSystem) Info() db.Info { return db.Info{} }

// Close stops the nodes and removes their data; their logs are already in
// the run directory.
func (ls *localSystem) Close(context.Context, string) error {
	err := ls.LocalCluster.Close()
	ls.logs.close()
	os.RemoveAll(filepath.Join(ls.dir, "data"))
	if err != nil {
		return fmt.Errorf("stop the cluster: %w", err)
	}
	return nil
}

// nodeLogs writes each node's log to its own file.
type nodeLogs struct {
	mu    sync.Mutex
	dir   string
	files map[string]*os.File
}

func (l *nodeLogs) logf(node string) func(string, ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(l.dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return func(string, ...any) {}
	}
	l.files[node] = f
	lg := log.New(f, "", log.LstdFlags|log.Lmicroseconds|log.LUTC)
	return lg.Printf
}

func (l *nodeLogs) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		f.Close()
	}
}

// dockerSystem is an ecstore cluster in containers.
type dockerSystem struct {
	*docker.Cluster
	clients
	c      *docker.Client
	keep   bool
	images map[string]string
	engine *docker.Engine
	logf   func(string, ...any)
}

var (
	_ db.System     = (*dockerSystem)(nil)
	_ db.Containers = (*dockerSystem)(nil)
	_ db.NodeStatus = (*dockerSystem)(nil)
)

// newDockerSystem makes cl an ecstore system: health says a node is ready,
// and POST /v1/admin/delay is the delay hook.
func newDockerSystem(c *docker.Client, cl *docker.Cluster, images map[string]string, keep bool, o Options, logf func(string, ...any)) *dockerSystem {
	cl.SetReady(healthy)
	sys := &dockerSystem{Cluster: cl, c: c, keep: keep, images: images, logf: logf,
		clients: clients{nodes: cl.Nodes(), addr: cl.Addr, sessions: o.Sessions, timeout: o.Timeout, idem: o.IdempotencyKeys, mvr: o.MultiValue}}
	cl.SetDelayHook(sys.setDelay)
	return sys
}

// startDocker connects to the engine, makes sure the images exist
// (building what is missing) and brings up the cluster.
func (s *Settings) startDocker(ctx context.Context, env db.Env) (db.System, error) {
	d, err := db.StartDocker(ctx, env, Image)
	if err != nil {
		return nil, err
	}
	c, images, name := d.Client, d.Images, d.Name
	var extra []string
	if env.OpTimeout > 0 {
		extra = []string{"--request-timeout", (env.OpTimeout / 2).String(), "--anti-entropy", "500ms", "--failover-timeout", "1s"}
	}
	extra = append(extra, "--primary-reads", s.PrimaryReads)
	env.Logf("starting Docker cluster %s: %d %s nodes from %s", name, env.Nodes, s.Mode, images[Image.Role])
	cl, err := c.Up(ctx, docker.ClusterSpec{
		Name: name, DB: Name, Nodes: env.Nodes, Image: images[Image.Role], Port: port,
		Cmd:   s.nodeCmd(extra),
		Ready: healthy, Clock: docker.ClockSpec{File: clockFile}, Progress: env.Progress, Wait: env.Wait,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("start the %s cluster in Docker: %w", s.Mode, err)
	}
	sys := newDockerSystem(c, cl, images, env.Keep, Options{Sessions: s.Sessions, Timeout: env.OpTimeout, IdempotencyKeys: env.IdempotencyKeys, MultiValue: s.Mode == store.ModeMVR}, env.Logf)
	sys.engine = d.Engine
	var addrs []string
	for _, n := range cl.Nodes() {
		addrs = append(addrs, n+"="+cl.Addr(n))
	}
	env.Logf("cluster up: %d %s nodes in Docker cluster %s (%s)", env.Nodes, s.Mode, name, strings.Join(addrs, ", "))
	return sys, nil
}

// serveFlags appends to args the settings' flags of `eccheck store
// serve`: the quorums, the set and the counter (pn, the default, left
// out).
func (s *Settings) serveFlags(args []string) []string {
	if s.N > 0 {
		args = append(args, "--n", strconv.Itoa(s.N))
	}
	if s.W > 0 {
		args = append(args, "--w", strconv.Itoa(s.W))
	}
	if s.R > 0 {
		args = append(args, "--r", strconv.Itoa(s.R))
	}
	if s.SetImpl != "" {
		args = append(args, "--set-impl", s.SetImpl)
	}
	if s.CounterImpl == store.CounterG {
		args = append(args, "--counter-impl", s.CounterImpl)
	}
	return args
}

// nodeCmd is a node's `eccheck store serve` command line: its peers at
// their fixed addresses, the data directory and the clock file, the mode
// and its settings, then extra.
func (s *Settings) nodeCmd(extra []string) func(n *docker.Node, nodes []*docker.Node) []string {
	return func(n *docker.Node, nodes []*docker.Node) []string {
		var peers []string
		for _, p := range nodes {
			if p != n {
				peers = append(peers, fmt.Sprintf("%s=%s:%d", p.Name, p.IP, port))
			}
		}
		args := []string{
			"--id", n.Name,
			"--listen", fmt.Sprintf("%s:%d", n.IP, port),
			"--peers", strings.Join(peers, ","),
			"--mode", s.Mode,
			"--data-dir", dataDir,
			"--clock-file", clockFile,
		}
		return append(s.serveFlags(args), extra...)
	}
}

// healthy is the readiness probe: GET /v1/health says ready.
func healthy(ctx context.Context, _ *docker.Node, addr string) (bool, string) {
	st, err := health(ctx, addr)
	switch {
	case err != nil:
		return false, err.Error()
	case st.Ready:
		return true, ""
	}
	return false, fmt.Sprintf("health: ready=%v %s", st.Ready, st.Detail)
}

// health reads a node's GET /v1/health.
func health(ctx context.Context, addr string) (store.Status, error) {
	var st store.Status
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("health: %s: %w", resp.Status, err)
	}
	return st, nil
}

// setDelay makes node from delay its peer messages to node to (every peer
// when empty) by d, through POST /v1/admin/delay; 0 removes the delay.
func (sys *dockerSystem) setDelay(from, to string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, _ := json.Marshal(store.DelayRequest{Peer: to, Ms: d.Milliseconds()})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+sys.Addr(from)+"/v1/admin/delay", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("delay on %s: %w", from, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return fmt.Errorf("delay on %s: %w", from, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("delay on %s: %s: %s", from, resp.Status, bytes.TrimSpace(data))
	}
	return nil
}

// NodeStatus reports node's clock offset and hook delays, from its health.
func (sys *dockerSystem) NodeStatus(ctx context.Context, node string) (time.Duration, map[string]int64, error) {
	st, err := health(ctx, sys.Addr(node))
	if err != nil {
		return 0, nil, err
	}
	return time.Duration(st.ClockOffsetNs), st.DelaysMs, nil
}

func (sys *dockerSystem) Docker() *docker.Cluster { return sys.Cluster }

func (sys *dockerSystem) Info() db.Info {
	return db.Info{ClusterName: sys.Name(), Images: sys.images, Engine: sys.engine}
}

// Close saves each node's container log to logDir/<node>.log (when logDir
// is set) and removes the cluster, unless it is kept.
func (sys *dockerSystem) Close(ctx context.Context, logDir string) error {
	defer sys.c.Close()
	return sys.Finish(ctx, logDir, sys.keep, sys.logf)
}

var _ nemesis.Cluster = (*dockerSystem)(nil)
