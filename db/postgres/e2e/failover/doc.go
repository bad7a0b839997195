// Package failover holds the Postgres end-to-end tests of failovers (an
// asynchronous one losing acknowledged adds, a synchronous one keeping
// them, three failovers with rejoins), apart from the other Postgres
// end-to-end tests so that no package comes near go test's default 10
// minutes (the packages run side by side). They skip without a Docker
// engine, and fail instead with ECCHECK_REQUIRE_DOCKER=1.
package failover
