package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/rootless"
	"github.com/devboxhq/devbox/rootless/network"
	"github.com/devboxhq/devbox/rootless/network/none"
	"github.com/devboxhq/devbox/rootless/network/slirp4netns"
	"golang.org/x/sys/unix"
)

// sandboxRequest is what 'devbox run' and 'devbox shell' ask for.
type sandboxRequest struct {
	// Args is the command; empty means the interactive shell.
	Args []string
	// Script: Args[0] names a [scripts] entry when there is one.
	Script bool
	// Root runs the command as root inside.
	Root bool
	// Ephemeral gives the sandbox a throwaway writable layer.
	Ephemeral bool
	// Env is set inside last, NAME=VALUE each (--env).
	Env []string
	// Prepare controls the lock file and the cache.
	Prepare env.PrepareOptions
}

// builder returns an env.Builder that pulls with progress on stderr.
func builder(ctx context.Context, f *Factory) (*env.Builder, error) {
	store, err := f.Store()
	if err != nil {
		return nil, err
	}
	dirs, err := f.Dirs()
	if err != nil {
		return nil, err
	}
	mode, helper, err := rootFS(dirs.Data)
	if err != nil {
		return nil, err
	}
	log := f.IO.Logger()
	return &env.Builder{
		Dirs:       dirs,
		Store:      store,
		RootFS:     mode,
		FuseHelper: helper,
		Pull: func(ctx context.Context, ref, platform string) (*image.Image, error) {
			return pull(ctx, f, store, ref, platform)
		},
		Out: f.IO.ErrFile,
		Log: func(msg string) { log.Info(msg) },
	}, nil
}

// prepare loads the project's devbox.toml and builds its environment.
func prepare(ctx context.Context, f *Factory, opts env.PrepareOptions) (*env.Environment, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	return prepareConfig(ctx, f, cfg, opts)
}

func prepareConfig(ctx context.Context, f *Factory, cfg *env.Config, opts env.PrepareOptions) (*env.Environment, error) {
	b, err := builder(ctx, f)
	if err != nil {
		return nil, err
	}
	return b.Prepare(ctx, cfg, opts)
}

// networkDriver is the one place that maps a network mode to its driver.
func networkDriver(e *env.Environment, mode rootless.Network) (network.ParentDriver, error) {
	switch mode {
	case rootless.NetworkNone:
		return none.NewParentDriver(), nil
	case rootless.NetworkIsolated:
		ports, err := e.Ports()
		if err != nil {
			return nil, err
		}
		return slirp4netns.NewParentDriver(slirp4netns.Opt{Ports: ports, StateDir: e.Project.StateDir})
	}
	return nil, nil
}

// usualLaunch is the launch most projects need (the host's network, one
// mapped id, a terminal when devbox has one) and the streams a sandbox
// gets.
func usualLaunch(f *Factory) (rootless.Launch, rootless.IO) {
	l := rootless.Launch{Network: rootless.NetworkHost, Userns: rootless.UsernsSingle, Terminal: IsTerminal(f.IO.In)}
	return l, rootless.IO{In: stdinFile(f.IO), Out: f.IO.OutFile, Err: f.IO.ErrFile}
}

// sandboxRunning reports whether the sandbox of the project governing the
// working directory runs (env.SandboxRunningIn); false when that cannot be
// told, which only starts a pid 1 that may go unused.
func sandboxRunning(f *Factory) bool {
	dirs, err := f.Dirs()
	if err != nil {
		return false
	}
	wd, err := os.Getwd()
	if err != nil {
		return false
	}
	path, err := env.Find(wd)
	return err == nil && env.SandboxRunningIn(dirs, filepath.Dir(path))
}

// startEarly creates the pid 1 of a `devbox run` or `devbox shell` before
// the command line is parsed: pid 1 takes about as long to start up as
// devbox takes to get to the spec, and it waits for that. f.Sandbox hands
// it over once, for the same launch and streams; release ends it if
// nothing took it.
func startEarly(f *Factory) (release func()) {
	launch, stdio := usualLaunch(f)
	early, earlyErr := rootless.Start(launch, stdio)
	taken := false
	f.Sandbox = func(l rootless.Launch, io rootless.IO) (*rootless.Sandbox, error) {
		if !taken && l == launch && io == stdio {
			taken = true
			return early, earlyErr
		}
		return rootless.Start(l, io)
	}
	return func() {
		if !taken && early != nil {
			early.Close()
		}
	}
}

// runInSandbox runs req in the environment of the project governing the
// working directory, building what the cache lacks, and returns the
// command's status as an *ExitError when it is not 0.
func runInSandbox(ctx context.Context, f *Factory, req sandboxRequest) error {
	if f.IO.OutFile == nil || f.IO.ErrFile == nil {
		return errors.New("the sandbox needs file-backed standard output and error")
	}
	start := time.Now()
	launch, stdio := usualLaunch(f)
	// The sandbox's pid 1 starts up, a process of its own on another core,
	// while devbox.toml is read and the environment prepared; then it waits
	// for its spec. It starts for what most projects use (the host's
	// network, one mapped id) and again if devbox.toml asks for more; an
	// error surfaces when the right one is started, after devbox.toml's.
	// Where main found the project's sandbox running (f.Joining), none
	// starts until the command turns out unable to join it.
	terminal := launch.Terminal
	var sb *rootless.Sandbox
	var startErr error
	if !f.Joining {
		sb, startErr = f.Sandbox(launch, stdio)
	}
	defer func() {
		if sb != nil {
			sb.Close()
		}
	}()
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	want, err := env.LaunchFor(cfg, terminal)
	if err != nil {
		return err
	}
	if !f.Joining && (want != launch || startErr != nil) {
		if sb != nil {
			sb.Close()
		}
		if sb, err = rootless.Start(want, stdio); err != nil {
			return err
		}
	}
	e, err := prepareConfig(ctx, f, cfg, req.Prepare)
	if err != nil {
		return err
	}
	args := req.Args
	if len(args) == 0 {
		args = e.ShellArgs()
	} else if req.Script {
		if scriptArgs, ok := e.ScriptArgs(args[0], args[1:]); ok {
			args = scriptArgs
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	inv := env.Invocation{Args: args, Cwd: wd, Root: req.Root, Ephemeral: req.Ephemeral, Join: !req.Ephemeral, Env: req.Env,
		Log: func(msg string) { f.IO.Logger().Info(msg) }}
	if terminal {
		inv.Terminal = true
		inv.TerminalOutput = IsTerminal(f.IO.OutFile)
		if ws, err := unix.IoctlGetWinsize(int(f.IO.In.Fd()), unix.TIOCGWINSZ); err == nil {
			inv.Rows, inv.Cols = ws.Row, ws.Col
		}
	}
	front := frontRequest(req, launch, want)
	if front {
		inv.Inputs = &env.Inputs{}
	}
	spec, join, cleanup, err := env.SandboxSpec(e, env.CurrentUser(), inv)
	if err != nil {
		return err
	}
	defer func() { cleanup() }()
	release, err := e.Running()
	if err != nil {
		return err
	}
	defer release()
	if front && join == "" && spec.Share != "" {
		// The next such run here is the front's. A record that cannot be
		// written (a full disk) costs that run its speed, nothing else:
		// the command runs regardless, and says nothing of it.
		_ = saveFront(f, e, spec, inv.Inputs, wd, start)
	}
	if join != "" {
		// Another terminal's sandbox of this project runs: the command
		// runs in it, beside what runs there already.
		if sb != nil {
			sb.Close()
			sb = nil
		}
		for try := 1; join != ""; try++ {
			code, err := rootless.Join(ctx, join, spec, stdio, e.Project.SandboxRunning)
			var notJoinable *rootless.NotJoinableError
			if !errors.As(err, &notJoinable) {
				return joinedStatus(f, args[0], code, err)
			}
			// One that ended since (devbox run -- a | devbox run -- b,
			// with a done first) leaves the project's layer to this
			// command, or to a sandbox that took it meanwhile, which it
			// joins. One that runs on but cannot take the command says
			// why, and this one gets a sandbox of its own.
			if !notJoinable.Ended || try == 3 {
				f.IO.Logger().Info(notJoinable.Error())
				inv.Join = false
			}
			next, nextJoin, nextCleanup, err := env.SandboxSpec(e, env.CurrentUser(), inv)
			if err != nil {
				return err
			}
			cleanup()
			spec, join, cleanup = next, nextJoin, nextCleanup
		}
	}
	if sb == nil {
		// A sandbox of its own after all: the one that ran has ended, or
		// cannot take this command.
		if sb, err = rootless.Start(want, stdio); err != nil {
			return err
		}
	}
	driver, err := networkDriver(e, spec.Network)
	if err != nil {
		return err
	}
	code, err := sb.Run(ctx, spec, driver)
	if err != nil {
		return fmt.Errorf("run %s: %w", args[0], err)
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// joinedStatus is the outcome of a command that joined a running sandbox.
func joinedStatus(f *Factory, name string, code int, err error) error {
	switch {
	case errors.Is(err, rootless.ErrSandboxEnded):
		// Said, and the command's status (killed) kept.
		fmt.Fprintf(f.IO.ErrOut, "devbox: %v\n", err)
	case err != nil:
		return fmt.Errorf("run %s: %w", name, err)
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}
