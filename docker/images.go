package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// Image roles: what an image is used for. A user may name an image of
// their own for any role (see [Overrides]).
const (
	RoleEcstore  = "ecstore"  // the static eccheck binary, entrypoint `eccheck store serve`
	RoleBase     = "base"     // Debian with iptables, iproute2, libfaketime, procps: also the network-tools helper
	RolePostgres = "postgres" // the base plus postgresql-15
)

// Roles lists the image roles in build order.
var Roles = []string{RoleEcstore, RoleBase, RolePostgres}

// Labels eccheck puts on what it creates.
const (
	LabelRole    = "eccheck.role"    // an image's role, or "node" / "helper" on containers
	LabelInputs  = "eccheck.inputs"  // the hash of an image's inputs
	LabelCluster = "eccheck.cluster" // the cluster a container or network belongs to
	LabelNode    = "eccheck.node"    // a node container's node name
	LabelDB      = "eccheck.db"      // the store a cluster runs
)

// Repositories of the images eccheck builds; each is tagged with its
// inputs hash and with latest.
var repos = map[string]string{
	RoleEcstore:  "eccheck/ecstore",
	RoleBase:     "eccheck/debian-base",
	RolePostgres: "eccheck/postgres",
}

// Debian suite and packages of the debootstrapped images.
const debianSuite = "bookworm"

var (
	basePackages     = []string{"iptables", "iproute2", "faketime", "procps"}
	postgresPackages = append(append([]string(nil), basePackages...), "postgresql-15")
	basePath         = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	postgresPath     = "/usr/lib/postgresql/15/bin:" + basePath
)

// BuildOptions configure the image builds.
type BuildOptions struct {
	// Force rebuilds even when an image with the same inputs exists.
	Force bool
	// Progress receives progress lines (stderr in the CLI); nil discards.
	Progress io.Writer
	// Binary is a prebuilt static eccheck binary for the ecstore image.
	// Empty means the running binary when it is a static Linux binary,
	// else one built from Source with CGO_ENABLED=0.
	Binary string
	// Source is the eccheck module directory to build the binary from;
	// empty means the directory holding go.mod above the working
	// directory.
	Source string
	// Mirror is the Debian mirror for debootstrap; empty means the first
	// one in the host's apt sources.
	Mirror string
	// AptRoot is where the host's /etc/apt lives ("" means /); for tests.
	AptRoot string
	// WorkDir holds the debootstrap root filesystems while they are made;
	// empty means the system's temporary directory.
	WorkDir string
}

func (o *BuildOptions) progress() io.Writer {
	if o.Progress == nil {
		return io.Discard
	}
	return o.Progress
}

// Image is an image eccheck built or found.
type Image struct {
	Role string
	// Ref is the image's name with its inputs-hash tag; it is also tagged
	// latest.
	Ref string
	// Inputs is the hash of what the image was built from.
	Inputs string
	// Built is false when an image with the same inputs already existed
	// and the build was skipped.
	Built bool
}

// findImage returns the id of an image of role built from inputs, if one
// exists.
func (c *Client) findImage(ctx context.Context, role, inputs string) (string, error) {
	f := make(client.Filters).Add("label", LabelRole+"="+role, LabelInputs+"="+inputs)
	res, err := c.api.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list images: %w", err)
	}
	if len(res.Items) == 0 {
		return "", nil
	}
	return res.Items[0].ID, nil
}

// tagAll makes sure the image id carries ref and repo:latest.
func (c *Client) tagAll(ctx context.Context, id, ref, latest string) error {
	for _, t := range []string{ref, latest} {
		if _, err := c.api.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: t}); err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return nil
}

// cached reports whether the image of role with inputs exists (and tags it
// again), unless o.Force.
func (c *Client) cached(ctx context.Context, o *BuildOptions, role, inputs string) (Image, bool, error) {
	img := Image{Role: role, Inputs: inputs, Ref: repos[role] + ":" + inputs}
	if o.Force {
		return img, false, nil
	}
	id, err := c.findImage(ctx, role, inputs)
	if err != nil || id == "" {
		return img, false, err
	}
	if err := c.tagAll(ctx, id, img.Ref, repos[role]+":latest"); err != nil {
		return img, false, err
	}
	fmt.Fprintf(o.progress(), "images: %s is up to date (%s, inputs unchanged)\n", role, img.Ref)
	return img, true, nil
}

// hashOf returns the first 12 hex digits of the SHA-256 of parts.
func hashOf(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// IsStatic reports whether path is a Linux ELF executable of this machine's
// architecture with no program interpreter (a static binary, which runs in
// a FROM-scratch image).
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return false, nil
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if want != 0 && f.Machine != want {
		return false, nil
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// StaticBinary returns a static eccheck binary for the ecstore image:
// o.Binary if given (it must be static), else the running binary if it is
// static, else one built from the source tree with CGO_ENABLED=0 (which
// needs the Go toolchain). cleanup removes a built binary.
func StaticBinary(ctx context.Context, o *BuildOptions) (path string, cleanup func(), err error) {
	nop := func() {}
	if o.Binary != "" {
		ok, err := IsStatic(o.Binary)
		if err != nil {
			return "", nop, fmt.Errorf("binary %s: %w", o.Binary, err)
		}
		if !ok {
			return "", nop, fmt.Errorf("binary %s is not a static Linux %s executable: build it with CGO_ENABLED=0 go build ./cmd/eccheck", o.Binary, runtime.GOARCH)
		}
		return o.Binary, nop, nil
	}
	if exe, err := os.Executable(); err == nil && runtime.GOOS == "linux" {
		if ok, _ := IsStatic(exe); ok && !strings.HasSuffix(exe, ".test") {
			return exe, nop, nil
		}
	}
	src := o.Source
	if src == "" {
		if src, err = moduleRoot(); err != nil {
			return "", nop, err
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", nop, errors.New("the running eccheck is not a static binary and there is no Go toolchain to build one: give --binary PATH (built with CGO_ENABLED=0 go build ./cmd/eccheck)")
	}
	dir, err := os.MkdirTemp(o.WorkDir, "eccheck-bin-")
	if err != nil {
		return "", nop, fmt.Errorf("binary directory: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	out := filepath.Join(dir, "eccheck")
	fmt.Fprintf(o.progress(), "images: building a static eccheck binary from %s (CGO_ENABLED=0 go build ./cmd/eccheck)\n", src)
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-o", out, "./cmd/eccheck")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nop, fmt.Errorf("go build ./cmd/eccheck in %s: %w\n%s", src, err, b)
	}
	return out, cleanup, nil
}

// moduleRoot finds the eccheck module's directory above the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/eccheck/eccheck\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the running eccheck is not a static binary and the working directory is not in eccheck's source tree: give --binary PATH (built with CGO_ENABLED=0 go build ./cmd/eccheck)")
		}
		dir = parent
	}
}

// ecstoreDockerfile makes the ecstore image. /var/lib/ecstore holds the
// node's data directory and its clock file.
const ecstoreDockerfile = `FROM scratch
COPY eccheck /eccheck
COPY var /var
COPY tmp /tmp
ENTRYPOINT ["/eccheck", "store", "serve"]
`

// BuildEcstore builds the ecstore image, eccheck/ecstore:<hash> (and
// :latest), FROM scratch with the static binary, through the classic
// builder. It is skipped when an image built from the same binary exists.
func (c *Client) BuildEcstore(ctx context.Context, o BuildOptions) (Image, error) {
	bin, cleanup, err := StaticBinary(ctx, &o)
	if err != nil {
		return Image{Role: RoleEcstore}, fmt.Errorf("ecstore image: %w", err)
	}
	defer cleanup()
	data, err := os.ReadFile(bin)
	if err != nil {
		return Image{Role: RoleEcstore}, fmt.Errorf("ecstore image: %w", err)
	}
	inputs := hashOf([]byte(ecstoreDockerfile), data)
	release, err := machineLock(ctx, "image-"+RoleEcstore, o.progress())
	if err != nil {
		return Image{Role: RoleEcstore}, fmt.Errorf("ecstore image: %w", err)
	}
	defer release()
	img, ok, err := c.cached(ctx, &o, RoleEcstore, inputs)
	if err != nil || ok {
		return img, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte(ecstoreDockerfile)},
		{"eccheck", 0o755, data},
		{"var/", 0o755, nil},
		{"var/lib/", 0o755, nil},
		{"var/lib/ecstore/", 0o755, nil},
		{"tmp/", 0o1777, nil},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return img, fmt.Errorf("ecstore image: build context: %w", err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return img, fmt.Errorf("ecstore image: build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return img, fmt.Errorf("ecstore image: build context: %w", err)
	}
	fmt.Fprintf(o.progress(), "images: building %s from %s (%d MB)\n", img.Ref, bin, len(data)>>20)
	res, err := c.api.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags:        []string{img.Ref, repos[RoleEcstore] + ":latest"},
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{LabelRole: RoleEcstore, LabelInputs: inputs},
		Version:     build.BuilderV1,
	})
	if err != nil {
		return img, fmt.Errorf("ecstore image: build: %w", err)
	}
	defer res.Body.Close()
	if err := readStream(res.Body, o.progress(), "  build: "); err != nil {
		return img, fmt.Errorf("ecstore image: build: %w", err)
	}
	img.Built = true
	return img, nil
}

// readStream reads the engine's JSON message stream of a build or an
// import, copies its text to w with a prefix, and returns the error the
// stream reports.
func readStream(r io.Reader, w io.Writer, prefix string) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read engine messages: %w", err)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		for _, line := range strings.Split(strings.TrimRight(m.Stream+m.Status, "\n"), "\n") {
			if strings.TrimSpace(line) != "" {
				fmt.Fprintf(w, "%s%s\n", prefix, line)
			}
		}
	}
}

// BuildBase builds the Debian base image, eccheck/debian-base:<hash>:
// debootstrap --variant=minbase of bookworm with iptables, iproute2,
// faketime (libfaketime) and procps, imported through the API. It is also
// the network-tools helper image that applies partitions. It needs root
// and debootstrap, and takes about a minute.
func (c *Client) BuildBase(ctx context.Context, o BuildOptions) (Image, error) {
	return c.buildDebian(ctx, o, RoleBase, basePackages, basePath)
}

// BuildPostgres builds eccheck/postgres:<hash>: the base's packages plus
// postgresql-15, in a debootstrap of its own (about a minute more; one
// debootstrap works offline from the mirror, where apt-get in a container
// would need the container to reach it).
func (c *Client) BuildPostgres(ctx context.Context, o BuildOptions) (Image, error) {
	return c.buildDebian(ctx, o, RolePostgres, postgresPackages, postgresPath)
}

func (c *Client) buildDebian(ctx context.Context, o BuildOptions, role string, packages []string, path string) (Image, error) {
	mirror := o.Mirror
	if mirror == "" {
		m, err := MirrorFromAptSources(o.AptRoot, debianSuite)
		if err != nil {
			return Image{Role: role}, fmt.Errorf("%s image: %w (give --mirror URL)", role, err)
		}
		mirror = m
	}
	pkgs := append([]string(nil), packages...)
	sort.Strings(pkgs)
	inputs := hashOf([]byte("debootstrap --variant=minbase"), []byte(debianSuite), []byte(strings.Join(pkgs, ",")), []byte(mirror), []byte(path))
	release, err := machineLock(ctx, "image-"+role, o.progress())
	if err != nil {
		return Image{Role: role}, fmt.Errorf("%s image: %w", role, err)
	}
	defer release()
	img, ok, err := c.cached(ctx, &o, role, inputs)
	if err != nil || ok {
		return img, err
	}
	if os.Geteuid() != 0 {
		return img, fmt.Errorf("%s image: debootstrap needs root: run 'eccheck images build' as root, or name an image of your own with --image %s=REF", role, role)
	}
	deboot, err := ensureDebootstrap(ctx, o.progress())
	if err != nil {
		return img, fmt.Errorf("%s image: %w; or name an image of your own with --image %s=REF", role, err, role)
	}
	work, err := os.MkdirTemp(o.WorkDir, "eccheck-rootfs-")
	if err != nil {
		return img, fmt.Errorf("%s image: %w", role, err)
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	p := o.progress()
	fmt.Fprintf(p, "images: debootstrap of %s with %s from %s into %s (takes about a minute)\n", debianSuite, strings.Join(pkgs, ","), mirror, rootfs)
	cmd := exec.CommandContext(ctx, deboot, "--variant=minbase", "--include="+strings.Join(pkgs, ","), debianSuite, rootfs, mirror)
	if err := runStreaming(cmd, p, "  debootstrap: "); err != nil {
		return img, fmt.Errorf("%s image: debootstrap: %w", role, err)
	}
	debs, _ := filepath.Glob(filepath.Join(rootfs, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		os.Remove(d)
	}
	fmt.Fprintf(p, "images: importing %s\n", img.Ref)
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", rootfs, "-cf", "-", ".")
	var tarErr bytes.Buffer
	tarCmd.Stderr = &tarErr
	stream, err := tarCmd.StdoutPipe()
	if err != nil {
		return img, fmt.Errorf("%s image: tar: %w", role, err)
	}
	if err := tarCmd.Start(); err != nil {
		return img, fmt.Errorf("%s image: tar: %w", role, err)
	}
	res, err := c.api.ImageImport(ctx, client.ImageImportSource{Source: stream, SourceName: "-"}, img.Ref, client.ImageImportOptions{
		Changes: []string{
			"ENV PATH=" + path,
			"LABEL " + LabelRole + "=" + role,
			"LABEL " + LabelInputs + "=" + inputs,
		},
		Message: "eccheck images build: debootstrap " + debianSuite + " " + strings.Join(pkgs, ","),
	})
	if err != nil {
		tarCmd.Process.Kill()
		tarCmd.Wait()
		return img, fmt.Errorf("%s image: import: %w", role, err)
	}
	importErr := readStream(res, io.Discard, "")
	res.Close()
	if err := tarCmd.Wait(); err != nil {
		return img, fmt.Errorf("%s image: tar: %w: %s", role, err, strings.TrimSpace(tarErr.String()))
	}
	if importErr != nil {
		return img, fmt.Errorf("%s image: import: %w", role, importErr)
	}
	id, err := c.findImage(ctx, role, inputs)
	if err != nil {
		return img, fmt.Errorf("%s image: %w", role, err)
	}
	if id == "" {
		return img, fmt.Errorf("%s image: imported, but no image carries the label %s=%s", role, LabelInputs, inputs)
	}
	if err := c.tagAll(ctx, id, img.Ref, repos[role]+":latest"); err != nil {
		return img, fmt.Errorf("%s image: %w", role, err)
	}
	img.Built = true
	return img, nil
}

// runStreaming runs cmd and copies each line of its output to w with a
// prefix; a failure's error carries the last lines.
func runStreaming(cmd *exec.Cmd, w io.Writer, prefix string) error {
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return err
	}
	var last []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
			last = append(last, sc.Text())
			if len(last) > 10 {
				last = last[1:]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%w; last lines:\n%s", err, strings.Join(last, "\n"))
	}
	return nil
}

// ImageFor returns the image to run for role: the user's own when one is
// recorded in the overrides file, else eccheck's repo:latest. It fails,
// saying how to build it, when that image does not exist.
func (c *Client) ImageFor(ctx context.Context, role string) (string, error) {
	ov, err := LoadOverrides()
	if err != nil {
		return "", err
	}
	ref := ov[role]
	if ref == "" {
		ref = repos[role] + ":latest"
	}
	if _, err := c.api.ImageInspect(ctx, ref); err != nil {
		if cerrdefs.IsNotFound(err) {
			if ov[role] != "" {
				return "", fmt.Errorf("image %s, recorded for %s in %s, does not exist here (pull or load it, or remove it with 'eccheck images build --image %s=')", ref, role, OverridesFile(), role)
			}
			return "", fmt.Errorf("no %s image (%s): run 'eccheck images build' first", role, ref)
		}
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return ref, nil
}
