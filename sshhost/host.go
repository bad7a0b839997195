package sshhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// MaxSessions is how many commands a [Host] runs at once (each in a
// session of its own on the one connection); more wait. sshd allows 10 by
// default (MaxSessions).
const MaxSessions = 4

// Host is one host reached over SSH: one client connection, made again
// when it breaks, and at most [MaxSessions] commands at once. Its methods
// are safe for concurrent use.
type Host struct {
	name     string // as given to Dial
	hostport string
	login    string
	auth     auth
	keys     *hostKeys
	sem      chan struct{}

	mu     sync.Mutex
	client *ssh.Client
	dead   chan struct{} // closed when client's connection ends
	closed bool
	done   chan struct{} // closed by Close
}

// Dial logs in to host ("name", "name:port", an address) as cfg says and
// returns it. Before any command runs it fails with an error that says
// what to fix: [ErrUnreachable], [ErrHostKeyUnknown] or
// [ErrHostKeyChanged] (naming the known_hosts file and the flag that
// relaxes the check), [ErrAuthRefused] (naming the keys and the user), or
// a missing key or known_hosts file.
func Dial(ctx context.Context, host string, cfg Config) (*Host, error) {
	hostport, err := hostPort(host, cfg.Port)
	if err != nil {
		return nil, err
	}
	a, err := loadAuth(cfg)
	if err != nil {
		return nil, err
	}
	hk, err := loadHostKeys(cfg)
	if err != nil {
		return nil, err
	}
	h := &Host{
		name: host, hostport: hostport, login: loginUser(cfg), auth: a, keys: hk,
		sem: make(chan struct{}, MaxSessions), done: make(chan struct{}),
	}
	c, err := dial(ctx, hostport, h.login, a, hk)
	if err != nil {
		return nil, err
	}
	h.use(c)
	return h, nil
}

// use makes c the host's connection, watched for its end and kept alive.
// h.mu is held or h is not shared yet.
func (h *Host) use(c *ssh.Client) {
	dead := make(chan struct{})
	h.client, h.dead = c, dead
	go func() {
		c.Wait()
		close(dead)
	}()
	go keepAlive(c, dead, h.done)
}

// keepAliveEvery is how often an idle connection is checked; a host that
// does not answer within it has its connection closed (and made again by
// the next command).
const keepAliveEvery = 20 * time.Second

// keepAlive sends OpenSSH's keepalive request every keepAliveEvery and
// closes c when one goes unanswered, so that a host that went away is
// noticed by the next command rather than hanging it.
func keepAlive(c *ssh.Client, dead, done chan struct{}) {
	t := time.NewTicker(keepAliveEvery)
	defer t.Stop()
	for {
		select {
		case <-dead:
			return
		case <-done:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(keepAliveEvery):
			c.Close()
			return
		case <-dead:
			return
		case <-done:
			return
		}
	}
}

// Name returns the host as given to [Dial].
func (h *Host) Name() string { return h.name }

// Addr returns the host:port dialled.
func (h *Host) Addr() string { return h.hostport }

// User returns the login user.
func (h *Host) User() string { return h.login }

// String returns user@host:port.
func (h *Host) String() string { return h.login + "@" + h.hostport }

// root reports whether the login user is root (no sudo needed).
func (h *Host) root() bool { return h.login == "root" }

// LocalAddr returns this side's address of the connection (how the host
// sees eccheck), or nil when it is closed.
func (h *Host) LocalAddr() net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil {
		return nil
	}
	return h.client.LocalAddr()
}

// Close closes the connection; commands running end with an error.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	close(h.done)
	if h.client == nil {
		return nil
	}
	return h.client.Close()
}

// conn returns the host's connection and the channel closed when it
// ends, dialling again first when it has ended.
func (h *Host) conn(ctx context.Context) (*ssh.Client, chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, fmt.Errorf("ssh %s: closed", h)
	}
	select {
	case <-h.dead:
		c, err := dial(ctx, h.hostport, h.login, h.auth, h.keys)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (the connection had ended)", err)
		}
		h.use(c)
	default:
	}
	return h.client, h.dead, nil
}

// session opens a session, on a new connection when the last one ended.
func (h *Host) session(ctx context.Context) (*ssh.Session, error) {
	for attempt := 0; ; attempt++ {
		c, dead, err := h.conn(ctx)
		if err != nil {
			return nil, err
		}
		s, err := c.NewSession()
		if err == nil {
			return s, nil
		}
		// A connection that just ended fails NewSession a moment before
		// its end is noticed.
		select {
		case <-dead:
			if attempt == 0 {
				continue
			}
		case <-time.After(time.Second):
		}
		return nil, fmt.Errorf("ssh %s: new session: %w", h, err)
	}
}

// CommandError is a command that failed on a host: its exit status (or
// the signal that ended it) and the end of its standard error.
type CommandError struct {
	// Host is user@host:port.
	Host string
	// Cmd is the command, or what it does for eccheck's own scripts.
	Cmd string
	// Status is the exit status; -1 when the command reported none.
	Status int
	// Signal is the signal that ended the command, if one did.
	Signal string
	// Stderr is the command's standard error.
	Stderr string
	// Hint says how to fix a failure eccheck recognises (no sudo).
	Hint string
	// Err is the cause when the command did not end on its own (a lost
	// connection), or a sentinel such as [ErrNoSudo].
	Err error
}

// stderrLines is how many of the last lines of standard error an error
// message keeps.
const stderrLines = 10

func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "on %s: %s: ", e.Host, shorten(e.Cmd, 160))
	switch {
	case e.Signal != "":
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	case e.Status >= 0:
		fmt.Fprintf(&b, "exit status %d", e.Status)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("no exit status")
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		lines := strings.Split(s, "\n")
		if len(lines) > stderrLines {
			lines = append([]string{"..."}, lines[len(lines)-stderrLines:]...)
		}
		fmt.Fprintf(&b, ": %s", strings.Join(lines, "\n  "))
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// shorten cuts s to n bytes (and its first line), marking the cut.
func shorten(s string, n int) string {
	line, _, more := strings.Cut(s, "\n")
	if len(line) > n {
		return line[:n] + "..."
	}
	if more {
		return line + " ..."
	}
	return line
}

// command is one command to run: what it is called in errors, the
// command line, and its streams (nil: none, captured).
type command struct {
	label  string
	line   string
	stdin  io.Reader
	stdout io.Writer
}

// exec runs c in a session of its own and returns its captured output.
// When ctx ends first, the command is sent SIGKILL (where sshd passes
// signals on) and its session closed.
func (h *Host) exec(ctx context.Context, c command) (stdout, stderr string, err error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return "", "", fmt.Errorf("on %s: %s: waiting for a session: %w", h, shorten(c.label, 160), ctx.Err())
	}
	defer func() { <-h.sem }()
	s, err := h.session(ctx)
	if err != nil {
		return "", "", err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdin = c.stdin
	s.Stdout = &out
	if c.stdout != nil {
		s.Stdout = c.stdout
	}
	s.Stderr = &errb
	if err := s.Start(c.line); err != nil {
		return "", "", &CommandError{Host: h.String(), Cmd: c.label, Status: -1, Err: fmt.Errorf("start: %w", err)}
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		ce := &CommandError{Host: h.String(), Cmd: c.label, Status: -1, Err: ctx.Err()}
		select {
		case <-waited:
			ce.Stderr = errb.String()
			return out.String(), errb.String(), ce
		case <-time.After(5 * time.Second):
			// The host does not answer: the buffers may still be written to.
			return "", "", ce
		}
	}
	if err == nil {
		return out.String(), errb.String(), nil
	}
	ce := &CommandError{Host: h.String(), Cmd: c.label, Status: -1, Stderr: errb.String()}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case errors.As(err, &ee):
		ce.Status, ce.Signal = ee.ExitStatus(), ee.Signal()
		if ce.Signal != "" {
			ce.Status = -1
		}
	case errors.As(err, &missing):
		ce.Err = errors.New("the command ended without an exit status (connection lost?)")
	default:
		ce.Err = err
	}
	return out.String(), errb.String(), ce
}

// Run runs cmd with the login user's shell and returns its standard
// output and error. A failure is a *[CommandError] naming the host, the
// command, its exit status and the end of its standard error.
func (h *Host) Run(ctx context.Context, cmd string) (stdout, stderr string, err error) {
	return h.exec(ctx, command{label: cmd, line: cmd})
}

// ErrNoSudo is wrapped by the error of a command run with sudo when the
// login user may not run it without a password.
var ErrNoSudo = errors.New("sudo without a password refused")

// Sudo runs cmd as root: with sh -c under `sudo -n` when the login user
// is not root (a user that needs a password for sudo gets an error
// wrapping [ErrNoSudo], saying so), as [Host.Run] does otherwise.
func (h *Host) Sudo(ctx context.Context, cmd string) (stdout, stderr string, err error) {
	return h.sudo(ctx, cmd, nil, nil, "sh", "-c", cmd)
}

// sudo runs argv as root (see [Host.Sudo]) with the given streams;
// label names it in errors.
func (h *Host) sudo(ctx context.Context, label string, stdin io.Reader, stdout io.Writer, argv ...string) (string, string, error) {
	line := Command(argv...)
	if !h.root() {
		line = "sudo -n -- " + line
	}
	out, errs, err := h.exec(ctx, command{label: label, line: line, stdin: stdin, stdout: stdout})
	var ce *CommandError
	if err != nil && !h.root() && errors.As(err, &ce) {
		switch {
		case strings.Contains(ce.Stderr, "sudo: a password is required"), strings.Contains(ce.Stderr, "sudo: a terminal is required"),
			strings.Contains(ce.Stderr, "is not in the sudoers file"), strings.Contains(ce.Stderr, "is not allowed to execute"):
			ce.Err = ErrNoSudo
			ce.Hint = fmt.Sprintf("user %s needs sudo without a password on %s (a line such as '%s ALL=(ALL) NOPASSWD:ALL' in /etc/sudoers.d/), or log in as root", h.login, h.hostport, h.login)
		case ce.Status == 127 && strings.Contains(ce.Stderr, "sudo"):
			ce.Err = ErrNoSudo
			ce.Hint = fmt.Sprintf("%s has no sudo: install it, or log in as root", h.hostport)
		}
	}
	return out, errs, err
}

// script runs one of eccheck's shell scripts as root with args ($1...),
// named label in errors.
func (h *Host) script(ctx context.Context, label, script string, args ...string) (string, string, error) {
	return h.sudo(ctx, label, nil, nil, append([]string{"sh", "-c", script, "eccheck"}, args...)...)
}

// Quote quotes s for a POSIX shell: as is when it holds only characters
// no shell treats specially, else in single quotes.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command returns the shell command line that runs argv: each argument
// quoted ([Quote]) and joined by spaces.
func Command(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
