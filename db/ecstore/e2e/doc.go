// Package e2e holds the end-to-end tests of ecstore in Docker: the eccheck
// binary built from this source tree runs `eccheck test --cluster docker`,
// `eccheck cluster` and `eccheck nemesis` against ecstore containers, and
// the tests assert what each configuration must show. They skip without a
// Docker engine, and fail instead with ECCHECK_REQUIRE_DOCKER=1.
package e2e
