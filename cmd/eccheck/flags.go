package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/run"
	"github.com/eccheck/eccheck/sshhost"
)

// clusterNameFlag defines --cluster-name, the one name of a Docker
// cluster's name on every command (cluster, nemesis, test), with the
// command's older spelling (--name, --cluster) kept as a hidden alias.
func clusterNameFlag(fs *pflag.FlagSet, p *string, def, usage, old string) {
	if usage == "" {
		usage = "the Docker cluster's name (lowercase letters, digits, - and _)"
	}
	fs.StringVar(p, "cluster-name", def, usage)
	if old != "" {
		fs.StringVar(p, old, def, "the Docker cluster's name (older spelling of --cluster-name)")
		_ = fs.MarkHidden(old)
	}
}

// bindCheckerFlags defines the checker flags that check, test and matrix
// share, with one help text each; file adds those of a history file
// (--workload, --viz-dir).
func bindCheckerFlags(f *pflag.FlagSet, o *run.CheckOptions, file bool) {
	f.StringSliceVar(&o.Checkers, "checkers", nil, "checkers to run, comma-separated (default: every checker that fits the workload)")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "bound on each linearizability search; past it the verdict is unknown (0 = no bound)")
	f.DurationVar(&o.MaxStaleness, "max-staleness", 0, "fail the staleness checker when a read was stale for longer than this (0 = only measure)")
	f.StringVar(&o.Engine, "engine", checkers.EngineAuto, "linearizability engine: auto (zones where written values are unique, else Porcupine), zones, or porcupine")
	f.StringVar(&o.ConsistencyModel, "consistency-model", checkers.ModelStrictSerializable, "what the transactional checker holds transactions to: "+strings.Join(checkers.Models, ", "))
	if file {
		names := make([]string, len(checkers.Workloads))
		for i, w := range checkers.Workloads {
			names[i] = string(w)
		}
		f.StringVar(&o.Workload, "workload", "", "what the history is, one of "+strings.Join(names, ", ")+" (default: inferred from the operations)")
		f.StringVar(&o.VizDir, "viz-dir", "", "write the linearizability visualization of failing keys (the first 50) there, named after the history (default: into a run directory when checking one, else nowhere)")
	}
}

// clients is the value of --concurrency: a number of clients, or K clients
// per node written Kn (Jepsen's habit: 2n is twice the node count).
type clients struct {
	n       int // a plain count
	perNode int // K of Kn; 0 when n is used
}

func (c *clients) String() string {
	if c.perNode > 0 {
		return strconv.Itoa(c.perNode) + "n"
	}
	return strconv.Itoa(c.n)
}

func (c *clients) Set(s string) error {
	s = strings.TrimSpace(s)
	if k, ok := strings.CutSuffix(s, "n"); ok {
		if k == "" {
			k = "1"
		}
		v, err := strconv.Atoi(k)
		if err != nil || v < 1 {
			return fmt.Errorf("%q: want a number of clients (10) or clients per node (2n: twice the nodes)", s)
		}
		c.n, c.perNode = 0, v
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q: want a number of clients (10) or clients per node (2n: twice the nodes)", s)
	}
	c.n, c.perNode = v, 0
	return nil
}

func (c *clients) Type() string { return "N|Kn" }

// count is the number of clients for a cluster of nodes.
func (c clients) count(nodes int) int {
	if c.perNode > 0 {
		return c.perNode * nodes
	}
	return c.n
}

// bindSSHFlags defines the flags of --cluster ssh: the hosts and how to
// log in to them.
func bindSSHFlags(f *pflag.FlagSet, c *db.Common) {
	f.StringSliceVar(&c.Hosts, "hosts", nil, "ssh: the hosts, comma-separated (NAME, NAME:PORT or an address); node i runs on host i, and --nodes defaults to their number")
	f.StringVar(&c.SSH.User, "ssh-user", "", "ssh: the login user: root, or one that may use sudo without a password (default: the current user)")
	f.StringVar(&c.SSH.KeyFile, "ssh-key", "", "ssh: the private key (default: ssh-agent and ~/.ssh/id_ed25519, id_ecdsa, id_rsa)")
	f.IntVar(&c.SSH.Port, "ssh-port", sshhost.DefaultPort, "ssh: the SSH port of hosts that do not name their own")
	f.StringVar(&c.SSH.KnownHosts, "ssh-known-hosts", "", "ssh: the known_hosts file host keys are checked against (default: ~/.ssh/known_hosts)")
	f.BoolVar(&c.SSH.Insecure, "ssh-insecure", false, "ssh: accept any host key (throwaway hosts only: anyone on the path could pose as a host)")
	f.BoolVar(&c.HostClock, "ssh-host-clock", false, "ssh: clock faults move the hosts' own clocks (date -s as root; stop their time daemons first), not a clock the node alone reads; eccheck puts them back")
}

// checkSSH refuses the ssh flags without --cluster ssh, and --cluster ssh
// without hosts; with it, --nodes defaults to the number of hosts and
// must match it. sys must run on SSH hosts.
func checkSSH(sys db.DB, c *db.Common, changed func(string) bool) error {
	if c.Backend != db.BackendSSH {
		for _, fl := range []string{"hosts", "ssh-user", "ssh-key", "ssh-port", "ssh-known-hosts", "ssh-insecure", "ssh-host-clock"} {
			if changed(fl) {
				return usagef("--%s goes with --cluster ssh", fl)
			}
		}
		return nil
	}
	if sys != nil && !slices.Contains(sys.Backends(), db.BackendSSH) {
		var ok []string
		for _, s := range systems {
			if slices.Contains(s.Backends(), db.BackendSSH) {
				ok = append(ok, s.Name())
			}
		}
		return usagef("--cluster ssh: --db %s does not run on SSH hosts yet (these do: %s)", sys.Name(), strings.Join(ok, ", "))
	}
	if len(c.Hosts) == 0 {
		return usagef("--cluster ssh needs --hosts h1,h2,h3 (node i runs on host i)")
	}
	if !changed("nodes") {
		c.Nodes = len(c.Hosts)
	}
	if c.Nodes != len(c.Hosts) {
		return usagef("--nodes %d with %d --hosts: node i runs on host i, so give as many hosts as nodes", c.Nodes, len(c.Hosts))
	}
	return nil
}
