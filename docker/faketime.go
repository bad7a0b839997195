package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"
)

// Paths of the libfaketime hook in containers of stores written in C (or
// anything else linked against the C library), which cannot read
// ecstore's clock file.
const (
	// FakeTimeLib is libfaketime in the base image (Debian's faketime
	// package, amd64).
	FakeTimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
	// FakeTimeDir holds FakeTimeFile; [Client.SetFakeTime] creates it.
	FakeTimeDir = "/var/lib/eccheck"
	// FakeTimeFile is libfaketime's timestamp file: one offset such as
	// "+90s" or "-5m", re-read on every clock call.
	FakeTimeFile = FakeTimeDir + "/faketime"
)

// FakeTimeEnv returns the environment that makes a container's processes
// see their clock through libfaketime's timestamp file: LD_PRELOAD of
// [FakeTimeLib], FAKETIME_TIMESTAMP_FILE=[FakeTimeFile] and
// FAKETIME_NO_CACHE=1, so that an offset written with
// [Client.SetFakeTime] applies from the next clock call. Until the file
// exists the processes see the real time. Append it to a container's
// Config.Env when creating it.
func FakeTimeEnv() []string {
	return []string{
		"LD_PRELOAD=" + FakeTimeLib,
		"FAKETIME_TIMESTAMP_FILE=" + FakeTimeFile,
		"FAKETIME_NO_CACHE=1",
	}
}

// FakeTimeOffset formats offset the way libfaketime's timestamp file
// wants a relative offset: a sign, whole seconds and "s" ("+90s",
// "-300s", "+0s"). Sub-second parts are dropped.
func FakeTimeOffset(offset time.Duration) string {
	s := int64(offset / time.Second)
	if s < 0 {
		return fmt.Sprintf("-%ds", -s)
	}
	return fmt.Sprintf("+%ds", s)
}

// SetFakeTime sets the clock offset seen by the processes of a container
// started with [FakeTimeEnv], by writing [FakeTimeFile] into it with
// CopyToContainer (the container may be running; nothing is executed in
// it). 0 resets the offset.
func (c *Client) SetFakeTime(ctx context.Context, containerID string, offset time.Duration) error {
	if err := c.WriteFile(ctx, containerID, FakeTimeFile, []byte(FakeTimeOffset(offset)+"\n")); err != nil {
		return fmt.Errorf("set fake time: %w", err)
	}
	return nil
}

// WriteFile writes body as the file path (absolute) into a container,
// running or not, with CopyToContainer: nothing is executed in it. The
// file's directory is made when missing (mode 0755); its parent must
// exist.
func (c *Client) WriteFile(ctx context.Context, containerID, path string, body []byte) error {
	dir := filepath.Dir(path)
	if !filepath.IsAbs(path) || dir == "/" {
		return fmt.Errorf("write %s: want an absolute path below a directory", path)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	base := filepath.Base(dir)
	if err := tw.WriteHeader(&tar.Header{Name: base + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: now}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: base + "/" + filepath.Base(path), Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(body); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if _, err := c.api.CopyToContainer(ctx, containerID, client.CopyToContainerOptions{DestinationPath: filepath.Dir(dir), Content: &buf}); err != nil {
		return fmt.Errorf("write %s into %s: %w", path, containerID, err)
	}
	return nil
}

// SetFakeTime sets node's clock offset through libfaketime's timestamp
// file, for a node whose container was started with [FakeTimeEnv],
// whatever its cluster's clock spec.
func (cl *Cluster) SetFakeTime(node string, offset time.Duration) error {
	n, err := cl.Node(node)
	if err != nil {
		return err
	}
	ctx, cancel := FaultContext()
	defer cancel()
	return cl.c.SetFakeTime(ctx, n.ID, offset)
}

// FakeTimeClock is the ClockSpec of a cluster whose processes run under
// libfaketime ([FakeTimeEnv]): [Cluster.SetClock] then writes
// [FakeTimeFile] in whole seconds.
var FakeTimeClock = ClockSpec{File: FakeTimeFile, Seconds: true, Env: "LD_PRELOAD=" + FakeTimeLib}
