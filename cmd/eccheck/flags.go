package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// clusterNameFlag defines --cluster-name, the one name of a Docker
// cluster's name on every command (cluster, nemesis, test), with the
// command's older spelling (--name, --cluster) kept as a hidden alias.
func clusterNameFlag(fs *pflag.FlagSet, p *string, old string) {
	fs.StringVar(p, "cluster-name", "default", "the Docker cluster's name (lowercase letters, digits, - and _)")
	if old != "" {
		fs.StringVar(p, old, "default", "the Docker cluster's name (older spelling of --cluster-name)")
		_ = fs.MarkHidden(old)
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
