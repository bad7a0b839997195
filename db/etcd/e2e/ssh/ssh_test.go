package ssh

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/eccheck/eccheck/history"
	"github.com/eccheck/eccheck/internal/dockertest"
	"github.com/eccheck/eccheck/internal/sshtest"
)

// TestMain labels what these tests create with this process and sweeps
// what killed test runs left.
func TestMain(m *testing.M) { dockertest.Main(m) }

// Linearizable reads under partitions, kills and pauses of the members'
// processes on their hosts: every operation linearizable, nothing
// acknowledged lost (exit 0), with each fault carried out, as in Docker
// (db/etcd/e2e); every member's log saved and nothing left on the hosts.
func TestLinearizableUnderFaults(t *testing.T) {
	hs := sshtest.Start(t, 3)
	code, rep, h, _ := hs.Test(t, func(n string) string { return "embed: name = " + n }, "--db", "etcd", "--workload", "register,set",
		"--nemesis", "partition,kill,pause", "--nemesis-cycles", "3", "--nemesis-interval", "2s", "--time-limit", "5m", "--seed", "1")
	for _, kind := range []string{"partition", "kill", "pause"} {
		dockertest.Window(t, h, kind)
	}
	if code != dockertest.ExitValid {
		t.Fatalf("etcd ssh/linearizable reads under faults/exit 0: exit %d, results %+v", code, rep.Results)
	}
	dockertest.ExpectVerdicts(t, rep, map[string]string{"linearizable (register)": "valid", "lost-writes (register)": "valid", "lost-writes (set)": "valid"})
	if n := len(history.Faults(h)); n == 0 {
		t.Errorf("etcd ssh/faults/in the history: none")
	}
}

// TestClusterNemesisDown brings an etcd cluster up with `eccheck cluster
// up --db etcd --cluster ssh`, checks that it refuses requests without
// the cluster's password (authentication is on: the hosts may sit on a
// real network), takes it over with `eccheck nemesis` and `cluster
// status`, and checks that `cluster down` leaves nothing on the hosts.
func TestClusterNemesisDown(t *testing.T) {
	hs := sshtest.Start(t, 3)
	args := hs.Args()
	out := dockertest.MustCLI(t, append([]string{"cluster", "up", "--db", "etcd"}, args...)...)
	password := hs.Secret(t, "default", out)
	endpoint := hs.Hosts[0].IP.String() + ":12379"
	put := func(user, pw string) error {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Username: user, Password: pw, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Put(ctx, "eccheck-test", "x")
		return err
	}
	if err := put("", ""); err == nil {
		t.Errorf("etcd ssh/auth/a write without the password refused")
	}
	if err := put("root", password); err != nil {
		t.Errorf("etcd ssh/auth/a write with the password: %v", err)
	}
	status := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...)
	if strings.Count(status, "running") != 3 || strings.Count(status, "leader") != 1 || strings.Count(status, "follower") != 2 {
		t.Errorf("etcd ssh/cluster status/three members running, one leader: %s", status)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "kill", "--node", "n2"}, args...)...)
	if out := dockertest.MustCLI(t, append([]string{"cluster", "status"}, args...)...); !strings.Contains(out, "exited") {
		t.Errorf("etcd ssh/nemesis kill/n2 exited: %s", out)
	}
	dockertest.MustCLI(t, append([]string{"nemesis", "start", "--node", "n2"}, args...)...)
	if code, _, errs := dockertest.CLI(t, append([]string{"nemesis", "clock", "--node", "n3", "--offset", "5s"}, args...)...); code == 0 || !strings.Contains(errs, "--ssh-host-clock") {
		t.Errorf("etcd ssh/nemesis clock without --ssh-host-clock/refused, saying why: exit %d: %s", code, errs)
	}
	dockertest.MustCLI(t, append([]string{"cluster", "down"}, args...)...)
	hs.NoLeftovers(t, "after cluster down")
}
