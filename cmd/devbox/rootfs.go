package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
)

// rootFSChoice is how this machine makes root filesystems, as probed once
// per kernel and remembered in the store.
type rootFSChoice struct {
	Kernel string        `json:"kernel"`
	Mode   mounts.RootFS `json:"mode"`
	Helper string        `json:"helper,omitempty"`
}

// rootFS decides the root filesystem mode: DEVBOX_ROOTFS when set
// ("overlay", "fuse-overlayfs" or "copy"), else the remembered probe for
// this kernel, else a new probe (kernel overlayfs, then fuse-overlayfs, then
// a copy).
func rootFS(dataDir string) (mounts.RootFS, string, error) {
	if v := os.Getenv("DEVBOX_ROOTFS"); v != "" {
		switch mode := mounts.RootFS(v); mode {
		case mounts.RootFSOverlay, mounts.RootFSCopy:
			return mode, "", nil
		case mounts.RootFSFuse:
			helper, err := exec.LookPath("fuse-overlayfs")
			if err != nil {
				return "", "", fmt.Errorf("DEVBOX_ROOTFS=fuse-overlayfs, but fuse-overlayfs is not installed (Debian: apt-get install fuse-overlayfs)")
			}
			return mode, helper, nil
		}
		return "", "", &FlagError{Err: fmt.Errorf("DEVBOX_ROOTFS=%q: use overlay, fuse-overlayfs or copy", v)}
	}
	kernel := rootless.KernelRelease()
	cache := filepath.Join(dataDir, "rootfs.json")
	var c rootFSChoice
	if b, err := os.ReadFile(cache); err == nil && json.Unmarshal(b, &c) == nil && c.Kernel == kernel {
		return c.Mode, c.Helper, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	scratch, err := os.MkdirTemp(dataDir, ".tmp-probe-")
	if err != nil {
		return "", "", err
	}
	defer image.RemoveAll(scratch)
	c.Kernel = kernel
	c.Mode, c.Helper = rootless.ProbeRootFS(scratch)
	if b, err := json.Marshal(c); err == nil {
		fsutil.WriteAtomic(cache, b, 0o600)
	}
	return c.Mode, c.Helper, nil
}
