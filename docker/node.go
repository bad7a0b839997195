// This file holds a node's life in its container: readiness, logs, kill,
// start, pause, resume, its clock file, files written into it.

package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// WaitReady waits until every running node is ready (its probe says so;
// without a probe, its container runs). On timeout the error names the
// node and carries its last log lines.
func (cl *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range cl.nodes {
		if err := cl.waitNode(ctx, n, deadline, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (cl *Cluster) waitNode(ctx context.Context, n *Node, deadline time.Time, timeout time.Duration) error {
	cl.mu.Lock()
	probe := cl.ready
	cl.mu.Unlock()
	if probe == nil {
		probe = func(context.Context, *Node, string) (bool, string) { return true, "" }
	}
	addr := cl.Addr(n.Name)
	return cl.pollNode(ctx, n, deadline, timeout, 100*time.Millisecond, func() (bool, string) { return probe(ctx, n, addr) })
}

// Poll calls probe every pause until it reports ready, and gives up when
// ctx ends, when bound passes or when node's container stops; the error
// then names the node, says why (with probe's last answer) and carries the
// container's last log lines.
func (cl *Cluster) Poll(ctx context.Context, node string, bound, pause time.Duration, probe func() (ready bool, last string)) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	return cl.pollNode(ctx, n, time.Now().Add(bound), bound, pause, probe)
}

// pollNode calls probe every pause until it reports ready, and gives up
// when ctx ends, when the deadline passes or when n's container stops; the
// error then names the node, says why (with probe's last answer) and
// carries the container's last log lines.
func (cl *Cluster) pollNode(ctx context.Context, n *Node, deadline time.Time, timeout, pause time.Duration, probe func() (ready bool, last string)) error {
	for {
		ready, last := probe()
		if ready {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s: %w", n.Name, ctx.Err())
		}
		insp, ierr := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		exited := ierr == nil && insp.Container.State != nil && !insp.Container.State.Running
		if exited || time.Now().After(deadline) {
			why := fmt.Sprintf("not ready after %v (last: %s)", timeout, last)
			if exited {
				why = fmt.Sprintf("container %s stopped (exit code %d)", n.Container, insp.Container.State.ExitCode)
			}
			logs, _ := cl.c.logs(ctx, n.ID, "20")
			return fmt.Errorf("%s node %s at %s: %s; its last log lines:\n%s", cl.db, n.Name, cl.Addr(n.Name), why, Indent(logs))
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// Indent indents every line of s by two spaces ("  (no output)" when s
// is empty), for log lines inside an error.
func Indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "  (no output)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// logs returns a container's log (stdout and stderr interleaved as
// written); tail is a line count or "all".
func (c *Client) logs(ctx context.Context, id, tail string) (string, error) {
	return c.readLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
}

// logsSince returns a container's log lines written since t.
func (c *Client) logsSince(ctx context.Context, id string, t time.Time) (string, error) {
	return c.readLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Since: fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())})
}

func (c *Client) readLogs(ctx context.Context, id string, o client.ContainerLogsOptions) (string, error) {
	rc, err := c.api.ContainerLogs(ctx, id, o)
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.String(), fmt.Errorf("logs: %w", err)
	}
	return buf.String(), nil
}

// Logs returns node's container log.
func (cl *Cluster) Logs(ctx context.Context, node string) (string, error) {
	return cl.LogTail(ctx, node, "all")
}

// LogTail returns the last lines of node's container log; tail is a line
// count or "all".
func (cl *Cluster) LogTail(ctx context.Context, node, tail string) (string, error) {
	n, err := cl.Node(node)
	if err != nil {
		return "", err
	}
	return cl.c.logs(ctx, n.ID, tail)
}

// LogsSince returns node's container log lines written since t.
func (cl *Cluster) LogsSince(ctx context.Context, node string, t time.Time) (string, error) {
	n, err := cl.Node(node)
	if err != nil {
		return "", err
	}
	return cl.c.logsSince(ctx, n.ID, t)
}

// Refresh re-reads every node's container state.
func (cl *Cluster) Refresh(ctx context.Context) error {
	for _, n := range cl.nodes {
		insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect %s: %w", n.Container, err)
		}
		if insp.Container.State != nil {
			n.State = string(insp.Container.State.Status)
		}
	}
	return nil
}

// onNode runs fn on node with a context bounded by [FaultTimeout]; fn's
// error is wrapped as "VERB NODE: ...".
func (cl *Cluster) onNode(verb, node string, fn func(ctx context.Context, n *Node) error) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := FaultContext()
	defer cancel()
	if err := fn(ctx, n); err != nil {
		return fmt.Errorf("%s %s: %w", verb, node, err)
	}
	return nil
}

// Kill stops node at once (SIGKILL), losing what it keeps only in memory;
// its filesystem stays.
func (cl *Cluster) Kill(node string) error {
	return cl.onNode("kill", node, func(ctx context.Context, n *Node) error {
		if _, err := cl.c.api.ContainerKill(ctx, n.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			if strings.Contains(err.Error(), "is not running") {
				return nil
			}
			return err
		}
		// Wait until the engine reports it stopped, so that Start follows.
		wr := cl.c.api.ContainerWait(ctx, n.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-wr.Result:
		case err := <-wr.Error:
			return fmt.Errorf("wait: %w", err)
		}
		n.State = string(container.StateExited)
		return nil
	})
}

// Start starts a killed node again and waits until it answers (ecstore's
// health says ready; Postgres accepts a connection); a running node is
// left as it is. A partition in force is applied to it again (its
// network namespace is new).
func (cl *Cluster) Start(node string) error {
	return cl.onNode("start", node, func(ctx context.Context, n *Node) error {
		if run, _, err := cl.running(ctx, n); err != nil || run {
			return err
		}
		if _, err := cl.c.api.ContainerStart(ctx, n.ID, client.ContainerStartOptions{}); err != nil {
			return err
		}
		n.State = string(container.StateRunning)
		if err := cl.partitionAgain(ctx, n); err != nil {
			return err
		}
		return cl.waitNode(ctx, n, time.Now().Add(30*time.Second), 30*time.Second)
	})
}

// StartContainer starts node's container, when it is not running, and
// applies the partition in force to it, without waiting for it to
// answer: for a system that watches its node come up its own way.
func (cl *Cluster) StartContainer(ctx context.Context, node string) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	if run, _, err := cl.running(ctx, n); err != nil || run {
		return err
	}
	if err := cl.c.startNodes(ctx, []*Node{n}); err != nil {
		return err
	}
	return cl.partitionAgain(ctx, n)
}

// partitionAgain applies the partition in force to n, just started (its
// network namespace is new).
func (cl *Cluster) partitionAgain(ctx context.Context, n *Node) error {
	cl.mu.Lock()
	drops := cl.grudge[n.Name]
	cl.mu.Unlock()
	if len(drops) == 0 {
		return nil
	}
	if err := cl.applyRules(ctx, n, drops); err != nil {
		return fmt.Errorf("partition again: %w", err)
	}
	return nil
}

// Pause freezes node (cgroup freezer) without closing its connections.
func (cl *Cluster) Pause(node string) error {
	return cl.onNode("pause", node, func(ctx context.Context, n *Node) error {
		if _, err := cl.c.api.ContainerPause(ctx, n.ID, client.ContainerPauseOptions{}); err != nil {
			return err
		}
		n.State = string(container.StatePaused)
		return nil
	})
}

// Resume unfreezes a paused node; a node that is not paused is left as it
// is.
func (cl *Cluster) Resume(node string) error {
	return cl.onNode("resume", node, func(ctx context.Context, n *Node) error {
		if _, paused, err := cl.running(ctx, n); err != nil || !paused {
			return err
		}
		if _, err := cl.c.api.ContainerUnpause(ctx, n.ID, client.ContainerUnpauseOptions{}); err != nil {
			return err
		}
		n.State = string(container.StateRunning)
		return nil
	})
}

// SetClock sets node's clock offset by writing the offset file of the
// cluster's ClockSpec into its container (nothing runs in it); the node's
// processes read it on their next clock call. 0 resets it. A cluster
// whose spec has no clock file, or a node started without the
// environment the file needs (libfaketime's), is an error that says so.
func (cl *Cluster) SetClock(node string, offset time.Duration) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	if cl.clock.File == "" {
		return fmt.Errorf("set clock of %s: %s nodes have no clock hook that eccheck can move", node, cl.db)
	}
	ctx, cancel := FaultContext()
	defer cancel()
	if cl.clock.Env != "" {
		insp, err := cl.c.api.ContainerInspect(ctx, n.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("set clock of %s: %w", node, err)
		}
		if insp.Container.Config == nil || !slices.Contains(insp.Container.Config.Env, cl.clock.Env) {
			return fmt.Errorf("set clock of %s: its processes run without %s, so no clock can move; start the cluster with clock faults in --nemesis, or with 'eccheck cluster up --fake-time'", node, cl.clock.Env)
		}
	}
	var text string
	if cl.clock.Seconds {
		text = FakeTimeOffset(offset)
	} else {
		text = offset.String()
		if offset >= 0 {
			text = "+" + text
		}
	}
	if err := cl.c.WriteFile(ctx, n.ID, cl.clock.File, []byte(text+"\n")); err != nil {
		return fmt.Errorf("set clock of %s: %w", node, err)
	}
	return nil
}

// WriteFile writes node's file path (absolute) in its container, running
// or not, with CopyToContainer: nothing is executed in it. The file's
// directory is made when missing.
func (cl *Cluster) WriteFile(node, path string, body []byte) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := FaultContext()
	defer cancel()
	return cl.c.WriteFile(ctx, n.ID, path, body)
}

// createNode creates node n's container from cfg (image, command, user),
// adding what every cluster node has: its host name, the labels of cluster
// and db, a fixed address on the cluster network, and port published on
// 127.0.0.1 only, at n.HostPort.
func (c *Client) createNode(ctx context.Context, cluster, db, netName string, n *Node, port network.Port, cfg *container.Config, extra map[string]string) error {
	cfg.Hostname = n.Name
	cfg.ExposedPorts = network.PortSet{port: {}}
	cfg.Labels = c.labels(cluster, LabelNode, n.Name, LabelRole, "node", LabelDB, db)
	maps.Copy(cfg.Labels, extra)
	res, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   n.Container,
		Config: cfg,
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(netName),
			PortBindings: network.PortMap{port: {{
				HostIP:   netip.MustParseAddr("127.0.0.1"),
				HostPort: strconv.Itoa(n.HostPort),
			}}},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: n.IP}},
		}},
	})
	if err != nil {
		return fmt.Errorf("create container %s: %w", n.Container, err)
	}
	n.ID = res.ID
	return nil
}

// startNodes starts the nodes' containers.
func (c *Client) startNodes(ctx context.Context, nodes []*Node) error {
	for _, n := range nodes {
		if _, err := c.api.ContainerStart(ctx, n.ID, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("start container %s: %w", n.Container, err)
		}
		n.State = string(container.StateRunning)
	}
	return nil
}

// Finish ends a test's use of the cluster: it saves each node's container
// log as logDir/<node>.log (when logDir is set) and removes the cluster,
// unless keep, when logf says how to remove it later. Pass a fresh ctx, so
// that it works after an interrupt too.
func (cl *Cluster) Finish(ctx context.Context, logDir string, keep bool, logf func(string, ...any)) error {
	var errs []error
	if logDir != "" {
		for _, n := range cl.nodes {
			text, err := cl.c.logs(ctx, n.ID, "all")
			if err != nil {
				logf("warning: log of %s: %v", n.Name, err)
			}
			if err := os.WriteFile(filepath.Join(logDir, n.Name+".log"), []byte(text), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("save the log of %s: %w", n.Name, err))
			}
		}
	}
	if keep {
		logf("cluster %s left running (--keep); remove it with: eccheck cluster down --cluster-name %s", cl.name, cl.name)
		return errors.Join(errs...)
	}
	if err := cl.Down(ctx); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster %s: %w (remove it with: eccheck cluster down --cluster-name %s)", cl.name, err, cl.name))
	}
	return errors.Join(errs...)
}
