package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
)

// rootFSChoiceFile is where the store remembers how this machine makes
// root filesystems, as probed once per kernel: three lines, the kernel
// release, the mode and the helper's path (empty but for fuse-overlayfs).
// Every run reads it, and encoding/json would take 0.15 ms of a fresh
// process to decode it.
const rootFSChoiceFile = "rootfs.choice"

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
	cache := filepath.Join(dataDir, rootFSChoiceFile)
	if mode, helper, ok := readRootFSChoice(cache, kernel); ok {
		return mode, helper, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	scratch, err := os.MkdirTemp(dataDir, ".tmp-probe-")
	if err != nil {
		return "", "", err
	}
	defer image.RemoveAll(scratch)
	mode, helper := rootless.ProbeRootFS(scratch)
	fsutil.WriteAtomic(cache, []byte(kernel+"\n"+string(mode)+"\n"+helper+"\n"), 0o600)
	return mode, helper, nil
}

// readRootFSChoice reads the remembered probe at path, if it was made
// under kernel and names a mode devbox knows.
func readRootFSChoice(path, kernel string) (mounts.RootFS, string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 4 || lines[0] != kernel || lines[3] != "" {
		return "", "", false
	}
	switch mode := mounts.RootFS(lines[1]); mode {
	case mounts.RootFSOverlay, mounts.RootFSCopy, mounts.RootFSFuse:
		return mode, lines[2], true
	}
	return "", "", false
}
