package rootless

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/devboxhq/devbox/mounts"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// devbox's sudo. A developer in `devbox shell` types `sudo apt-get install
// jq`, as in Toolbx or a Dev Container. The image's own sudo cannot work
// here: it is setuid, and no_new_privs (and, with one mapped id, the
// missing root) keep it from changing identity. So a sandbox whose Spec
// has Sudo finds, at /usr/local/bin/sudo (ahead of /usr/bin in every usual
// PATH), the program its pid 1 runs, bound read-only. Started as "sudo",
// that program asks pid 1 over a socket in the sandbox's own /dev to run
// the command as root in the same sandbox, the way a joiner asks (Join):
// the same root, with root emulation, that `devbox run --root` gives from
// outside. It is no privilege: root inside is still the user outside, who
// could run the command as root anyway. pid 1 takes the request from the
// sandbox's user and from root only, not from the other ids of a subuid
// sandbox. Root asks too: where the user is root on the host, their
// commands run as root without root emulation, which sudo adds.

const (
	// sudoPath is where a sandbox's sudo is.
	sudoPath = "/usr/local/bin/sudo"
	// sudoSocket is where pid 1 listens for it.
	sudoSocket = "/dev/.devbox-sudo"
)

// DefaultPath is the PATH of a command whose environment sets none:
// Docker's default, and on Debian sudo's secure_path too. A command run
// through sudo gets the directories of it that the caller's PATH lacks
// (dpkg wants the sbin ones).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SudoMount is the mount of a sandbox's sudo, for a Spec with Sudo: the
// program that runs as its pid 1, bound read-only. It lies in the image's
// tree, so the plan puts it before the home directory and the work tree
// (mounts.View's Early).
func SudoMount() mounts.Mount {
	return mounts.Mount{Type: mounts.Bind, Source: sudoProgram(), Target: sudoPath, ReadOnly: true}
}

// sudoProgram is the host path of pid 1's program. Not /proc/self/exe:
// where pid 1 is this executable re-executed, its own link names the file
// on the host's mount namespace, which the kernel refuses to bind in the
// sandbox's.
func sudoProgram() string {
	if p := initExecutable(); p != selfExe {
		return p
	}
	if p, err := os.Executable(); err == nil {
		return p
	}
	return selfExe
}

// IsSudo reports whether this program runs as a sandbox's sudo; its main
// then exits with Sudo's status.
func IsSudo() bool { return len(os.Args) > 0 && filepath.Base(os.Args[0]) == "sudo" }

const sudoUsage = `usage: sudo [-EHnS] [-u root] [-D directory] [--] [NAME=value ...] command [arg ...]
       sudo -i | -s [command [arg ...]]
       sudo -v | -k | -K | -l | -V | -h

This is devbox's sudo: it runs the command as root in this sandbox, as
'devbox run --root' does from outside, and asks no password. Root here is
still you outside, with root emulation, so package managers work
(sudo apt-get install ...). The command keeps your environment, with HOME,
USER and LOGNAME those of root and SUDO_USER yours.
  -i, --login     root's login shell, in /root (with a command: shell -c)
  -s, --shell     $SHELL as root (with a command: $SHELL -c)
  -D, --chdir     run the command in another directory
  -u, --user      root only; -g, --group root only
Accepted and without effect: -E -H -n -S -P -A -B -p -C -T.
`

// sudoRequest is what a sudo command line asks for.
type sudoRequest struct {
	args         []string
	env          []string // NAME=value to set
	login, shell bool
	dir          string
	// done: the command line asks for nothing to run (-h, -V, -v, -k,
	// -K, -l); out is what to print.
	done bool
	out  string
}

// sudoOptions are sudo(8)'s options by short name: true for those that
// take a value.
var sudoOptions = map[byte]bool{
	'u': true, 'g': true, 'D': true, 'p': true, 'C': true, 'T': true, 'U': true, 'h': false,
	'E': false, 'H': false, 'n': false, 'S': false, 'P': false, 'A': false, 'B': false,
	'i': false, 's': false, 'k': false, 'K': false, 'v': false, 'l': false, 'V': false,
}

// sudoLong maps sudo's long options to their short names.
var sudoLong = map[string]byte{
	"user": 'u', "group": 'g', "chdir": 'D', "prompt": 'p', "close-from": 'C', "command-timeout": 'T',
	"other-user": 'U', "help": 'h', "preserve-env": 'E', "set-home": 'H', "non-interactive": 'n',
	"stdin": 'S', "preserve-groups": 'P', "askpass": 'A', "bell": 'B', "login": 'i', "shell": 's',
	"reset-timestamp": 'k', "remove-timestamp": 'K', "validate": 'v', "list": 'l', "version": 'V',
}

// parseSudo reads a sudo command line as sudo(8) does: options up to "--"
// or the first word that is no option, then the command. user names the
// caller, for -l.
func parseSudo(args []string, user string) (sudoRequest, error) {
	type option struct {
		name  byte
		value string
	}
	var r sudoRequest
	reset := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		a := args[0]
		args = args[1:]
		if a == "--" {
			break
		}
		var opts []option
		if long, ok := strings.CutPrefix(a, "--"); ok {
			name, value, hasValue := strings.Cut(long, "=")
			c, known := sudoLong[name]
			if !known {
				return r, fmt.Errorf("devbox's sudo has no option --%s", name)
			}
			if sudoOptions[c] && !hasValue {
				if len(args) == 0 {
					return r, fmt.Errorf("option --%s requires an argument", name)
				}
				value, args = args[0], args[1:]
			}
			opts = append(opts, option{c, value})
		} else {
			for i := 1; i < len(a); i++ {
				c := a[i]
				takesValue, known := sudoOptions[c]
				if !known {
					return r, fmt.Errorf("devbox's sudo has no option -%c", c)
				}
				if !takesValue {
					opts = append(opts, option{c, ""})
					continue
				}
				value := a[i+1:]
				if value == "" {
					if len(args) == 0 {
						return r, fmt.Errorf("option -%c requires an argument", c)
					}
					value, args = args[0], args[1:]
				}
				opts = append(opts, option{c, value})
				break
			}
		}
		for _, o := range opts {
			switch o.name {
			case 'u', 'g':
				if o.value != "root" && o.value != "0" && o.value != "#0" {
					return r, fmt.Errorf("devbox's sudo runs commands as root only, not as %q", o.value)
				}
			case 'D':
				r.dir = o.value
			case 'i':
				r.login = true
			case 's':
				r.shell = true
			case 'k':
				reset = true
			case 'h':
				return sudoRequest{done: true, out: sudoUsage}, nil
			case 'V':
				return sudoRequest{done: true, out: "devbox's sudo: runs commands as root in a devbox sandbox\n"}, nil
			case 'l':
				return sudoRequest{done: true, out: fmt.Sprintf("User %s may run the following commands on this sandbox:\n    (ALL : ALL) NOPASSWD: ALL\n", user)}, nil
			case 'v', 'K':
				// No password, so no timestamp to validate or remove.
				return sudoRequest{done: true}, nil
			}
		}
	}
	// NAME=value before the command sets a variable for it.
	for len(args) > 0 && isAssignment(args[0]) {
		r.env, args = append(r.env, args[0]), args[1:]
	}
	r.args = args
	if len(args) == 0 && !r.login && !r.shell {
		if reset {
			return sudoRequest{done: true}, nil
		}
		return r, errors.New("a command is needed: sudo COMMAND [ARG...], sudo -i or sudo -s (see sudo -h)")
	}
	return r, nil
}

// Sudo is a sandbox's sudo: it runs the command that args name (sudo's
// own arguments, without the program's name) as root in this sandbox and
// returns its exit status.
func Sudo(args []string) int {
	user := os.Getenv("USER")
	r, err := parseSudo(args, user)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sudo: %v\n", err)
		return 1
	}
	if r.done {
		fmt.Print(r.out)
		return 0
	}
	proc, err := sudoProcess(r, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "sudo: %v\n", err)
		return 1
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		proc.Terminal = true
		proc.TerminalOutput = term.IsTerminal(int(os.Stdout.Fd()))
		if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
			proc.Rows, proc.Cols = ws.Row, ws.Col
		}
	}
	status, err := Join(context.Background(), sudoSocket, &Spec{Process: proc}, IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, nil)
	var nj *NotJoinableError
	switch {
	case errors.As(err, &nj):
		fmt.Fprintf(os.Stderr, "sudo: the sandbox cannot run it as root: %s; run it with 'devbox run --root -- ...' from outside\n", nj.Reason)
		return 1
	case errors.Is(err, ErrSandboxEnded):
		return status
	case err != nil:
		fmt.Fprintf(os.Stderr, "sudo: %v\n", err)
		return 1
	}
	return status
}

// sudoProcess is the command r asks for, in the caller's environment env:
// its arguments, and its working directory, which pid 1 checks.
func sudoProcess(r sudoRequest, env []string) (Process, error) {
	p := Process{Args: r.args, Env: append(slices.Clone(env), r.env...)}
	if r.login || r.shell {
		shell := rootShell()
		if v := lookupEnv(env, "SHELL"); r.shell && v != "" {
			shell = v
		}
		p.Args = []string{shell}
		if r.login {
			p.Args = append(p.Args, "-l")
		}
		if len(r.args) > 0 {
			p.Args = append(p.Args, "-c", shellCommandLine(r.args))
		}
	}
	switch {
	case r.dir != "":
		p.Cwd = r.dir
	case r.login:
		p.Cwd = "/root"
	default:
		wd, err := os.Getwd()
		if err != nil {
			return p, err
		}
		p.Cwd = wd
	}
	if !filepath.IsAbs(p.Cwd) {
		wd, err := os.Getwd()
		if err != nil {
			return p, err
		}
		p.Cwd = filepath.Join(wd, p.Cwd)
	}
	return p, nil
}

// isAssignment reports whether arg is NAME=value, NAME a shell variable's
// name.
func isAssignment(arg string) bool {
	name, _, ok := strings.Cut(arg, "=")
	if !ok || name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	return strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
}

// rootShell is root's shell in /etc/passwd, or /bin/sh.
func rootShell() string {
	for line := range strings.Lines(string(readFile("/etc/passwd"))) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) == 7 && f[0] == "root" && f[6] != "" {
			return f[6]
		}
	}
	return "/bin/sh"
}

// shellCommandLine joins args into one shell command line that gives them back.
func shellCommandLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			quoted[i] = a
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// lookupEnv is the value of the variable name in env, "" when unset.
func lookupEnv(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// sudoSpec is the Spec that runs a sudo request (its Process) as root in
// owner's sandbox, in the environment of sudoEnv.
func sudoSpec(owner, req *Spec) (*Spec, error) {
	p := req.Process
	if len(p.Args) == 0 || p.Args[0] == "" || !filepath.IsAbs(p.Cwd) {
		return nil, errors.New("it needs a command and an absolute working directory")
	}
	s := *owner
	s.User = User{Name: "root", Home: "/root", Shell: "/bin/sh"}
	p.UID, p.GID = 0, 0
	p.RootEmulation = owner.Userns != UsernsSubuid
	p.Env = sudoEnv(p.Env, owner.User.Name, owner.Process.UID, owner.Process.GID, p.Args)
	s.Process = p
	return &s, nil
}

// sudoEnv is env for args run through sudo by user (uid, gid): as `sudo
// -E` keeps it, with root's HOME, USER and LOGNAME, sudo's SUDO_
// variables, and the sbin directories in PATH.
func sudoEnv(env []string, user string, uid, gid uint32, args []string) []string {
	set := map[string]string{
		"HOME": "/root", "USER": "root", "LOGNAME": "root",
		"SUDO_USER": user, "SUDO_UID": strconv.Itoa(int(uid)), "SUDO_GID": strconv.Itoa(int(gid)),
		"SUDO_COMMAND": strings.Join(args, " "), "PATH": withSecurePath(lookupEnv(env, "PATH")),
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(sudoSet, k) {
			out = append(out, kv)
		}
	}
	for _, k := range sudoSet {
		out = append(out, k+"="+set[k])
	}
	return out
}

// sudoSet are the variables sudoEnv sets.
var sudoSet = []string{"HOME", "USER", "LOGNAME", "PATH", "SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND"}

// withSecurePath is path with DefaultPath's directories it lacks added at
// its end.
func withSecurePath(path string) string {
	if path == "" {
		return DefaultPath
	}
	dirs := strings.Split(path, ":")
	for _, d := range strings.Split(DefaultPath, ":") {
		if !slices.Contains(dirs, d) {
			path += ":" + d
		}
	}
	return path
}
