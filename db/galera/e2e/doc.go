// Package e2e holds the end-to-end tests of MariaDB Galera Cluster in
// Docker: the eccheck binary built from this source tree runs `eccheck
// test --db galera` and `eccheck cluster` against three nodes, and the
// tests assert what each setting must show, each anomaly caused by
// construction. They skip without a Docker engine, and fail instead with
// ECCHECK_REQUIRE_DOCKER=1.
package e2e
