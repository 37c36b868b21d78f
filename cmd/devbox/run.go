package main

import (
	"errors"

	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// RunOptions are the arguments of 'devbox run'.
type RunOptions struct {
	F    *Factory
	Args []string
	// Root runs the command as root inside the sandbox.
	Root bool
	// Dash is true when the command came after "--": it is never a script.
	Dash   bool
	Frozen bool
	// Ephemeral throws the sandbox's writable layer away afterwards.
	Ephemeral bool
	// Env is --env, resolved: NAME=VALUE each.
	Env []string
}

// NewCmdRun wires 'devbox run'; runF replaces the work in tests.
func NewCmdRun(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{F: f}
	var envValues []string
	cmd := &cobra.Command{
		Use:   "run [--] COMMAND [ARG...] | run SCRIPT [ARG...]",
		Short: "Run a command or a named script in the project's environment",
		Long: `Run COMMAND in the environment that devbox.toml describes and exit with its
status (128+N when signal N killed it; 127 when the command does not exist in
the image). Without "--", a first word that names a [scripts] entry runs that
script, with the remaining words as its arguments ($1, $2, ...).

The first run pulls the image and builds the [tools] and [setup] steps, each
cached as a layer; later runs reuse them and need no network. devbox.lock pins
the image digest and the archives' checksums; --frozen refuses to change it.

Inside, you are yourself (same uid and gid), the project directory is mounted
at the same path and is the working directory (or the subdirectory you are
in), HOME is a per-project home, DEVBOX=1 tells scripts they run inside, and
only TERM, LANG, LC_ALL, TZ, COLORTERM, what [env] names with ${localEnv:NAME}
and what --env passes come from the host's environment: a locale the image
lacks becomes C.UTF-8, a terminal it has no entry for xterm-256color, and
without TZ, the time zone that /etc/localtime names comes in where the image
has it. Your git configuration and ~/.ssh/known_hosts are there read-only, and
your SSH agent and GnuPG's agent (for signed commits) are forwarded; where the
host trusts certificate authorities of its own (a company proxy's), its bundle
is at /run/host-services/ca-certificates.crt, named by SSL_CERT_FILE and the
other clients' variables. A project
in a subdirectory of a git repository gets the whole repository mounted (its
siblings and .git too), and one that is a git worktree or a submodule gets its
repository mounted as well.

While the project's sandbox runs (a shell in another terminal, say), the
command joins it, as 'docker exec' would: it sees that sandbox's files, /tmp
and processes. The sandbox lasts until its last command ends: a devbox whose
command ends first waits for the rest, and says so (Ctrl-C there stops them).
With --ephemeral, or when devbox.toml changed since that sandbox started, the
command gets a sandbox of its own on a throwaway layer.

A run without options that repeats one in the same directory, on a terminal
or not, with nothing it depends on changed, starts from a record of that run,
without devbox's Go runtime: about twice as fast. DEVBOX_FRONT=0 turns that
off.`,
		Example: `  devbox run -- make test
  devbox run test                    # the [scripts] entry "test"
  devbox run -- sh -c 'id -u; pwd; ls'
  devbox run --frozen -- make ci     # in CI: the lock must be up to date
  devbox run -e CI -e GOFLAGS=-race -- make test
  devbox run --root -- apt-get install -y strace
  devbox run -- sh -c 'sudo apt-get install -y strace && strace -V'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &FlagError{Err: errors.New("run needs a command: devbox run -- COMMAND [ARG...]")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Args = args
			opts.Dash = cmd.ArgsLenAtDash() == 0
			var err error
			if opts.Env, err = envFlags(envValues); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runRun(cmd, opts)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringArrayVarP(&envValues, "env", "e", nil, envFlagUsage)
	cmd.Flags().BoolVar(&opts.Ephemeral, "ephemeral", false, "use a throwaway writable layer: what the command changes outside the work tree and home is gone afterwards")
	cmd.Flags().BoolVar(&opts.Frozen, "frozen", false, "fail instead of changing devbox.lock: it must exist and pin everything devbox.toml names (for CI)")
	cmd.Flags().BoolVar(&opts.Root, "root", false, "run as root inside the sandbox (still you outside), e.g. to install packages; changes persist in the project's writable layer until 'devbox reset'")
	return cmd
}

func runRun(cmd *cobra.Command, opts *RunOptions) error {
	return runInSandbox(cmd.Context(), opts.F, sandboxRequest{
		Args: opts.Args, Script: !opts.Dash, Root: opts.Root, Ephemeral: opts.Ephemeral, Env: opts.Env,
		Prepare: env.PrepareOptions{Frozen: opts.Frozen},
	})
}
