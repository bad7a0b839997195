// Package retries holds the end-to-end test of retries and idempotency
// keys on Postgres in Docker, apart from the other Postgres end-to-end
// tests so that neither package comes near go test's default 10 minutes
// (the packages run side by side). It skips without a Docker engine, and
// fails instead with ECCHECK_REQUIRE_DOCKER=1.
package retries
