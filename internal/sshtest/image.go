package sshtest

import "github.com/eccheck/eccheck/docker"

// RoleHost is the role of [HostImage] (docker.LabelRole on the image).
const RoleHost = "ssh-host"

// HostImage is the image of a test host: Debian bookworm (debootstrap
// minbase, as every Debian image of eccheck) with openssh-server and sudo
// beside the base image's iptables, iproute2, libfaketime and procps. (Not
// postgresql-15 yet: it doubles the debootstrap, which a fresh machine's
// go test pays inside the package's 10 minutes; the stage that sets
// Postgres up over SSH adds it.) Its containers run sshd as their main
// process (see [Start]).
//
// It lives here, not in docker/, because nothing but tests runs it: a host
// of `--cluster ssh` is a machine of the user's, and `eccheck images build`
// has no reason to offer it.
var HostImage = docker.ImageSpec{
	Role: RoleHost, Repo: "eccheck/debian-sshhost", Path: docker.BasePath,
	Packages: append(docker.BasePackages(), "openssh-server", "sudo"),
	Doc:      "Debian with sshd, sudo, iptables, iproute2, procps, libfaketime and Postgres 15: a test host of the ssh backend",
}
