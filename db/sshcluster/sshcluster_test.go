package sshcluster

import (
	"errors"
	"testing"
)

func TestHostName(t *testing.T) {
	for in, want := range map[string]string{"db1": "db1", "db1:2222": "db1", "10.0.0.1:22": "10.0.0.1", "[::1]:22": "::1"} {
		if got := HostName(in); got != want {
			t.Errorf("host name/%s/%s: got %s", in, want, got)
		}
	}
}

func TestOtherDBError(t *testing.T) {
	var err error = &OtherDBError{Cluster: "c1", Host: "h1", DB: "postgres", Want: "ecstore"}
	var o *OtherDBError
	if !errors.As(err, &o) || err.Error() != "cluster c1 on h1 runs postgres, not ecstore" {
		t.Errorf("other system's cluster/wrapped and worded: %v", err)
	}
}
