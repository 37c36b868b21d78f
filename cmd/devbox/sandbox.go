package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/rootless"
	"golang.org/x/sys/unix"
)

// loginShell starts bash where the image has it, and sh otherwise.
var loginShell = []string{"/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"}

// runInSandbox runs args in the environment of the project governing the
// working directory, pulling its image first if the store lacks it, and
// returns the command's status as an *ExitError when it is not 0. No args
// means an interactive shell.
func runInSandbox(ctx context.Context, f *Factory, args []string, asRoot bool) error {
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	store, err := f.Store()
	if err != nil {
		return err
	}
	img, err := ensureImage(ctx, f, store, cfg)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		args = loginShell
	}
	dirs, err := f.Dirs()
	if err != nil {
		return err
	}
	project, err := env.OpenProject(dirs, cfg.Dir())
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	inv := env.Invocation{Args: args, Cwd: wd, Root: asRoot}
	if IsTerminal(f.IO.In) {
		inv.Terminal = true
		inv.TerminalOutput = IsTerminal(f.IO.OutFile)
		if ws, err := unix.IoctlGetWinsize(int(f.IO.In.Fd()), unix.TIOCGWINSZ); err == nil {
			inv.Rows, inv.Cols = ws.Row, ws.Col
		}
	}
	spec := env.SandboxSpec(project, store, img, env.CurrentUser(), inv)
	if f.IO.OutFile == nil || f.IO.ErrFile == nil {
		return errors.New("the sandbox needs file-backed standard output and error")
	}
	code, err := rootless.Run(ctx, spec, rootless.IO{In: stdinFile(f.IO), Out: f.IO.OutFile, Err: f.IO.ErrFile})
	if err != nil {
		return fmt.Errorf("run %s: %w", args[0], err)
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// ensureImage returns the project's image from the store, pulling it when
// the store does not hold it: after the first pull, nothing touches the
// network.
func ensureImage(ctx context.Context, f *Factory, store *image.Store, cfg *env.Config) (*image.Image, error) {
	img, err := store.Lookup(cfg.Image.Ref)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, image.ErrNotPresent) {
		return nil, err
	}
	return pull(ctx, f, store, cfg.Image.Ref, cfg.Image.Platform)
}
