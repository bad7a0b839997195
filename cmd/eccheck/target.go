package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/docker"
	"github.com/eccheck/eccheck/run"
)

// target is where `eccheck cluster` and `eccheck nemesis` find a
// cluster: in Docker by its --cluster-name, or on the SSH hosts --hosts
// (--cluster ssh), where --cluster-name picks one when they run several.
type target struct {
	name string
	c    db.Common // Backend, Hosts, SSH
	// compat: --cluster was the older spelling of --cluster-name on this
	// command, so a value other than docker and ssh is taken as a name.
	compat bool
}

// bindTarget defines --cluster-name (def its default, old its hidden
// older spelling), --cluster and the ssh flags on f.
func bindTarget(f *pflag.FlagSet, t *target, def, old string) {
	clusterNameFlag(f, &t.name, def, "the Docker cluster's name (lowercase letters, digits, - and _); ssh: which cluster, when the hosts run several", old)
	f.StringVar(&t.c.Backend, "cluster", db.BackendDocker, "where the cluster runs: docker, or ssh (on --hosts; ecstore)")
	bindSSHFlags(f, &t.c)
}

// check refuses a bad --cluster and the ssh flags without --cluster ssh.
func (t *target) check(changed func(string) bool) error {
	if t.compat && t.c.Backend != db.BackendDocker && t.c.Backend != db.BackendSSH && !changed("cluster-name") {
		t.name, t.c.Backend = t.c.Backend, db.BackendDocker
	}
	if t.c.Backend != db.BackendDocker && t.c.Backend != db.BackendSSH {
		return usagef("--cluster %q: want docker or ssh", t.c.Backend)
	}
	// --nodes is the command's own (cluster up), checked with its system.
	if err := checkSSH(nil, &t.c, func(f string) bool { return f != "nodes" && changed(f) }); err != nil {
		return err
	}
	if t.c.Backend == db.BackendDocker || changed("cluster-name") {
		if err := docker.ValidName(t.name); err != nil {
			return usageError{Err: err}
		}
	}
	return nil
}

// ssh reports whether the cluster is on SSH hosts.
func (t *target) ssh() bool { return t.c.Backend == db.BackendSSH }

// open takes the cluster over: in Docker by name, on SSH hosts the one
// they run (or the one --cluster-name names).
func (t *target) open(ctx context.Context, changed func(string) bool, stderr, progress io.Writer) (*run.Live, error) {
	if !t.ssh() {
		return run.OpenLive(ctx, systems, t.name, progress)
	}
	if w := t.c.SSH.Warning(); w != "" {
		fmt.Fprintf(stderr, "eccheck: warning: %s\n", w)
	}
	name := ""
	if changed("cluster-name") {
		name = t.name
	}
	return run.OpenLiveSSH(ctx, systems, t.c.Hosts, t.c.SSH, name, progress)
}

// label names the cluster in a command's output line.
func (t *target) label(l *run.Live) string {
	if h, ok := l.System.(db.Hosted); ok && l.Cluster == nil {
		return h.Name()
	}
	return t.name
}
