package postgres

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eccheck/eccheck/db"
)

// applyDelay is the value of --pg-apply-delay: one delay for every replica
// ("50ms"), or one per replica ("n2=0s,n3=200ms"; replicas not named get
// none). It is a pflag.Value.
type applyDelay struct {
	all time.Duration
	per map[string]time.Duration
}

func (d *applyDelay) Type() string { return "delay" }

// String gives the value back in the form Set reads.
func (d *applyDelay) String() string {
	if len(d.per) == 0 {
		return d.all.String()
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(d.per)) {
		parts = append(parts, n+"="+d.per[n].String())
	}
	return strings.Join(parts, ",")
}

// Set parses "50ms" or "n2=0s,n3=200ms".
func (d *applyDelay) Set(s string) error {
	if !strings.Contains(s, "=") {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return fmt.Errorf("%q: want a delay such as 50ms, or one per replica such as n2=0s,n3=200ms", s)
		}
		d.all, d.per = v, nil
		return nil
	}
	per := map[string]time.Duration{}
	for _, item := range strings.Split(s, ",") {
		node, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		v, err := time.ParseDuration(val)
		if !ok || err != nil || v < 0 || node == "" {
			return fmt.Errorf("%q: want NODE=DELAY pairs such as n2=0s,n3=200ms", item)
		}
		if _, dup := per[node]; dup {
			return fmt.Errorf("%q: %s named twice", s, node)
		}
		per[node] = v
	}
	d.all, d.per = 0, per
	return nil
}

// zero reports whether no replica gets a delay.
func (d *applyDelay) zero() bool {
	for _, v := range d.per {
		if v != 0 {
			return false
		}
	}
	return d.all == 0
}

// check reports a named node that is not a replica of an n-node cluster.
func (d *applyDelay) check(nodes int) error {
	for _, n := range slices.Sorted(maps.Keys(d.per)) {
		if !isReplica(n, nodes) {
			return db.Usagef("--pg-apply-delay %s: want replicas, n2 to n%d", n, nodes)
		}
	}
	return nil
}
