package sshtest

import "github.com/eccheck/eccheck/docker"

// RoleHost is the role of [HostImage] (docker.LabelRole on the image).
const RoleHost = "ssh-host"

// HostImage is the image of a test host: Debian bookworm (debootstrap
// minbase, as every Debian image of eccheck) with openssh-server, sudo
// and Debian's postgresql-15, etcd-server, redis-server and
// redis-sentinel (which the systems over SSH find there, as they would on
// a host where they were installed before) beside the base image's
// iptables, iproute2, libfaketime and procps. Its containers run sshd as
// their main process (see [Start]).
//
// It lives here, not in docker/, because nothing but tests runs it: a host
// of `--cluster ssh` is a machine of the user's, and `eccheck images build`
// has no reason to offer it.
var HostImage = docker.ImageSpec{
	Role: RoleHost, Repo: "eccheck/debian-sshhost", Path: docker.BasePath,
	Packages: append(docker.BasePackages(), "openssh-server", "sudo", "postgresql-15", "etcd-server", "redis-server", "redis-sentinel"),
	Doc:      "Debian with sshd, sudo, iptables, iproute2, procps, libfaketime, Postgres 15, etcd and Redis: a test host of the ssh backend",
}
