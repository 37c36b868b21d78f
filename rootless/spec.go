package rootless

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/devboxhq/devbox/mounts"
)

// Spec is everything Run needs to start a sandbox. It is plain data: the
// parent sends it to the sandbox's pid 1 (Spec.MarshalBinary).
type Spec struct {
	// RootDir is an existing empty host directory on which the root
	// filesystem is mounted inside the sandbox's mount namespace; the host
	// never sees that mount.
	RootDir string `json:"rootDir"`
	// Mounts is the filesystem view, applied in order; the first entry is
	// the root overlay (see mounts.Plan).
	Mounts []mounts.Mount `json:"mounts"`
	// Process is the command to run.
	Process Process `json:"process"`
	// Hostname is the sandbox's host name; empty keeps "devbox".
	Hostname string `json:"hostname,omitempty"`
	// Network is the network mode.
	Network Network `json:"network"`
	// Userns selects the identity mapping; empty means UsernsSingle.
	Userns Userns `json:"userns,omitempty"`
	// UIDMapSize and GIDMapSize are the numbers of uids and gids mapped in a subuid
	// sandbox's own namespace; Run sets it.
	UIDMapSize int `json:"uidMapSize,omitempty"`
	GIDMapSize int `json:"gidMapSize,omitempty"`
	// DNS is the name server of a sandbox with its own network; Run sets
	// it from the network driver.
	DNS string `json:"dns,omitempty"`
	// User names the command's uid and gid in the sandbox's /etc/passwd
	// and /etc/group; empty Name leaves the image's files alone.
	User User `json:"user"`
	// Share is a host path where pid 1 listens, once the command runs,
	// for more commands to run in the same sandbox (Join); empty shares
	// nothing.
	Share string `json:"share,omitempty"`
	// Sudo puts devbox's sudo at /usr/local/bin/sudo inside: through it,
	// a command of the sandbox's user runs a command as root in the same
	// sandbox (see sudo.go).
	Sudo bool `json:"sudo,omitempty"`
}

// Process is the command a sandbox runs.
type Process struct {
	// Args is the command and its arguments; Args[0] is looked up in the
	// PATH of Env when it has no slash.
	Args []string `json:"args"`
	// Env is the complete environment; nothing of the host's is added.
	Env []string `json:"env"`
	// Cwd is the absolute working directory inside the sandbox.
	Cwd string `json:"cwd"`
	// UID and GID are the identity of the command inside the sandbox.
	// Either is 0 (root inside, which is still the user outside) or the
	// user's own host id.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// RootEmulation, for a command running as uid 0, makes the chown
	// family, setgroups and the set*id calls succeed without effect, so
	// that package managers work with a single mapped id.
	RootEmulation bool `json:"rootEmulation,omitempty"`
	// Terminal gives the command a pseudo-terminal of the sandbox's own
	// devpts as its controlling terminal and standard input; Run relays it
	// to the caller's terminal.
	Terminal bool `json:"terminal,omitempty"`
	// TerminalOutput also sends standard output to that terminal, and
	// standard error where the caller's is a terminal; otherwise they are
	// the caller's own (a pipe, a file).
	TerminalOutput bool `json:"terminalOutput,omitempty"`
	// Rows and Cols are the initial size of the terminal.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// Network is a sandbox's network mode.
type Network string

const (
	// NetworkHost shares the host's network namespace.
	NetworkHost Network = "host"
	// NetworkNone gives the sandbox its own network namespace with only
	// loopback up: nothing outside is reachable.
	NetworkNone Network = "none"
	// NetworkIsolated gives the sandbox its own network namespace,
	// connected to the outside by a network driver (slirp4netns), with
	// forwarded ports.
	NetworkIsolated Network = "isolated"
)

// hostname is the sandbox's host name.
func (s *Spec) hostname() string {
	if s.Hostname == "" {
		return "devbox"
	}
	return s.Hostname
}

// check is the preflight: it rejects a Spec that cannot work before any
// namespace is created.
func (s *Spec) check() error {
	if !filepath.IsAbs(s.RootDir) {
		return fmt.Errorf("sandbox root %q is not an absolute path", s.RootDir)
	}
	if fi, err := os.Stat(s.RootDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("sandbox root %q is not a directory", s.RootDir)
	}
	if len(s.Mounts) == 0 {
		return errors.New("sandbox has no mounts")
	}
	if len(s.Process.Args) == 0 || s.Process.Args[0] == "" {
		return errors.New("sandbox has no command to run")
	}
	if !filepath.IsAbs(s.Process.Cwd) {
		return fmt.Errorf("working directory %q is not an absolute path", s.Process.Cwd)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if (s.Process.UID != 0 && s.Process.UID != uid) || (s.Process.GID != 0 && s.Process.GID != gid) {
		return fmt.Errorf("identity %d:%d is neither root nor the user (%d:%d): single-uid mode maps only those", s.Process.UID, s.Process.GID, uid, gid)
	}
	switch s.Network {
	case NetworkHost, NetworkNone, NetworkIsolated:
	default:
		return fmt.Errorf("unknown network mode %q", s.Network)
	}
	switch s.Userns {
	case "", UsernsSingle, UsernsSubuid:
	default:
		return fmt.Errorf("unknown user namespace mode %q", s.Userns)
	}
	return nil
}
