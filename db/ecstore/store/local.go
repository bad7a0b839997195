package store

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// LocalOptions configures an in-process cluster.
type LocalOptions struct {
	// Nodes is how many nodes, named n1, n2, ...; 0 means 3.
	Nodes int
	// Node is the configuration every node shares: the mode and its
	// settings. ID, Listen, Peers, Raft addresses, DataDir and Faults are
	// filled in per node.
	Node Config
	// DataDir is where nodes keep what their mode persists, one folder per
	// node; empty means a temporary folder removed by Close.
	DataDir string
	// LogfFor, if set, gives each node its logger (Node.Logf otherwise).
	LogfFor func(node string) func(format string, args ...any)
}

// LocalCluster is N ecstore nodes in this process, talking over loopback
// through a LocalNet that can partition them (one-way too), delay their
// messages and pause them; nodes can be killed and started again (keeping
// what their mode persists) and their clocks skewed. It is the in-process
// cluster backend: the nemesis drives it through these methods.
type LocalCluster struct {
	mu      sync.Mutex
	net     *LocalNet
	ids     []string
	cfgs    map[string]Config
	nodes   map[string]*Node // nil while killed
	offsets map[string]time.Duration
	tmp     string
}

// StartLocal starts an in-process cluster and waits until it is ready to
// serve (for raft, until a leader is elected), within ctx.
func StartLocal(ctx context.Context, o LocalOptions) (*LocalCluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 64 {
		return nil, fmt.Errorf("local cluster: %d nodes; want 1 to 64", o.Nodes)
	}
	c := &LocalCluster{net: NewLocalNet(), cfgs: map[string]Config{}, nodes: map[string]*Node{}, offsets: map[string]time.Duration{}}
	dataDir := o.DataDir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "ecstore-local-")
		if err != nil {
			return nil, fmt.Errorf("local cluster: %w", err)
		}
		dataDir, c.tmp = d, d
	}
	http := map[string]string{}
	raft := map[string]string{}
	// Hold every picked port until all are picked, so that no two nodes
	// get the same one.
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for i := 1; i <= o.Nodes; i++ {
		id := "n" + strconv.Itoa(i)
		c.ids = append(c.ids, id)
		var err error
		if http[id], err = freeAddr(&held); err != nil {
			return nil, err
		}
		if raft[id], err = freeAddr(&held); err != nil {
			return nil, err
		}
	}
	for _, ln := range held {
		ln.Close()
	}
	held = nil
	token := o.Node.Token
	if token == NoToken {
		token = ""
	} else if token == "" {
		// Every in-process cluster has a secret of its own, so that the
		// peer traffic of every test goes through the token check.
		var b [16]byte
		crand.Read(b[:])
		token = hex.EncodeToString(b[:])
	}
	for _, id := range c.ids {
		cfg := o.Node
		cfg.Token = token
		cfg.ID, cfg.Listen, cfg.RaftListen = id, http[id], raft[id]
		cfg.Peers, cfg.RaftPeers = map[string]string{}, map[string]string{}
		for _, p := range c.ids {
			if p != id {
				cfg.Peers[p], cfg.RaftPeers[p] = http[p], raft[p]
			}
		}
		cfg.DataDir = filepath.Join(dataDir, id)
		cfg.Faults = c.net
		if o.LogfFor != nil {
			cfg.Logf = o.LogfFor(id)
		}
		c.cfgs[id] = cfg
	}
	for _, id := range c.ids {
		if err := c.Start(id); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NoToken as LocalOptions.Node.Token starts an in-process cluster without
// a token (one is drawn otherwise).
const NoToken = "\x00none"

// freeAddr finds a free loopback port, adding its listener to held (the
// caller closes them).
func freeAddr(held *[]net.Listener) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	*held = append(*held, ln)
	return ln.Addr().String(), nil
}

// Nodes returns the node names, sorted.
func (c *LocalCluster) Nodes() []string { return append([]string(nil), c.ids...) }

// Net returns the cluster's fault state.
func (c *LocalCluster) Net() *LocalNet { return c.net }

// Addr returns a node's client API address (host:port).
func (c *LocalCluster) Addr(node string) string { return c.cfgs[node].Listen }

// Node returns a running node, or nil while it is killed.
func (c *LocalCluster) Node(node string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[node]
}

func (c *LocalCluster) known(node string) error {
	if _, ok := c.cfgs[node]; !ok {
		return fmt.Errorf("no node %q in the cluster (nodes: %v)", node, c.ids)
	}
	return nil
}

// Partition replaces the partition: grudge[a] lists the nodes whose
// messages a drops.
func (c *LocalCluster) Partition(grudge map[string][]string) error {
	for a, bs := range grudge {
		if err := c.known(a); err != nil {
			return err
		}
		for _, b := range bs {
			if err := c.known(b); err != nil {
				return err
			}
		}
	}
	c.net.SetGrudge(grudge)
	return nil
}

// Heal removes every partition and link delay.
func (c *LocalCluster) Heal() error {
	c.net.Heal()
	return nil
}

// SetDelay delays the messages from one node to another.
func (c *LocalCluster) SetDelay(from, to string, d time.Duration) error {
	if err := errors.Join(c.known(from), c.known(to)); err != nil {
		return err
	}
	c.net.SetDelay(from, to, d)
	return nil
}

// SetClock sets a node's clock offset (kept across a restart).
func (c *LocalCluster) SetClock(node string, offset time.Duration) error {
	if err := c.known(node); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offsets[node] = offset
	if n := c.nodes[node]; n != nil {
		n.Clock().Set(offset, 0)
	}
	return nil
}

// Kill stops a node at once, closing its sockets; what its mode keeps only
// in memory is lost.
func (c *LocalCluster) Kill(node string) error {
	if err := c.known(node); err != nil {
		return err
	}
	c.mu.Lock()
	n := c.nodes[node]
	c.nodes[node] = nil
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Close()
}

// Start starts a node that is not running (at first, or after Kill).
func (c *LocalCluster) Start(node string) error {
	if err := c.known(node); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[node] != nil {
		return nil
	}
	n, err := NewNode(c.cfgs[node])
	if err != nil {
		return err
	}
	n.Clock().Set(c.offsets[node], 0)
	// A killed node's port may linger briefly; retry the listen.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err = n.Start(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
		if n, err = NewNode(c.cfgs[node]); err != nil {
			return err
		}
		n.Clock().Set(c.offsets[node], 0)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", node, err)
	}
	c.nodes[node] = n
	return nil
}

// Pause freezes a node without closing its sockets; Resume unfreezes it.
func (c *LocalCluster) Pause(node string) error {
	if err := c.known(node); err != nil {
		return err
	}
	c.net.Pause(node)
	return nil
}

// Resume unfreezes a paused node.
func (c *LocalCluster) Resume(node string) error {
	if err := c.known(node); err != nil {
		return err
	}
	c.net.Resume(node)
	return nil
}

// WaitReady waits until every running node reports ready.
func (c *LocalCluster) WaitReady(ctx context.Context) error {
	for {
		var waiting []string
		c.mu.Lock()
		for _, id := range c.ids {
			if n := c.nodes[id]; n != nil && !n.Status().Ready {
				waiting = append(waiting, id)
			}
		}
		c.mu.Unlock()
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			sort.Strings(waiting)
			return fmt.Errorf("local cluster: nodes %v not ready: %w", waiting, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops every node and removes the temporary data folder.
func (c *LocalCluster) Close() error {
	c.net.ResumeAll()
	c.net.Heal()
	var errs []error
	for _, id := range c.ids {
		errs = append(errs, c.Kill(id))
	}
	if c.tmp != "" {
		errs = append(errs, os.RemoveAll(c.tmp))
	}
	return errors.Join(errs...)
}
