package main

import (
	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// NewCmdUpdate wires 'devbox update'.
func NewCmdUpdate(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "update",
		Short: "Resolve the image tag and archives again and rewrite devbox.lock",
		Long: `Ask the registry what the image's tag points to now, download the archives
that devbox.toml gives no sha256 for, build what changed, and rewrite
devbox.lock. Commit the new lock file so that everyone gets the same
environment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := prepare(cmd.Context(), f, env.PrepareOptions{Update: true})
			if err == nil {
				f.IO.Logger().Info("devbox.lock pins " + e.Image.Ref + " at " + e.Image.Digest.String())
			}
			return err
		},
	}
}
