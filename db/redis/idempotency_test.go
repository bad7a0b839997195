package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/workload"
)

// fakeServer answers a client's pipelines in place of a server (a
// go-redis hook that never calls the network): it records each command
// and replies with the script's and WAIT's answers the case sets.
type fakeServer struct {
	sent         []string
	script, wait int64
}

func (f *fakeServer) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (f *fakeServer) ProcessHook(goredis.ProcessHook) goredis.ProcessHook {
	return func(_ context.Context, cmd goredis.Cmder) error {
		return f.answer(cmd)
	}
}

func (f *fakeServer) ProcessPipelineHook(goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(_ context.Context, cmds []goredis.Cmder) error {
		for _, cmd := range cmds {
			if err := f.answer(cmd); err != nil {
				return err
			}
		}
		return nil
	}
}

func (f *fakeServer) answer(cmd goredis.Cmder) error {
	args := cmd.Args()
	name := strings.ToLower(fmt.Sprint(args[0]))
	words := []string{name}
	rest := args[1:]
	if name == "eval" || name == "evalsha" {
		rest = args[2:] // the script's text: named by its keys and arguments
	}
	for _, a := range rest {
		words = append(words, fmt.Sprint(a))
	}
	f.sent = append(f.sent, strings.Join(words, " "))
	switch c := cmd.(type) {
	case *goredis.Cmd:
		if name == "wait" {
			c.SetVal(f.wait)
		} else {
			c.SetVal(f.script)
		}
	case *goredis.IntCmd:
		c.SetVal(7)
	default:
		return fmt.Errorf("fake server: no answer to %v", args)
	}
	return nil
}

// A counter add with idempotency keys is one script over the counter's
// key and the request's, followed by WAIT; the script's answer (1: applied
// now, 2 or more: a repeated attempt that applied nothing) does not
// change how the add is acknowledged, WAIT does. Without keys, or with
// no request, the add is INCRBY.
func TestAddOnce(t *testing.T) {
	for _, c := range []struct {
		name         string
		keys         bool
		request      string
		script, wait int64
		want         history.Type
		wantSent     string
	}{
		{"idempotency/first attempt, replica acknowledged/ok", true, "p1.7", 1, 1, history.OK, "eval 2 c:k req:p1.7 5; wait 1 500"},
		{"idempotency/repeated attempt, replica acknowledged/ok", true, "p1.7", 2, 1, history.OK, "eval 2 c:k req:p1.7 5; wait 1 500"},
		{"idempotency/repeated attempt, no replica acknowledged/info", true, "p1.7", 3, 0, history.Info, "eval 2 c:k req:p1.7 5; wait 1 500"},
		{"idempotency/no request/incrby", true, "", 0, 1, history.OK, "incrby c:k 5; wait 1 500"},
		{"idempotency/no keys/incrby", false, "p1.7", 0, 1, history.OK, "incrby c:k 5; wait 1 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := NewClient(ClientOptions{Workload: workload.Counter, Primary: "127.0.0.1:1", Wait: 1, WaitTimeout: 500 * time.Millisecond, IdempotencyKeys: c.keys})
			defer cl.Close()
			f := &fakeServer{script: c.script, wait: c.wait}
			cl.primary.AddHook(f)
			got := cl.Invoke(context.Background(), history.Op{Process: 1, Type: history.Invoke, F: "add", Key: "k", Value: history.Int(5), Request: c.request, Attempt: 1})
			if got.Type != c.want {
				t.Errorf("add: %v %q, want %v", got.Type, got.Error, c.want)
			}
			if sent := strings.Join(f.sent, "; "); sent != c.wantSent {
				t.Errorf("sent %q, want %q", sent, c.wantSent)
			}
		})
	}
}
