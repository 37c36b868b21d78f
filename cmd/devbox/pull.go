package main

import (
	"context"
	"fmt"
	"time"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fullprog"
	"github.com/spf13/cobra"
)

// PullOptions are the arguments of 'devbox pull'.
type PullOptions struct {
	F *Factory
	// Ref is the image to pull; empty means the project's.
	Ref      string
	Platform string
}

// NewCmdPull wires 'devbox pull'; runF replaces the work in tests.
func NewCmdPull(f *Factory, runF func(*PullOptions) error) *cobra.Command {
	opts := &PullOptions{F: f}
	cmd := &cobra.Command{
		Use:   "pull [IMAGE]",
		Short: "Fetch an image into the local store without running anything",
		Long: `Fetch IMAGE, or the image that devbox.toml names, from its registry: resolve
its reference (always asking the registry, so a moved tag is seen), download
and unpack the layers the store does not already hold, and record it. Layers
shared between images are stored once.

Layers are unpacked as you, and every layer is treated as hostile: no entry
may write outside its layer, files are owned by you whatever the image says,
setuid and setgid bits and file capabilities are dropped, device nodes are
skipped (a sandbox gets a minimal /dev of its own), and only user.* extended
attributes are kept.

IMAGE may also be a local source, read again on every pull:
oci-layout:PATH[:TAG] (an OCI image layout directory or archive),
docker-archive:FILE[:REPO:TAG] (what 'docker save' writes) or rootfs:FILE (a
root filesystem tarball, compressed or not). A relative path is relative to
the working directory, or to devbox.toml's directory for the project's image.

Registry mirrors come from DEVBOX_REGISTRY_MIRRORS ("docker.io=host:port,...";
a bare host:port mirrors docker.io) or from [registry] mirrors in
${XDG_CONFIG_HOME:-~/.config}/devbox/config.toml; each is tried in order
before the registry itself.`,
		Example: `  devbox pull
  devbox pull 127.0.0.1:5000/busybox:latest
  devbox pull --platform linux/arm64 debian:bookworm
  devbox pull oci-layout:./build/image:v1
  devbox pull docker-archive:saved.tar:myapp:latest
  devbox pull rootfs:bookworm-rootfs.tar.zst`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Ref = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return pullRun(cmd, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Platform, "platform", "", "os/arch[/variant] to pull from a multi-platform image (default: the host's, or [image] platform)")
	return cmd
}

func pullRun(cmd *cobra.Command, opts *PullOptions) error {
	ref, platform := opts.Ref, opts.Platform
	var extra []image.Option
	if ref == "" {
		cfg, err := opts.F.Config()
		if err != nil {
			return err
		}
		ref = cfg.Image.Ref
		if platform == "" {
			platform = cfg.Image.Platform
		}
		// A local source in devbox.toml is relative to its directory; one
		// on the command line, to the working directory (the default).
		extra = append(extra, image.WithBaseDir(cfg.Dir()))
	}
	store, err := opts.F.Store()
	if err != nil {
		return err
	}
	_, err = pull(cmd.Context(), opts.F, store, ref, platform, extra...)
	return err
}

// pull fetches ref into store, reporting progress on stderr.
func pull(ctx context.Context, f *Factory, store *image.Store, ref, platform string, extra ...image.Option) (*image.Image, error) {
	opts, err := f.PullOptions()
	if err != nil {
		return nil, err
	}
	if fullprog.Lean() {
		return nil, fullprog.ErrNeeded
	}
	log := f.IO.Logger()
	log.Info("pulling " + ref)
	start := time.Now()
	p := newLayerProgress(f.IO)
	opts = append(opts, image.WithPlatform(platform), image.WithProgress(p.event))
	img, err := store.Pull(ctx, ref, append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	log.Info(fmt.Sprintf("pulled %s (%s) in %.1fs: %d layers, %d new, %s downloaded",
		img.Ref, img.Digest, time.Since(start).Seconds(), len(img.Layers), p.fetched, humanBytes(p.bytes)))
	return img, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
