package nemesis

import "fmt"

// killKind kills a random minority of the nodes (at least one, at most
// (n-1)/2) and starts them again.
var killKind = nodesKind{
	kind: KindKill, verb: "kill", back: "start",
	act:     func(c Cluster, node string) error { return c.Kill(node) },
	restore: func(c Cluster, node string) error { return c.Start(node) },
	checkNodes: func(n int) error {
		if n < 3 {
			return fmt.Errorf("killing a minority needs at least 3 nodes, the cluster has %d", n)
		}
		return nil
	},
	planNodes: func(p *planner) []string {
		k := 1 + p.rng.IntN((len(p.nodes)-1)/2)
		return sorted(p.shuffled()[:k])
	},
}
