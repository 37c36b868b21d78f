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
	// Terminal and TerminalOutput: see rootless.Process.
	Terminal, TerminalOutput bool
	Rows, Cols               uint16
}

// SandboxSpec describes the sandbox that runs inv in project p on img.
func SandboxSpec(p *Project, store *image.Store, img *image.Image, u User, inv Invocation) *rootless.Spec {
	view := mounts.View{
		Layers:           store.LayerDirs(img),
		Upper:            p.UpperDir(),
		Work:             p.WorkDir(),
		WorkTree:         p.Dir,
		Home:             p.HomeDir(),
		HomeTarget:       u.Home,
		HostNetworkFiles: true,
	}
	cwd := p.Dir
	if rel, err := filepath.Rel(p.Dir, inv.Cwd); err == nil && !strings.HasPrefix(rel, "..") {
		cwd = inv.Cwd
	}
	return &rootless.Spec{
		RootDir:  p.RootDir(),
		Mounts:   mounts.Plan(view),
		Hostname: "devbox",
		Network:  rootless.NetworkHost,
		Process: rootless.Process{
			Args:           inv.Args,
			Env:            environment(img.Config.Env, u, cwd),
			Cwd:            cwd,
			UID:            u.UID,
			GID:            u.GID,
			Terminal:       inv.Terminal,
			TerminalOutput: inv.TerminalOutput,
			Rows:           inv.Rows,
			Cols:           inv.Cols,
		},
	}
}

// environment is the image's Env, then the user's identity, then the few
// host variables in hostEnv. Later entries replace earlier ones.
func environment(imageEnv []string, u User, cwd string) []string {
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
