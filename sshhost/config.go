// This file holds how eccheck logs in to a host: the user, the keys, the
// port, and the host-key check, with the errors that say which of them
// failed before any work is done.

package sshhost

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Config says how to log in to hosts.
type Config struct {
	// User is the login user; empty means the local user's name, as ssh
	// does. A user other than root needs sudo without a password.
	User string
	// KeyFile is the private key to log in with (not protected by a
	// passphrase: load such a key into ssh-agent instead). Empty means
	// the keys of the ssh-agent at $SSH_AUTH_SOCK and those of
	// ~/.ssh/id_ed25519, id_ecdsa and id_rsa that exist.
	KeyFile string
	// Port is the SSH port; 0 means 22. A host given as "name:port" keeps
	// its own.
	Port int
	// KnownHosts is the known_hosts file the host keys are checked
	// against; empty means ~/.ssh/known_hosts.
	KnownHosts string
	// Insecure accepts any host key: for throwaway hosts only, since
	// anyone between eccheck and the host could then pose as it (see
	// [Config.Warning]).
	Insecure bool
}

// Warning returns what a user must be told about c: that host keys are
// not checked when c.Insecure is set; else "".
func (c Config) Warning() string {
	if c.Insecure {
		return "host keys are not checked (insecure): anyone on the path to a host can pose as it; use this only for throwaway hosts"
	}
	return ""
}

// Errors of [Dial], wrapped with what was tried and how to fix it.
var (
	// ErrUnreachable: no TCP connection to the host's SSH port.
	ErrUnreachable = errors.New("host unreachable")
	// ErrHostKeyUnknown: the known_hosts file has no key for the host.
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrHostKeyChanged: the known_hosts file has another key for the
	// host (or the key is revoked there).
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrAuthRefused: the host accepted none of the keys.
	ErrAuthRefused = errors.New("login refused")
)

// DefaultPort is the SSH port when neither the host nor [Config.Port]
// gives one.
const DefaultPort = 22

// hostPort returns host's address to dial: host:port, with the port of
// host when it has one ("name:2222", "[::1]:2222"), else port (22 when 0).
func hostPort(host string, port int) (string, error) {
	if host == "" {
		return "", errors.New("empty host name")
	}
	if h, p, err := net.SplitHostPort(host); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || h == "" {
			return "", fmt.Errorf("host %q: want NAME or NAME:PORT", host)
		}
		return host, nil
	}
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("ssh port %d: want 1 to 65535", port)
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)), nil
}

// loginUser returns cfg's user, or the local user's name.
func loginUser(cfg Config) string {
	if cfg.User != "" {
		return cfg.User
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// sshDir returns ~/.ssh/name.
func sshDir(name string) string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	return filepath.Join(home, ".ssh", name)
}

// keyFile is one private key eccheck offers.
type keyFile struct {
	path   string
	signer ssh.Signer
}

// loadKey reads a private key file.
func loadKey(path string) (keyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keyFile{}, fmt.Errorf("ssh key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return keyFile{}, fmt.Errorf("ssh key %s is protected by a passphrase: load it into ssh-agent (ssh-add %s) and give no key file", path, path)
		}
		return keyFile{}, fmt.Errorf("ssh key %s: %w", path, err)
	}
	return keyFile{path: path, signer: s}, nil
}

// auth is what [Dial] offers a host: the key files, and the agent's
// keys when no key file is given.
type auth struct {
	keys  []keyFile
	agent string // $SSH_AUTH_SOCK, when used
}

// loadAuth reads cfg's key file, or the default keys and the agent's.
func loadAuth(cfg Config) (auth, error) {
	if cfg.KeyFile != "" {
		k, err := loadKey(cfg.KeyFile)
		if err != nil {
			return auth{}, err
		}
		return auth{keys: []keyFile{k}}, nil
	}
	var a auth
	a.agent = os.Getenv("SSH_AUTH_SOCK")
	var defaults []string
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		path := sshDir(name)
		defaults = append(defaults, path)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		k, err := loadKey(path)
		if err != nil {
			if a.agent != "" {
				continue // the agent may hold it
			}
			return auth{}, err
		}
		a.keys = append(a.keys, k)
	}
	if len(a.keys) == 0 && a.agent == "" {
		return auth{}, fmt.Errorf("no ssh key: none of %s exists and no ssh-agent runs ($SSH_AUTH_SOCK is empty): give a key file", strings.Join(defaults, ", "))
	}
	return a, nil
}

// methods returns the auth methods, and a closer for the agent's
// connection.
func (a auth) methods() ([]ssh.AuthMethod, func()) {
	var signers []ssh.Signer
	for _, k := range a.keys {
		signers = append(signers, k.signer)
	}
	var ms []ssh.AuthMethod
	closer := func() {}
	if a.agent != "" {
		if conn, err := net.Dial("unix", a.agent); err == nil {
			ag := agent.NewClient(conn)
			ms = append(ms, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				as, err := ag.Signers()
				return append(slices.Clone(signers), as...), err
			}))
			return ms, func() { conn.Close() }
		}
	}
	return append(ms, ssh.PublicKeys(signers...)), closer
}

// describe names the keys offered, for a refusal.
func (a auth) describe() string {
	var parts []string
	for _, k := range a.keys {
		parts = append(parts, fmt.Sprintf("%s (%s %s)", k.path, k.signer.PublicKey().Type(), ssh.FingerprintSHA256(k.signer.PublicKey())))
	}
	if a.agent != "" {
		parts = append(parts, "the keys of ssh-agent at "+a.agent)
	}
	return strings.Join(parts, ", ")
}

// hostKeys checks host keys, remembering why the last check failed.
type hostKeys struct {
	file     string // "" when insecure
	callback ssh.HostKeyCallback

	mu      sync.Mutex
	failure error
	key     ssh.PublicKey // the key the host presented
}

// loadHostKeys reads cfg's known_hosts file, failing when it is missing
// (unless cfg.Insecure).
func loadHostKeys(cfg Config) (*hostKeys, error) {
	if cfg.Insecure {
		return &hostKeys{callback: ssh.InsecureIgnoreHostKey()}, nil
	}
	file := cfg.KnownHosts
	if file == "" {
		file = sshDir("known_hosts")
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("known hosts %s: %w: add the hosts' keys to it (ssh-keyscan HOST >> %s, once you have checked them), give another known_hosts file, or relax host-key checking for throwaway hosts (insecure)", file, err, file)
	}
	return &hostKeys{file: file, callback: cb}, nil
}

// check is the ssh.HostKeyCallback.
func (hk *hostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := hk.callback(hostname, remote, key)
	hk.mu.Lock()
	hk.failure, hk.key = err, key
	hk.mu.Unlock()
	return err
}

var (
	probeOnce sync.Once
	probeKey  ssh.PublicKey
)

// algorithms returns the host key algorithms of the keys known for
// hostport, so that a host with keys of several types shows the one
// known_hosts holds (not another, which would look like a changed key);
// nil when none is known or checking is off.
func (hk *hostKeys) algorithms(hostport string) []string {
	if hk.file == "" {
		return nil
	}
	probeOnce.Do(func() {
		pub, _, err := ed25519.GenerateKey(nil)
		if err == nil {
			probeKey, _ = ssh.NewPublicKey(pub)
		}
	})
	if probeKey == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := hk.callback(hostport, &net.TCPAddr{IP: net.IPv4zero}, probeKey); !errors.As(err, &ke) {
		return nil
	}
	var out []string
	for _, k := range ke.Want {
		algs := []string{k.Key.Type()}
		if k.Key.Type() == ssh.KeyAlgoRSA {
			algs = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, a := range algs {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// explain turns a host-key failure into an error that says which file
// to fix or how to relax the check; nil when the host key was not the
// problem.
func (hk *hostKeys) explain(who, hostport string) error {
	hk.mu.Lock()
	failure, key := hk.failure, hk.key
	hk.mu.Unlock()
	if failure == nil || key == nil {
		return nil
	}
	host, port, _ := net.SplitHostPort(hostport)
	presented := fmt.Sprintf("%s presents %s key %s", hostport, key.Type(), ssh.FingerprintSHA256(key))
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(failure, &re):
		return fmt.Errorf("ssh %s: %w: %s, which %s:%d marks revoked", who, ErrHostKeyChanged, presented, re.Revoked.Filename, re.Revoked.Line)
	case errors.As(failure, &ke) && len(ke.Want) == 0:
		return fmt.Errorf("ssh %s: %w: %s, and %s has no key for it: once you have checked the key, add the line %q to %s (or run ssh-keyscan -p %s %s >> %s); or relax host-key checking for throwaway hosts (insecure)",
			who, ErrHostKeyUnknown, presented, hk.file, knownhosts.Line([]string{hostport}, key), hk.file, port, host, hk.file)
	case errors.As(failure, &ke):
		var want []string
		for _, k := range ke.Want {
			want = append(want, fmt.Sprintf("%s:%d (%s %s)", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
		}
		return fmt.Errorf("ssh %s: %w: %s, but %s holds another: if the host was reinstalled, remove the old line (ssh-keygen -R %s -f %s) and add the new key once you have checked it; if not, someone may be posing as the host",
			who, ErrHostKeyChanged, presented, strings.Join(want, ", "), knownhosts.Normalize(hostport), hk.file)
	}
	return fmt.Errorf("ssh %s: host key check: %w", who, failure)
}

// dialTimeout bounds a dial and its handshake when ctx has no deadline.
const dialTimeout = 20 * time.Second

// dial connects to hostport and logs in: the TCP connection, the host
// key check and the authentication, each failure said plainly.
func dial(ctx context.Context, hostport, login string, a auth, hk *hostKeys) (*ssh.Client, error) {
	who := login + "@" + hostport
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w: %v", who, ErrUnreachable, err)
	}
	hk.mu.Lock()
	hk.failure, hk.key = nil, nil // what an earlier dial's check found
	hk.mu.Unlock()
	methods, closeAgent := a.methods()
	defer closeAgent()
	cc := &ssh.ClientConfig{
		User:              login,
		Auth:              methods,
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.algorithms(hostport),
	}
	conn.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(conn, hostport, cc)
	if err != nil {
		conn.Close()
		if kerr := hk.explain(who, hostport); kerr != nil {
			return nil, kerr
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			home := "~" + login
			return nil, fmt.Errorf("ssh %s: %w: the host accepted none of %s for user %s: add the public key to %s/.ssh/authorized_keys on the host, or give the right key or user",
				who, ErrAuthRefused, a.describe(), login, home)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh %s: %w: no SSH handshake before the deadline (%v)", who, ErrUnreachable, err)
		}
		return nil, fmt.Errorf("ssh %s: %w", who, err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}
