package main

import (
	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// NewCmdRebuild wires 'devbox rebuild'.
func NewCmdRebuild(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild",
		Short: "Build the [tools] and [setup] steps again, ignoring the cache",
		Long: `Build every step of the environment again ([tools] packages, each archive,
[setup]), even those already cached: for when a step depends on something
its cache key cannot see, such as a package repository that moved on or a
file of the project that [setup] reads. The image and devbox.lock stay as
they are; 'devbox update' moves them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := prepare(cmd.Context(), f, env.PrepareOptions{Rebuild: true})
			if err == nil {
				f.IO.Logger().Info("environment rebuilt")
			}
			return err
		},
	}
}
