package main

import (
	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// ResetOptions are the arguments of 'devbox reset'.
type ResetOptions struct {
	F    *Factory
	Home bool
}

// NewCmdReset wires 'devbox reset'; runF replaces the work in tests.
func NewCmdReset(f *Factory, runF func(*ResetOptions) error) *cobra.Command {
	opts := &ResetOptions{F: f}
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Discard the project's writable layer",
		Long: `Discard what sandboxes of this project changed outside the work tree and the
home directory (packages installed with 'devbox run --root', files written
to /usr, /etc, ...): the next sandbox starts from the image and the built
steps alone. The work tree is never touched. --home also empties the
project's home directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return resetRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Home, "home", false, "also empty the project's home directory")
	return cmd
}

func resetRun(opts *ResetOptions) error {
	cfg, err := opts.F.Config()
	if err != nil {
		return err
	}
	dirs, err := opts.F.Dirs()
	if err != nil {
		return err
	}
	p, err := env.OpenProject(dirs, cfg.Dir())
	if err != nil {
		return err
	}
	if err := p.Reset(opts.Home); err != nil {
		return err
	}
	opts.F.IO.Logger().Info("writable layer discarded")
	return nil
}
