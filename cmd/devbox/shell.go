package main

import (
	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// ShellOptions are the arguments of 'devbox shell'.
type ShellOptions struct {
	F *Factory
	// Root opens the shell as root inside the sandbox.
	Root   bool
	Frozen bool
	// Ephemeral throws the sandbox's writable layer away afterwards.
	Ephemeral bool
	// Env is --env, resolved: NAME=VALUE each.
	Env []string
}

// NewCmdShell wires 'devbox shell'; runF replaces the work in tests.
func NewCmdShell(f *Factory, runF func(*ShellOptions) error) *cobra.Command {
	opts := &ShellOptions{F: f}
	var envValues []string
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Open an interactive shell in the project's environment",
		Long: `Open a shell in the environment that devbox.toml describes, on a terminal of
the sandbox's own: [shell] program, or bash where the image has it and sh
otherwise, after running [shell] init. The first time, the image is pulled and
the tools are installed; later shells open at once. Exit the shell to leave;
devbox exits with the shell's status.

You are yourself inside, with a home of the project's own. Your git
configuration (~/.gitconfig, ~/.config/git/config) and ~/.ssh/known_hosts are
there read-only, and your SSH agent and GnuPG's agent (for signed commits) are
forwarded; nothing else of your home comes in. Where the host trusts
certificate authorities of its own (a company proxy's), its bundle comes in,
named by SSL_CERT_FILE and the other clients' variables. Of your environment, only TERM,
LANG, LC_ALL, TZ and COLORTERM do, with what [env] names with ${localEnv:NAME}
and what --env passes, beside what the image and [env] set (a locale the image
lacks becomes C.UTF-8, a terminal it has no entry for xterm-256color), and
without TZ the time zone that /etc/localtime names, where the image has it. A project in a subdirectory of a git repository gets
the whole repository mounted (its siblings and .git too), and one that is a git
worktree or a submodule gets its repository mounted as well.

sudo works inside, without a password: 'sudo apt-get install -y jq' runs apt
as root in the same sandbox (still you outside), as --root does. What you
change outside the work tree and home (a package installed with sudo or
--root, say) stays in the project's writable layer until 'devbox reset'.

A shell or run started while the project's sandbox runs (in another
terminal, say) joins it: it shares that sandbox's files, /tmp, processes and
sockets. The sandbox lasts until its last command ends: leave the first
shell while others run and devbox waits for them, and says so (Ctrl-C there
stops them). One that cannot join, because devbox.toml changed since that
sandbox started, gets a sandbox of its own on a throwaway layer and says
why; so does one with --ephemeral.

A shell without options that repeats one in the same directory, with nothing
it depends on changed, opens from a record, without devbox's Go runtime, as
'devbox run' does. DEVBOX_FRONT=0 turns that off.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Env, err = envFlags(envValues); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return shellRun(cmd, opts)
		},
	}
	cmd.Flags().StringArrayVarP(&envValues, "env", "e", nil, envFlagUsage)
	cmd.Flags().BoolVar(&opts.Root, "root", false, "open the shell as root inside the sandbox (still you outside)")
	cmd.Flags().BoolVar(&opts.Ephemeral, "ephemeral", false, "use a throwaway writable layer: what the command changes outside the work tree and home is gone afterwards")
	cmd.Flags().BoolVar(&opts.Frozen, "frozen", false, "fail instead of changing devbox.lock")
	return cmd
}

func shellRun(cmd *cobra.Command, opts *ShellOptions) error {
	return runInSandbox(cmd.Context(), opts.F, sandboxRequest{Root: opts.Root, Ephemeral: opts.Ephemeral, Env: opts.Env, Prepare: env.PrepareOptions{Frozen: opts.Frozen}})
}
