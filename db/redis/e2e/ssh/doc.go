// Package ssh holds the end-to-end tests of Redis with Sentinel on SSH
// hosts: the eccheck binary built from this source tree runs `eccheck
// test --db redis --cluster ssh`, `eccheck cluster` and `eccheck nemesis`
// against hosts of internal/sshtest (containers running sshd with
// Debian's redis-server and redis-sentinel, reached only over SSH), and
// the tests assert what each configuration must show and that nothing of
// eccheck's is left on the hosts. They skip without a Docker engine, and
// fail instead with ECCHECK_REQUIRE_DOCKER=1.
package ssh
