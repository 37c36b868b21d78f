package env

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
)

// Status describes a project's environment as it is on disk, without
// pulling or building anything.
type Status struct {
	Project  string       `json:"project"`
	Config   string       `json:"config"`
	Lock     string       `json:"lock"` // "pinned", "missing"
	Image    ImageStatus  `json:"image"`
	Steps    []StepStatus `json:"steps"`
	Writable LayerStatus  `json:"writableLayer"`
	RootFS   string       `json:"rootfs"`
	Network  string       `json:"network"`
	Userns   string       `json:"userns"`
	StateDir string       `json:"stateDir"`
	// Running: a sandbox of the project runs, which a new run or shell
	// joins.
	Running    bool          `json:"running"`
	LayerCount int           `json:"layerCount"`
	Scripts    []string      `json:"scripts,omitempty"`
	Took       time.Duration `json:"-"`
}

// ImageStatus is the image part of a Status.
type ImageStatus struct {
	Ref      string `json:"ref"`
	Digest   string `json:"digest,omitempty"`
	Platform string `json:"platform"`
	Present  bool   `json:"present"`
	Layers   int    `json:"layers"`
	Size     int64  `json:"size"` // bytes on disk, unpacked
}

// StepStatus is one build step in a Status.
type StepStatus struct {
	Name  string    `json:"name"`
	Key   string    `json:"key"`
	Built bool      `json:"built"`
	When  time.Time `json:"builtAt,omitzero"`
	Size  int64     `json:"size"`
}

// LayerStatus is a directory's size and modification time.
type LayerStatus struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// rootFSDescriptions say how sandboxes make their root filesystem.
var rootFSDescriptions = map[mounts.RootFS]string{
	mounts.RootFSOverlay: "overlay: kernel overlayfs in the user namespace (userxattr)",
	mounts.RootFSFuse:    "fuse-overlayfs: the kernel refuses overlayfs to a user namespace here",
	mounts.RootFSCopy:    "copy: a flattened copy of the layers (neither overlayfs nor fuse-overlayfs works here)",
}

// Inspect reports the state of cfg's environment from the store and the
// lock alone: no network, no building.
func Inspect(cfg *Config, dirs Dirs, store *image.Store, rootfs mounts.RootFS) (*Status, error) {
	start := time.Now()
	lock, err := ReadLock(filepath.Join(cfg.Dir(), LockFileName))
	if err != nil {
		return nil, err
	}
	project, err := OpenProject(dirs, cfg.Dir())
	if err != nil {
		return nil, err
	}
	st := &Status{
		Project: cfg.Dir(), Config: cfg.Path, Lock: "missing", StateDir: project.StateDir,
		RootFS: rootFSDescriptions[rootfs], Network: orDefault(cfg.Network.Mode, "host"), Userns: orDefault(cfg.Sandbox.Userns, "single"),
		Image:    ImageStatus{Ref: cfg.Image.Ref, Platform: hostPlatform(cfg)},
		Writable: LayerStatus{Path: project.UpperDir(), Size: fsutil.TreeSize(project.UpperDir())},
	}
	st.Scripts = slices.Sorted(maps.Keys(cfg.Scripts))
	st.Running = project.SandboxRunning()
	if lock != nil {
		st.Lock = "pinned"
	}
	src, err := imageSource(cfg)
	if err != nil {
		return nil, err
	}
	ref := cfg.Image.Ref
	switch d := lock.imageDigest(cfg.Image.Ref, st.Image.Platform); {
	case src.IsLocal():
		ref = src.String()
	case d != "":
		ref = src.Ref.Digested(d).String()
	}
	img, err := store.Lookup(ref)
	if errors.Is(err, image.ErrNotPresent) {
		st.Took = time.Since(start)
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.Image.Present, st.Image.Digest, st.Image.Layers = true, img.Digest.String(), len(img.Layers)
	for _, d := range store.LayerDirs(img) {
		st.Image.Size += fsutil.TreeSize(d)
	}
	shas := make([]string, len(cfg.Tools.Archive))
	for i, a := range cfg.Tools.Archive {
		shas[i] = a.SHA256
		if shas[i] == "" {
			shas[i] = lock.archiveSHA256(a.StepName(), a.URL)
		}
	}
	for _, s := range planSteps(cfg, img, shas, rootfs) {
		ss := StepStatus{Name: s.Name, Key: s.Key}
		if fi, err := os.Stat(StepDir(dirs, s.Key)); err == nil {
			ss.Built, ss.When, ss.Size = true, fi.ModTime(), fsutil.TreeSize(StepDir(dirs, s.Key))
		}
		st.Steps = append(st.Steps, ss)
	}
	st.LayerCount = st.Image.Layers + len(st.Steps)
	st.Took = time.Since(start)
	return st, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Reset discards the project's writable layer (and its home, with home),
// so that the next sandbox starts from the image and the steps alone.
func (p *Project) Reset(home bool) error {
	release, err := fsutil.TryLock(p.Lock())
	if errors.Is(err, fsutil.ErrLocked) {
		return ErrInUse
	}
	if err != nil {
		return err
	}
	defer release()
	os.Remove(filepath.Join(p.StateDir, "flat.layers"))
	if err := removeTree(filepath.Join(p.StateDir, "flat")); err != nil {
		return err
	}
	dirs := []string{p.UpperDir(), p.WorkDir()}
	if home {
		dirs = append(dirs, p.HomeDir())
	}
	for _, d := range dirs {
		if err := removeTree(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// removeTree removes a directory a sandbox wrote to. Where a subuid
// sandbox left files owned by the user's subordinate ids, which the user
// cannot remove directly, it removes them from inside a user namespace with
// that map.
func removeTree(dir string) error {
	err := image.RemoveAll(dir)
	if errors.Is(err, fs.ErrPermission) {
		return rootless.RemoveAllMapped(dir)
	}
	return err
}
