package nemesis

// pauseKind freezes one random node (its connections stay open, it
// answers nothing) and resumes it.
var pauseKind = nodesKind{
	kind: KindPause, verb: "pause", back: "resume",
	act:     func(c Cluster, node string) error { return c.Pause(node) },
	restore: func(c Cluster, node string) error { return c.Resume(node) },
	planNodes: func(p *planner) []string {
		return []string{p.nodes[p.rng.IntN(len(p.nodes))]}
	},
}
