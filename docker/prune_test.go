package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// labelImage builds an image with nothing in it but role and inputs
// labels, tagged repo:inputs.
func labelImage(t *testing.T, c *Client, repo, role, inputs string) string {
	t.Helper()
	df := "FROM scratch\nLABEL " + LabelRole + "=" + role + " " + LabelInputs + "=" + inputs + "\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(df))
	tw.Close()
	ref := repo + ":" + inputs
	res, err := c.api.ImageBuild(t.Context(), &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := readStream(res.Body, io.Discard, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.api.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
	return ref
}

// TestPruneStatic: a build removes the superseded images of its role, but
// not one a container was made from, nor the one it built.
func TestPruneStatic(t *testing.T) {
	c := engine(t)
	ctx := t.Context()
	suffix := strconv.Itoa(os.Getpid())
	role, repo := "prune-test-"+suffix, "eccheck/prune-test-"+suffix
	old := labelImage(t, c, repo, role, "old")
	used := labelImage(t, c, repo, role, "used")
	current := labelImage(t, c, repo, role, "current")
	ctr, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: used, Cmd: []string{"none"}, Labels: c.labels("prune-test-" + suffix)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.api.ContainerRemove(context.Background(), ctr.ID, client.ContainerRemoveOptions{Force: true})
	})

	exists := func(ref string) bool {
		_, err := c.api.ImageInspect(ctx, ref)
		return err == nil
	}
	c.pruneStatic(ctx, ImageSpec{Role: role, Repo: repo}, "current", io.Discard)
	if !exists(old) {
		t.Fatal("prune/younger than the age bound/kept: removed")
	}
	defer func(a time.Duration) { pruneAge = a }(pruneAge)
	pruneAge = 0
	var progress bytes.Buffer
	c.pruneStatic(ctx, ImageSpec{Role: role, Repo: repo}, "current", &progress)
	switch {
	case exists(old):
		t.Fatal("prune/superseded image/removed: still there")
	case !exists(used):
		t.Fatal("prune/image a container was made from/kept: removed")
	case !exists(current):
		t.Fatal("prune/the current image/kept: removed")
	case !bytes.Contains(progress.Bytes(), []byte("removed 1 superseded")):
		t.Fatalf("prune/progress/says how many: %q", progress.String())
	}
}
