package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/run"
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
