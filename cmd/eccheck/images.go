package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/docker"
)

func newImagesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build the images of the Docker backend, without a registry",
	}
	cmd.AddCommand(newImagesBuildCmd(a))
	return cmd
}

// imagesBuildOptions are the flags of `eccheck images build`.
type imagesBuildOptions struct {
	build     docker.BuildOptions
	overrides []string
	only      []string
}

func newImagesBuildCmd(a *app) *cobra.Command {
	var o imagesBuildOptions
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the images the Docker backend runs (skipped when their inputs did not change)",
		Long: `Build makes the images the Docker backend runs, with no registry:

` + imageHelp() + `
A static image is FROM scratch with a static eccheck binary: --binary, else
the running eccheck if it is static, else one built from the source tree
with CGO_ENABLED=0 go build ./cmd/eccheck (about 1 s). A Debian image is a
debootstrap --variant=minbase of bookworm with its packages, from the host's
Debian mirror (its apt sources) or --mirror; it needs root and debootstrap
(installed with apt-get when missing) and takes a minute or two. The base
image is also the network-tools helper that applies partitions.

Each image is labelled with the hash of its inputs (the binary; the suite,
packages and mirror) and tagged :latest; a build is skipped when an image with
that label exists (--force rebuilds).

--image NAME=REF records an image of your own for a role (` + strings.Join(imageRoles(), ", ") + `),
say from your registry: eccheck uses it instead and does not build
that role. The choice is kept in ~/.config/eccheck/images.json (or
$ECCHECK_IMAGES_FILE); --image NAME= forgets it.`,
		Example: `  eccheck images build
  eccheck images build --only ecstore
  eccheck images build --mirror http://deb.debian.org/debian --force
  eccheck images build --image postgres=registry.example.com/pg:15`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, r := range o.only {
				if !slices.Contains(imageRoles(), r) {
					return usagef("--only: unknown image %q (want %s)", r, strings.Join(imageRoles(), ", "))
				}
			}
			ov, err := docker.LoadOverrides()
			if err != nil {
				return err
			}
			if len(o.overrides) > 0 {
				for _, s := range o.overrides {
					role, ref, err := docker.ParseOverride(s, imageRoles())
					if err != nil {
						return usageError{Err: err}
					}
					if ref == "" {
						delete(ov, role)
					} else {
						ov[role] = ref
					}
				}
				if err := ov.Save(); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "images: recorded your images in %s\n", docker.OverridesFile())
			}
			ctx := cmd.Context()
			c, err := docker.Connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			o.build.Progress = a.stderr
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tREF\tSTATE")
			defer tw.Flush()
			for _, spec := range imageSpecs() {
				role := spec.Role
				if len(o.only) > 0 && !slices.Contains(o.only, role) {
					continue
				}
				if ref := ov[role]; ref != "" {
					fmt.Fprintf(tw, "%s\t%s\tyour own (not built)\n", role, ref)
					continue
				}
				img, err := c.Build(ctx, spec, o.build)
				if err != nil {
					return err
				}
				state := "up to date"
				if img.Built {
					state = "built"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", role, img.Ref, state)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.build.Mirror, "mirror", "", "Debian mirror for debootstrap (default: the first in the host's apt sources)")
	f.StringArrayVar(&o.overrides, "image", nil, "NAME=REF: use your own image for a role ("+strings.Join(imageRoles(), ", ")+"; recorded; NAME= forgets it)")
	f.BoolVar(&o.build.Force, "force", false, "rebuild even when the inputs did not change")
	f.StringVar(&o.build.Binary, "binary", "", "a prebuilt static eccheck binary (CGO_ENABLED=0) for the ecstore image")
	f.StringSliceVar(&o.only, "only", nil, "build only these images: "+strings.Join(imageRoles(), ", "))
	return cmd
}

// imageHelp lists the images, one line each.
func imageHelp() string {
	var b strings.Builder
	for _, spec := range imageSpecs() {
		fmt.Fprintf(&b, "  %-9s %s:<hash>: %s\n", spec.Role, spec.Repo, spec.Doc)
	}
	return b.String()
}
