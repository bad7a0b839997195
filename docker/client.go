package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Client is a connection to a Docker engine.
type Client struct {
	api  *client.Client
	host string
	// APIVersion is the version negotiated with the engine.
	APIVersion string
	// owner, when set (from $ECCHECK_OWNER), is put on every container
	// and network as the label eccheck.owner, so that a sweep can find
	// what a process that was killed left behind (see [Client.Sweep]).
	owner string
}

// LabelOwner marks what a process that set $ECCHECK_OWNER created.
const LabelOwner = "eccheck.owner"

// labels returns the labels of something created for cluster, with the
// owner's when there is one, and extra.
func (c *Client) labels(cluster string, extra ...string) map[string]string {
	m := map[string]string{LabelCluster: cluster}
	if c.owner != "" {
		m[LabelOwner] = c.owner
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// ErrNoEngine is wrapped by Connect's error when no engine answers.
var ErrNoEngine = errors.New("docker engine not reachable")

// Connect connects to the engine named by the environment (DOCKER_HOST,
// DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY; the local socket
// by default), pings it and negotiates the API version down to the
// engine's. When no engine answers the error wraps [ErrNoEngine].
func Connect(ctx context.Context) (*Client, error) {
	api, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = client.DefaultDockerHost
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ping, err := api.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		api.Close()
		return nil, fmt.Errorf("%w at %s: is dockerd running? eccheck's local backend needs no Docker: drop --cluster docker (%v)", ErrNoEngine, host, err)
	}
	v := api.ClientVersion()
	if v == "" {
		v = ping.APIVersion
	}
	return &Client{api: api, host: host, APIVersion: v, owner: os.Getenv("ECCHECK_OWNER")}, nil
}

// API returns the underlying Engine API client.
func (c *Client) API() *client.Client { return c.api }

// Host returns the engine's address.
func (c *Client) Host() string { return c.host }

// Close releases the connection.
func (c *Client) Close() error { return c.api.Close() }

// Engine describes the engine a run used, so that runs on different
// machines can be compared: test.json records it.
type Engine struct {
	Version       string `json:"version"`
	APIVersion    string `json:"api_version"`
	StorageDriver string `json:"storage_driver"`
	CgroupVersion string `json:"cgroup_version"`
	CgroupDriver  string `json:"cgroup_driver"`
	Kernel        string `json:"kernel"`
	OS            string `json:"os"`
	CPUs          int    `json:"cpus"`
	MemoryBytes   int64  `json:"memory_bytes"`
}

// Engine asks the engine what it is.
func (c *Client) Engine(ctx context.Context) (Engine, error) {
	res, err := c.api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Engine{}, fmt.Errorf("engine info: %w", err)
	}
	i := res.Info
	cg := i.CgroupVersion
	if cg == "" {
		cg = "1" // engines before API 1.40 do not say; they only know v1
	}
	return Engine{
		Version: i.ServerVersion, APIVersion: c.APIVersion, StorageDriver: i.Driver,
		CgroupVersion: cg, CgroupDriver: i.CgroupDriver, Kernel: i.KernelVersion, OS: i.OperatingSystem,
		CPUs: i.NCPU, MemoryBytes: i.MemTotal,
	}, nil
}

// Sweep removes every cluster whose containers or networks carry an owner
// label (see $ECCHECK_OWNER) for which alive reports false: what test
// binaries killed by a timeout, or harnesses killed with SIGKILL, left
// behind. It returns the clusters it removed.
func (c *Client) Sweep(ctx context.Context, alive func(owner string) bool) ([]string, error) {
	f := make(client.Filters).Add("label", LabelOwner)
	owners := map[string]string{} // cluster -> owner
	cs, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, s := range cs.Items {
		owners[s.Labels[LabelCluster]] = s.Labels[LabelOwner]
	}
	ns, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range ns.Items {
		owners[n.Labels[LabelCluster]] = n.Labels[LabelOwner]
	}
	var swept []string
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(owners)) {
		if name == "" || alive(owners[name]) {
			continue
		}
		if err := c.Down(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		swept = append(swept, name)
	}
	return swept, errors.Join(errs...)
}

// ProcessOwner names this process for the owner label:
// "pid:HOST:PID:START". HOST is this kernel's boot id and this process's
// PID namespace, so that a process of another machine or container
// sharing the engine is never judged by this one's process table; START
// is the process's start time in clock ticks since boot, so that a reused
// PID is not taken for it. Tests set $ECCHECK_OWNER to it.
func ProcessOwner() string {
	return fmt.Sprintf("pid:%s:%d:%d", hostID(), os.Getpid(), startTime(os.Getpid()))
}

// OwnerAlive reports whether the process an owner label names (see
// [ProcessOwner]) still runs. Owners of other shapes, and processes of
// another machine or PID namespace, are always alive: they are never
// swept from here.
func OwnerAlive(owner string) bool {
	parts := strings.Split(owner, ":")
	if len(parts) != 4 || parts[0] != "pid" || parts[1] != hostID() {
		return true
	}
	pid, err1 := strconv.Atoi(parts[2])
	start, err2 := strconv.ParseUint(parts[3], 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	return startTime(pid) == start
}

// hostID names the process table this process sees: the kernel's boot id
// and the inode of its PID namespace ("?" for what cannot be read).
func hostID() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	id := strings.TrimSpace(string(boot))
	if err != nil || id == "" {
		id = "?"
	}
	ns, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return id + "/?"
	}
	return id + "/" + strings.Trim(strings.TrimPrefix(ns, "pid:"), "[]")
}

// startTime returns a process's start time from /proc/PID/stat (field 22),
// or 0 when the process does not exist.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// The command name (field 2) is in parentheses and may hold spaces.
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64) // field 22, counting from the state (field 3)
	return n
}
