package docker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// machineLock takes an exclusive lock, shared by every process on this
// machine, named name (a file in the system's temporary directory), and
// returns its release. It waits while another process holds it, saying so
// once on progress, until ctx ends. Image builds take it per role, so that
// two eccheck processes (or two test packages) do not build the same image
// at once: the second waits, then finds the image built.
func machineLock(ctx context.Context, name string, progress io.Writer) (release func(), err error) {
	path := filepath.Join(os.TempDir(), "eccheck-"+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said {
			fmt.Fprintf(progress, "images: another eccheck holds %s (building the same image?): waiting for it\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ensureDebootstrap returns the path of debootstrap, installing it with
// apt-get (Debian's package, from the host's mirror) when it is missing
// and this process is root on a host with apt-get: the Debian images need
// nothing else set up first.
func ensureDebootstrap(ctx context.Context, progress io.Writer) (string, error) {
	if p, err := exec.LookPath("debootstrap"); err == nil {
		return p, nil
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil || os.Geteuid() != 0 {
		return "", fmt.Errorf("debootstrap is not installed, and eccheck can install it only as root on a host with apt-get: install it (apt-get install debootstrap)")
	}
	release, err := machineLock(ctx, "apt", progress)
	if err != nil {
		return "", err
	}
	defer release()
	if p, err := exec.LookPath("debootstrap"); err == nil {
		return p, nil // another process installed it meanwhile
	}
	fmt.Fprintf(progress, "images: debootstrap is not installed: installing it with apt-get (Debian's package)\n")
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install := func() error {
		cmd := exec.CommandContext(ctx, apt, "install", "-y", "--no-install-recommends", "debootstrap")
		cmd.Env = env
		return runStreaming(cmd, progress, "  apt-get: ")
	}
	if err := install(); err != nil {
		// A fresh machine has no package lists yet.
		update := exec.CommandContext(ctx, apt, "update")
		update.Env = env
		if uerr := runStreaming(update, progress, "  apt-get: "); uerr != nil {
			return "", fmt.Errorf("install debootstrap: apt-get update: %w", uerr)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("install debootstrap: apt-get install: %w", err)
		}
	}
	p, err := exec.LookPath("debootstrap")
	if err != nil {
		return "", fmt.Errorf("apt-get installed debootstrap, but it is not on PATH: %w", err)
	}
	return p, nil
}
