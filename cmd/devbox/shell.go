package main

import (
	"github.com/spf13/cobra"
)

// ShellOptions are the arguments of 'devbox shell'.
type ShellOptions struct {
	F *Factory
	// Root opens the shell as root inside the sandbox.
	Root bool
}

// NewCmdShell wires 'devbox shell'; runF replaces the work in tests.
func NewCmdShell(f *Factory, runF func(*ShellOptions) error) *cobra.Command {
	opts := &ShellOptions{F: f}
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Open an interactive shell in the project's environment",
		Long: `Open the image's shell (its Cmd, or /bin/sh) in the environment that
devbox.toml describes, on a terminal of the sandbox's own. Exit the shell to
leave; devbox exits with the shell's status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return shellRun(cmd, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Root, "root", false, "open the shell as root inside the sandbox (still you outside)")
	return cmd
}

func shellRun(cmd *cobra.Command, opts *ShellOptions) error {
	return runInSandbox(cmd.Context(), opts.F, nil, opts.Root)
}
