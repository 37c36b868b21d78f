package env

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/mounts"
)

// Dirs are the user's devbox directories, following the XDG base
// directory specification.
type Dirs struct {
	// Cache holds what can be fetched again: downloads.
	Cache string
	// Data holds the layer store and per-project state.
	Data string
}

// DefaultDirs returns ${XDG_CACHE_HOME:-~/.cache}/devbox and
// ${XDG_DATA_HOME:-~/.local/share}/devbox.
func DefaultDirs() (Dirs, error) {
	home, err := os.UserHomeDir()
	xdg := func(v, def string) (string, error) {
		if d := os.Getenv(v); filepath.IsAbs(d) {
			return filepath.Join(d, "devbox"), nil
		}
		if err != nil {
			return "", fmt.Errorf("locate devbox's directories: %w (set %s)", err, v)
		}
		return filepath.Join(home, def, "devbox"), nil
	}
	cache, err1 := xdg("XDG_CACHE_HOME", ".cache")
	data, err2 := xdg("XDG_DATA_HOME", filepath.Join(".local", "share"))
	if err := errors.Join(err1, err2); err != nil {
		return Dirs{}, err
	}
	return Dirs{Cache: cache, Data: data}, nil
}

// Project is the per-project state devbox keeps outside the work tree.
type Project struct {
	// Dir is the project directory (where devbox.toml is).
	Dir string
	// StateDir holds the project's writable layer, home and mount point.
	StateDir string
}

// OpenProject returns the state of the project in dir, creating it on
// first use. The state directory is named after a hash of the project's
// canonical path, and records that path in a file named "path" so that
// tools like gc can find the projects that use the store. Dir stays dir,
// the path the user reached the project by, where the sandbox mounts it.
func OpenProject(dirs Dirs, dir string) (*Project, error) {
	canonical := canonicalDir(dir)
	p := &Project{Dir: dir, StateDir: stateDirOf(dirs, canonical)}
	for _, d := range []string{p.UpperDir(), p.WorkDir(), p.HomeDir(), p.RootDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("project state: %w", err)
		}
	}
	// The upper layer's own mode is the mode of the sandbox's "/", which
	// every user inside must be able to search; StateDir keeps other host
	// users out.
	// Changed only when it differs: a chmod writes the inode (its ctime)
	// on every run otherwise.
	if fi, err := os.Stat(p.UpperDir()); err != nil || fi.Mode().Perm() != 0o755 {
		if err := os.Chmod(p.UpperDir(), 0o755); err != nil {
			return nil, fmt.Errorf("project state: %w", err)
		}
	}
	pathFile := filepath.Join(p.StateDir, "path")
	if b, err := os.ReadFile(pathFile); err != nil || string(b) != canonical+"\n" {
		if err := os.WriteFile(pathFile, []byte(canonical+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("project state: %w", err)
		}
	}
	return p, nil
}

// projectStateDir is the state directory of the project in dir. A project
// reached through a symlink, as ~/src/app when ~/src is /data/src, is the
// same project as at /data/src/app, with the same writable layer and home:
// the directory is named after the canonical path.
func projectStateDir(dirs Dirs, dir string) string {
	return stateDirOf(dirs, canonicalDir(dir))
}

func stateDirOf(dirs Dirs, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return filepath.Join(dirs.Data, "projects", hex.EncodeToString(sum[:8]))
}

// canonicalDir is dir with every symlink on its way resolved, or dir as
// it is when it cannot be resolved.
func canonicalDir(dir string) string {
	if c, err := filepath.EvalSymlinks(dir); err == nil {
		return c
	}
	return dir
}

// ErrInUse is returned by Reset while a sandbox of the project runs.
var ErrInUse = errors.New("a sandbox of this project is running: leave it first")

// Lock is the project's lock: shared by its running sandboxes
// (Environment.Running), exclusive for a reset.
func (p *Project) Lock() string { return filepath.Join(p.StateDir, "lock") }

// UpperLock is held by the sandbox that uses the project's writable layer.
func (p *Project) UpperLock() string { return filepath.Join(p.StateDir, upperLock) }

// UpperDir is the project's writable layer: what the sandbox changes
// outside the work tree and home persists here until 'devbox reset'.
func (p *Project) UpperDir() string { return filepath.Join(p.StateDir, "upper") }

// WorkDir is overlayfs's scratch directory for UpperDir.
func (p *Project) WorkDir() string { return filepath.Join(p.StateDir, "work") }

// HomeDir is the project's home directory, mounted as the user's home.
func (p *Project) HomeDir() string { return filepath.Join(p.StateDir, "home") }

// ShareSocket is where the sandbox that uses the writable layer listens
// for commands that join it (rootless.Join).
func (p *Project) ShareSocket() string { return filepath.Join(p.StateDir, "sandbox.sock") }

// RootDir is the mount point of the root filesystem; it stays empty on the
// host.
func (p *Project) RootDir() string { return filepath.Join(p.StateDir, "root") }

// flatCopy returns the project's flattened copy of layers, for sandboxes
// whose root filesystem is a copy: it persists, like the writable layer,
// until the layers change, when it is made again (and what sandboxes
// changed in it is lost) or until 'devbox reset'.
func (p *Project) flatCopy(layers []string) (string, error) {
	dir := filepath.Join(p.StateDir, "flat")
	marker := filepath.Join(p.StateDir, "flat.layers")
	want := strings.Join(layers, "\n") + "\n"
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return dir, nil
	}
	if err := image.RemoveAll(dir); err != nil {
		return "", err
	}
	os.Remove(marker)
	tmp := dir + ".tmp"
	if err := image.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	if err := mounts.Flatten(layers, tmp); err != nil {
		image.RemoveAll(tmp)
		return "", fmt.Errorf("flatten the layers: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, os.WriteFile(marker, []byte(want), 0o600)
}
