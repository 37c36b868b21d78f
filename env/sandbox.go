package env

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
)

// User is who runs devbox; inside the sandbox they are themself.
type User struct {
	UID, GID uint32
	Name     string
	Home     string // inside the sandbox
}

// CurrentUser describes the user running devbox.
func CurrentUser() User {
	u := User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if pw, err := user.LookupId(strconv.Itoa(int(u.UID))); err == nil {
		u.Name, u.Home = pw.Username, pw.HomeDir
	}
	if u.Name == "" {
		u.Name = "user" + strconv.Itoa(int(u.UID))
	}
	switch {
	case u.UID == 0:
		u.Home = "/root"
	case u.Home == "" || u.Home == "/" || u.Home == "/nonexistent":
		u.Home = "/home/" + u.Name
	}
	return u
}

// hostEnv are the host variables a sandbox inherits; nothing else of the
// host's environment goes in, so that runs are reproducible.
var hostEnv = []string{"TERM", "LANG", "LC_ALL", "TZ", "COLORTERM"}

// Invocation is one command to run in a project's sandbox.
type Invocation struct {
	Args []string
	// Cwd is the working directory on the host; inside it is the same path.
	Cwd string
	// Root runs the command as root inside (still the user outside), with
	// root emulation so that package managers work.
	Root bool
	// Terminal and TerminalOutput: see rootless.Process.
	Terminal, TerminalOutput bool
	Rows, Cols               uint16

	agentSocket string // set by SandboxSpec
}

// agentSocketTarget is where the host's SSH agent socket appears inside
// (the path Docker Desktop uses, which some tools know).
const agentSocketTarget = "/run/host-services/ssh-auth.sock"

// hostIntegration shares, on purpose, the few host files a developer
// expects to follow them into the sandbox: ~/.gitconfig and
// ~/.ssh/known_hosts read-only, and the SSH agent's socket. It returns the
// mounts and the agent socket's path inside ("" without an agent).
func hostIntegration(u User) ([]mounts.Mount, string) {
	var ms []mounts.Mount
	if home, err := os.UserHomeDir(); err == nil {
		for _, f := range []string{".gitconfig", ".ssh/known_hosts"} {
			ms = append(ms, mounts.Mount{Type: mounts.Bind, Source: filepath.Join(home, f),
				Target: filepath.Join(u.Home, f), ReadOnly: true, Optional: true})
		}
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if fi, err := os.Stat(sock); sock == "" || err != nil || fi.Mode()&os.ModeSocket == 0 {
		return ms, ""
	}
	return append(ms, mounts.Mount{Type: mounts.Bind, Source: sock, Target: agentSocketTarget}), agentSocketTarget
}

// SandboxSpec describes the sandbox that runs inv in project p on img.
func SandboxSpec(p *Project, store *image.Store, img *image.Image, u User, inv Invocation) *rootless.Spec {
	if inv.Root {
		u = User{Name: "root", Home: "/root"}
	}
	view := mounts.View{
		Layers:           store.LayerDirs(img),
		Upper:            p.UpperDir(),
		Work:             p.WorkDir(),
		WorkTree:         p.Dir,
		Home:             p.HomeDir(),
		HomeTarget:       u.Home,
		HostNetworkFiles: true,
	}
	view.Extra, inv.agentSocket = hostIntegration(u)
	cwd := p.Dir
	if rel, err := filepath.Rel(p.Dir, inv.Cwd); err == nil && !strings.HasPrefix(rel, "..") {
		cwd = inv.Cwd
	}
	return &rootless.Spec{
		RootDir:  p.RootDir(),
		Mounts:   mounts.Plan(view),
		Hostname: "devbox",
		Network:  rootless.NetworkHost,
		User:     rootless.User{Name: u.Name, Home: u.Home, Shell: "/bin/sh"},
		Process: rootless.Process{
			Args:           inv.Args,
			Env:            environment(img.Config.Env, u, cwd, inv.agentSocket),
			Cwd:            cwd,
			UID:            u.UID,
			GID:            u.GID,
			RootEmulation:  inv.Root,
			Terminal:       inv.Terminal,
			TerminalOutput: inv.TerminalOutput,
			Rows:           inv.Rows,
			Cols:           inv.Cols,
		},
	}
}

// environment is the image's Env, then the user's identity and the agent
// socket, then the few host variables in hostEnv. Later entries replace
// earlier ones.
func environment(imageEnv []string, u User, cwd, agentSocket string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	for _, kv := range imageEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set(k, v)
		}
	}
	set("HOME", u.Home)
	set("USER", u.Name)
	set("LOGNAME", u.Name)
	set("PWD", cwd)
	set("DEVBOX", "1")
	if agentSocket != "" {
		set("SSH_AUTH_SOCK", agentSocket)
	}
	for _, k := range hostEnv {
		if v, ok := os.LookupEnv(k); ok {
			set(k, v)
		}
	}
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = fmt.Sprintf("%s=%s", k, vals[k])
	}
	return env
}
