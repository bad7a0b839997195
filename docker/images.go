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
	"slices"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// ImageSpec says how eccheck makes one image without a registry: a
// debootstrap of Debian with a package list, or FROM scratch with a static
// eccheck binary. Systems under test name the images they run by their
// specs; a user may name an image of their own for any role instead (see
// [Overrides]).
type ImageSpec struct {
	// Role names the image: what `eccheck images build --only` and
	// --image ROLE=REF take.
	Role string
	// Repo is the repository eccheck tags it in; each image is tagged with
	// its inputs hash and with latest.
	Repo string
	// Doc says what it holds, for help text.
	Doc string
	// Packages, for a Debian image, are the packages of the debootstrap
	// (minbase variant of bookworm); Path is its PATH.
	Packages []string
	Path     string
	// Static makes a FROM-scratch image of a static eccheck binary at
	// /eccheck, run with Entrypoint, with the empty directories Dirs
	// (paths without a leading slash; "tmp" is world-writable).
	Static     bool
	Entrypoint []string
	Dirs       []string
}

// Base is the Debian base image: iptables, iproute2, libfaketime and
// procps. It is also the network-tools helper that applies partitions and
// link faults in a node's namespaces, so every Docker cluster with such
// faults needs it.
var Base = ImageSpec{
	Role: RoleBase, Repo: "eccheck/debian-base", Packages: basePackages, Path: BasePath,
	Doc: "Debian with iptables, iproute2, libfaketime and procps; the network-tools helper",
}

// RoleBase is the role of [Base].
const RoleBase = "base"

// Labels eccheck puts on what it creates.
const (
	LabelRole    = "eccheck.role"    // an image's role, or "node" / "helper" on containers
	LabelInputs  = "eccheck.inputs"  // the hash of an image's inputs
	LabelCluster = "eccheck.cluster" // the cluster a container or network belongs to
	LabelNode    = "eccheck.node"    // a node container's node name
	LabelDB      = "eccheck.db"      // the system a cluster runs
)

// Debian suite and packages of the debootstrapped images.
const debianSuite = "bookworm"

var basePackages = []string{"iptables", "iproute2", "faketime", "procps"}

// BasePackages returns the base image's packages, for specs that add to
// them.
func BasePackages() []string { return append([]string(nil), basePackages...) }

// BasePath is the base image's PATH, for specs that add to it.
const BasePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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

// cached reports whether the image of spec with inputs exists (and tags it
// again), unless o.Force.
func (c *Client) cached(ctx context.Context, o *BuildOptions, spec ImageSpec, inputs string) (Image, bool, error) {
	img := Image{Role: spec.Role, Inputs: inputs, Ref: spec.Repo + ":" + inputs}
	if o.Force {
		return img, false, nil
	}
	id, err := c.findImage(ctx, spec.Role, inputs)
	if err != nil || id == "" {
		return img, false, err
	}
	if err := c.tagAll(ctx, id, img.Ref, spec.Repo+":latest"); err != nil {
		return img, false, err
	}
	fmt.Fprintf(o.progress(), "images: %s is up to date (%s, inputs unchanged)\n", spec.Role, img.Ref)
	return img, true, nil
}

// Build builds the image of spec (a Debian or a static one), unless an
// image built from the same inputs exists (and o.Force is not set). One
// build of a role runs at a time on a machine: a second waits, then finds
// the image.
func (c *Client) Build(ctx context.Context, spec ImageSpec, o BuildOptions) (Image, error) {
	if spec.Static {
		return c.buildStatic(ctx, spec, o)
	}
	return c.buildDebian(ctx, o, spec)
}

// Ensure returns the image to run for spec: the user's own when one is
// recorded for its role; else, for a static image when this process is a
// static eccheck binary, the image of this very binary (a cheap check of
// its inputs hash); else the latest one built, or one built now when there
// is none (progress on o.Progress, and a line through logf first).
func (c *Client) Ensure(ctx context.Context, spec ImageSpec, o BuildOptions, logf func(string, ...any)) (string, error) {
	ov, err := LoadOverrides()
	if err != nil {
		return "", err
	}
	if ov[spec.Role] == "" && spec.Static && o.Binary == "" && runningStatic() {
		img, err := c.Build(ctx, spec, o)
		return img.Ref, err
	}
	ref, err := c.ImageFor(ctx, spec)
	if err == nil || ov[spec.Role] != "" {
		return ref, err
	}
	if logf != nil {
		logf("no %s image yet: building it (%s)", spec.Role, buildTime(spec))
	}
	img, berr := c.Build(ctx, spec, o)
	if berr != nil {
		return "", fmt.Errorf("%w; building it: %w", err, berr)
	}
	return img.Ref, nil
}

// buildTime says roughly how long a build of spec takes.
func buildTime(spec ImageSpec) string {
	if spec.Static {
		return "a few seconds"
	}
	return "debootstrap, a minute or two"
}

// runningStatic reports whether this process is a static eccheck binary
// (not a test binary), which a static image can be made from at once.
func runningStatic() bool {
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, ".test") {
		return false
	}
	static, _ := IsStatic(exe)
	return static
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

// dockerfile is the Dockerfile of a static image: the binary at /eccheck,
// the top directories of spec.Dirs copied in, and the entrypoint.
func dockerfile(spec ImageSpec) string {
	var b strings.Builder
	b.WriteString("FROM scratch\nCOPY eccheck /eccheck\n")
	var tops []string
	for _, d := range spec.Dirs {
		top, _, _ := strings.Cut(d, "/")
		if !slices.Contains(tops, top) {
			tops = append(tops, top)
			fmt.Fprintf(&b, "COPY %s /%s\n", top, top)
		}
	}
	ep, _ := json.Marshal(spec.Entrypoint)
	fmt.Fprintf(&b, "ENTRYPOINT %s\n", strings.ReplaceAll(string(ep), `","`, `", "`))
	return b.String()
}

// buildStatic builds a static image, <repo>:<hash> (and :latest), FROM
// scratch with the static binary, through the classic builder. It is
// skipped when an image built from the same binary exists.
func (c *Client) buildStatic(ctx context.Context, spec ImageSpec, o BuildOptions) (Image, error) {
	bin, cleanup, err := StaticBinary(ctx, &o)
	if err != nil {
		return Image{Role: spec.Role}, fmt.Errorf("%s image: %w", spec.Role, err)
	}
	defer cleanup()
	data, err := os.ReadFile(bin)
	if err != nil {
		return Image{Role: spec.Role}, fmt.Errorf("%s image: %w", spec.Role, err)
	}
	df := dockerfile(spec)
	inputs := hashOf([]byte(df), data)
	release, err := machineLock(ctx, "image-"+spec.Role, o.progress())
	if err != nil {
		return Image{Role: spec.Role}, fmt.Errorf("%s image: %w", spec.Role, err)
	}
	defer release()
	img, ok, err := c.cached(ctx, &o, spec, inputs)
	if err != nil || ok {
		return img, err
	}
	type entry struct {
		name string
		mode int64
		body []byte
	}
	entries := []entry{{"Dockerfile", 0o644, []byte(df)}, {"eccheck", 0o755, data}}
	for _, d := range spec.Dirs {
		parts := strings.Split(d, "/")
		for i := range parts {
			name := strings.Join(parts[:i+1], "/") + "/"
			mode := int64(0o755)
			if name == "tmp/" {
				mode = 0o1777
			}
			if !slices.ContainsFunc(entries, func(e entry) bool { return e.name == name }) {
				entries = append(entries, entry{name, mode, nil})
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return img, fmt.Errorf("%s image: build context: %w", spec.Role, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return img, fmt.Errorf("%s image: build context: %w", spec.Role, err)
		}
	}
	if err := tw.Close(); err != nil {
		return img, fmt.Errorf("%s image: build context: %w", spec.Role, err)
	}
	fmt.Fprintf(o.progress(), "images: building %s from %s (%d MB)\n", img.Ref, bin, len(data)>>20)
	res, err := c.api.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags:        []string{img.Ref, spec.Repo + ":latest"},
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{LabelRole: spec.Role, LabelInputs: inputs},
		Version:     build.BuilderV1,
	})
	if err != nil {
		return img, fmt.Errorf("%s image: build: %w", spec.Role, err)
	}
	defer res.Body.Close()
	if err := readStream(res.Body, o.progress(), "  build: "); err != nil {
		return img, fmt.Errorf("%s image: build: %w", spec.Role, err)
	}
	img.Built = true
	c.pruneStatic(ctx, spec, inputs, o.progress())
	return img, nil
}

// pruneAge is how old a superseded static image must be before a build
// removes it: old enough that no process still on its way from choosing
// it to starting a container from it is left.
var pruneAge = time.Hour

// pruneStatic removes the images of spec's role built from other inputs
// (an earlier eccheck binary: one per version or source change, cheap to
// build again) more than pruneAge ago. An image a container still uses
// stays (the engine refuses), and so do the Debian images, which take
// minutes to build. Failures are only reported.
func (c *Client) pruneStatic(ctx context.Context, spec ImageSpec, inputs string, progress io.Writer) {
	f := make(client.Filters).Add("label", LabelRole+"="+spec.Role)
	res, err := c.api.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return
	}
	removed := 0
	for _, im := range res.Items {
		if im.Labels[LabelInputs] == inputs || im.Labels[LabelInputs] == "" || time.Since(time.Unix(im.Created, 0)) < pruneAge {
			continue
		}
		// By tag and without force: the engine keeps an image that a
		// container, even a stopped one, was made from.
		gone := len(im.RepoTags) > 0
		for _, tag := range im.RepoTags {
			if _, err := c.api.ImageRemove(ctx, tag, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
				gone = false
			}
		}
		if gone {
			removed++
		}
	}
	if removed > 0 {
		fmt.Fprintf(progress, "images: removed %d superseded %s image(s) built more than %v ago\n", removed, spec.Role, pruneAge)
	}
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

// buildDebian builds a Debian image, <repo>:<hash>: debootstrap
// --variant=minbase of bookworm with the spec's packages, from the host's
// mirror, imported through the API. It needs root and debootstrap (which
// it installs when missing, see ensureDebootstrap) and takes a minute or
// two.
func (c *Client) buildDebian(ctx context.Context, o BuildOptions, spec ImageSpec) (Image, error) {
	role, packages, path := spec.Role, spec.Packages, spec.Path
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
	img, ok, err := c.cached(ctx, &o, spec, inputs)
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
	if err := c.tagAll(ctx, id, img.Ref, spec.Repo+":latest"); err != nil {
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

// ImageFor returns the image to run for spec: the user's own when one is
// recorded in the overrides file, else eccheck's repo:latest. It fails,
// saying how to build it, when that image does not exist.
func (c *Client) ImageFor(ctx context.Context, spec ImageSpec) (string, error) {
	ov, err := LoadOverrides()
	if err != nil {
		return "", err
	}
	ref := ov[spec.Role]
	if ref == "" {
		ref = spec.Repo + ":latest"
	}
	if _, err := c.api.ImageInspect(ctx, ref); err != nil {
		if cerrdefs.IsNotFound(err) {
			if ov[spec.Role] != "" {
				return "", fmt.Errorf("image %s, recorded for %s in %s, does not exist here (pull or load it, or remove it with 'eccheck images build --image %s=')", ref, spec.Role, OverridesFile(), spec.Role)
			}
			return "", fmt.Errorf("no %s image (%s): run 'eccheck images build' first", spec.Role, ref)
		}
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return ref, nil
}
