// Package e2e holds the end-to-end tests of etcd in Docker: the eccheck
// binary built from this source tree runs `eccheck test --db etcd`,
// `eccheck matrix --db etcd`, `eccheck cluster` and `eccheck nemesis`
// against three etcd members, and the tests assert what each read setting
// must show, each anomaly caused by construction. They skip without a
// Docker engine, and fail instead with ECCHECK_REQUIRE_DOCKER=1.
package e2e
