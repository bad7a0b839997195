package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// postDelay sends POST /v1/admin/delay to addr and returns the status code
// and the node's status from the reply.
func postDelay(t *testing.T, addr string, req store.DelayRequest) (int, store.Status) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+addr+"/v1/admin/delay", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st store.Status
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, st
}

// freeAddrs returns n free 127.0.0.1 addresses.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// TestAdminDelay starts two lww nodes with no in-process fault state, as in
// containers, and delays n1's messages to n2 through the admin API: a W=2
// write through n1 then takes at least the delay.
func TestAdminDelay(t *testing.T) {
	addrs := freeAddrs(t, 2)
	peers := map[string]string{"n1": addrs[0], "n2": addrs[1]}
	var nodes []*store.Node
	for i, id := range []string{"n1", "n2"} {
		n, err := store.NewNode(store.Config{ID: id, Listen: addrs[i], Peers: peers, Mode: store.ModeLWW, W: 2, R: 1,
			RequestTimeout: 3 * time.Second, Logf: func(string, ...any) {}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	cl := ecstore.New(addrs[0], ecstore.Options{Timeout: 5 * time.Second})
	write := func(v int64) (history.Op, time.Duration) {
		start := time.Now()
		op := cl.Invoke(t.Context(), history.Op{Type: history.Invoke, F: "write", Key: "k", Value: history.Int(v)})
		return op, time.Since(start)
	}
	const delay = 300 * time.Millisecond

	if op, took := write(1); op.Type != history.OK || took >= delay {
		t.Fatalf("delay/none/fast write: %+v in %v", op, took)
	}
	code, st := postDelay(t, addrs[0], store.DelayRequest{Peer: "n2", Ms: delay.Milliseconds()})
	if code != http.StatusOK || st.DelaysMs["n2"] != delay.Milliseconds() {
		t.Fatalf("delay/set n1->n2/status reports it: code %d, delays %v", code, st.DelaysMs)
	}
	if op, took := write(2); op.Type != history.OK || took < delay {
		t.Errorf("delay/n1->n2 %v/W=2 write takes at least the delay: %+v in %v", delay, op, took)
	}
	// n2's messages to n1 are not delayed: a write through n2 stays fast.
	cl2 := ecstore.New(addrs[1], ecstore.Options{Timeout: 5 * time.Second})
	start := time.Now()
	if op := cl2.Invoke(t.Context(), history.Op{Type: history.Invoke, F: "write", Key: "k", Value: history.Int(3)}); op.Type != history.OK || time.Since(start) >= delay {
		t.Errorf("delay/n2->n1 untouched/fast write: %+v in %v", op, time.Since(start))
	}
	if code, st := postDelay(t, addrs[0], store.DelayRequest{Ms: 0}); code != http.StatusOK || len(st.DelaysMs) != 0 {
		t.Fatalf("delay/remove for every peer/no delays left: code %d, delays %v", code, st.DelaysMs)
	}
	if op, took := write(4); op.Type != history.OK || took >= delay {
		t.Errorf("delay/removed/fast write again: %+v in %v", op, took)
	}
	if code, _ := postDelay(t, addrs[0], store.DelayRequest{Peer: "n9", Ms: 10}); code != http.StatusBadRequest {
		t.Errorf("delay/unknown peer/400: got %d", code)
	}
	if code, _ := postDelay(t, addrs[0], store.DelayRequest{Ms: -1}); code != http.StatusBadRequest {
		t.Errorf("delay/negative/400: got %d", code)
	}
	_ = nodes
}

// TestAdminDelayInProcess checks that an in-process node, which obeys its
// cluster's shared LocalNet, refuses admin delays. (An empty token lets the
// request through: an in-process cluster otherwise draws one of its own,
// and TestClusterToken holds what a token refuses.)
func TestAdminDelayInProcess(t *testing.T) {
	c := startCluster(t, 2, store.Config{Mode: store.ModeLWW, Token: store.NoToken})
	if code, _ := postDelay(t, c.Addr("n1"), store.DelayRequest{Ms: 10}); code != http.StatusConflict {
		t.Errorf("delay/in-process node/409: got %d", code)
	}
}
