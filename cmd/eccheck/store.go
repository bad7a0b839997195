package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/db/ecstore/store"
)

func newStoreCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Run ecstore, eccheck's own replicated store",
	}
	cmd.AddCommand(newStoreServeCmd(a))
	return cmd
}

// storeServeOptions are the flags of `eccheck store serve`.
type storeServeOptions struct {
	cfg       store.Config
	peers     string
	raftPeers string
	tokenFile string
}

func newStoreServeCmd(a *app) *cobra.Command {
	var o storeServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run one ecstore node until interrupted",
		Long: `Serve runs one ecstore node: a client API over HTTP (POST /v1/op,
GET /v1/health, POST /v1/admin/clock) and replication to its peers. The
Docker backend runs one per container; for a quick look, start three in
three terminals.

Modes: lww (last-write-wins, W of N replicas, R-quorum reads), hlc (lww with
hybrid logical clock stamps), mvr (lww's replication with multi-value
registers: concurrent writes kept as siblings under dotted version vectors),
primary (one primary, asynchronous followers, failover by promotion), raft
(consensus through hashicorp/raft; needs --data-dir).`,
		Example: `  eccheck store serve --id n1 --listen 127.0.0.1:7001 --peers n2=127.0.0.1:7002,n3=127.0.0.1:7003 --mode lww --w 2 --r 2`,
		Args:    exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.cfg.Peers, err = parsePeers(o.peers, "--peers"); err != nil {
				return err
			}
			if o.raftPeers != "" {
				if o.cfg.RaftPeers, err = parsePeers(o.raftPeers, "--raft-peers"); err != nil {
					return err
				}
			}
			if o.tokenFile != "" {
				b, err := os.ReadFile(o.tokenFile)
				if err != nil {
					return usageError{Err: fmt.Errorf("--token-file: %w", err)}
				}
				if o.cfg.Token = strings.TrimSpace(string(b)); o.cfg.Token == "" {
					return usageError{Err: fmt.Errorf("--token-file %s is empty: write the cluster's secret into it", o.tokenFile)}
				}
			}
			n, err := store.NewNode(o.cfg)
			if err != nil {
				return usageError{Err: err}
			}
			if err := n.Start(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "ecstore %s: %s mode, serving on %s\n", o.cfg.ID, n.Config().Mode, n.Addr())
			<-cmd.Context().Done()
			fmt.Fprintf(a.stderr, "ecstore %s: stopping\n", o.cfg.ID)
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.ID, "id", "", "this node's id, e.g. n1 (required)")
	f.StringVar(&o.cfg.Listen, "listen", "127.0.0.1:7001", "host:port of the client and peer HTTP API")
	f.StringVar(&o.peers, "peers", "", "the other nodes: id=host:port,...")
	f.StringVar(&o.cfg.Mode, "mode", store.ModeLWW, "replication mode: "+strings.Join(store.Modes, ", "))
	f.IntVar(&o.cfg.N, "n", 0, "replicas per key (lww, hlc; 0 = every node)")
	f.IntVar(&o.cfg.W, "w", 1, "write quorum (lww, hlc)")
	f.IntVar(&o.cfg.R, "r", 1, "read quorum (lww, hlc)")
	f.DurationVar(&o.cfg.AntiEntropy, "anti-entropy", time.Second, "anti-entropy interval (lww, hlc; negative disables)")
	f.StringVar(&o.cfg.SetImpl, "set-impl", store.SetORSet, "sets: orset or lww-blob (lww, hlc)")
	f.StringVar(&o.cfg.CounterImpl, "counter-impl", store.CounterPN, "counters: pn (a PN-Counter) or g (a G-Counter: adds only) (lww, hlc, mvr)")
	f.StringVar(&o.cfg.PrimaryReads, "primary-reads", "any", "reads from any node or from the primary (primary)")
	f.DurationVar(&o.cfg.FailoverTimeout, "failover-timeout", time.Second, "silence from the primary before a follower promotes (primary)")
	f.StringVar(&o.cfg.RaftListen, "raft-listen", "", "host:port of the Raft transport (raft; default: the HTTP port + 1000)")
	f.StringVar(&o.raftPeers, "raft-peers", "", "the other nodes' Raft addresses: id=host:port,... (raft; default: their HTTP ports + 1000)")
	f.StringVar(&o.cfg.DataDir, "data-dir", "", "where the node keeps what its mode persists (raft: required)")
	f.StringVar(&o.cfg.ClockFile, "clock-file", "", "file holding this node's clock offset (+90s, -250ms), re-read every 100 ms")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the cluster's secret: the peer and admin endpoints refuse requests without it (X-Eccheck-Token), and the node sends it to its peers; use one wherever others share the network (the raft transport is not covered: keep it on a private network)")
	f.DurationVar(&o.cfg.SessionWait, "session-wait", time.Second, "how long to wait to catch up with a client's session")
	f.DurationVar(&o.cfg.RequestTimeout, "request-timeout", time.Second, "bound on an operation's peer round trips")
	return cmd
}

// parsePeers parses id=host:port,id=host:port.
func parsePeers(s, flag string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, usagef("%s: %q is not id=host:port", flag, part)
		}
		if _, dup := out[id]; dup {
			return nil, usagef("%s: node %s named twice", flag, id)
		}
		out[id] = addr
	}
	return out, nil
}
