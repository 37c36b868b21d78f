package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/rootless"
)

// frontRequest reports whether the front (internal/front) could run req
// from a record: a plain `devbox run [--] COMMAND...` or `devbox shell`,
// on a terminal or not, in a sandbox of its own on the project's writable
// layer, with the host's network and one mapped id. Only such a run
// writes one, unless DEVBOX_FRONT=0 turns the front off.
func frontRequest(req sandboxRequest, launch, want rootless.Launch) bool {
	return frontLinked && os.Getenv("DEVBOX_FRONT") != "0" && !req.Root && !req.Ephemeral && len(req.Env) == 0 &&
		!req.Prepare.Frozen && launch == want
}

// saveFront writes the Front record of a run of spec in cwd, which began
// at start: the next run there with the same arguments' shape is the
// front's, while nothing that in noted changes. A record whose inputs
// changed while devbox read them is not written; the next run writes it.
func saveFront(f *Factory, e *env.Environment, spec *rootless.Spec, in *env.Inputs, cwd string, start time.Time) error {
	dirs, err := f.Dirs()
	if err != nil {
		return err
	}
	// What the CLI read beside SandboxSpec: devbox.toml and devbox.lock
	// (their parse caches follow them), the user's passwd entry
	// (env.CurrentUser) and the root filesystem's mode.
	in.Add(e.Config.Path, filepath.Join(e.Config.Dir(), env.LockFileName), "/etc/passwd",
		filepath.Join(dirs.Data, rootFSChoiceFile), e.RunningRecord())
	// And the variables it read beside SandboxSpec: devbox's directories
	// (env.DefaultDirs), devbox's settings (DEVBOX_ROOTFS, the
	// registries'), PATH (where fuse-overlayfs is) and what changes its
	// messages.
	in.AddEnv("HOME", "XDG_*", "DEVBOX_*", "PATH", "NO_COLOR", "TERM")
	names := in.EnvNames()
	r := &rootless.Front{
		Init:        rootless.InitExecutable(),
		Kernel:      rootless.KernelRelease(),
		UID:         uint32(os.Getuid()),
		GID:         uint32(os.Getgid()),
		Cwd:         cwd,
		EnvNames:    names,
		Env:         rootless.EnvHash(os.Environ(), names),
		Inputs:      in.Front(),
		Scripts:     e.Config.Scripts,
		Shell:       e.ShellArgs(),
		ProjectLock: e.Project.Lock(),
		UpperLock:   e.Project.UpperLock(),
		Running:     e.RunningRecord(),
		Spec:        *spec,
	}
	r.Spec.Process.Args = nil
	if !r.Settled(start) {
		return nil
	}
	return rootless.SaveFront(rootless.FrontPath(dirs.Data, cwd), r)
}
