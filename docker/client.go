package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/moby/moby/client"
)

// Client is a connection to a Docker engine.
type Client struct {
	api  *client.Client
	host string
	// APIVersion is the version negotiated with the engine.
	APIVersion string
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
	return &Client{api: api, host: host, APIVersion: v}, nil
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
