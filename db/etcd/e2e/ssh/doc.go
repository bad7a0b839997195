// Package ssh holds the end-to-end tests of etcd on SSH hosts: the
// eccheck binary built from this source tree runs `eccheck test --db etcd
// --cluster ssh`, `eccheck cluster` and `eccheck nemesis` against hosts of
// internal/sshtest (containers running sshd with Debian's etcd-server,
// reached only over SSH), and the tests assert what each configuration
// must show and that nothing of eccheck's is left on the hosts. They skip
// without a Docker engine, and fail instead with ECCHECK_REQUIRE_DOCKER=1.
package ssh
