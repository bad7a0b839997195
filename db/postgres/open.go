// This file holds how a running Postgres cluster is taken over by a
// command that did not start it (Open), and what each node is (Roles).

package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eccheck/eccheck/docker"
)

// Roles asks each running node of a Postgres cluster whether it is
// in recovery: "primary" or "replica" for each node that answers (two
// primaries are a split brain), the container state for the others, and
// "no answer" for a running node that does not answer.
func (pc *Cluster) Roles(ctx context.Context) map[string]string {
	roles := map[string]string{}
	for _, name := range pc.Nodes() {
		n, _ := pc.Node(name)
		if n.State != "running" {
			roles[name] = n.State
			continue
		}
		role, err := roleOf(ctx, pc.DSN(name))
		if err != nil {
			role = "no answer"
		}
		roles[name] = role
	}
	return roles
}

// roleOf asks the server at dsn (within 3 s) whether it is in recovery:
// "replica" if so, else "primary".
func roleOf(ctx context.Context, dsn string) (string, error) {
	var rec bool
	if err := queryOne(ctx, dsn, `SELECT pg_is_in_recovery()`, &rec); err != nil {
		return "", err
	}
	if rec {
		return "replica", nil
	}
	return "primary", nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Open takes over the running Postgres cluster cl (found by its labels,
// see [docker.Client.Open]) and asks its running nodes which one is the primary
// (pg_is_in_recovery() false) and, of that primary, which standbys it
// waits for. With no primary, or two, the cluster is still returned, for
// status, logs and faults by hand; its failover and rejoin say why they
// cannot run. Nodes that are down count as fenced: a failover does not
// promote them. Which old primaries a failover killed is not kept
// anywhere: starting one by hand brings back a second primary.
func Open(ctx context.Context, cl *docker.Cluster) (*Cluster, error) {
	name := cl.Name()
	if cl.DB() != Name {
		return nil, fmt.Errorf("cluster %s runs %s, not postgres", name, cl.DB())
	}
	cl.SetReady(connects)
	pc := &Cluster{Cluster: cl, fenced: map[string]bool{}}
	var primaries, errs []string
	for _, node := range cl.Nodes() {
		n, _ := cl.Node(node)
		if n.State != "running" {
			// Down: an old primary, or a killed replica; neither is
			// promoted.
			pc.fenced[node] = true
			continue
		}
		var rec bool
		if err := pc.query(ctx, node, `SELECT pg_is_in_recovery()`, &rec); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if !rec {
			primaries = append(primaries, node)
		}
	}
	switch len(primaries) {
	case 0:
		pc.noPrimary = fmt.Errorf("cluster %s: no running node is a primary (%s); start it ('eccheck nemesis start --node NODE')", name, orNone(errs))
		return pc, nil
	case 1:
		pc.primary = primaries[0]
	default:
		pc.noPrimary = fmt.Errorf("cluster %s: %s all take writes (an old primary started again after a failover?): keep the one with the newer timeline ('eccheck cluster status'), kill the others ('eccheck nemesis kill --node NODE') and bring them back with 'eccheck nemesis rejoin --node NODE'", name, strings.Join(primaries, " and "))
		return pc, nil
	}
	var commit, names string
	if err := pc.query(ctx, pc.primary, `SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')`, &commit, &names); err != nil {
		return nil, err
	}
	if standbys := parseStandbyNames(names); len(standbys) > 0 {
		pc.syncCommit, pc.syncStandbys = commit, standbys
		// Every node but the primary and those down waits: as if none was named.
		pc.syncAll = slices.Equal(standbys, pc.Replicas())
	}
	return pc, nil
}

// parseStandbyNames reads the node names of synchronous_standby_names as
// eccheck writes it: "FIRST k (n2, n3)", or a bare list.
func parseStandbyNames(s string) []string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
		s = s[i+1 : len(s)-1]
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.Trim(strings.TrimSpace(n), `"`); n != "" {
			out = append(out, n)
		}
	}
	return out
}
