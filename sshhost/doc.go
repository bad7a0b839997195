// Package sshhost reaches real hosts over SSH and injects faults on them
// with their own tools, as Jepsen's control node does: the SSH counterpart
// of package docker. It knows no system under test.
//
// [Dial] opens one client connection to a host (golang.org/x/crypto/ssh),
// checking its host key against a known_hosts file unless [Config.Insecure]
// says not to; a [Host] runs commands in sessions made per command, a few
// at once ([Host.Run], [Host.Sudo]), and copies files over a session's
// standard input ([Host.Upload], [Host.Download]).
//
// Faults, each undone exactly and each in a file of its own:
//
//   - partitions ([Host.Partition], [Host.Heal]): iptables DROP rules in
//     eccheck's own chain [Chain], jumped to from INPUT and OUTPUT; heal
//     flushes that chain only, and [Host.RemoveRules] removes the jumps
//     and the chain. Rules eccheck did not add are never touched.
//   - delay and loss ([Host.Netem]): a tc netem qdisc on the traffic to
//     given peers, under a root qdisc with eccheck's handle; a kernel
//     without sch_netem gives [ErrNoNetem].
//   - processes ([Host.Start], [Host.Kill], [Host.Pause], [Host.Resume],
//     [Host.Status]): a detached process group (setsid) with a pidfile and
//     a log file in eccheck's directory [Root]/CLUSTER.
//
// [Host.Leftovers] lists what eccheck left on a host (its chain, rules and
// jumps, its qdiscs, its live processes, its directories), and [Host.Down]
// removes all of it. docs/ssh.md says what a host needs and what eccheck
// changes on it.
package sshhost
