// This file holds the SQL every part of the cluster code shares: one
// statement on a node, WAL positions and timelines, slots and standbys.

package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// firstOf is synchronous_standby_names waiting for every one of names
// ("" for none).
func firstOf(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("FIRST %d (%s)", len(names), strings.Join(names, ", "))
}

// setStandbyNames sets and reloads node's synchronous_standby_names.
func (pc *Cluster) setStandbyNames(ctx context.Context, node, names string) error {
	if err := pc.exec(ctx, node, `ALTER SYSTEM SET synchronous_standby_names = `+quote(names)); err != nil {
		return fmt.Errorf("synchronous standbys of %s: %w", node, err)
	}
	if err := pc.exec(ctx, node, `SELECT pg_reload_conf()`); err != nil {
		return fmt.Errorf("reload %s: %w", node, err)
	}
	return nil
}

// ensureSlot makes sure primary has node's replication slot, and returns
// its name.
func (pc *Cluster) ensureSlot(ctx context.Context, primary, node string) (string, error) {
	slot := "eccheck_" + node
	err := pc.exec(ctx, primary, `SELECT pg_create_physical_replication_slot(`+quote(slot)+`, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = `+quote(slot)+`)`)
	return slot, err
}

// streamedTimeline returns the timeline node's walreceiver is streaming,
// or 0 when it is not streaming.
func (pc *Cluster) streamedTimeline(ctx context.Context, node string) (uint64, error) {
	var tli int64
	err := pc.query(ctx, node, `SELECT coalesce((SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'), 0)::bigint`, &tli)
	return uint64(tli), err
}

// cutOff reports whether a partition in force separates a and b.
func (pc *Cluster) cutOff(a, b string) bool {
	g := pc.Grudge()
	return slices.Contains(g[a], b) || slices.Contains(g[b], a)
}

// timeline returns the timeline node writes WAL on now (from the name of
// its current WAL file).
func (pc *Cluster) timeline(ctx context.Context, node string) (uint64, error) {
	var file string
	if err := pc.query(ctx, node, `SELECT pg_walfile_name(pg_current_wal_lsn())`, &file); err != nil {
		return 0, err
	}
	if len(file) < 8 {
		return 0, fmt.Errorf("timeline of %s: WAL file name %q", node, file)
	}
	return strconv.ParseUint(file[:8], 16, 32)
}

// parseLSN reads a WAL position such as "0/3000148"; nil or unreadable is
// 0.
func parseLSN(s *string) uint64 {
	if s == nil {
		return 0
	}
	hi, lo, ok := strings.Cut(*s, "/")
	if !ok {
		return 0
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0
	}
	return h<<32 | l
}

// quote makes s a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// exec runs one statement on node.
func (pc *Cluster) exec(ctx context.Context, node, q string) error {
	return pc.query(ctx, node, q)
}

// query runs one statement on a Postgres node and scans its single row
// into dest (nothing to scan: the statement is executed).
func (pc *Cluster) query(ctx context.Context, node, q string, dest ...any) error {
	if _, err := pc.Node(node); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pc.DSN(node))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", node, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if len(dest) == 0 {
		_, err = conn.Exec(ctx, q)
	} else {
		err = conn.QueryRow(ctx, q).Scan(dest...)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", q, node, err)
	}
	return nil
}
