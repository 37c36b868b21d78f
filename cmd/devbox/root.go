package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/devboxhq/devbox/internal/fullprog"
	"github.com/devboxhq/devbox/rootless"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// Main runs the CLI and returns the process's exit status.
func Main(f *Factory) int {
	root := NewCmdRoot(f)
	// SIGTERM cancels what devbox is doing (a pull cleans up after itself);
	// a running sandbox gets the signal forwarded instead.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// The first signal.Notify starts a thread and waits for it: off the
	// path to the command.
	go func() {
		term := make(chan os.Signal, 1)
		signal.Notify(term, unix.SIGTERM)
		defer signal.Stop(term)
		select {
		case <-term:
			cancel(rootless.ErrSignaled)
		case <-ctx.Done():
		}
	}()
	err := root.ExecuteContext(ctx)
	if errors.Is(err, fullprog.ErrNeeded) {
		// The lean program met work it leaves out, before it changed
		// anything: the full program does the command from the start.
		cancel(nil)
		err = fullprog.Exec()
	}
	return exitCode(err, f.IO.ErrOut)
}

// NewCmdRoot is the devbox command; it only holds help text, global flags
// and the list of subcommands.
func NewCmdRoot(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "devbox",
		Short: "Reproducible, rootless development environments",
		Long: `devbox opens a project's development environment: the image and tools that
devbox.toml names, in a sandbox where you are yourself, with the project
directory mounted at the same path. No root, no daemon.

  devbox init               write a devbox.toml for this repository
  devbox shell              open a shell in the environment
  devbox run -- make test   run one command in it and exit with its status
  devbox doctor             check this machine, with the fix for what fails

Environment:
  DEVBOX_INSECURE_REGISTRIES  registries (host:port, comma-separated) that may use
                              plain HTTP; loopback registries always may
  DEVBOX_REGISTRY_MIRRORS     registry mirrors, "docker.io=host:port,..." (also
                              [registry] in ~/.config/devbox/config.toml)
  DEVBOX_ROOTFS               force the root filesystem: overlay, fuse-overlayfs
                              or copy (default: the best that works here)
  XDG_DATA_HOME, XDG_CACHE_HOME  where the store lives (default ~/.local/share/devbox
                              and ~/.cache/devbox)
  NO_COLOR                    plain messages`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &FlagError{Err: fmt.Errorf("unknown command %q: see 'devbox --help'", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &FlagError{Err: err}
	})
	cmd.PersistentFlags().BoolVarP(&f.IO.Quiet, "quiet", "q", false, "print no progress or informational messages")
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.AddCommand(
		NewCmdInit(f, nil),
		NewCmdRun(f, nil),
		NewCmdShell(f, nil),
		NewCmdPull(f, nil),
		NewCmdStatus(f, nil),
		NewCmdRebuild(f),
		NewCmdUpdate(f),
		NewCmdReset(f, nil),
		NewCmdDoctor(f, nil),
		NewCmdImages(f, nil),
		NewCmdGC(f, nil),
		NewCmdVersion(f),
	)
	return cmd
}

// stdinFile is f's standard input as a file, or /dev/null.
func stdinFile(io *IOStreams) *os.File {
	if io.In != nil {
		return io.In
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return null
}
