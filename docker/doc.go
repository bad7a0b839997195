// Package docker runs eccheck's clusters in containers through the Docker
// Engine API (github.com/moby/moby/client; never the docker CLI).
//
// It builds the images eccheck needs without a registry ([BuildEcstore],
// [BuildBase], [BuildPostgres]): ecstore as one static eccheck binary in a
// FROM-scratch image, and Debian images made with debootstrap from the
// host's configured mirror. Every image is labelled with the hash of its
// inputs, so a build whose inputs did not change is skipped.
//
// [Up] starts an ecstore cluster: a private bridge network with a fixed
// subnet, one container per node with a fixed address, the client port
// published on 127.0.0.1 only. Every container and network carries the
// label eccheck.cluster=NAME, so [Down] removes all of a cluster, including
// what a crashed run left behind. [Cluster] also injects faults: kill and
// start, pause and resume through the API, clock offsets through the file
// ecstore re-reads, and partitions as iptables DROP rules in a dedicated
// chain inside a node's network namespace, applied by a short-lived helper
// container from the Debian base image.
package docker
