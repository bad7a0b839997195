package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/nemesis"
)

// Where `eccheck test` runs the cluster.
const (
	clusterLocal  = "local"
	clusterDocker = "docker"
)

// The Docker cluster drives the nemesis; package docker does not import
// nemesis, so the check lives here.
var _ nemesis.Cluster = (*docker.Cluster)(nil)

// testCluster is what a test needs of its cluster, in this process or in
// Docker: the nemesis's interface and each node's client address.
type testCluster interface {
	nemesis.Cluster
	Addr(node string) string
}

// Defaults of --op-timeout and --recovery for a Docker cluster, used when
// the flags are not given: requests cross the engine's port proxy, and a
// killed container takes a second or two to start and answer again.
const (
	dockerOpTimeout = 3 * time.Second
	dockerRecovery  = 5 * time.Second
)

// dockerDefaults applies the Docker defaults of the flags not given.
func (o *testOptions) dockerDefaults() {
	if o.opTimeoutDefault {
		o.opTimeout = dockerOpTimeout
	}
	if o.recoveryDefault {
		o.recovery = dockerRecovery
	}
}

// dockerRun is a test's cluster in Docker.
type dockerRun struct {
	c      *docker.Client
	cl     *docker.Cluster
	dir    string // the run directory
	keep   bool
	images map[string]string // role: image reference
}

// startDocker connects to the engine, makes sure the images exist
// (building what is missing, with progress on stderr) and brings up the
// test's cluster. The caller must call close, which saves the node logs and
// removes the cluster.
func startDocker(ctx context.Context, o testOptions, a *app, dir string, logf func(string, ...any)) (*dockerRun, error) {
	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	images, err := ensureImages(ctx, c, o.nemesis, a, logf)
	if err != nil {
		c.Close()
		return nil, err
	}
	name := o.clusterName
	if name == "" {
		name = "eccheck-test-" + shortID()
	}
	var args []string
	args = append(args,
		"--request-timeout", (o.opTimeout / 2).String(),
		"--anti-entropy", "500ms",
		"--failover-timeout", "1s",
		"--primary-reads", o.primaryReads,
	)
	progress := a.stderr
	if o.check.quiet {
		progress = nil
	}
	logf("starting Docker cluster %s: %d %s nodes from %s", name, o.nodes, o.mode, images["ecstore"])
	cl, err := c.Up(ctx, docker.UpOptions{
		Name: name, Nodes: o.nodes, Image: images["ecstore"], Mode: o.mode,
		N: o.n, W: o.w, R: o.r, SetImpl: o.setImpl, Args: args, Progress: progress,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("start the %s cluster in Docker: %w", o.mode, err)
	}
	addrs := make([]string, 0, o.nodes)
	for _, n := range cl.Nodes() {
		addrs = append(addrs, n+"="+cl.Addr(n))
	}
	logf("cluster up: %d %s nodes in Docker cluster %s (%s)", o.nodes, o.mode, name, strings.Join(addrs, ", "))
	return &dockerRun{c: c, cl: cl, dir: dir, keep: o.keep, images: images}, nil
}

// close saves each node's container log to nodes/<node>.log and removes
// the cluster (unless --keep), with a context of its own, so that it works
// after an interrupt too.
func (d *dockerRun) close(logf func(string, ...any)) {
	defer d.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range d.cl.Nodes() {
		text, err := d.cl.Logs(ctx, n)
		if err != nil {
			logf("warning: log of %s: %v", n, err)
		}
		if err := os.WriteFile(filepath.Join(d.dir, "nodes", n+".log"), []byte(text), 0o644); err != nil {
			logf("warning: save the log of %s: %v", n, err)
		}
	}
	if d.keep {
		logf("cluster %s left running (--keep); remove it with: eccheck cluster down --cluster-name %s", d.cl.Name(), d.cl.Name())
		return
	}
	if err := d.cl.Down(ctx); err != nil {
		logf("warning: remove cluster %s: %v (remove it with: eccheck cluster down --cluster-name %s)", d.cl.Name(), err, d.cl.Name())
	}
}

// ensureImages returns the images the test runs (ecstore; base, the
// network helper, when partitions are among the faults), building those
// that are missing. An image of the user's own (eccheck images build
// --image) is used as it is.
func ensureImages(ctx context.Context, c *docker.Client, faults string, a *app, logf func(string, ...any)) (map[string]string, error) {
	ov, err := docker.LoadOverrides()
	if err != nil {
		return nil, err
	}
	bo := docker.BuildOptions{Progress: a.stderr}
	images := map[string]string{}

	// ecstore: the image of this very binary when it is static (a cheap
	// check of its inputs hash), else the latest one built, else one built
	// now from the source tree.
	var ref string
	if ov[docker.RoleEcstore] == "" && runningStatic() {
		img, err := c.BuildEcstore(ctx, bo)
		if err != nil {
			return nil, err
		}
		ref = img.Ref
	} else {
		ref, err = imageOrBuild(ctx, c, ov, docker.RoleEcstore, func() (docker.Image, error) {
			logf("no ecstore image yet: building it")
			return c.BuildEcstore(ctx, bo)
		})
		if err != nil {
			return nil, err
		}
	}
	images[docker.RoleEcstore] = ref

	if strings.Contains(faults, "partition") {
		ref, err := imageOrBuild(ctx, c, ov, docker.RoleBase, func() (docker.Image, error) {
			logf("no base image (the network helper that applies partitions) yet: building it with debootstrap (about a minute)")
			return c.BuildBase(ctx, bo)
		})
		if err != nil {
			return nil, err
		}
		images[docker.RoleBase] = ref
	}
	return images, nil
}

// imageOrBuild returns the image for role ([docker.Client.ImageFor]), or
// builds it when it does not exist and is not the user's own.
func imageOrBuild(ctx context.Context, c *docker.Client, ov docker.Overrides, role string, build func() (docker.Image, error)) (string, error) {
	ref, err := c.ImageFor(ctx, role)
	if err == nil || ov[role] != "" {
		return ref, err
	}
	img, berr := build()
	if berr != nil {
		return "", fmt.Errorf("%w; building it: %w", err, berr)
	}
	return img.Ref, nil
}

// runningStatic reports whether this process is a static eccheck binary
// (not a test binary), which the ecstore image can be made from at once.
func runningStatic() bool {
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, ".test") {
		return false
	}
	static, _ := docker.IsStatic(exe)
	return static
}

// shortID is a short random id for a run's Docker cluster name.
func shortID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
