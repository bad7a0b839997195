package postgres

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eccheck/eccheck/history"
)

func TestClassify(t *testing.T) {
	unreplicated := &pgconn.Notice{Severity: "WARNING", Message: "canceling wait for synchronous replication due to user request",
		Detail: "The transaction has already committed locally, but might not have been replicated to the standby."}
	other := &pgconn.Notice{Severity: "NOTICE", Message: "relation \"registers\" already exists, skipping"}
	tests := []struct {
		name    string
		err     error
		read    bool
		notices []*pgconn.Notice
		want    history.Type
	}{
		{"classify/no error/ok", nil, false, nil, history.OK},
		{"classify/no error with an unrelated notice/ok", nil, false, []*pgconn.Notice{other}, history.OK},
		{"classify/success with the committed-locally warning/info", nil, false, []*pgconn.Notice{other, unreplicated}, history.Info},
		{"classify/cas matched no row/fail", errNoRows, false, nil, history.Fail},
		{"classify/unknown operation/fail", errUsage, false, nil, history.Fail},
		{"classify/unique violation (ERROR)/fail", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, false, nil, history.Fail},
		{"classify/serialization failure (ERROR)/fail", &pgconn.PgError{Severity: "ERROR", Code: "40001"}, false, nil, history.Fail},
		{"classify/terminated while waiting (FATAL)/info", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, false, nil, history.Info},
		{"classify/timeout after sending/info", context.DeadlineExceeded, false, nil, history.Info},
		{"classify/connection lost/info", errors.New("unexpected EOF"), false, nil, history.Info},
		{"classify/read that timed out/fail", context.DeadlineExceeded, true, nil, history.Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, text := Classify(tt.err, tt.read, tt.notices)
			if got != tt.want {
				t.Fatalf("Classify = %v (%q), want %v", got, text, tt.want)
			}
			if (got == history.OK) != (text == "") {
				t.Fatalf("Classify text %q with type %v", text, got)
			}
		})
	}
}

// A write to a server that refuses the connection was certainly not
// applied: fail, not info.
func TestInvokeConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := NewClient("postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres?sslmode=disable", ClientOptions{Timeout: 2 * time.Second})
	defer c.Close(context.Background())
	for _, op := range []history.Op{
		{Process: 1, Type: history.Invoke, F: "write", Key: "k", Value: history.Int(1)},
		{Process: 1, Type: history.Invoke, F: "read", Key: "k"},
	} {
		done := c.Invoke(context.Background(), op)
		if done.Type != history.Fail || done.Error == "" || done.Node != "primary" {
			t.Fatalf("%s on a refused connection: got %v %q on %q, want fail with an error on primary", op.F, done.Type, done.Error, done.Node)
		}
	}
}

func TestInvokeUnknownOperation(t *testing.T) {
	c := NewClient("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", ClientOptions{Workload: Counter})
	if _, err := c.exec(context.Background(), nil, history.Op{F: "cas", Value: history.Ints(1, 2)}, "k"); !errors.Is(err, errUsage) {
		t.Fatalf("counter cas: got %v, want errUsage", err)
	}
}
