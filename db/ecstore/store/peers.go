package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// ErrNoReply means a peer message got no answer before the deadline: it may
// or may not have been delivered and acted on.
var ErrNoReply = errors.New("no reply from peer")

// Peers sends messages to the other nodes: POST /v1/peer/KIND with a JSON
// body. With a Faults, a message obeys it as a packet would: it waits while
// the sender is paused and for the link's delay; a message the receiver
// drops is never delivered, and a reply the sender drops is lost after the
// receiver acted; either way the sender waits out its deadline and gets
// ErrNoReply, unable to tell which happened, as on a real network.
type Peers struct {
	self   string
	addrs  map[string]string // node id -> host:port
	ids    []string          // every node id, self included, sorted
	faults Faults
	client *http.Client
	token  string // the cluster's secret, sent with every request (Config.Token)
}

// NewPeers returns the peer client of node self.
func NewPeers(self string, addrs map[string]string, f Faults) *Peers {
	ids := []string{self}
	for id := range addrs {
		if id != self {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &Peers{self: self, addrs: addrs, ids: ids, faults: f, client: &http.Client{Transport: tr}}
}

// IDs returns every node id, self included, sorted.
func (p *Peers) IDs() []string { return p.ids }

// Others returns the ids of the other nodes, sorted.
func (p *Peers) Others() []string {
	out := make([]string, 0, len(p.ids)-1)
	for _, id := range p.ids {
		if id != p.self {
			out = append(out, id)
		}
	}
	return out
}

// Call sends req to node to as a message of kind and decodes the reply into
// resp (which may be nil). Errors: ErrNoReply (wrapped) when no answer came
// before ctx's deadline, or another error when the peer could not be
// reached at all (connection refused: certainly not delivered) or answered
// with an error status.
func (p *Peers) Call(ctx context.Context, to, kind string, req, resp any) error {
	addr, ok := p.addrs[to]
	if !ok {
		return fmt.Errorf("peer %q: unknown node", to)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPeerTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("peer %s %s: encode: %w", to, kind, err)
	}
	if f := p.faults; f != nil {
		if err := f.WaitRunning(ctx, p.self); err != nil {
			return fmt.Errorf("peer %s %s: %w", to, kind, ErrNoReply)
		}
		if d := f.Delay(p.self, to); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return fmt.Errorf("peer %s %s: %w", to, kind, ErrNoReply)
			}
		}
		if f.Drops(to, p.self) {
			<-ctx.Done() // the message is lost on the way
			return fmt.Errorf("peer %s %s: %w", to, kind, ErrNoReply)
		}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/peer/"+kind, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("peer %s %s: %w", to, kind, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(fromHeader, p.self)
	if p.token != "" {
		hr.Header.Set(TokenHeader, p.token)
	}
	res, err := p.client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("peer %s %s: %w", to, kind, ErrNoReply)
		}
		return fmt.Errorf("peer %s %s: %w", to, kind, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("peer %s %s: %w", to, kind, ErrNoReply)
	}
	if f := p.faults; f != nil && f.Drops(p.self, to) {
		<-ctx.Done() // the reply is lost on the way back
		return fmt.Errorf("peer %s %s: %w", to, kind, ErrNoReply)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("peer %s %s: status %d: %s", to, kind, res.StatusCode, bytes.TrimSpace(data))
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("peer %s %s: decode reply: %w", to, kind, err)
	}
	return nil
}

// DefaultPeerTimeout bounds a peer message sent with no deadline of its own.
const DefaultPeerTimeout = time.Second

// fromHeader carries the sending node's id on peer messages.
const fromHeader = "X-Ecstore-From"
