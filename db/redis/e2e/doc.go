// Package e2e holds the end-to-end tests of Redis with Sentinel in Docker:
// the eccheck binary built from this source tree runs `eccheck test --db
// redis` and `eccheck cluster` against a primary, two replicas and three
// Sentinels, and the tests assert what each setting must show, each
// anomaly caused by construction. They skip without a Docker engine, and
// fail instead with ECCHECK_REQUIRE_DOCKER=1.
package e2e
