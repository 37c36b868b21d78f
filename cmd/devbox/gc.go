package main

import (
	"fmt"

	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// GCOptions are the arguments of 'devbox gc'.
type GCOptions struct {
	F      *Factory
	All    bool
	DryRun bool
	JSON   bool
}

// NewCmdGC wires 'devbox gc'; runF replaces the work in tests.
func NewCmdGC(f *Factory, runF func(*GCOptions) error) *cobra.Command {
	opts := &GCOptions{F: f}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove images, layers and build steps that nothing uses",
		Long: `Remove from the store what no known project uses. devbox remembers every
project it has run in; a project keeps the image and build steps it used last,
the images its devbox.lock pins, and everything its running sandboxes use.
Images that a tag names (pulled with 'devbox pull') are kept unless --all.
Layers are removed once no remaining image has them, and the state of projects
whose directory or devbox.toml is gone is removed too, and so are leftovers of
interrupted work: what killed pulls and builds left behind, and the throwaway
writable layers of sandboxes that were killed. Pulls wait while gc runs; a
running sandbox never loses a layer.`,
		Example: `  devbox gc --dry-run    # what would go
  devbox gc --all        # also images used by no project`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return gcRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.All, "all", false, "also remove images that only a tag keeps")
	cmd.Flags().BoolVarP(&opts.DryRun, "dry-run", "n", false, "say what would be removed, and remove nothing")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	return cmd
}

func gcRun(opts *GCOptions) error {
	dirs, err := opts.F.Dirs()
	if err != nil {
		return err
	}
	store, err := opts.F.Store()
	if err != nil {
		return err
	}
	r, err := env.GC(dirs, store, env.GCOptions{All: opts.All, DryRun: opts.DryRun})
	if err != nil {
		return err
	}
	out := opts.F.IO.Out
	if opts.JSON {
		return printJSON(out, r)
	}
	verb := "removed"
	if opts.DryRun {
		verb = "would remove"
	}
	for _, img := range r.Images {
		fmt.Fprintf(out, "%s image %s\n", verb, img)
	}
	for _, p := range r.Projects {
		fmt.Fprintf(out, "%s the state of %s (gone)\n", verb, p)
	}
	if r.Records > 0 {
		fmt.Fprintf(out, "%s %d warm-run records of projects that are gone\n", verb, r.Records)
	}
	fmt.Fprintf(out, "%s %d images, %d layers, %d build steps, %d leftovers of interrupted work: %s\n",
		verb, len(r.Images), r.Layers, r.Steps, r.Temporaries, humanBytes(r.Freed))
	return nil
}
