// Package ssh holds the end-to-end tests of Postgres on SSH hosts: the
// eccheck binary built from this source tree runs `eccheck test --db
// postgres --cluster ssh`, `eccheck cluster` and `eccheck nemesis`
// against hosts of internal/sshtest (containers running sshd with
// Debian's postgresql-15, reached only over SSH), and the tests assert
// what each configuration must show and that nothing of eccheck's is
// left on the hosts. They skip without a Docker engine, and fail instead
// with ECCHECK_REQUIRE_DOCKER=1.
package ssh
