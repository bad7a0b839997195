package store_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/ecstore/store"
	"github.com/eccheck/eccheck/history"
)

// With a cluster token, the peer and admin endpoints refuse a request
// without it or with another (401) and take one with it; the client API
// and the health probe stay open; and the nodes' own replication, which
// carries the token, works: a write that needs every replica's
// acknowledgement succeeds.
func TestClusterToken(t *testing.T) {
	c := startCluster(t, 3, store.Config{Mode: store.ModeLWW, W: 3, R: 1, Token: "s3cret"})
	addr := c.Addr("n1")
	post := func(path, token, body string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set(store.TokenHeader, token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, path := range []string{"/v1/admin/clock", "/v1/admin/delay", "/v1/peer/w"} {
		for _, tok := range []string{"", "wrong"} {
			if code := post(path, tok, `{}`); code != http.StatusUnauthorized {
				t.Errorf("%s with token %q: %d, want 401", path, tok, code)
			}
		}
	}
	if code := post("/v1/admin/clock", "s3cret", `{"offset_ns":0}`); code != http.StatusOK {
		t.Errorf("clock with the token: %d, want 200", code)
	}
	res, err := http.Get("http://" + addr + "/v1/health")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("health without a token: %v %v", err, res)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := ecstore.New(addr, ecstore.Options{})
	done := cl.Invoke(ctx, history.Op{Type: history.Invoke, F: "write", Key: "k", Value: history.Int(1)})
	if done.Type != history.OK {
		t.Fatalf("a W=3 write through the client API: %s %s (the peers' replication must carry the token)", done.Type, done.Error)
	}
}
