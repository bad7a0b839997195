package docker

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

func TestFakeTimeOffset(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{90 * time.Second, "+90s"},
		{-5 * time.Minute, "-300s"},
		{0, "+0s"},
		{1500 * time.Millisecond, "+1s"},
	} {
		if got := FakeTimeOffset(tc.in); got != tc.want {
			t.Errorf("faketime/offset %v/%q: got %q", tc.in, tc.want, got)
		}
	}
}

// TestFakeTime runs a loop printing `date +%s` in a container from the
// base image started with FakeTimeEnv, and checks that writing the
// timestamp file moves the printed time by the offset and back.
func TestFakeTime(t *testing.T) {
	c := engine(t)
	t.Setenv("ECCHECK_IMAGES_FILE", filepath.Join(t.TempDir(), "images.json"))
	ctx := t.Context()
	if _, err := c.Build(ctx, Base, BuildOptions{Progress: testWriter{t}}); err != nil {
		t.Fatalf("images/base: %v", err)
	}
	img, err := c.ImageFor(ctx, Base)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ft%d", time.Now().UnixNano()%1e6)
	res, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      img,
			Entrypoint: []string{"sh", "-c", "while true; do date +%s; sleep 0.2; done"},
			Env:        FakeTimeEnv(),
			Labels:     map[string]string{LabelCluster: name, LabelRole: "faketime-test"},
		},
		HostConfig: &container.HostConfig{NetworkMode: "none", CapDrop: []string{"ALL"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Down(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if n, _ := labelled(t, c, name); n > 0 {
			t.Errorf("cleanup: %d container(s) left", n)
		}
	})
	if _, err := c.api.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	// skew is the container's last printed time minus the host's.
	skew := func() (time.Duration, error) {
		out, err := c.logs(ctx, res.ID, "1")
		if err != nil {
			return 0, err
		}
		s, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("container printed %q: %w", out, err)
		}
		return time.Unix(s, 0).Sub(time.Now()), nil
	}
	near := func(want time.Duration) func() error {
		return func() error {
			got, err := skew()
			if err != nil {
				return err
			}
			if d := got - want; d < -3*time.Second || d > 3*time.Second {
				return fmt.Errorf("container clock is %v off the host's, want %v (±3s)", got.Round(time.Second), want)
			}
			return nil
		}
	}
	if err := eventually(5*time.Second, near(0)); err != nil {
		t.Fatalf("faketime/no file/real time: %v", err)
	}
	if err := c.SetFakeTime(ctx, res.ID, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, near(90*time.Second)); err != nil {
		t.Errorf("faketime/+90s/clock jumps 90s: %v", err)
	}
	if err := c.SetFakeTime(ctx, res.ID, -5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, near(-5*time.Minute)); err != nil {
		t.Errorf("faketime/-5m/clock goes back 5m: %v", err)
	}
	if err := c.SetFakeTime(ctx, res.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, near(0)); err != nil {
		t.Errorf("faketime/0/real time again: %v", err)
	}
}
