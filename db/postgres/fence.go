package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Read routings, the values of [ClientOptions.ReadMode].
const (
	// ReadPrimary sends reads to the primary with the writes.
	ReadPrimary = "primary"
	// ReadReplica sends reads to the replica at [ClientOptions.ReadDSN], fresh or
	// not.
	ReadReplica = "replica"
	// ReadLSNFence sends reads to the replica at [ClientOptions.ReadDSN] once it
	// has replayed the client's last acknowledged write: after each write
	// the client takes pg_current_wal_lsn() on the primary, and before a
	// read it waits, at most [ClientOptions.FenceWait], until the replica's
	// pg_last_wal_replay_lsn() has reached it. A read whose fence is not
	// reached in time fails; it never returns a value older than the
	// client's own writes.
	ReadLSNFence = "lsn-fence"
	// ReadRoundRobin sends each read to the next of [ClientOptions.ReadTargets]
	// in turn, as a load balancer over replicas does: replicas that lag
	// by different amounts then serve one client values that go back in
	// time.
	ReadRoundRobin = "round-robin"
)

// ReadTarget is a server that reads go to, for [ReadRoundRobin].
type ReadTarget struct {
	DSN, Node string
}

// errFence marks a read that did not run because the replica had not
// replayed the client's last write within the bound.
var errFence = errors.New("replica behind the client's last write")

// readMode returns the effective read routing: ReadMode when set, else
// replica when ReadDSN names one and primary otherwise.
func (o ClientOptions) readMode() string {
	switch {
	case o.ReadMode != "":
		return o.ReadMode
	case o.ReadDSN != "":
		return ReadReplica
	case len(o.ReadTargets) > 0:
		return ReadRoundRobin
	}
	return ReadPrimary
}

// checkReadMode reports an unknown read mode, or one that needs a replica
// when ReadDSN is empty.
func (o ClientOptions) checkReadMode() error {
	switch m := o.readMode(); m {
	case ReadPrimary:
		return nil
	case ReadReplica, ReadLSNFence:
		if o.ReadDSN == "" {
			return fmt.Errorf("%w: read mode %s needs a replica DSN", errUsage, m)
		}
		return nil
	case ReadRoundRobin:
		if len(o.ReadTargets) == 0 {
			return fmt.Errorf("%w: read mode %s needs read targets", errUsage, m)
		}
		return nil
	default:
		return fmt.Errorf("%w: read mode %q: want %s, %s, %s or %s", errUsage, m, ReadPrimary, ReadReplica, ReadLSNFence, ReadRoundRobin)
	}
}

// remember records, after an acknowledged write on the primary, the
// primary's current WAL position, which is at or past the write's commit
// record. It runs on the connection that made the write. When the position
// cannot be read, the next fenced read goes to the primary instead (the
// client does not know what to wait for).
func (c *Client) remember(ctx context.Context) {
	var lsn string
	if err := c.primary.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		c.lsn, c.lsnUnknown = "", true
		return
	}
	c.lsn, c.lsnUnknown = lsn, false
}

// fence waits until the read target has replayed the client's last write,
// polling pg_last_wal_replay_lsn() every few milliseconds for at most
// FenceWait. It returns errFence when the bound passes first.
func (c *Client) fence(ctx context.Context) error {
	if c.lsn == "" {
		return nil
	}
	deadline := time.Now().Add(c.opts.FenceWait)
	pause := 2 * time.Millisecond
	for {
		var reached *bool
		err := c.read.conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, c.lsn).Scan(&reached)
		if err != nil {
			return fmt.Errorf("fence at %s: %w", c.lsn, err)
		}
		if reached == nil {
			// Not in recovery (a promoted replica): everything it
			// has is what it serves.
			return nil
		}
		if *reached {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: %s had not replayed %s after %v", errFence, c.read.node, c.lsn, c.opts.FenceWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fence at %s: %w", c.lsn, ctx.Err())
		case <-time.After(min(pause, left)):
		}
		if pause < 20*time.Millisecond {
			pause *= 2
		}
	}
}

// LastLSN returns the WAL position the client took after its last
// acknowledged write, "" before any.
func (c *Client) LastLSN() string { return c.lsn }

// wrote reports whether f is an operation that changes data.
func wrote(f string) bool {
	return f == "write" || f == "cas" || f == "add" || slices.Contains(sagaWrites, f)
}
